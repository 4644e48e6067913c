"""FER+ (Microsoft's FERPlus layout): ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/``.

Each folder holds 48×48 PNG faces and a header-less ``label.csv``: image name, face box
``"(x, y, w, h)"``, then 10 annotator votes in ``FERPLUS_COLUMNS`` order (8 emotions,
unknown, not-a-face). How votes become labels (``mode``):

``majority`` (Microsoft's FERPlus reader, Barsoum et al. 2016)
    Votes of 1 are discarded as outliers; the image is kept when one column then holds more
    than half of the remaining votes and that column is an emotion. Hard label.
``probability``
    Votes of 1 are discarded as in ``majority``; the image is kept when an emotion has at
    least as many votes as unknown and as not-a-face (ties go to the emotion). The soft label is
    the remaining emotion votes normalised to sum 1, in ``LABELS`` order; ``label`` is its
    argmax (the first kit label among equal maxima).
``drop-unknown``
    Only images without a single unknown or not-a-face vote are kept, labelled with the
    emotion that got the most votes (all votes count); images whose top emotions tie are
    dropped. Hard label. The strictest, cleanest and smallest set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from affectlite.edge_app.labels import FERPLUS, FERPLUS_COLUMNS, LABELS
from affectlite.errors import InputError
from affectlite.train.readers.base import (
    Collector,
    DatasetError,
    DatasetIndex,
    Sample,
    Skip,
    csv_rows,
    find_child,
    parse_box,
    parse_int,
    relative_path,
)

MODES: tuple[str, ...] = ("majority", "probability", "drop-unknown")
SPLIT_FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
FULL_FRAME = (0.0, 0.0, 48.0, 48.0)
"""FER+'s box for every FER2013 face: the whole 48×48 image, i.e. the image is a face crop."""
EMOTIONS = len(FERPLUS)
_NON_EMOTIONS = FERPLUS_COLUMNS[EMOTIONS:]
_KIT_COLUMNS = np.array([column for _, column in sorted((v, k) for k, v in FERPLUS.items())])
"""For each kit label in ``LABELS`` order, its FER+ vote column."""


def _folder(root: Path, split: str) -> Path | None:
    folder = find_child(root, [SPLIT_FOLDERS[split]])
    return folder if folder is not None and (folder / "label.csv").is_file() else None


def splits(root: Path) -> tuple[str, ...]:
    return tuple(split for split in SPLIT_FOLDERS if _folder(root, split) is not None)


def _to_kit(votes: np.ndarray) -> np.ndarray:
    """The 8 emotion columns of FER+ reordered to ``LABELS`` order."""
    return votes[_KIT_COLUMNS]


def vote_label(votes: np.ndarray, mode: str) -> tuple[int, tuple[float, ...] | None]:
    """``(label, soft)`` for one image's 10 vote counts under ``mode``.

    Raises:
        Skip: when the image has no usable emotion under the mode's rule.
    """
    if mode == "drop-unknown":
        if votes[EMOTIONS:].any():
            raise Skip("has unknown/not-a-face votes")
        kit = _to_kit(votes)
        top = np.flatnonzero(kit == kit.max())
        if len(top) > 1:
            raise Skip(f"tie between emotions: {', '.join(LABELS[i] for i in top)}")
        return int(top[0]), None
    kept = np.where(votes > 1, votes, 0)
    if kept.sum() == 0:
        raise Skip("no emotion votes: every column has at most one vote")
    top = int(kept.argmax())
    if mode == "majority":
        if kept[top] * 2 <= kept.sum():
            raise Skip("no majority: no column has more than half of the votes")
        if top >= EMOTIONS:
            raise Skip(f"majority {_NON_EMOTIONS[top - EMOTIONS]}")
        return FERPLUS[top], None
    if top >= EMOTIONS:
        raise Skip(f"most votes {_NON_EMOTIONS[top - EMOTIONS]}")
    soft = _to_kit(kept).astype(np.float64)
    soft /= soft.sum()
    return int(soft.argmax()), tuple(float(p) for p in soft)


def _box(text: str) -> tuple[float, float, float, float] | None:
    box = parse_box(text.strip().strip("()").split(","))
    return None if box == FULL_FRAME else box


def read(root: Path, split: str, mode: str = "majority") -> DatasetIndex:
    """Reads one split of FER+ with the vote rule ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise InputError(f"FER+ mode must be one of {', '.join(MODES)}, got {mode!r}.")
    folder = _folder(root, split)
    if folder is None:
        raise DatasetError(f"{root}: {SPLIT_FOLDERS[split]}/label.csv not found.")
    label_file = folder / "label.csv"
    collect = Collector()
    for line, fields in csv_rows(label_file):
        where = f"{folder.name}/label.csv:{line}"
        try:
            if len(fields) != 2 + len(FERPLUS_COLUMNS):
                raise Skip(f"malformed row: {len(fields)} fields, expected name, box, 10 votes")
            name = relative_path(fields[0])
            box = _box(fields[1])
            votes = np.array([parse_int(v, "vote count") for v in fields[2:]])
            if votes.min() < 0:
                raise Skip(f"bad vote count: {votes.min()} is negative")
            label, soft = vote_label(votes, mode)
        except Skip as skip:
            collect.skip(where, str(skip))
            continue
        relative = f"{folder.name}/{name}"
        collect.add(where, Sample(relative, label, os.path.join(folder, name), box, soft))
    return DatasetIndex(
        "FER+", "ferplus", split, str(root), collect.samples, LABELS, collect.skipped
    )
