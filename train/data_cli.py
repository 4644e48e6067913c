"""``affectlite data``: check an expression dataset, or pack its face crops for training.

``affectlite data inspect PATH --format F [--json OUT]`` reads the labels, decodes every image
and reports samples per class and split, dropped rows and why, unreadable images and image
sizes. ``affectlite data pack PATH --format F --out DIR --input-size S`` writes each split's face
crops as ``.npy`` files read with NumPy alone (see ``affectlite.train.readers.packed``), so
training on either backend streams them from disk.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from affectlite.edge_app.preprocess import CropPolicy, ImageError
from affectlite.errors import InputError
from affectlite.markdown import table
from affectlite.options import HelpFormatter, add_input_size, add_json, emit_json
from affectlite.train.datasets import (
    FERPLUS_MODES,
    FORMATS,
    HUGE_SIDE,
    MIN_FACE_SIDE,
    SPLITS,
    DatasetIndex,
    Sample,
    available_splits,
    crop_sample,
    load_dataset,
    load_image,
)
from affectlite.train.readers.base import parallel_map

_SHOWN = 5
"""Examples listed per problem in the printed report (the JSON has all)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="{inspect,pack}")
    inspect = actions.add_parser(
        "inspect", help="decode every image and report what is there", formatter_class=HelpFormatter
    )
    pack = actions.add_parser(
        "pack", help="write face crops as .npy files for training", formatter_class=HelpFormatter
    )
    for sub in (inspect, pack):
        sub.add_argument("path", type=Path, help="dataset folder (or the FER2013 CSV file)")
        sub.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
        sub.add_argument(
            "--split",
            choices=SPLITS,
            action="append",
            help="split to use (repeatable; default: every split the dataset has)",
        )
        sub.add_argument(
            "--ferplus-mode",
            default="majority",
            choices=FERPLUS_MODES,
            help="how FER+ votes become labels",
        )
        sub.add_argument(
            "--workers", type=int, default=min(8, os.cpu_count() or 1), help="decoding threads"
        )
    add_json(inspect, "the full report also")
    pack.add_argument("--out", type=Path, required=True, help="output folder")
    add_input_size(pack, backbone_option=True)
    pack.add_argument(
        "--margin",
        type=float,
        default=CropPolicy().margin,
        help="face-box margin (datasets with face boxes only)",
    )


def _indices(args: argparse.Namespace) -> list[DatasetIndex]:
    splits = args.split or available_splits(args.path, args.format)
    return [
        load_dataset(
            args.path, args.format, split, ferplus_mode=args.ferplus_mode, check_files=True
        )
        for split in dict.fromkeys(splits)
    ]


def _look(sample: Sample) -> tuple[tuple[int, int, bool] | None, str | None]:
    """``((width, height, grey), None)`` for a usable image, else ``(None, error)``."""
    try:
        image = load_image(sample)
        crop_sample(image, sample, MIN_FACE_SIDE)  # checks the face box against the image
    except ImageError as error:
        return None, str(error)
    grey = bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())
    return (image.shape[1], image.shape[0], grey), None


def _spread(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": float(np.median(values)), "max": max(values)}


def inspect_split(index: DatasetIndex, workers: int, progress: bool = True) -> dict:
    """Decodes every image of ``index``; returns counts, problems and size statistics."""
    from affectlite.progress import progress as shown

    widths, heights, grey, failed = [], [], 0, []
    results = parallel_map(_look, index.samples, workers)
    results = shown(results, len(index.samples), f"inspect {index.split}") if progress else results
    for sample, (info, error) in results:
        if info is None:
            failed.append([sample.id, error])
            continue
        widths.append(info[0])
        heights.append(info[1])
        grey += info[2]
    huge = sum(max(w, h) > HUGE_SIDE for w, h in zip(widths, heights))
    return {
        "samples": len(index.samples),
        "readable": len(widths),
        "counts": index.counts(),
        "skipped_by_reason": index.skipped_by_reason(),
        "skipped": [list(row) for row in index.skipped],
        "failed": failed,
        "warnings": index.warnings,
        "width": _spread(widths),
        "height": _spread(heights),
        "grey": grey,
        "huge": huge,
        "huge_side": HUGE_SIDE,
    }


def _markdown(report: dict) -> str:
    splits = report["splits"]
    names = list(dict.fromkeys(name for s in splits.values() for name in s["counts"]))
    rows = [[name, *(f"{s['counts'].get(name, 0):,}" for s in splits.values())] for name in names]
    rows.append(["**total**", *(f"{s['samples']:,}" for s in splits.values())])
    numbers = range(1, len(splits) + 1)
    lines = [f"## {report['root']} ({report['format']})", ""]
    lines += table(["class", *splits], rows, right=numbers)
    for split, s in splits.items():
        lines += ["", f"### {split}"]
        dropped = ", ".join(f"{reason} {n:,}" for reason, n in s["skipped_by_reason"].items())
        lines.append(
            f"- rows dropped: {len(s['skipped']):,}" + (f" ({dropped})" if dropped else "")
        )
        for where, reason in s["skipped"][:_SHOWN]:
            lines.append(f"  - {where}: {reason}")
        lines.append(f"- images readable: {s['readable']:,} of {s['samples']:,}")
        for sample_id, error in s["failed"][:_SHOWN]:
            lines.append(f"  - unreadable {sample_id}: {error}")
        if s["width"]:
            w, h = s["width"], s["height"]
            lines.append(
                f"- image size: width {w['min']}–{w['max']} (median {w['median']:g}), height "
                f"{h['min']}–{h['max']} (median {h['median']:g}); {s['grey']:,} grey; "
                f"{s['huge']:,} over {s['huge_side']} px"
            )
        lines += [f"- warning: {text}" for text in s["warnings"]]
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    report = {
        "root": str(args.path),
        "format": args.format,
        "ferplus_mode": args.ferplus_mode if args.format == "ferplus" else None,
        "splits": {index.split: inspect_split(index, args.workers) for index in _indices(args)},
    }
    if args.json != "-":
        print(_markdown(report))
    emit_json(args.json, report)
    return 0


def _pack(args: argparse.Namespace) -> int:
    from affectlite.train.readers.packed import MANIFEST, pack

    if args.input_size < MIN_FACE_SIDE:
        raise InputError(f"--input-size must be at least {MIN_FACE_SIDE}, got {args.input_size}.")
    indices = _indices(args)  # every split is read before anything is written
    source = {
        "root": str(args.path),
        "format": args.format,
        "ferplus_mode": args.ferplus_mode if args.format == "ferplus" else None,
    }
    policy = CropPolicy(margin=args.margin)
    manifest = pack(
        indices, args.out, args.input_size, source=source, policy=policy, workers=args.workers
    )
    for split, entry in manifest["splits"].items():
        grey = ", grey (stored 1-channel)" if entry["channels"] == 1 else ""
        dropped = sum(entry["skipped_by_reason"].values())
        print(
            f"{split}: {entry['count']:,} faces{grey}, {dropped:,} rows dropped, "
            f"{len(entry['failed']):,} unreadable images"
        )
        for sample_id, error in entry["failed"][:_SHOWN]:
            print(f"  unreadable {sample_id}: {error}")
    print(f"packed dataset: {args.out / MANIFEST}")
    return 0


def run(args: argparse.Namespace) -> int:
    return _inspect(args) if args.action == "inspect" else _pack(args)
