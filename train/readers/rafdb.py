"""RAF-DB basic: ``EmoLabel/list_patition_label.txt`` and ``Image/aligned/`` or ``Image/original/``.

Label lines read ``train_00001.jpg 5`` (1 Surprise … 7 Neutral, see ``RAFDB``); the name's
prefix gives the split (``train`` or ``test``; RAF-DB has no validation split). Aligned faces
``Image/aligned/<stem>_aligned.jpg`` are used when present; otherwise the original photos with
their face boxes from ``Annotation/boundingbox/<stem>_boundingbox.txt`` (``x0 y0 x1 y1``).
"""

from __future__ import annotations

import os
from pathlib import Path

from affectlite.edge_app.labels import LABELS_7, RAFDB
from affectlite.train.readers.base import (
    Collector,
    DatasetError,
    DatasetIndex,
    Sample,
    Skip,
    find_child,
    no_split,
    parse_box,
    parse_int,
    relative_path,
)

LABEL_FILES = ("list_patition_label.txt", "list_partition_label.txt")
SPLIT_PREFIXES = {"train": "train_", "test": "test_"}


def _label_file(root: Path) -> Path:
    found = find_child(root / "EmoLabel", LABEL_FILES)
    if found is None:
        raise DatasetError(f"{root}: EmoLabel/{LABEL_FILES[0]} not found (RAF-DB basic layout).")
    return found


def splits(root: Path) -> tuple[str, ...]:
    _label_file(root)
    return tuple(SPLIT_PREFIXES)


def _split_of(name: str) -> str | None:
    return next((split for split, start in SPLIT_PREFIXES.items() if name.startswith(start)), None)


def _original_box(root: Path, stem: str) -> tuple[float, float, float, float]:
    path = root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt"
    try:
        values = path.read_text().split()
    except OSError:
        raise Skip(f"missing face box file: {path.relative_to(root)}") from None
    if len(values) != 4:
        raise Skip(f"bad face box: {path.name} holds {len(values)} numbers, expected x0 y0 x1 y1")
    try:
        x0, y0, x1, y1 = (float(v) for v in values)
    except ValueError:
        raise Skip(f"bad face box: {path.name} holds {values}") from None
    return parse_box([str(x0), str(y0), str(x1 - x0), str(y1 - y0)])


def read(root: Path, split: str) -> DatasetIndex:
    if split not in SPLIT_PREFIXES:
        raise no_split(root, "rafdb", split, tuple(SPLIT_PREFIXES))
    label_file = _label_file(root)
    aligned = (root / "Image" / "aligned").is_dir()
    if not aligned and not (root / "Image" / "original").is_dir():
        raise DatasetError(f"{root}: neither Image/aligned/ nor Image/original/ exists.")
    try:
        lines = label_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{label_file}: cannot read as text ({error}).") from error
    collect = Collector()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        owner = _split_of(fields[0]) if fields else split
        if not fields or owner not in (split, None):
            continue
        where = f"{label_file.name}:{number}"
        try:
            if owner is None:
                raise Skip("malformed row: the name starts with neither train_ nor test_")
            if len(fields) != 2:
                raise Skip(f"malformed row: {len(fields)} fields, expected 'name label'")
            name = relative_path(fields[0])
            label = parse_int(fields[1], "label")
            if label not in RAFDB:
                raise Skip(f"label out of range: {label} (valid 1–7)")
            stem = Path(name).stem
            if aligned:
                relative, box = f"Image/aligned/{stem}_aligned.jpg", None
            else:
                relative, box = f"Image/original/{name}", _original_box(root, stem)
        except Skip as skip:
            collect.skip(where, str(skip))
            continue
        collect.add(where, Sample(relative, RAFDB[label], os.path.join(root, relative), box))
    return DatasetIndex(
        "RAF-DB", "rafdb", split, str(root), collect.samples, LABELS_7, collect.skipped
    )
