"""``affectlite evaluate``: score a Keras model, a ``.tflite`` or a bundle on a labelled dataset."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.options import (
    add_dataset,
    add_json,
    add_limit,
    add_model,
    check_paths,
    emit_json,
)
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


def load_predictor(path: str | Path, num_threads: int | None = None) -> Predictor:
    """Opens a bundle folder, a ``.tflite`` file or a ``.keras`` model."""
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
        raise InputError(f"--model {path}: no such file or bundle folder.")
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
        import keras

        import affectlite.train.model  # noqa: F401  (registers the in-model preprocessing layer)

        model = keras.models.load_model(path)
        size = int(model.input_shape[1])
        return Predictor(
            str(path),
            "keras",
            size,
            CropPolicy(),
            lambda x: model.predict(x.astype(np.float32), batch_size=64, verbose=0),
        )
    raise InputError(f"--model {path}: expected a bundle folder, .tflite or .keras file.")


def _batched(function: Callable[[np.ndarray], np.ndarray], size: int):
    def run(images: np.ndarray) -> np.ndarray:
        return np.concatenate([function(images[i : i + size]) for i in range(0, len(images), size)])

    return run


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
    add_model(parser)
    add_dataset(parser, required=True)
    add_limit(parser)
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    add_json(parser)
    parser.add_argument("--png", type=Path, help="confusion matrix PNG (default: beside --json)")


def run(args: argparse.Namespace) -> int:
    check_paths(model=args.model, data=args.data)
    from affectlite.train import plots
    from affectlite.train.datasets import limit_samples, load_dataset
    from affectlite.train.pipeline import load_split

    index = load_dataset(args.data, args.format, args.split, ferplus_mode=args.ferplus_mode)
    index = limit_samples(index, args.limit, args.seed)
    predictor = load_predictor(args.model, args.threads)
    split = load_split(index, predictor.input_size, predictor.crop)
    report = evaluate(predictor, split.images, split.labels)
    report["data"] = {
        "root": str(args.data),
        "format": args.format,
        "split": args.split,
        "skipped": len(split.skipped),
    }
    out = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON
    print(
        f"{predictor.kind} on {args.format}/{args.split} (n={report['n']}): accuracy "
        f"{report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}",
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
