"""Packed datasets: each split's cropped faces as standard ``.npy`` files, read with NumPy alone.

``affectlite data pack`` writes a folder holding ``manifest.json`` and, per split,

- ``<split>-images.npy``: ``uint8 (N, size, size, C)``; ``C`` is 1 when every face of the split
  is grey (FER+: a third of the bytes), else 3. Reads always return RGB;
- ``<split>-targets.npy``: ``float32 (N, 8)`` probabilities in ``LABELS`` order (one-hot for
  hard labels);
- ``<split>-ids.json``: the N sample ids, in the dataset's order.

The manifest records the format version, the source, crop size and policy, and per split its
files, count, counts per label, channels, dropped rows and unreadable images.

Writing stages the whole folder beside ``--out`` and renames it into place
(:func:`affectlite.files.atomic_dir`), so an interrupted pack leaves nothing; images go through
``np.lib.format.open_memmap``, so a split is never held in memory. Reading
(:func:`open_packed`) keeps only the targets in memory and reads images on demand with
positioned reads, one per run of consecutive indices, so memory is bounded by the batch whatever
the split's size. Neither side imports TensorFlow; reading does not import OpenCV either.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from affectlite.edge_app.labels import LABELS, NUM_CLASSES
from affectlite.errors import InputError
from affectlite.files import atomic_dir, write_json
from affectlite.progress import progress as show_progress
from affectlite.train.readers.base import DatasetError, DatasetIndex, Sample, parallel_map

if TYPE_CHECKING:
    from affectlite.edge_app.preprocess import CropPolicy
    from affectlite.train.pipeline import Split

MANIFEST = "manifest.json"
VERSION = 2
"""Version 1 was sharded TFRecords read with tf.data; it is refused with the command that
repacks it."""
_PACK_FILES = ("manifest.json", "*-images.npy", "*-targets.npy", "*-ids.json", "*.tfrecord")
"""What a pack folder (of either version) holds: replaced by a new pack, nothing else is."""
_COPY_ROWS = 1024
"""Rows copied at a time when a grey split turns out to hold a colour face."""


def split_files(split: str) -> dict[str, str]:
    """The file names of one packed split."""
    kinds = {"images": "npy", "targets": "npy", "ids": "json"}
    return {kind: f"{split}-{kind}.{ext}" for kind, ext in kinds.items()}


def _npy_header(handle) -> tuple[tuple[int, int], tuple[int, ...], bool, np.dtype, int]:
    """``(version, shape, fortran_order, dtype, data offset)`` of an open ``.npy``."""
    fmt = np.lib.format
    version = fmt.read_magic(handle)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = read(handle)
    return version, shape, fortran, dtype, handle.tell()


# --- writing ---------------------------------------------------------------------------------


class _ImageFile:
    """Appends crops to a ``.npy`` of at most ``rows`` rows: one channel while every face is
    grey; the first colour face turns the file RGB (the grey rows are copied over)."""

    def __init__(self, path: Path, rows: int, size: int) -> None:
        self.path, self.rows, self.size, self.count = path, rows, size, 0
        self.array = self._open(1)

    def _open(self, channels: int, path: Path | None = None) -> np.memmap:
        shape = (self.rows, self.size, self.size, channels)
        return np.lib.format.open_memmap(path or self.path, "w+", np.uint8, shape)

    @property
    def channels(self) -> int:
        return self.array.shape[-1]

    def append(self, crop: np.ndarray) -> None:
        if self.channels == 1 and not _is_grey(crop):
            self._to_colour()
        self.array[self.count] = crop[..., :1] if self.channels == 1 else crop
        self.count += 1

    def _to_colour(self) -> None:
        colour_path = self.path.with_suffix(".rgb")
        colour = self._open(3, colour_path)
        for start in range(0, self.count, _COPY_ROWS):
            stop = min(start + _COPY_ROWS, self.count)
            colour[start:stop] = self.array[start:stop]  # (k, s, s, 1) broadcast to 3 channels
        del self.array
        os.replace(colour_path, self.path)
        self.array = colour

    def close(self) -> None:
        """Flushes, and cuts the file to the rows written (failed images leave rows unused)."""
        self.array.flush()
        del self.array
        if self.count < self.rows:
            _shrink_npy(self.path, self.count)


def _is_grey(crop: np.ndarray) -> bool:
    return bool((crop[..., 0] == crop[..., 1]).all() and (crop[..., 1] == crop[..., 2]).all())


def _shrink_npy(path: Path, rows: int) -> None:
    """Keeps the first ``rows`` rows of a ``.npy``: its header is rewritten in place (same
    length, so the data does not move) and the file truncated."""
    with open(path, "r+b") as handle:
        version, shape, fortran, dtype, offset = _npy_header(handle)
        prefix = len(np.lib.format.MAGIC_PREFIX) + 2 + (2 if version == (1, 0) else 4)
        new_shape = (rows, *shape[1:])
        header = (
            f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': {fortran}, "
            f"'shape': {new_shape!r}, }}"
        )
        handle.seek(prefix)
        handle.write(header.encode("latin1").ljust(offset - prefix - 1) + b"\n")
        handle.truncate(offset + rows * math.prod(shape[1:]) * dtype.itemsize)


def _crop(sample: Sample, size: int, policy: CropPolicy) -> tuple[np.ndarray | None, str | None]:
    from affectlite.edge_app.preprocess import ImageError  # OpenCV: only packing needs it
    from affectlite.train.datasets import load_crop

    try:
        return load_crop(sample, size, policy), None
    except ImageError as error:
        return None, str(error)


def _target(sample: Sample) -> np.ndarray:
    if sample.soft is not None:
        return np.asarray(sample.soft, np.float32)
    return np.eye(NUM_CLASSES, dtype=np.float32)[sample.label]


def pack_split(
    index: DatasetIndex,
    directory: Path,
    size: int,
    *,
    policy: CropPolicy,
    workers: int = 4,
    progress: bool = True,
) -> dict:
    """Writes one split's crops, targets and ids into ``directory``; returns its manifest entry.

    Images that fail to load are left out and listed under ``failed``. Use :func:`pack`, which
    stages the folder, rather than calling this on a folder users see.
    """
    names = split_files(index.split)
    images = _ImageFile(directory / names["images"], len(index.samples), size)
    targets = np.lib.format.open_memmap(
        directory / names["targets"], "w+", np.float32, (len(index.samples), NUM_CLASSES)
    )
    ids: list[str] = []
    counts: Counter[str] = Counter()
    failed: list[tuple[str, str]] = []
    results = parallel_map(partial(_crop, size=size, policy=policy), index.samples, workers)
    if progress:
        results = show_progress(results, len(index.samples), f"pack {index.split}")
    for sample, (crop, error) in results:
        if crop is None:
            failed.append((sample.id, str(error)))
            continue
        targets[images.count] = _target(sample)
        images.append(crop)
        ids.append(sample.id)
        counts[LABELS[sample.label]] += 1
    channels = images.channels
    images.close()
    targets.flush()
    del targets
    if len(ids) < len(index.samples):
        _shrink_npy(directory / names["targets"], len(ids))
    write_json(directory / names["ids"], ids)
    return {
        "files": names,
        "count": len(ids),
        "channels": channels,
        "counts": {name: counts[name] for name in index.classes},
        "skipped_by_reason": index.skipped_by_reason(),
        "failed": failed,
    }


def pack(
    indices: list[DatasetIndex],
    directory: str | Path,
    size: int,
    *,
    source: dict,
    policy: CropPolicy | None = None,
    workers: int = 4,
    progress: bool = True,
) -> dict:
    """Packs every split of ``indices`` into ``directory``, atomically; returns the manifest.

    ``source`` (root, format, FER+ mode) goes into the manifest as given; ``policy`` defaults
    to the device's ``CropPolicy()``. An existing pack at ``directory`` is replaced; a
    non-empty folder holding anything else is refused.

    Raises:
        InputError: when ``directory`` exists, is not empty and holds no pack.
    """
    from affectlite.edge_app.preprocess import CropPolicy

    policy = policy or CropPolicy()
    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()):
        others = [p.name for p in directory.iterdir() if not any(map(p.match, _PACK_FILES))]
        if others or not (directory / MANIFEST).is_file():
            held = ", ".join(others[:3]) or "no manifest.json"
            raise InputError(
                f"{directory}: not a packed dataset (it holds {held}); "
                "choose an empty or new --out."
            )
    manifest = {
        "version": VERSION,
        **source,
        "size": size,
        "crop_policy": policy.to_dict(),
        "classes": list(indices[0].classes),
        "splits": {},
    }
    with atomic_dir(directory, replace=True) as staging:
        for index in indices:
            manifest["splits"][index.split] = pack_split(
                index, staging, size, policy=policy, workers=workers, progress=progress
            )
        write_json(staging / MANIFEST, manifest)
    return manifest


# --- reading ---------------------------------------------------------------------------------


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a packed folder.

    Raises:
        DatasetError: when the folder holds no (readable) ``manifest.json``, or holds a pack of
            another version (TFRecord packs: with the command that repacks it).
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"{path}: not a packed dataset ({error}); create it with `affectlite data pack`."
        ) from error
    if manifest.get("version") == 1:
        raise DatasetError(f"{directory}: {_repack(manifest, directory)}")
    if manifest.get("version") != VERSION:
        raise DatasetError(f"{path}: version {manifest.get('version')!r}, expected {VERSION}.")
    return manifest


def _repack(manifest: dict, directory: str | Path) -> str:
    """The message for a version-1 (TFRecord) pack: the command that repacks it."""
    command = (
        f"affectlite data pack {manifest.get('root', 'DATASET')} "
        f"--format {manifest.get('format', 'FORMAT')} --out {directory} "
        f"--input-size {manifest.get('size', 224)}"
    )
    if manifest.get("ferplus_mode"):
        command += f" --ferplus-mode {manifest['ferplus_mode']}"
    return f"a TFRecord pack from an older affectlite, no longer read; repack it: {command}"


@dataclass
class PackedSplit:
    """One packed split, a :class:`affectlite.train.pipeline.FaceSource`: targets and ids in
    memory, images on disk.

    Attributes:
        path: the ``.npy`` of images.
        targets: ``float32 (N, 8)``.
        ids: the N sample ids.
        size: the crop side in pixels.
        channels: as stored (1: grey, expanded to RGB on read).
        offset: where the pixel data starts in ``path``.
        rows: the file rows of these faces, ascending (``None``: every row); see :meth:`limited`.
    """

    path: Path
    targets: np.ndarray
    ids: list[str]
    size: int
    channels: int
    offset: int
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def row_bytes(self) -> int:
        return self.size * self.size * self.channels

    def limited(self, limit: int, seed: int) -> PackedSplit:
        """At most ``limit`` of these faces (0: all), drawn as ``--limit`` draws from any other
        dataset (:func:`affectlite.train.datasets.drawn`)."""
        from affectlite.train.datasets import drawn

        keep = drawn(len(self), limit, seed)
        if keep is None:
            return self
        rows = keep if self.rows is None else self.rows[keep]
        ids = [self.ids[i] for i in keep]
        return replace(self, targets=self.targets[keep], ids=ids, rows=rows)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """``uint8 (k, size, size, 3)`` faces at ``indices``, which must be sorted ascending.

        One positioned read per run of consecutive indices, straight into the result.
        """
        indices = np.asarray(indices, np.int64)
        if indices.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {indices.shape}.")
        if len(indices) and (indices[0] < 0 or indices[-1] >= len(self)):
            raise IndexError(f"indices run {indices[0]}..{indices[-1]}; the split has {len(self)}.")
        if np.any(np.diff(indices) < 0):
            raise ValueError("indices must be sorted ascending.")
        rows = indices if self.rows is None else self.rows[indices]
        out = np.empty((len(indices), self.size, self.size, self.channels), np.uint8)
        flat = memoryview(out.reshape(-1))
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)
        stops = np.append(starts[1:], len(rows))
        with open(self.path, "rb", buffering=0) as handle:
            for start, stop in zip(starts.tolist(), stops.tolist()):
                handle.seek(self.offset + int(rows[start]) * self.row_bytes)
                _read_into(handle, flat[start * self.row_bytes : stop * self.row_bytes])
        return np.repeat(out, 3, axis=-1) if self.channels == 1 else out

    def load(self) -> Split:
        """The whole split in memory, as the pipeline's ``Split`` (for validation-sized splits)."""
        from affectlite.train.pipeline import Split

        return Split(self.read(np.arange(len(self))), self.targets, list(self.ids))


def _read_into(handle, view: memoryview) -> None:
    done = 0
    while done < len(view):
        got = handle.readinto(view[done:])
        if not got:
            raise DatasetError(f"{handle.name}: ends early; the pack is damaged, repack it.")
        done += got


def open_packed(directory: str | Path, split: str = "train") -> PackedSplit:
    """Opens one split of a packed folder for reading.

    Raises:
        DatasetError: when the folder is not a packed dataset (or an old TFRecord one), lacks
            the split, or a file is missing or does not match the manifest.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if split not in manifest["splits"]:
        raise DatasetError(
            f"{directory}: no packed {split!r} split (it has {', '.join(manifest['splits'])})."
        )
    entry = manifest["splits"][split]
    files = {kind: directory / name for kind, name in entry["files"].items()}
    try:
        targets = np.load(files["targets"])
        ids = json.loads(files["ids"].read_text())
        with open(files["images"], "rb") as handle:
            _, shape, _, dtype, offset = _npy_header(handle)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{directory}: cannot read packed {split!r} ({error}).") from error
    size, channels = int(manifest["size"]), int(entry["channels"])
    expected = (entry["count"], size, size, channels)
    if shape != expected or dtype != np.uint8 or targets.shape != (entry["count"], NUM_CLASSES):
        raise DatasetError(
            f"{files['images']}: holds {dtype} {shape} and targets {targets.shape}; the manifest "
            f"says uint8 {expected}. The pack is damaged: repack it."
        )
    if len(ids) != entry["count"]:
        raise DatasetError(f"{files['ids']}: {len(ids)} ids for {entry['count']} faces; repack.")
    return PackedSplit(files["images"], targets.astype(np.float32), ids, size, channels, offset)
