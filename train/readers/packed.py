"""Packed datasets: sharded TFRecords of cropped ``uint8`` faces, written once, read by training.

A packed folder holds ``manifest.json`` (format, crop size and policy, labels, per split its
shard files, counts, dropped rows and failed images) and shards named
``<split>-00000-of-00004.tfrecord``. Every record is a ``tf.train.Example`` with

- ``image``: the PNG-encoded RGB crop, ``size × size × 3``;
- ``label``: the kit label index (``int64``);
- ``soft``: 8 target probabilities in ``LABELS`` order (one-hot for hard labels);
- ``id``: the sample's id in its dataset.

Shards are written under temporary names and renamed when the split is complete, and the
manifest is written last, so an interrupted pack never leaves a folder that looks finished.
TensorFlow is imported only inside the functions that need it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from affectlite.edge_app.labels import LABELS, NUM_CLASSES
from affectlite.edge_app.preprocess import CropPolicy, ImageError
from affectlite.errors import InputError
from affectlite.files import write_json
from affectlite.train.datasets import load_crop
from affectlite.train.readers.base import DatasetError, DatasetIndex, Sample, parallel_map

MANIFEST = "manifest.json"
VERSION = 1


def _encode(sample: Sample, size: int, policy: CropPolicy) -> tuple[bytes | None, str | None]:
    try:
        crop = load_crop(sample, size, policy)
    except ImageError as error:
        return None, str(error)
    ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return (png.tobytes(), None) if ok else (None, f"{sample.id}: PNG encoding failed")


def _example(sample: Sample, png: bytes) -> bytes:
    import tensorflow as tf

    soft = sample.soft if sample.soft is not None else np.eye(NUM_CLASSES)[sample.label]
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[sample.label])),
        "soft": tf.train.Feature(float_list=tf.train.FloatList(value=list(soft))),
        "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[sample.id.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def pack_split(
    index: DatasetIndex,
    directory: str | Path,
    size: int,
    *,
    policy: CropPolicy = CropPolicy(),
    shard_size: int = 2048,
    workers: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Writes one split as shuffled TFRecord shards; returns its manifest entry.

    Images that fail to load are left out and listed under ``failed``. Samples are shuffled
    with ``seed`` so that every shard mixes all classes.
    """
    import tensorflow as tf
    from tqdm import tqdm

    if shard_size < 1 or size < 1:
        raise InputError(f"shard_size and size must be positive, got {shard_size} and {size}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(index.samples))
    samples = [index.samples[i] for i in order]
    temporary: list[Path] = []
    counts: Counter[str] = Counter()
    failed: list[tuple[str, str]] = []
    writer = None
    written = 0
    try:
        encode = partial(_encode, size=size, policy=policy)
        quiet = None if progress else True  # None: a bar only on a terminal
        results = parallel_map(encode, samples, workers)
        for sample, (png, error) in tqdm(
            results, f"pack {index.split}", len(samples), unit="img", disable=quiet
        ):
            if png is None:
                failed.append((sample.id, str(error)))
                continue
            if writer is None or written % shard_size == 0:
                if writer is not None:
                    writer.close()
                temporary.append(directory / f".{index.split}-{len(temporary):05d}.tmp")
                writer = tf.io.TFRecordWriter(str(temporary[-1]))
            writer.write(_example(sample, png))
            written += 1
            counts[LABELS[sample.label]] += 1
        if writer is not None:
            writer.close()
            writer = None
        files = _publish(directory, index.split, temporary)
    finally:
        if writer is not None:
            writer.close()
        for path in temporary:
            path.unlink(missing_ok=True)
    return {
        "files": files,
        "count": written,
        "counts": {name: counts[name] for name in index.classes},
        "skipped_by_reason": index.skipped_by_reason(),
        "failed": failed,
    }


def _publish(directory: Path, split: str, temporary: list[Path]) -> list[str]:
    """Renames finished shards to their final names and removes this split's older shards."""
    total = len(temporary)
    names = [f"{split}-{i:05d}-of-{total:05d}.tfrecord" for i in range(total)]
    for path, name in zip(temporary, names):
        os.replace(path, directory / name)
    for stale in directory.glob(f"{split}-*-of-*.tfrecord"):
        if stale.name not in names:
            stale.unlink()
    return names


def write_manifest(directory: str | Path, manifest: dict) -> Path:
    """Writes ``manifest.json``; call it after every split is packed."""
    return write_json(Path(directory) / MANIFEST, {"version": VERSION, **manifest})


def read_manifest(directory: str | Path) -> dict:
    """The manifest of a packed folder.

    Raises:
        DatasetError: when the folder holds no (readable) ``manifest.json``.
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"{path}: not a packed dataset ({error}); create it with `affectlite data pack`."
        ) from error
    if manifest.get("version") != VERSION:
        raise DatasetError(f"{path}: version {manifest.get('version')!r}, expected {VERSION}.")
    return manifest


def read_packed(directory: str | Path, split: str = "train"):
    """A ``tf.data.Dataset`` of one packed split, one dict per face.

    Elements: ``image`` ``uint8 (size, size, 3)``, ``label`` ``int64``, ``soft``
    ``float32 (8,)``, ``id`` string. Not shuffled or batched: the caller does that.

    Raises:
        DatasetError: when the folder is not a packed dataset, lacks the split or a shard.
    """
    import tensorflow as tf

    manifest = read_manifest(directory)
    if split not in manifest["splits"]:
        raise DatasetError(
            f"{directory}: no packed {split!r} split (it has {', '.join(manifest['splits'])})."
        )
    files = [Path(directory) / name for name in manifest["splits"][split]["files"]]
    missing = [str(path) for path in files if not path.is_file()]
    if missing or not files:
        raise DatasetError(f"{directory}: shard files missing for {split!r}: {missing or 'all'}.")
    size = int(manifest["size"])
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "soft": tf.io.FixedLenFeature([NUM_CLASSES], tf.float32),
        "id": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        image = tf.ensure_shape(tf.io.decode_png(example["image"], channels=3), (size, size, 3))
        return {**example, "image": image}

    records = tf.data.TFRecordDataset([str(p) for p in files], num_parallel_reads=len(files))
    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
