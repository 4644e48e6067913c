"""The tf.data input pipeline: in-memory face crops or packed TFRecords → augmented batches.

Crops are made once with the device contract (``edge_app.preprocess.crop_face``) so training,
calibration and the device see identical faces. Targets are always 8-way probability vectors
(one-hot, or FER+ vote distributions), with optional per-example class-balancing weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from affectlite.edge_app.labels import LABELS, NUM_CLASSES
from affectlite.edge_app.preprocess import CropPolicy, ImageError
from affectlite.errors import InputError
from affectlite.train.config import BALANCE_MODES

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class Split:
    """One split held in memory: uint8 crops, probability targets, stable ids."""

    images: np.ndarray
    targets: np.ndarray
    ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets) or len(self.images) != len(self.ids):
            raise ValueError(
                f"Split sizes differ: {len(self.images)} images, {len(self.targets)} targets, "
                f"{len(self.ids)} ids."
            )
        if len(self.images) == 0:
            raise InputError("Split is empty: no usable images.")

    @property
    def labels(self) -> np.ndarray:
        return self.targets.argmax(axis=1)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=NUM_CLASSES)

    def take(self, indices: Sequence[int]) -> Split:
        indices = np.asarray(indices)
        return Split(self.images[indices], self.targets[indices], [self.ids[i] for i in indices])


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=int)]


def load_split(index, size: int, policy: CropPolicy = CropPolicy(), workers: int = 8) -> Split:
    """Decodes and crops every sample of a ``DatasetIndex`` into memory, in parallel.

    Unreadable images are skipped and listed in ``Split.skipped`` (never fatal).
    """
    from affectlite.train.datasets import load_crop

    def crop(sample):
        try:
            return load_crop(sample, size, policy), None
        except (ImageError, OSError) as error:
            return None, str(error)

    samples = index.samples
    images, targets, ids, skipped = [], [], [], list(index.skipped)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(crop, samples)
        for sample, (image, error) in tqdm(
            zip(samples, results), total=len(samples), desc=f"crop {index.split}", unit="img"
        ):
            if image is None:
                skipped.append((sample.id, error))
                continue
            images.append(image)
            targets.append(sample.soft if sample.soft is not None else one_hot(sample.label))
            ids.append(sample.id)
    if not images:
        raise InputError(f"No readable images in {index.root} ({index.split}).")
    return Split(np.stack(images), np.asarray(targets, np.float32), ids, skipped)


def class_weights(targets: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Inverse-frequency weights raised to ``power`` (0.5: square root), mean 1 over present
    classes; absent classes get 0."""
    counts = targets.sum(axis=0)
    present = counts > 0
    weights = np.zeros(len(counts), np.float32)
    weights[present] = (counts[present].sum() / counts[present]) ** power
    weights[present] /= weights[present].mean()
    return weights


def loss_weights(targets: np.ndarray, balance: str) -> np.ndarray:
    """Per-class loss weights for a balance mode: inverse frequency for ``"loss"``, its square
    root for ``"sqrt"`` (milder: 8.7x between the rarest and commonest FER+ class, not 75x),
    1 otherwise."""
    if balance not in BALANCE_MODES:
        raise InputError(f"balance must be one of {', '.join(BALANCE_MODES)}, got {balance!r}.")
    power = {"loss": 1.0, "sqrt": 0.5}.get(balance)
    return class_weights(targets, power) if power else np.ones(NUM_CLASSES, np.float32)


def augmenter(seed: int = 0) -> tf.keras.Sequential:
    """Flip, small rotation/scale/shift, brightness/contrast and random erasing (0..255 pixels)."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
            keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
            keras.layers.RandomErasing(factor=0.25, scale=(0.02, 0.12), seed=seed),
        ],
        name="augment",
    )


def train_dataset(
    split: Split,
    batch_size: int,
    *,
    balance: str = "loss",
    augment: bool = True,
    seed: int = 0,
    teacher: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Shuffled, augmented training batches of ``(images float32, targets, weights)``.

    Args:
        balance: ``"loss"`` weights each example by its class's inverse frequency,
            ``"sqrt"`` by its square root, ``"sampling"`` draws classes uniformly,
            ``"none"`` leaves the data as is.
        teacher: a teacher's cached probabilities per face (:mod:`affectlite.train.distill`),
            appended to the targets.
    """
    weights = loss_weights(split.targets, balance)
    example_weight = (split.targets @ weights).astype(np.float32)
    targets = split.targets if teacher is None else np.concatenate([split.targets, teacher], 1)
    if balance == "sampling":
        labels = split.labels
        per_class = [
            _examples(split, targets, example_weight, np.flatnonzero(labels == c))
            .shuffle(20_000, seed=seed)
            .repeat()
            for c in np.unique(labels)
        ]
        data = tf.data.Dataset.sample_from_datasets(per_class, seed=seed).take(len(split.ids))
    else:
        data = _examples(split, targets, example_weight, np.arange(len(split.ids)))
        data = data.shuffle(min(len(split.ids), 20_000), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=len(split.images) >= batch_size)
    data = data.map(_to_float, num_parallel_calls=AUTOTUNE)
    if augment:
        layers = augmenter(seed)
        data = data.map(
            lambda x, y, w: (layers(x, training=True), y, w), num_parallel_calls=AUTOTUNE
        )
    return data.prefetch(AUTOTUNE)


def packed_train_dataset(
    directory: str, batch_size: int, *, balance: str = "loss", augment: bool = True, seed: int = 0
) -> tf.data.Dataset:
    """Streams training batches from ``affectlite data pack`` shards (for sets too large for
    memory, such as AffectNet), with the same targets, weights and augmentation as
    :func:`train_dataset`. ``balance="sampling"`` needs in-memory data and is refused."""
    from affectlite.train.readers.packed import read_manifest, read_packed

    if balance == "sampling":
        raise InputError("Packed data supports balance loss, sqrt or none, not sampling.")
    counts = read_manifest(directory)["splits"]["train"]["counts"]
    total = np.array([counts.get(label, 0) for label in LABELS], np.float32)
    weights = loss_weights(total[None], balance)
    weight_table = tf.constant(weights, tf.float32)
    data = read_packed(directory, "train").shuffle(20_000, seed=seed)
    data = data.map(
        lambda e: (e["image"], e["soft"], tf.reduce_sum(e["soft"] * weight_table)),
        num_parallel_calls=AUTOTUNE,
    )
    data = data.batch(batch_size, drop_remainder=True).map(_to_float, num_parallel_calls=AUTOTUNE)
    if augment:
        layers = augmenter(seed)
        data = data.map(
            lambda x, y, w: (layers(x, training=True), y, w), num_parallel_calls=AUTOTUNE
        )
    steps = int(total.sum()) // batch_size
    return data.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(AUTOTUNE)


def packed_split(directory: str, split: str) -> Split:
    """Loads one packed split (e.g. validation) into memory."""
    from affectlite.train.readers.packed import read_packed

    images, targets, ids = [], [], []
    for example in read_packed(directory, split).as_numpy_iterator():
        images.append(example["image"])
        targets.append(example["soft"])
        ids.append(example["id"].decode())
    return Split(np.stack(images), np.asarray(targets, np.float32), ids)


def _examples(
    split: Split, targets: np.ndarray, weight: np.ndarray, indices: np.ndarray
) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(
        (split.images[indices], targets[indices], weight[indices])
    )


def _to_float(x, y, w):
    return tf.cast(x, tf.float32), y, w


def eval_dataset(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Un-augmented float batches of images, in order."""
    data = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return data.map(lambda x: tf.cast(x, tf.float32), num_parallel_calls=AUTOTUNE).prefetch(
        AUTOTUNE
    )


def measure_throughput(dataset: tf.data.Dataset, batches: int = 50) -> float:
    """Images per second that the pipeline alone delivers (no model)."""
    import time

    iterator = iter(dataset.repeat())
    next(iterator)
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        count += int(tf.shape(next(iterator)[0])[0])
    return count / (time.perf_counter() - start)
