"""The representative set: the images int8 calibration measures activation ranges on.

It is drawn from the **training split only** (never validation or test, whose job is to measure
the converted model), stratified per class, and every image goes through the device's own crop
(:func:`~affectlite.edge_app.preprocess.crop_face`): calibration data preprocessed differently
from the device's input gives wrong int8 ranges. :func:`from_frames` instead takes face crops
found by the on-device detector in camera, video or photo frames, so the ranges match the
camera's domain.

On disk a set is a folder with ``images.npz`` (uint8 crops, labels, ids) and ``manifest.json``
(source, ids, counts per class, seed, input size, crop policy, sha256 of the npz).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from affectlite.edge_app.bundle import sha256_file
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import CropPolicy, ImageError, crop_face
from affectlite.errors import InputError
from affectlite.files import atomic_dir, write_json
from affectlite.progress import Progress

log = logging.getLogger(__name__)

IMAGES_FILE = "images.npz"
MANIFEST_FILE = "manifest.json"
UNLABELLED = -1
"""Label of crops with no known class (camera frames)."""
DEFAULT_COUNT = 300
HELD_OUT_SPLITS = ("val", "test")
"""Splits whose images must never be calibration data."""


class RepresentativeError(InputError):
    """A representative set is missing, empty, mis-shaped, altered or overlaps held-out data."""


@dataclass
class RepresentativeSet:
    """Face crops for int8 calibration, with their provenance.

    Attributes:
        images: ``uint8 (N, S, S, 3)`` RGB crops, the classifier's exact input.
        labels: ``int64 (N,)`` class indices, :data:`UNLABELLED` where unknown.
        ids: a stable id per crop (dataset sample id, or frame/face for camera data).
        info: provenance: source, split, seed, crop policy, and so on.
    """

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.ids = [str(i) for i in self.ids]
        shape = self.images.shape
        if len(self.images) == 0:
            raise RepresentativeError("A representative set needs at least one image, got none.")
        if self.images.ndim != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise RepresentativeError(f"Images must have shape (N, S, S, 3), got {shape}.")
        if self.images.dtype != np.uint8:
            raise RepresentativeError(
                f"Images must be uint8 RGB pixels (the device contract), got {self.images.dtype}."
            )
        if not len(self.images) == len(self.labels) == len(self.ids):
            raise RepresentativeError(
                f"Sizes differ: {len(self.images)} images, {len(self.labels)} labels, "
                f"{len(self.ids)} ids."
            )
        if len(set(self.ids)) != len(self.ids):
            raise RepresentativeError("Representative ids must be unique.")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def input_size(self) -> int:
        return int(self.images.shape[1])

    def counts(self, labels: Sequence[str] = LABELS) -> dict[str, int]:
        """Images per class name (``"unlabelled"`` for camera crops)."""
        names = [labels[i] if i != UNLABELLED else "unlabelled" for i in self.labels]
        return {name: names.count(name) for name in dict.fromkeys(names)}

    def manifest(self) -> dict[str, Any]:
        """What ``manifest.json`` records (without the file checksum)."""
        return {
            **self.info,
            "count": len(self),
            "input_size": self.input_size,
            "counts_per_class": self.counts(),
            "ids": self.ids,
        }

    def summary(self) -> dict[str, Any]:
        """The manifest without the id list, for bundles and reports."""
        return {k: v for k, v in self.manifest().items() if k != "ids"}

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Writes the set atomically: staged beside ``folder``, then renamed into place.

        Raises:
            RepresentativeError: if ``folder`` exists and ``overwrite`` is false.
        """
        folder = Path(folder)
        if folder.exists() and not overwrite:
            raise RepresentativeError(
                f"{folder} already exists; choose another folder or overwrite."
            )
        with atomic_dir(folder, replace=overwrite) as staging:
            np.savez_compressed(
                staging / IMAGES_FILE,
                images=self.images,
                labels=self.labels,
                ids=np.array(self.ids),
            )
            manifest = {
                **self.manifest(),
                "files": {IMAGES_FILE: sha256_file(staging / IMAGES_FILE)},
            }
            write_json(staging / MANIFEST_FILE, manifest)
        log.info("Saved %d representative crops to %s", len(self), folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RepresentativeSet:
        """Loads and checks a saved set.

        Raises:
            RepresentativeError: naming the file that is missing, altered or malformed.
        """
        folder = Path(folder)
        manifest_path, images_path = folder / MANIFEST_FILE, folder / IMAGES_FILE
        for path in (manifest_path, images_path):
            if not path.is_file():
                raise RepresentativeError(
                    f"{path}: missing; is {folder} a representative set from `affectlite "
                    "calibrate`?"
                )
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RepresentativeError(f"{manifest_path}: unreadable manifest ({error}).") from error
        expected = manifest.get("files", {}).get(IMAGES_FILE)
        if expected != sha256_file(images_path):
            raise RepresentativeError(
                f"{images_path}: checksum mismatch (file altered or corrupt)."
            )
        try:
            with np.load(images_path, allow_pickle=False) as data:
                images, labels, ids = data["images"], data["labels"], data["ids"].tolist()
        except (OSError, ValueError, KeyError) as error:
            raise RepresentativeError(f"{images_path}: unreadable ({error}).") from error
        info = {k: v for k, v in manifest.items() if k not in ("ids", "files", "counts_per_class")}
        for key in ("count", "input_size"):
            info.pop(key, None)
        try:
            return cls(images, labels, ids, info)
        except RepresentativeError as error:
            raise RepresentativeError(f"{images_path}: {error}") from error


def class_pools(labels: np.ndarray, seed: int = 0) -> dict[int, np.ndarray]:
    """Each class's indices in a seeded random order; a draw takes them front to back, so an
    unreadable image is replaced by the next one of the same class."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    return {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}


def class_quotas(pool_sizes: dict[int, int], n: int, seed: int = 0) -> dict[int, int]:
    """Splits ``n`` over classes as evenly as their sizes allow."""
    rng = np.random.default_rng(seed)
    quota = dict.fromkeys(pool_sizes, 0)
    remaining = min(n, sum(pool_sizes.values()))
    while remaining > 0:
        open_classes = [c for c in quota if quota[c] < pool_sizes[c]]
        share = max(1, remaining // len(open_classes))
        for c in rng.permutation(open_classes):
            add = min(share, pool_sizes[int(c)] - quota[int(c)], remaining)
            quota[int(c)] += add
            remaining -= add
            if remaining == 0:
                break
    return quota


def _is_sample(item: Any) -> bool:
    return hasattr(item, "path") and hasattr(item, "label") and hasattr(item, "id")


def build_representative(
    images_or_samples: Sequence[Any] | np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    n: int = DEFAULT_COUNT,
    seed: int = 0,
    *,
    size: int | None = None,
    policy: CropPolicy = CropPolicy(),
    source: str = "arrays",
    exclude_ids: Iterable[str] = (),
) -> RepresentativeSet:
    """Draws a class-stratified representative set from training data.

    Args:
        images_or_samples: training ``Sample`` records (``train.datasets``), or images
            (``(N, H, W, 3)`` array or list) that are already face crops.
        labels: class per image; taken from the samples when omitted.
        ids: stable id per image; taken from the samples (default for arrays: the index).
        n: images to draw (fewer if the data has fewer).
        seed: seed of the draw.
        size: crop side; default: the images' own side.
        policy: crop policy (the model's, so calibration sees the device's crops).
        source: provenance text for the manifest.
        exclude_ids: ids of held-out (validation/test) images; any of them is never drawn.

    Raises:
        RepresentativeError: if no image is usable.
    """
    items = images_or_samples
    if len(items) == 0:
        raise RepresentativeError(f"No images to draw a representative set from ({source}).")
    samples = _is_sample(items[0])
    if labels is None:
        if not samples:
            raise ValueError("labels are required when passing images rather than samples.")
        labels = [int(s.label) for s in items]
    if ids is None:
        ids = [s.id for s in items] if samples else [str(i) for i in range(len(items))]
    if n < 1:
        raise InputError(f"The representative set size must be at least 1, got {n}.")
    labels, ids = np.asarray(labels, dtype=np.int64), [str(i) for i in ids]
    if not len(items) == len(labels) == len(ids):
        raise ValueError(
            f"Sizes differ: {len(items)} images, {len(labels)} labels, {len(ids)} ids."
        )
    size = size or (None if samples else int(np.asarray(items[0]).shape[0]))
    if size is None:
        raise ValueError("size (the model's input side) is required when passing samples.")
    excluded = set(map(str, exclude_ids))
    allowed = np.array([i not in excluded for i in ids], dtype=bool)
    if not allowed.all():
        log.warning("%d training images are also held-out images; not drawn.", (~allowed).sum())
    pools = {c: idx[allowed[idx]] for c, idx in class_pools(labels, seed).items()}
    quotas = class_quotas({c: len(p) for c, p in pools.items()}, n, seed)

    def crop(index: int) -> np.ndarray:
        if samples:
            from affectlite.train.datasets import load_crop

            return load_crop(items[index], size, policy)
        return crop_face(items[index], None, size, policy)

    crops, chosen, skipped = _draw(crop, pools, quotas, ids)
    if not crops:
        raise RepresentativeError(f"No usable images in {source} ({len(skipped)} unreadable).")
    info = {
        "source": source,
        "split": "train",
        "seed": seed,
        "requested": n,
        "crop": policy.to_dict(),
        "skipped": len(skipped),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return RepresentativeSet(np.stack(crops), labels[chosen], [ids[i] for i in chosen], info)


def _draw(crop, pools: dict[int, np.ndarray], quotas: dict[int, int], ids: list[str]):
    """Takes each class's quota from the front of its pool, passing over unreadable images."""
    crops, chosen, skipped = [], [], []
    with Progress(sum(quotas.values()), "calibrate: representative set") as bar:
        for c, pool in pools.items():
            taken = 0
            for index in pool:
                if taken == quotas[c]:
                    break
                try:
                    crops.append(crop(int(index)))
                except (ImageError, OSError) as error:
                    skipped.append(f"{ids[index]}: {error}")
                    continue
                chosen.append(int(index))
                taken += 1
                bar.update()
    for line in skipped[:5]:
        log.warning("Skipped unreadable %s", line)
    return crops, chosen, skipped


def from_dataset(
    root: str | Path,
    format: str,
    n: int = DEFAULT_COUNT,
    seed: int = 0,
    *,
    size: int,
    policy: CropPolicy = CropPolicy(),
    **options: Any,
) -> RepresentativeSet:
    """Draws the set from a dataset's training split, excluding every held-out image id.

    ``options`` go to ``train.datasets.load_dataset`` (e.g. ``ferplus_mode``).
    """
    from affectlite.train.datasets import available_splits, load_dataset

    train = load_dataset(root, format, "train", **options)
    held_out = set()
    for split in sorted(set(available_splits(root, format)) & set(HELD_OUT_SPLITS)):
        held_out.update(s.id for s in load_dataset(root, format, split, **options).samples)
    return build_representative(
        train.samples,
        n=n,
        seed=seed,
        size=size,
        policy=policy,
        source=f"{format}:{root}",
        exclude_ids=held_out,
    )


def from_frames(
    frames: Iterable[np.ndarray],
    detector: Any,
    size: int,
    policy: CropPolicy = CropPolicy(),
    n: int = DEFAULT_COUNT,
    *,
    every: int = 1,
    faces_per_frame: int = 1,
    source: str = "frames",
) -> RepresentativeSet:
    """Face crops found by the on-device detector in camera, video or photo frames.

    Args:
        frames: ``uint8`` RGB frames.
        detector: anything with ``detect(frame) -> [Detection]`` (``edge_app.detector``).
        size: the classifier's input side.
        policy: the bundle's crop policy.
        n: stop after this many crops.
        every: use every ``every``-th frame (neighbouring video frames are near-duplicates).
        faces_per_frame: keep at most this many (largest) faces per frame.
        source: provenance text for the manifest.

    Raises:
        RepresentativeError: if no face was found.
    """
    if every < 1 or faces_per_frame < 1:
        raise InputError(f"every and faces_per_frame must be ≥ 1, got {every}, {faces_per_frame}.")
    crops, ids, seen, with_face = [], [], 0, 0
    with Progress(n, "calibrate: faces from frames") as bar:
        for index, frame in enumerate(frames):
            if len(crops) >= n:
                break
            if index % every:
                continue
            seen += 1
            detections = detector.detect(frame)[:faces_per_frame]
            with_face += bool(detections)
            for face, detection in enumerate(detections[: n - len(crops)]):
                crops.append(crop_face(frame, detection.box, size, policy))
                ids.append(f"frame{index:06d}/face{face}")
                bar.update()
    if not crops:
        raise RepresentativeError(
            f"No face found in {seen} frames of {source}; point the camera at faces, or use "
            "--data to draw the set from the training data."
        )
    info = {
        "source": source,
        "split": "camera",
        "frames_used": seen,
        "frames_with_face": with_face,
        "every": every,
        "requested": n,
        "crop": policy.to_dict(),
        "detector": type(detector).__name__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return RepresentativeSet(np.stack(crops), np.full(len(crops), UNLABELLED), ids, info)
