"""FER2013 as Kaggle's ``fer2013.csv``: ``emotion,pixels,Usage``, one 48×48 grey face per row.

``Usage`` Training / PublicTest / PrivateTest become the ``train`` / ``val`` / ``test`` splits.
The pixels stay inline (``Sample.pixels``, 2.3 kB each). ``icml_face_data.csv`` from the same
challenge (header with spaces) reads the same way.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from affectlite.edge_app.labels import FER2013, LABELS_7
from affectlite.train.readers.base import (
    MIN_FACE_SIDE,
    Collector,
    DatasetError,
    DatasetIndex,
    Sample,
    Skip,
    csv_table,
    parse_int,
)

USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}
COLUMNS = ("emotion", "pixels", "Usage")
CSV_NAMES = ("fer2013.csv", "fer2013/fer2013.csv", "icml_face_data.csv")


def csv_file(root: Path) -> Path:
    """The CSV itself, or the first known CSV name inside ``root``."""
    if root.is_file():
        return root
    for name in CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: no FER2013 CSV; expected one of {', '.join(CSV_NAMES)} in it.")


def splits(root: Path) -> tuple[str, ...]:
    csv_file(root)
    return tuple(USAGE.values())


def parse_pixels(text: str) -> np.ndarray:
    """A square grey image from space-separated 0–255 values."""
    try:
        values = np.fromstring(text, dtype=np.int32, sep=" ")
    except ValueError:
        raise Skip("bad pixels: not space-separated integers") from None
    side = math.isqrt(values.size)
    if side * side != values.size or values.size == 0:
        raise Skip(f"bad pixels: {values.size} values do not form a square image")
    if side < MIN_FACE_SIDE:
        raise Skip(f"face too small: {side}×{side} px (need ≥ {MIN_FACE_SIDE} px)")
    if values.min() < 0 or values.max() > 255:
        raise Skip(f"bad pixels: values {values.min()}..{values.max()} outside 0..255")
    image = values.astype(np.uint8).reshape(side, side)
    image.setflags(write=False)
    return image


def read(root: Path, split: str) -> DatasetIndex:
    path = csv_file(root)
    width, columns, rows = csv_table(path, COLUMNS)
    collect = Collector()
    for line, fields in rows:
        where = f"{path.name}:{line}"
        try:
            if len(fields) != width:
                raise Skip(f"malformed row: {len(fields)} fields, the header has {width}")
            usage = fields[columns["Usage"]].strip()
            if USAGE.get(usage.lower()) is None:
                raise Skip(f"unknown Usage: {usage!r} (expected Training, PublicTest, PrivateTest)")
            if USAGE[usage.lower()] != split:
                continue
            emotion = parse_int(fields[columns["emotion"]], "emotion")
            if emotion not in FER2013:
                raise Skip(f"label out of range: emotion {emotion} (valid 0–6)")
            pixels = parse_pixels(fields[columns["pixels"]])
        except Skip as skip:
            collect.skip(where, str(skip))
            continue
        collect.add(where, Sample(where, FER2013[emotion], pixels=pixels))
    return DatasetIndex(
        "FER2013", "fer2013", split, str(root), collect.samples, LABELS_7, collect.skipped
    )
