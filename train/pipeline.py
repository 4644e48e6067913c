"""The input pipeline for both backends: face sources → shuffled uint8 batches for ``fit``.

Crops are made once with the device contract (``edge_app.preprocess.crop_face``) so training,
calibration and the device see identical faces. Targets are always 8-way probability vectors
(one-hot, or FER+ vote distributions), with optional per-example class-balancing weights.

No tf.data: :class:`FaceBatches` is a ``keras.utils.PyDataset`` that reads any
:class:`FaceSource` (an in-memory :class:`Split`, or a packed split streamed from disk) and
yields ``(uint8 images, targets, weights)``; augmentation runs later, inside the compiled train
step (:mod:`affectlite.train.augment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import keras
import numpy as np

from affectlite.edge_app.labels import NUM_CLASSES
from affectlite.edge_app.preprocess import CropPolicy, ImageError
from affectlite.errors import InputError
from affectlite.progress import progress
from affectlite.train.config import BALANCE_MODES


class FaceSource(Protocol):
    """Faces to train on: targets in memory, pixels read on demand (in memory or from disk)."""

    targets: np.ndarray  # (N, 8) float32

    def __len__(self) -> int: ...

    def read(self, indices: np.ndarray) -> np.ndarray:
        """uint8 ``(k, H, W, 3)`` faces at ``indices`` (ascending, repeats allowed)."""
        ...


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

    def __len__(self) -> int:
        return len(self.images)

    def read(self, indices: np.ndarray) -> np.ndarray:
        return self.images[indices]

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
        for sample, (image, error) in progress(
            zip(samples, results), len(samples), f"crop {index.split}"
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


class FaceBatches(keras.utils.PyDataset):
    """Shuffled training batches ``(uint8 images, float32 targets, float32 weights)`` of a
    :class:`FaceSource`, in a new order every epoch.

    Args:
        balance: ``"loss"`` weights each example by its class's inverse frequency, ``"sqrt"``
            by its square root, ``"sampling"`` draws classes uniformly (as many draws as
            faces), ``"none"`` leaves the data as is.
        workers: threads that read batches ahead of the train step.
        teacher: a teacher's cached probabilities per face (:mod:`affectlite.train.distill`),
            appended to the targets.

    The last incomplete batch is dropped (one input shape, so one compiled step), unless the
    source is smaller than one batch.
    """

    def __init__(
        self,
        source: FaceSource,
        batch_size: int,
        *,
        balance: str = "loss",
        seed: int = 0,
        workers: int = 2,
        teacher: np.ndarray | None = None,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        weights = loss_weights(source.targets, balance)
        self.source, self.batch_size, self.balance = source, batch_size, balance
        self.targets = (
            source.targets if teacher is None else np.concatenate([source.targets, teacher], 1)
        )
        self.labels = source.targets.argmax(axis=1)
        self.example_weight = (source.targets @ weights).astype(np.float32)
        self.rng = np.random.default_rng(seed)
        self.order = self._order()

    def __len__(self) -> int:
        return max(1, len(self.order) // self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        return min(len(self.order), len(self) * self.batch_size)

    def _order(self) -> np.ndarray:
        count = len(self.source)
        if self.balance != "sampling":
            return self.rng.permutation(count)
        classes = np.unique(self.labels)
        drawn = classes[self.rng.integers(0, len(classes), count)]
        order = np.empty(count, np.int64)
        for label in classes:
            slots = np.flatnonzero(drawn == label)
            members = np.flatnonzero(self.labels == label)
            cycles = -(-len(slots) // len(members))
            picks = np.concatenate([self.rng.permutation(members) for _ in range(cycles)])
            order[slots] = picks[: len(slots)]
        return order

    def on_epoch_end(self) -> None:
        self.order = self._order()

    def __getitem__(self, index: int):
        # Sorted, as ``read`` wants (repeats allowed); the order within a batch does not matter.
        chosen = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.source.read(chosen), self.targets[chosen], self.example_weight[chosen]


class EvalBatches(keras.utils.PyDataset):
    """Images in order, the last batch padded to full size so every batch has one shape."""

    def __init__(self, images: np.ndarray, batch_size: int) -> None:
        super().__init__()
        self.images, self.batch_size = images, batch_size

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index: int):
        batch = self.images[index * self.batch_size : (index + 1) * self.batch_size]
        missing = self.batch_size - len(batch)
        if missing:
            batch = np.concatenate([batch, np.zeros((missing, *batch.shape[1:]), batch.dtype)])
        return (batch,)


def predict_logits(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's outputs for ``images``, in order."""
    return model.predict(EvalBatches(images, batch_size), verbose=0)[: len(images)]


def measure_throughput(batches: FaceBatches, count: int = 50) -> float:
    """Images per second that the loader alone delivers on one thread (no model)."""
    import time

    batches[0]
    start, images = time.perf_counter(), 0
    for step in range(count):
        if step and step % len(batches) == 0:
            batches.on_epoch_end()
        images += len(batches[step % len(batches)][0])
    return images / (time.perf_counter() - start)
