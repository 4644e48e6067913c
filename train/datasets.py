"""Expression datasets for training: from a dataset folder to labelled, cropped faces.

``load_dataset(root, format, split)`` reads a dataset's label files into a
:class:`DatasetIndex` (no image is decoded; dropped rows are listed with file, line and
reason). ``load_crop(sample, size)`` decodes one image and crops it with the device contract
(``edge_app.preprocess``), so training sees exactly the faces the device will. Labels are kit
indices into ``edge_app.labels.LABELS`` whatever the dataset's own numbering.

Formats (see each reader's docstring in ``affectlite.train.readers``): ``affectnet``,
``affectnet7`` (contempt dropped), ``fer2013`` (the CSV), ``fer2013-folder``, ``ferplus``,
``rafdb``, ``folder`` (class-per-folder).
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from affectlite.edge_app.preprocess import CropPolicy, ImageError, crop_face, decode_image, to_rgb
from affectlite.errors import InputError
from affectlite.train.readers import affectnet, fer2013, ferplus, folder, rafdb
from affectlite.train.readers.base import (
    MIN_FACE_SIDE,
    SPLITS,
    DatasetError,
    DatasetIndex,
    Sample,
)

__all__ = [
    "FERPLUS_MODES",
    "FORMATS",
    "HUGE_SIDE",
    "MAX_IMAGE_PIXELS",
    "MIN_FACE_SIDE",
    "SPLITS",
    "DatasetError",
    "DatasetIndex",
    "Sample",
    "available_splits",
    "crop_sample",
    "load_crop",
    "load_dataset",
    "load_image",
    "limit_samples",
    "split_holdout",
]

FERPLUS_MODES = ferplus.MODES
HUGE_SIDE = 8192
"""Images with a longer side than this are decoded and cropped as usual, but flagged by inspect."""
MAX_IMAGE_PIXELS = 100_000_000
"""Images whose header claims more pixels are refused before decoding (corrupt header or a
decompression bomb); no face photo needs 100 megapixels."""

_FORMATS: dict[str, tuple[Callable[..., DatasetIndex], Callable[[Path], tuple[str, ...]]]] = {
    "affectnet": (affectnet.read, affectnet.splits),
    "affectnet7": (partial(affectnet.read, seven=True), affectnet.splits),
    "fer2013": (fer2013.read, fer2013.splits),
    "fer2013-folder": (partial(folder.read, fer2013=True), folder.splits),
    "ferplus": (ferplus.read, ferplus.splits),
    "rafdb": (rafdb.read, rafdb.splits),
    "folder": (folder.read, folder.splits),
}
"""Each format's reader ``(root, split) -> DatasetIndex`` and its ``splits(root)``."""
FORMATS: tuple[str, ...] = tuple(_FORMATS)


def _choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise InputError(f"Unknown {what} {value!r}; expected one of {', '.join(choices)}.")


def _existing(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder.")
    return root


def available_splits(root: str | Path, format: str) -> tuple[str, ...]:
    """The splits (of ``train``, ``val``, ``test``) that the dataset at ``root`` provides."""
    _choice(format, FORMATS, "dataset format")
    return _FORMATS[format][1](_existing(root))


def load_dataset(
    root: str | Path,
    format: str,
    split: str = "train",
    *,
    ferplus_mode: str = "majority",
    check_files: bool = False,
) -> DatasetIndex:
    """Reads one split of a dataset's labels into a :class:`DatasetIndex`.

    Args:
        root: the dataset folder (for ``fer2013`` also the CSV file itself).
        format: one of ``FORMATS``.
        split: ``"train"``, ``"val"`` or ``"test"``, mapped to the dataset's own names.
        ferplus_mode: how FER+ votes become labels, one of ``FERPLUS_MODES``.
        check_files: also check that every image file exists and is not empty (no decoding);
            failures are moved to ``skipped``.

    Raises:
        ValueError: for an unknown format, split or FER+ mode.
        DatasetError: naming the file (and line) when the dataset cannot be used: label files
            or required columns missing, unknown class folders, or no usable sample at all.
    """
    _choice(format, FORMATS, "dataset format")
    _choice(split, SPLITS, "split")
    _choice(ferplus_mode, FERPLUS_MODES, "FER+ mode")
    root = _existing(root)
    if format == "ferplus":
        index = ferplus.read(root, split, ferplus_mode)
    else:
        index = _FORMATS[format][0](root, split)
    if check_files:
        _check_files(index)
    if not index.samples:
        dropped = ", ".join(f"{n} {reason}" for reason, n in index.skipped_by_reason().items())
        raise DatasetError(
            f"{root}: no usable samples in the {split!r} split of this {format} dataset"
            + (f" ({len(index.skipped)} rows dropped: {dropped})." if dropped else ".")
            + " Run `affectlite data inspect` to see which rows and why."
        )
    index.warnings.extend(
        f"class {name!r} has no samples in the {split} split"
        for name, count in index.counts().items()
        if count == 0
    )
    return index


def _check_files(index: DatasetIndex) -> None:
    """Moves samples whose image file is missing, not a file, or empty to ``skipped``."""
    kept = []
    for sample in index.samples:
        if sample.path is not None:
            try:
                info = os.stat(sample.path)
            except OSError:
                index.skipped.append((sample.id, "missing file"))
                continue
            if not stat.S_ISREG(info.st_mode):
                index.skipped.append((sample.id, "missing file: not a regular file"))
                continue
            if info.st_size == 0:
                index.skipped.append((sample.id, "empty file: 0 bytes"))
                continue
        kept.append(sample)
    index.samples = kept


def _check_header(data: bytes, name: str) -> None:
    """Refuses an image whose header claims over ``MAX_IMAGE_PIXELS``, before decoding it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: refused, too large to decode safely ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # a format Pillow does not parse; OpenCV decides (and caps at 2**30 pixels)
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{name}: refused, too large to decode safely ({width}×{height} px is over "
            f"{MAX_IMAGE_PIXELS:,} pixels: a corrupt header or a decompression bomb); "
            "downscale or remove the file."
        )


def load_image(sample: Sample) -> np.ndarray:
    """The sample's whole image as ``uint8`` RGB: EXIF-rotated; grey, alpha, 16-bit, CMYK converted.

    Raises:
        ImageError: naming the file when it is missing, unreadable, not an image, refused as
            too large, or smaller than ``MIN_FACE_SIDE`` pixels.
    """
    if sample.pixels is not None:
        name = sample.id
        image = to_rgb(sample.pixels)
    else:
        name = str(sample.path)
        try:
            data = Path(name).read_bytes()
        except OSError as error:
            raise ImageError(f"{name}: cannot read ({error.strerror or error}).") from error
        _check_header(data, name)
        image = decode_image(data, name)
    height, width = image.shape[:2]
    if min(height, width) < MIN_FACE_SIDE:
        raise ImageError(
            f"{name}: {width}×{height} px is too small to show an expression "
            f"(need ≥ {MIN_FACE_SIDE} px on each side); remove the file."
        )
    return image


def crop_sample(
    image: np.ndarray, sample: Sample, size: int, policy: CropPolicy = CropPolicy()
) -> np.ndarray:
    """Crops ``sample``'s face from its decoded ``image``; errors name the sample's file."""
    try:
        return crop_face(image, sample.box, size, policy)
    except ImageError as error:
        raise ImageError(f"{sample.path or sample.id}: {error}") from None


def load_crop(sample: Sample, size: int, policy: CropPolicy = CropPolicy()) -> np.ndarray:
    """The classifier input for one sample: ``uint8`` RGB ``(size, size, 3)``.

    Raises:
        ImageError: naming the file (see :func:`load_image`), or when its face box lies
            outside the image.
    """
    return crop_sample(load_image(sample), sample, size, policy)


def split_holdout(
    index: DatasetIndex, fraction: float, seed: int
) -> tuple[DatasetIndex, DatasetIndex]:
    """Splits off a stratified ``fraction`` of ``index`` as a ``"val"`` split.

    Each class contributes ``round(n × fraction)`` samples, but always leaves at least one in
    the first part. Both parts keep the original order; the same seed gives the same split.
    ``skipped`` and ``warnings`` stay with the first part.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"Holdout fraction must be between 0 and 1, got {fraction}.")
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[int]] = defaultdict(list)
    for position, sample in enumerate(index.samples):
        by_label[sample.label].append(position)
    held: set[int] = set()
    for label in sorted(by_label):
        positions = by_label[label]
        count = min(len(positions) - 1, round(len(positions) * fraction))
        held.update(int(p) for p in rng.permutation(positions)[:count])
    rest = [s for i, s in enumerate(index.samples) if i not in held]
    holdout = [s for i, s in enumerate(index.samples) if i in held]
    return (
        dataclasses.replace(
            index, samples=rest, skipped=list(index.skipped), warnings=list(index.warnings)
        ),
        dataclasses.replace(index, split="val", samples=holdout, skipped=[], warnings=[]),
    )


def limit_samples(index: DatasetIndex, limit: int, seed: int) -> DatasetIndex:
    """At most ``limit`` samples of ``index`` (0: all), drawn at random with ``seed``.

    Random rather than the first N: a class-folder dataset lists one class after another, so
    its first N samples would all be "anger". The drawn samples keep their original order.
    """
    keep = drawn(len(index.samples), limit, seed)
    if keep is None:
        return index
    return dataclasses.replace(index, samples=[index.samples[i] for i in keep])


def drawn(count: int, limit: int, seed: int) -> np.ndarray | None:
    """Ascending indices of at most ``limit`` of ``count`` samples (0: all), drawn at random
    with ``seed``; ``None`` when all are kept. The one draw behind ``--limit``."""
    if limit < 0:
        raise InputError(f"--limit must be 0 (all) or more, got {limit}.")
    if not limit or limit >= count:
        return None
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])
