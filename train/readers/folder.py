"""Class-per-folder datasets: ``ROOT/<split>/<class>/*`` or, with one split, ``ROOT/<class>/*``.

Split folders may be named train/training, val/valid/validation, test/testing. Class folders
are emotion names in any spelling ``label_index`` knows (``angry``, ``happiness``, …); a folder
with another name is an error, so a typo cannot silently drop a class. The ``fer2013-folder``
format is this layout restricted to FER2013's seven folder names (Kaggle's ``train/`` and
``test/``, each with ``angry``, ``disgust``, ``fear``, ``happy``, ``neutral``, ``sad``,
``surprise``).
"""

from __future__ import annotations

from pathlib import Path

from affectlite.edge_app.labels import FER2013_NAMES, LABELS, LABELS_7, label_index
from affectlite.train.readers.base import (
    IMAGE_SUFFIXES,
    Collector,
    DatasetError,
    DatasetIndex,
    Sample,
    find_child,
    no_split,
)

SPLIT_FOLDERS = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}


def _split_folders(root: Path) -> dict[str, Path]:
    found = {split: find_child(root, names) for split, names in SPLIT_FOLDERS.items()}
    return {split: folder for split, folder in found.items() if folder and folder.is_dir()}


def splits(root: Path) -> tuple[str, ...]:
    return tuple(_split_folders(root)) or ("train",)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_label(folder: Path, fer2013: bool) -> int:
    if fer2013 and folder.name.lower() not in FER2013_NAMES:
        raise DatasetError(
            f"{folder}: {folder.name!r} is not a FER2013 class folder; expected "
            f"{', '.join(FER2013_NAMES)}. Rename or remove it (or use --format folder)."
        )
    try:
        return label_index(folder.name)
    except ValueError as error:
        raise DatasetError(f"{folder}: {error} Rename or remove the folder.") from None


def _class_folders(folder: Path, fer2013: bool) -> dict[Path, int]:
    classes = {path: _class_label(path, fer2013) for path in _visible_dirs(folder)}
    if not classes:
        raise DatasetError(
            f"{folder}: no class folders inside; expected one folder per emotion "
            f"({', '.join(LABELS)}) holding its images."
        )
    return classes


def _collect(root: Path, folder: Path, label: int, collect: Collector) -> int:
    """Adds the images under one class folder; returns how many."""
    added = 0
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_dir():
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            collect.skip(relative, "hidden file")
        elif not path.is_file():
            collect.skip(relative, "missing file: broken link or not a regular file")
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            collect.skip(relative, f"not an image file: extension {path.suffix or '(none)'!r}")
        else:
            collect.add(relative, Sample(relative, label, str(path)))
            added += 1
    return added


def read(root: Path, split: str, *, fer2013: bool = False) -> DatasetIndex:
    """Reads one split of a class-per-folder dataset (``fer2013``: FER2013's folder names)."""
    format_ = "fer2013-folder" if fer2013 else "folder"
    split_folders = _split_folders(root) or {"train": root}
    if split not in split_folders:
        raise no_split(root, format_, split, tuple(split_folders))
    # Every split's class folders are checked, and classes are their union, so that all
    # splits of one dataset agree on the classes.
    class_folders = {name: _class_folders(path, fer2013) for name, path in split_folders.items()}
    collect, warnings = Collector(), []
    for path in sorted(p for p in split_folders[split].iterdir() if p.is_file()):
        collect.skip(path.relative_to(root).as_posix(), "outside a class folder")
    for class_folder, label in class_folders[split].items():
        if _collect(root, class_folder, label, collect) == 0:
            warnings.append(f"empty class folder: {class_folder.relative_to(root).as_posix()}")
    labels = sorted({label for folders in class_folders.values() for label in folders.values()})
    classes = LABELS_7 if fer2013 else tuple(LABELS[i] for i in labels)
    name = "FER2013" if fer2013 else root.name
    return DatasetIndex(
        name, format_, split, str(root), collect.samples, classes, collect.skipped, warnings
    )
