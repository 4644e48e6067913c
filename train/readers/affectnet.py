"""AffectNet (official release): ``Manually_Annotated_Images/`` plus the file-list CSVs.

``Manually_Annotated_file_lists/training.csv`` and ``validation.csv`` (also accepted at the
root) have the header ``subDirectory_filePath,face_x,face_y,face_width,face_height,
facial_landmarks,expression,valence,arousal``. Expressions 0–7 are emotions; 8 None,
9 Uncertain and 10 No-Face are dropped and counted. The official validation set is the
``val`` split; AffectNet has no public test split.
"""

from __future__ import annotations

import os
from pathlib import Path

from affectlite.edge_app.labels import AFFECTNET, LABELS, LABELS_7
from affectlite.train.readers.base import (
    Collector,
    DatasetError,
    DatasetIndex,
    Sample,
    Skip,
    csv_table,
    find_child,
    no_split,
    parse_box,
    parse_int,
    relative_path,
)

SPLIT_FILES = {"train": "training.csv", "val": "validation.csv"}
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression")
NOT_EMOTIONS = {8: "None", 9: "Uncertain", 10: "No-Face"}
IMAGE_FOLDERS = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")
CONTEMPT = LABELS.index("contempt")


def _label_file(root: Path, split: str) -> Path | None:
    name = SPLIT_FILES.get(split)
    if name is None:
        return None
    for folder in (root / "Manually_Annotated_file_lists", root):
        found = find_child(folder, [name])
        if found is not None and found.is_file():
            return found
    return None


def splits(root: Path) -> tuple[str, ...]:
    return tuple(split for split in SPLIT_FILES if _label_file(root, split) is not None)


def _image_folder(root: Path) -> Path:
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    raise DatasetError(
        f"{root}: no image folder; expected {' or '.join(IMAGE_FOLDERS)} inside it "
        "(the folder AffectNet's Manually_Annotated.tar unpacks to)."
    )


def _label(text: str, seven: bool) -> int:
    expression = parse_int(text, "expression")
    if expression in NOT_EMOTIONS:
        raise Skip(f"not an emotion: expression {expression} ({NOT_EMOTIONS[expression]})")
    if expression not in AFFECTNET:
        raise Skip(f"label out of range: expression {expression} (valid 0–10)")
    label = AFFECTNET[expression]
    if seven and label == CONTEMPT:
        raise Skip("contempt excluded: affectnet7 has 7 classes")
    return label


def read(root: Path, split: str, *, seven: bool = False) -> DatasetIndex:
    """Reads one split of AffectNet (``seven`` drops contempt, as in AffectNet-7)."""
    format_ = "affectnet7" if seven else "affectnet"
    label_file = _label_file(root, split)
    if label_file is None:
        if split in SPLIT_FILES:
            raise DatasetError(
                f"{root}: {SPLIT_FILES[split]} not found in Manually_Annotated_file_lists/ "
                "or the folder itself."
            )
        raise no_split(root, format_, split, splits(root))
    images = _image_folder(root)
    width, columns, rows = csv_table(label_file, COLUMNS)
    box_columns = [columns[name] for name in COLUMNS[1:5]]
    collect = Collector()
    for line, fields in rows:
        where = f"{label_file.name}:{line}"
        try:
            if len(fields) != width:
                raise Skip(f"malformed row: {len(fields)} fields, the header has {width}")
            label = _label(fields[columns["expression"]], seven)
            relative = relative_path(fields[columns["subDirectory_filePath"]])
            box = parse_box([fields[i] for i in box_columns])
        except Skip as skip:
            collect.skip(where, str(skip))
            continue
        collect.add(where, Sample(relative, label, os.path.join(images, relative), box))
    classes = LABELS_7 if seven else LABELS
    return DatasetIndex(
        "AffectNet", format_, split, str(root), collect.samples, classes, collect.skipped
    )
