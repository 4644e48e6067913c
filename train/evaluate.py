"""``affectlite evaluate``: score a Keras model, a ``.tflite`` or a bundle on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectlite.edge_app.bundle import DEFAULT_BUNDLE
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.options import (
    SPLIT_AUTO,
    add_bundle,
    add_dataset,
    add_json,
    add_limit,
    add_model,
    check_paths,
    choose_split,
    emit_json,
)
from affectlite.progress import batched, progress
from affectlite.schemas import METRICS_VERSION, MetricsDocument
from affectlite.train.metrics import classification_report


@dataclass
class Predictor:
    """Anything that maps uint8 crops ``(N, S, S, 3)`` to logits ``(N, 8)``."""

    name: str
    kind: str
    input_size: int
    crop: CropPolicy
    logits: Callable[[np.ndarray], np.ndarray]
    detector_path: Path | None = None


@dataclass
class DetectedSplit:
    """Crops of the faces BlazeFace found in whole images, and what it did not find."""

    images: np.ndarray
    labels: np.ndarray
    summary: dict


def load_predictor(
    path: str | Path, num_threads: int | None = None, allow_legacy_h5: bool = False
) -> Predictor:
    """Opens a bundle folder (``"default"``: the shipped bundle), a ``.tflite`` file or a
    ``.keras`` model (a legacy ``.h5`` only with ``allow_legacy_h5``)."""
    from affectlite.edge_app.bundle import resolve_bundle

    path = resolve_bundle(path)
    if path == DEFAULT_BUNDLE and not path.is_dir():
        raise InputError(
            f"--model default: the shipped bundle is missing at {path}; reinstall affectlite "
            "or name a bundle folder, .tflite or .keras file."
        )
    if path.is_dir():
        from affectlite.edge_app.bundle import load_bundle
        from affectlite.edge_app.classifier import EmotionClassifier

        bundle = load_bundle(path)
        classifier = EmotionClassifier.from_bundle(bundle, num_threads)
        return Predictor(
            str(path),
            "bundle",
            bundle.input_size,
            bundle.crop_policy,
            _batched(classifier.logits, 64, "classify"),
            bundle.detector_path,
        )
    if not path.is_file():
        raise InputError(f"--model {path}: no such file or bundle folder.")
    if path.suffix == ".tflite":
        from affectlite.edge_app.classifier import EmotionClassifier

        classifier = EmotionClassifier(path, num_threads=num_threads)
        return Predictor(
            str(path),
            "tflite",
            classifier.input_size,
            CropPolicy(),
            _batched(classifier.logits, 64, "classify"),
        )
    if path.suffix in (".keras", ".h5"):
        from affectlite.convert.converter import load_keras_model

        model = load_keras_model(path, allow_legacy_h5)
        size = int(model.input_shape[1])
        return Predictor(
            str(path),
            "keras",
            size,
            CropPolicy(),
            _batched(lambda x: model.predict_on_batch(x.astype(np.float32)), 64, "classify"),
        )
    raise InputError(f"--model {path}: expected a bundle folder, .tflite or .keras file.")


def _batched(function: Callable[[np.ndarray], np.ndarray], size: int, desc: str):
    def run(images: np.ndarray) -> np.ndarray:
        return batched(function, images, size, desc)

    return run


def detect_split(index, predictor: Predictor, num_threads: int | None = None) -> DetectedSplit:
    """Finds the face in each whole image of ``index`` as the device does and crops it.

    BlazeFace (the bundle's, else the installed one) runs with the app's settings
    (``PipelineConfig``: detection width, score threshold, least face size); the largest face
    of an image is cropped with ``predictor.crop`` (the bundle's policy) by ``crop_face``.
    Dataset face boxes are ignored. Images without a face are listed, not dropped silently;
    unreadable images are listed apart.
    """
    from affectlite.edge_app.detector import FaceDetector, blazeface_model_path
    from affectlite.edge_app.pipeline import PipelineConfig, detect_faces
    from affectlite.edge_app.preprocess import ImageError
    from affectlite.train.datasets import load_image

    config = PipelineConfig()
    detector = FaceDetector(
        predictor.detector_path or blazeface_model_path(),
        num_threads,
        config.score_threshold,
        config.nms_threshold,
        config.max_faces,
    )
    crops, labels, no_face, unreadable, several = [], [], [], [], 0
    for sample in progress(index.samples, len(index.samples), f"detect {index.split}"):
        try:
            image = load_image(sample)
        except (ImageError, OSError) as error:
            unreadable.append((sample.id, str(error)))
            continue
        faces = detect_faces(detector, image, config.detect_width, config.min_face)
        crop = _crop_largest(image, faces, predictor)
        if crop is None:
            no_face.append(sample.id)
            continue
        several += len(faces) > 1
        crops.append(crop)
        labels.append(sample.label)
    summary = {
        "detector": "blazeface",
        "images": len(index.samples) - len(unreadable),
        "faces_found": len(crops),
        "no_face": len(no_face),
        "no_face_files": no_face,
        "several_faces": several,
        "unreadable": unreadable,
    }
    if not crops:
        raise InputError(
            f"{index.root}: no face found in any of the {summary['images']} readable images of "
            f"the {index.split!r} split; are these whole photos with visible faces?"
        )
    return DetectedSplit(np.stack(crops), np.asarray(labels), summary)


def _crop_largest(image: np.ndarray, faces: list, predictor: Predictor) -> np.ndarray | None:
    """The largest face's crop; ``None`` without a face or, as the app skips it, when the
    box lies off the image."""
    from affectlite.edge_app.preprocess import ImageError, crop_face

    if not faces:
        return None
    largest = max(faces, key=lambda face: face.area)
    try:
        return crop_face(image, largest.box, predictor.input_size, predictor.crop)
    except ImageError:
        return None


def evaluate(predictor: Predictor, images: np.ndarray, labels: np.ndarray) -> MetricsDocument:
    """Classification report of ``predictor`` on uint8 crops with integer labels."""
    report: MetricsDocument = {
        "schema_version": METRICS_VERSION,
        **classification_report(labels, predictor.logits(images), LABELS),
    }
    report["model"] = predictor.name
    report["model_kind"] = predictor.kind
    missing = [label for label in LABELS if label not in report["classes_evaluated"]]
    if missing:
        report["note"] = (
            f"the dataset has no {', '.join(missing)}: balanced accuracy and macro-F1 are over its "
            f"own {len(report['classes_evaluated'])} classes; predictions of missing classes "
            "count as errors"
        )
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    add_bundle(which, default=None)
    add_model(which, required=False)
    which._group_actions[0].help += " (default: default, when no --model is given)"
    add_dataset(parser, required=True, split=SPLIT_AUTO, split_help="split to score")
    add_limit(parser)
    parser.add_argument(
        "--threads", type=int, default=None, help="interpreter threads (default: automatic)"
    )
    parser.add_argument(
        "--detect",
        action="store_true",
        help="the images are whole photos: find the face with BlazeFace and crop it as the app "
        "does (the largest face where there are several; dataset face boxes are ignored); "
        "images without a face are counted and listed in the report",
    )
    parser.add_argument(
        "--allow-legacy-h5",
        action="store_true",
        help="accept a legacy .h5 model (only one you trust: loading it can run code)",
    )
    add_json(parser)
    parser.add_argument("--png", type=Path, help="confusion matrix PNG (default: beside --json)")


def run(args: argparse.Namespace) -> int:
    from affectlite.train.backend import require_tensorflow

    require_tensorflow()  # export, conversion and .keras scoring run on TensorFlow's Keras
    if args.model is None and args.bundle is None:
        args.bundle = DEFAULT_BUNDLE
        print(f"affectlite evaluate: using the default bundle {DEFAULT_BUNDLE}", file=sys.stderr)
    check_paths(model=args.model, bundle=args.bundle, data=args.data)
    args.model = args.model or args.bundle
    args.split = choose_split(args, "affectlite evaluate")
    from affectlite.train import plots
    from affectlite.train.datasets import limit_samples, load_dataset
    from affectlite.train.pipeline import load_split

    index = load_dataset(args.data, args.format, args.split, ferplus_mode=args.ferplus_mode)
    index = limit_samples(index, args.limit, args.seed)
    predictor = load_predictor(args.model, args.threads, args.allow_legacy_h5)
    if args.detect:
        found = detect_split(index, predictor, args.threads)
        report = evaluate(predictor, found.images, found.labels)
        report["detection"] = found.summary
        skipped = len(index.skipped) + len(found.summary["unreadable"])
    else:
        split = load_split(index, predictor.input_size, predictor.crop)
        report = evaluate(predictor, split.images, split.labels)
        skipped = len(split.skipped)
    report["data"] = {
        "root": str(args.data),
        "format": args.format,
        "split": args.split,
        "skipped": skipped,
    }
    out = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON
    print(
        f"{predictor.kind} on {args.format}/{args.split} (n={report['n']}): accuracy "
        f"{report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}",
        file=out,
    )
    if "detection" in report:
        found = report["detection"]
        print(
            f"faces found in {found['faces_found']} of {found['images']} images; no face in "
            f"{found['no_face']} (listed in the report's detection.no_face_files)",
            file=out,
        )
    if "note" in report:
        print(f"note: {report['note']}", file=out)
    emit_json(args.json, report)
    png = args.png or (
        Path(args.json).with_suffix(".png") if args.json not in (None, "-") else None
    )
    if png:
        plots.confusion_png(report, png, f"{Path(args.model).name} on {args.format}/{args.split}")
        print(f"confusion matrix: {png}", file=out)
    return 0
