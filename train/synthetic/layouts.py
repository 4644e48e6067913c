"""Synthetic faces written in the layouts of real datasets, for trying commands without data.

``write_dataset(root, "affectnet", 240, 80)`` writes what ``--format affectnet`` reads (image
folders and the two file-list CSVs with face boxes); ``"ferplus"`` writes ``FER2013Train/`` and
``FER2013Valid/`` with ``label.csv`` votes (48×48 grey PNGs, as FER+ ships them); ``"folder"``
writes ``train/<class>/`` and ``val/<class>/``. Every class gets the same number of faces.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from affectlite.edge_app.labels import FERPLUS, LABELS
from affectlite.edge_app.preprocess import CropPolicy
from affectlite.errors import InputError
from affectlite.files import write_text

from .scenes import make_dataset

LAYOUTS = ("folder", "affectnet", "ferplus")
AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
    "valence,arousal"
)
_FERPLUS_COLUMN = {label: column for column, label in FERPLUS.items()}


def write_dataset(
    root: str | Path, layout: str, train: int, val: int, size: int = 48, seed: int = 0
) -> Path:
    """Writes ``train`` and ``val`` synthetic faces (``size`` px) in ``layout``; returns
    ``root``. Seeds ``seed`` and ``seed + 1`` draw the two splits."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    root = Path(root)
    for split, count, offset in (("train", train, 0), ("val", val, 1)):
        images, labels = make_dataset(count, size, seed=seed + offset)
        {"folder": _folder, "affectnet": _affectnet, "ferplus": _ferplus}[layout](
            root, split, images, labels
        )
    return root


def _write_png(path: Path, image: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cannot write {path}")
    return path.name


def _folder(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    for i, (image, label) in enumerate(zip(images, labels)):
        _write_png(root / split / LABELS[label] / f"{i:05d}.png", image)


def _affectnet(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    side = images.shape[1]
    face = int(round(side / (1 + CropPolicy().margin)))  # the crop holds the face and margin
    start = (side - face) // 2
    rows = [AFFECTNET_HEADER]
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"{split}/{i:05d}.png"
        _write_png(root / "Manually_Annotated_Images" / name, image)
        rows.append(f"{name},{start},{start},{face},{face},,{label},0,0")
    csv = {"train": "training.csv", "val": "validation.csv"}[split]
    write_text(root / "Manually_Annotated_file_lists" / csv, "\n".join(rows) + "\n")


def _ferplus(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder = root / {"train": "FER2013Train", "val": "FER2013Valid"}[split]
    rows = []
    for i, (image, label) in enumerate(zip(images, labels)):
        grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (48, 48))
        name = _write_png(folder / f"fer{i:07d}.png", grey)
        votes = [0] * 10
        votes[_FERPLUS_COLUMN[int(label)]] = 10
        rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    write_text(folder / "label.csv", "\n".join(rows) + "\n")
