"""The records every reader produces and the row-parsing helpers they share.

A reader turns one dataset layout into a :class:`DatasetIndex`: a list of :class:`Sample` rows
(label, image path or inline pixels, optional face box) plus every row it dropped and why.
Readers never decode images; :func:`affectlite.train.datasets.load_crop` does that.
"""

from __future__ import annotations

import csv
import math
import posixpath
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.errors import InputError

SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_FACE_SIDE = 16
"""Faces (boxes or whole crops) narrower than this many pixels carry no usable expression."""
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
_T = TypeVar("_T")
_R = TypeVar("_R")


class DatasetError(InputError):
    """A dataset cannot be used as given: missing files or columns, or no usable samples."""


class Skip(Exception):
    """Raised while parsing one row: the row is dropped, and the message says why."""


@dataclass(frozen=True)
class Sample:
    """One labelled face.

    Attributes:
        id: unique and stable within the dataset (relative path, or ``"file.csv:line"``).
        label: index into ``LABELS``; for soft labels their argmax.
        path: the image file, or ``None`` when ``pixels`` holds the image.
        box: face box ``(x, y, w, h)`` in the image; ``None`` when the image is a face crop.
        soft: 8 probabilities in ``LABELS`` order (FER+ probability mode), else ``None``.
        pixels: inline read-only ``uint8`` image (FER2013 CSV rows), else ``None``.
    """

    id: str
    label: int
    path: str | None = None
    box: tuple[float, float, float, float] | None = None
    soft: tuple[float, ...] | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class DatasetIndex:
    """The samples of one split of one dataset, and the rows dropped on the way."""

    name: str
    format: str
    split: str
    root: str
    samples: list[Sample]
    classes: tuple[str, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Samples per class name, in ``classes`` order (zeros included)."""
        counts = dict.fromkeys(self.classes, 0)
        for sample in self.samples:
            name = LABELS[sample.label]
            counts[name] = counts.get(name, 0) + 1
        return counts

    def skipped_by_reason(self) -> dict[str, int]:
        """Dropped rows per reason (the reason text before any ``:``), most frequent first."""
        return dict(Counter(reason.split(":")[0] for _, reason in self.skipped).most_common())


class Collector:
    """Gathers a reader's samples and skipped rows, dropping repeated ids."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.skipped: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}

    def add(self, where: str, sample: Sample) -> None:
        if sample.id in self._first:
            self.skip(where, f"duplicate: {sample.id} already listed at {self._first[sample.id]}")
            return
        self._first[sample.id] = where
        self.samples.append(sample)

    def skip(self, where: str, reason: str) -> None:
        self.skipped.append((where, reason))


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yields ``(line number, fields)`` for each non-blank row of a UTF-8 CSV file.

    Raises:
        DatasetError: naming the file and line when it cannot be read or is not UTF-8 text.
    """
    try:
        with path.open("rb") as handle:
            reader = csv.reader(_decoded_lines(path, handle))
            try:
                for fields in reader:
                    if any(value.strip() for value in fields):
                        yield reader.line_num, fields
            except csv.Error as error:
                raise DatasetError(f"{path}:{reader.line_num}: not a CSV row ({error}).") from error
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error.strerror or error}).") from error


def _decoded_lines(path: Path, handle: BinaryIO) -> Iterator[str]:
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DatasetError(
                f"{path}:{number}: not UTF-8 text ({error}). Re-save the file as UTF-8."
            ) from None


def csv_table(
    path: Path, required: Sequence[str]
) -> tuple[int, dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Opens a CSV with a header line.

    Returns:
        the number of header fields, each required column's position, and the remaining rows.

    Raises:
        DatasetError: naming the file when it is empty or lacks required columns.
    """
    rows = csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DatasetError(
            f"{path}: the file is empty; expected a header naming {', '.join(required)}."
        ) from None
    return len(header), column_indices(path, header, required), rows


def column_indices(path: Path, header: Sequence[str], required: Sequence[str]) -> dict[str, int]:
    """Maps each required column name to its position in ``header`` (case-insensitive).

    Raises:
        DatasetError: naming the file when required columns are missing.
    """
    names = [name.strip().lower() for name in header]
    missing = [column for column in required if column.lower() not in names]
    if missing:
        raise DatasetError(
            f"{path}:1: missing required column(s) {', '.join(missing)}; the header line is "
            f"{','.join(header)!r}. The file must start with a header naming {', '.join(required)}."
        )
    return {column: names.index(column.lower()) for column in required}


def parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise Skip(f"bad {what}: {text!r} is not an integer") from None


def parse_box(values: Sequence[str]) -> tuple[float, float, float, float]:
    """A face box ``(x, y, w, h)`` from four numbers; rejects non-finite, empty and tiny boxes."""
    try:
        x, y, w, h = (float(value) for value in values)
    except ValueError:
        raise Skip(f"bad face box: {tuple(values)} is not four numbers") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise Skip(f"bad face box: {(x, y, w, h)} needs finite values and a positive size")
    if min(w, h) < MIN_FACE_SIDE:
        raise Skip(f"face too small: {w:g}×{h:g} px box (need ≥ {MIN_FACE_SIDE} px)")
    return x, y, w, h


def relative_path(text: str) -> str:
    """A file path from a label file, normalised; it must stay inside the dataset folder."""
    path = posixpath.normpath(text.strip().replace("\\", "/")) if text.strip() else ""
    if not path or path.startswith("/") or path == ".." or path.startswith("../"):
        raise Skip(f"bad path: {text!r} must be relative to the dataset folder")
    return path


def find_child(folder: Path, names: Sequence[str]) -> Path | None:
    """The first entry of ``folder`` named like one of ``names`` (case-insensitive), if any."""
    if not folder.is_dir():
        return None
    entries = {entry.name.lower(): entry for entry in folder.iterdir()}
    for name in names:
        if name.lower() in entries:
            return entries[name.lower()]
    return None


def no_split(root: Path, format_: str, split: str, available: Sequence[str]) -> DatasetError:
    return DatasetError(
        f"{root}: the {format_} dataset has no {split!r} split (it has "
        f"{', '.join(available) or 'none'}). Hold out part of 'train' with "
        "affectlite.train.datasets.split_holdout() instead."
    )


def parallel_map(
    function: Callable[[_T], _R], items: Sequence[_T], workers: int, chunk: int = 512
) -> Iterator[tuple[_T, _R]]:
    """Yields ``(item, function(item))`` in order, computed on ``workers`` threads.

    OpenCV decoding and encoding release the GIL, so threads use several cores; chunks keep
    at most ``chunk`` results in memory.
    """
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            yield from zip(part, pool.map(function, part))
