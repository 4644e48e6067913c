"""``affectlite evaluate``: score a Keras model, a ``.tflite`` or a bundle on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.train.metrics import classification_report


@dataclass
class Predictor:
    """Anything that maps uint8 crops ``(N, S, S, 3)`` to logits ``(N, 8)``."""

    name: str
    kind: str
    input_size: int
    crop: CropPolicy
    logits: Callable[[np.ndarray], np.ndarray]


def load_predictor(
    path: str | Path, num_threads: int | None = None, allow_legacy_h5: bool = False
) -> Predictor:
    """Opens a bundle folder, a ``.tflite`` file or a ``.keras`` model (a legacy ``.h5`` only
    with ``allow_legacy_h5``)."""
    path = Path(path)
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
            _batched(classifier.logits, 64),
        )
    if not path.is_file():
        raise FileNotFoundError(f"--model {path}: no such file or bundle folder.")
    if path.suffix == ".tflite":
        from affectlite.edge_app.classifier import EmotionClassifier

        classifier = EmotionClassifier(path, num_threads=num_threads)
        return Predictor(
            str(path),
            "tflite",
            classifier.input_size,
            CropPolicy(),
            _batched(classifier.logits, 64),
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
            lambda x: model.predict(x.astype(np.float32), batch_size=64, verbose=0),
        )
    raise ValueError(f"--model {path}: expected a bundle folder, .tflite or .keras file.")


def _batched(function: Callable[[np.ndarray], np.ndarray], size: int):
    def run(images: np.ndarray) -> np.ndarray:
        return np.concatenate([function(images[i : i + size]) for i in range(0, len(images), size)])

    return run


def evaluate(predictor: Predictor, images: np.ndarray, labels: np.ndarray) -> dict:
    """Classification report of ``predictor`` on uint8 crops with integer labels."""
    report = classification_report(labels, predictor.logits(images), LABELS)
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
    parser.add_argument("--model", required=True, help="bundle folder, .tflite or .keras")
    parser.add_argument("--data", required=True, help="dataset root")
    parser.add_argument("--format", required=True, help="dataset format (see `affectlite data`)")
    parser.add_argument("--split", default="val", help="dataset split (default: val)")
    parser.add_argument("--ferplus-mode", default="majority")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N samples")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--allow-legacy-h5",
        action="store_true",
        help="accept a legacy .h5 model (only one you trust: loading it can run code)",
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--png", type=Path, help="confusion matrix PNG (default: beside --json)")


def run(args: argparse.Namespace) -> int:
    from affectlite.train import plots
    from affectlite.train.datasets import load_dataset
    from affectlite.train.pipeline import load_split

    try:
        predictor = load_predictor(args.model, args.threads, args.allow_legacy_h5)
    except (FileNotFoundError, ValueError) as error:  # ValueError covers BundleError, InputError
        print(f"affectlite evaluate: {error}", file=sys.stderr)
        return 2
    index = load_dataset(args.data, args.format, args.split, ferplus_mode=args.ferplus_mode)
    if args.limit:
        index.samples = index.samples[: args.limit]
    split = load_split(index, predictor.input_size, predictor.crop)
    report = evaluate(predictor, split.images, split.labels)
    report["data"] = {
        "root": str(args.data),
        "format": args.format,
        "split": args.split,
        "skipped": len(split.skipped),
    }
    print(
        f"{predictor.kind} on {args.format}/{args.split} (n={report['n']}): accuracy "
        f"{report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}"
    )
    if "note" in report:
        print(f"note: {report['note']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.json}")
    png = args.png or (args.json.with_suffix(".png") if args.json else None)
    if png:
        plots.confusion_png(report, png, f"{Path(args.model).name} on {args.format}/{args.split}")
        print(f"confusion matrix: {png}")
    return 0
