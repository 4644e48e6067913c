"""The training run's Keras callbacks: best-model checkpoint, throughput, periodic backups and
stopping on SIGTERM or SIGINT."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np

from affectlite.files import write_json, write_with
from affectlite.progress import Progress
from affectlite.train.metrics import classification_report
from affectlite.train.pipeline import Split, predict_logits

BEST_MODEL = "best.keras"


def classifier_of(model: keras.Model) -> keras.Model:
    """The model to save and ship: the classifier inside a training wrapper, else ``model``."""
    return getattr(model, "classifier", model)


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` with every layer in float32 (the same weights): a model trained with mixed
    precision is saved, converted and shipped as a float32 one."""
    if model.dtype_policy.name == "float32":
        return model

    def to_float32(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {key: to_float32(value) for key, value in node.items()}
        return [to_float32(value) for value in node] if isinstance(node, list) else node

    copy = keras.saving.deserialize_keras_object(
        to_float32(keras.saving.serialize_keras_object(model))
    )
    copy.set_weights(model.get_weights())
    return copy


def save_classifier(
    model: keras.Model, path: Path, float32: keras.Model | None = None
) -> keras.Model:
    """Writes the classifier alone atomically, in float32: never compiled itself, it carries no
    optimizer state, and no augmentation. Returns the float32 model written; pass it back as
    ``float32`` next time, and it gets the new weights instead of being built again."""
    classifier = classifier_of(model)
    if float32 is None:
        float32 = float32_copy(classifier)
    elif float32 is not classifier:
        float32.set_weights(classifier.get_weights())
    write_with(path, float32.save)
    return float32


class MacroF1Checkpoint(keras.callbacks.Callback):
    """Adds validation accuracy, balanced accuracy and macro-F1 to the logs; keeps the model with
    the best validation macro-F1.

    Macro-F1, not balanced accuracy: with a few dozen faces of the rarest classes, recall alone
    jumps when a mid-schedule epoch sprays predictions into them; F1 also charges the lost
    precision (FER+ held-out curves in benchmarks/RESULTS.md). The model is written to a
    temporary file and renamed, so ``best.keras`` is always whole.
    """

    def __init__(self, val: Split, batch_size: int, run_dir: Path) -> None:
        super().__init__()
        self.val = val
        self.batch_size = batch_size
        self.run_dir = run_dir
        self.best_path = run_dir / "best.json"
        self.best = -1.0
        self._float32: keras.Model | None = None  # the saved copy of a mixed-precision model

    def on_train_begin(self, logs=None) -> None:
        if self.best_path.exists():
            self.best = json.loads(self.best_path.read_text())["macro_f1"]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        logits = predict_logits(self.model, self.val.images, self.batch_size)
        report = classification_report(self.val.labels, logits)
        logs["val_accuracy"] = report["accuracy"]
        logs["val_balanced_accuracy"] = report["balanced_accuracy"]
        logs["val_macro_f1"] = report["macro_f1"]
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        if report["macro_f1"] > self.best:
            self.best = report["macro_f1"]
            self._float32 = save_classifier(self.model, self.run_dir / BEST_MODEL, self._float32)
            record = {"epoch": epoch + 1, **{k: report[k] for k in ("accuracy", "macro_f1")}}
            record["val_balanced_accuracy"] = report["balanced_accuracy"]
            write_json(self.best_path, record)


class Throughput(keras.callbacks.Callback):
    """Training images per second of each epoch (train steps only, validation excluded):
    printed, and added to the logs as ``train_images_per_second`` (a history.csv column).

    Put it first among the callbacks, so the other callbacks' epoch-end work is not counted.
    """

    def __init__(self, images_per_epoch: int, announce: bool = True) -> None:
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.announce = announce
        self.rates: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        rate = self.images_per_epoch / max(time.perf_counter() - self._start, 1e-9)
        self.rates.append(rate)
        if logs is not None:
            logs["train_images_per_second"] = rate
        if self.announce:
            print(f"epoch {epoch + 1}: {rate:,.0f} training images/s", flush=True)


class EpochProgress(keras.callbacks.Callback):
    """Progress inside each epoch where Keras' bar would be one line an epoch (a pipe, a log):
    a line per 10 % of the epoch's batches on standard output (:class:`~affectlite.progress.
    Progress`)."""

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        desc = f"epoch {epoch + 1}/{self.params.get('epochs')}"
        self.bar = Progress(self.params.get("steps"), desc, unit="batch", file=sys.stdout)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.bar.update()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.bar.close()


def median_rate(history_csv: Path) -> float | None:
    """The median ``train_images_per_second`` over every epoch in ``history.csv``."""
    import csv

    if not history_csv.is_file():
        return None
    with history_csv.open() as handle:
        rates = [float(row["train_images_per_second"]) for row in csv.DictReader(handle)
                 if row.get("train_images_per_second")]  # fmt: skip
    return round(float(np.median(rates)), 1) if rates else None


class PeriodicBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that saves the resume state every ``epochs`` epochs, or at the end
    of the first epoch ``seconds`` or more after the previous save, instead of every epoch, so
    saving does not dominate one-second GPU epochs. An interrupted run loses at most that much.
    """

    def __init__(self, backup_dir: str, epochs: int = 0, seconds: float = 0.0) -> None:
        super().__init__(backup_dir, save_freq="epoch", double_checkpoint=True)
        self.every_epochs, self.every_seconds = epochs, seconds
        self._epochs_since, self._saved_at = 0, time.monotonic()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self._epochs_since += 1
        due_epochs = self.every_epochs and self._epochs_since >= self.every_epochs
        due_time = self.every_seconds and time.monotonic() - self._saved_at >= self.every_seconds
        if due_epochs or due_time:
            self._save_model()
            self._epochs_since, self._saved_at = 0, time.monotonic()


class StopOnSignal(keras.callbacks.Callback):
    """Stops ``fit`` like Ctrl-C on SIGTERM or SIGINT, at once or at the next batch end.

    Its handler raises ``KeyboardInterrupt`` where the signal lands. One that lands inside
    NumPy's conversion of a JAX array (Keras makes one after every batch) is swallowed there and
    training went on, so the signal is also kept and the next batch end raises it again.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None

    def handle(self, signum: int, frame) -> None:
        self.received = signum
        raise KeyboardInterrupt(f"signal {signum}")

    @contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        """Handles :data:`SIGNALS` within the block (main thread), then restores the handlers."""
        previous = {number: signal.signal(number, self.handle) for number in self.SIGNALS}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _stop_if_signalled(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt(f"signal {self.received}")

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._stop_if_signalled()

    def on_test_batch_end(self, batch, logs=None) -> None:
        self._stop_if_signalled()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._stop_if_signalled()
