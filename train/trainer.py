"""The training recipe: head warm-up on a frozen backbone, then full fine-tuning.

Why two phases: a freshly initialised head sends large, random gradients into a pretrained
backbone and wrecks its features, so the head is trained first with the backbone frozen. Then the
whole network is fine-tuned with a small learning rate; BatchNorm layers of a pretrained backbone
stay in inference mode, because their ImageNet statistics are better than those of small batches.
From scratch (``weights="none"``) there is nothing to protect: one phase, everything trainable.

Interruptions: ``keras.callbacks.BackupAndRestore`` saves the state after every epoch; SIGTERM is
turned into ``KeyboardInterrupt``; ``resume=True`` continues from the last complete epoch with the
run folder's saved configuration. The best model (by validation balanced accuracy) is written
atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affectlite.edge_app.labels import LABELS
from affectlite.train import plots
from affectlite.train.metrics import classification_report
from affectlite.train.model import build_model
from affectlite.train.pipeline import Split, eval_dataset, packed_train_dataset, train_dataset

CONFIG_FILE = "config.json"
BEST_MODEL = "best.keras"


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (saved as ``config.json`` in the run folder)."""

    backbone: str = "resnet50"
    input_size: int = 112
    weights: str = "imagenet"
    epochs: int = 30
    head_epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-3
    finetune_learning_rate: float = 1e-4
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    balance: str = "loss"
    augment: bool = True
    dropout: float = 0.3
    mixed_precision: str = "auto"
    distribute: str = "auto"
    seed: int = 0

    @property
    def pretrained(self) -> bool:
        return self.weights.lower() != "none"

    def phases(self) -> list[tuple[str, int, int, float]]:
        """``(name, first_epoch, end_epoch, peak_learning_rate)`` of each phase."""
        head = min(self.head_epochs, self.epochs) if self.pretrained else 0
        phases = [("head", 0, head, self.learning_rate)] if head else []
        if self.epochs > head:
            rate = self.finetune_learning_rate if self.pretrained else self.learning_rate
            phases.append(("finetune", head, self.epochs, rate))
        return phases

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        data = json.loads(Path(path).read_text())
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class RunFolderError(RuntimeError):
    """The run folder cannot be used (exists, unwritable, too little disk)."""


class BalancedAccuracyCheckpoint(keras.callbacks.Callback):
    """Adds validation balanced accuracy and macro-F1 to the logs; keeps the best model.

    The model is written to a temporary file and renamed, so ``best.keras`` is always whole.
    """

    def __init__(self, val: Split, batch_size: int, run_dir: Path) -> None:
        super().__init__()
        self.val = val
        self.data = eval_dataset(val.images, batch_size)
        self.run_dir = run_dir
        self.best_path = run_dir / "best.json"
        self.best = -1.0

    def on_train_begin(self, logs=None) -> None:
        if self.best_path.exists():
            self.best = json.loads(self.best_path.read_text())["val_balanced_accuracy"]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        logits = self.model.predict(self.data, verbose=0)
        report = classification_report(self.val.labels, logits)
        logs["val_accuracy"] = report["accuracy"]
        logs["val_balanced_accuracy"] = report["balanced_accuracy"]
        logs["val_macro_f1"] = report["macro_f1"]
        logs["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        if report["balanced_accuracy"] > self.best:
            self.best = report["balanced_accuracy"]
            atomic_save(self.model, self.run_dir / BEST_MODEL)
            record = {"epoch": epoch + 1, **{k: report[k] for k in ("accuracy", "macro_f1")}}
            record["val_balanced_accuracy"] = self.best
            atomic_write_text(self.best_path, json.dumps(record, indent=2))


def atomic_save(model: keras.Model, path: Path) -> None:
    """Saves a Keras model next to ``path`` and renames it into place."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prepare_run_dir(run_dir: Path, resume: bool, min_free_bytes: int) -> None:
    """Creates (or re-opens, when resuming) the run folder after checking it is usable.

    Raises:
        RunFolderError: if the folder exists without ``resume``, cannot be written, or its disk
            has less than ``min_free_bytes`` free.
    """
    if resume and not (run_dir / CONFIG_FILE).is_file():
        raise RunFolderError(f"--resume: {run_dir} holds no {CONFIG_FILE}; nothing to resume.")
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise RunFolderError(
            f"{run_dir} already exists and is not empty; pass --resume to continue that run or "
            "choose another --out (runs are never overwritten)."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise RunFolderError(f"Cannot write to {run_dir}: {error.strerror or error}.") from error
    free = shutil.disk_usage(run_dir).free
    if free < min_free_bytes:
        raise RunFolderError(
            f"Only {free / 2**20:.0f} MiB free at {run_dir}; this run needs about "
            f"{min_free_bytes / 2**20:.0f} MiB for checkpoints. Free space or choose another --out."
        )


@contextmanager
def sigterm_as_interrupt():
    """Turns SIGTERM into KeyboardInterrupt so a killed job stops like Ctrl-C."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def distribution_strategy(mode: str) -> tf.distribute.Strategy:
    """``auto``: MultiWorkerMirrored with TF_CONFIG, Mirrored on several GPUs, else default."""
    gpus = tf.config.list_physical_devices("GPU")
    if mode == "multiworker" or (mode == "auto" and os.environ.get("TF_CONFIG")):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if mode == "mirrored" or (mode == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if mode not in ("auto", "none", "mirrored", "multiworker"):
        raise ValueError(f"distribute must be auto, none, mirrored or multiworker, got {mode!r}.")
    return tf.distribute.get_strategy()


def set_precision(mode: str) -> str:
    """Mixed float16 on GPUs when ``auto`` or ``on``; returns the policy name used."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mixed_precision must be auto, on or off, got {mode!r}.")
    use = mode == "on" or (mode == "auto" and tf.config.list_physical_devices("GPU"))
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _compile(model: keras.Model, config: TrainConfig, peak: float, steps: int, epochs: int):
    warmup = int(config.warmup_epochs * steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.01 if warmup else peak,
        decay_steps=max(1, epochs * steps - warmup),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
        alpha=0.01,
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config.label_smoothing
    )
    model.compile(
        optimizer=optimizer, loss=loss, metrics=[keras.metrics.CategoricalAccuracy("accuracy")]
    )


def _set_trainable(model: keras.Model, phase: str, pretrained: bool) -> None:
    backbone = model.backbone
    backbone.trainable = phase != "head"
    if pretrained and phase != "head":
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def train(
    config: TrainConfig,
    train_split: Split | str | Path,
    val_split: Split,
    run_dir: str | Path,
    *,
    resume: bool = False,
    verbose: int | str = "auto",
    data_summary: dict | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict:
    """Trains a classifier and writes the run folder.

    Args:
        config: the recipe's hyper-parameters.
        train_split: training crops in memory, or a folder of ``affectlite data pack`` shards
            to stream (large sets).
        val_split: validation crops (in memory: they are scored after every epoch).
        run_dir: the run folder; never overwritten unless ``resume``.
        resume: continue an interrupted run with its saved configuration.
        verbose: Keras' progress output.
        data_summary: what the data was, saved in ``config.json``.
        callbacks: more Keras callbacks for ``fit`` (e.g. progress reporting).

    Returns:
        The validation report of the best model (also saved as ``metrics.json``).
    """
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, resume, min_free_bytes=600 * 2**20)
    if resume:
        config = TrainConfig.load(run_dir / CONFIG_FILE)
    else:
        summary = {"config": asdict(config), "data": data_summary or {}}
        atomic_write_text(
            run_dir / CONFIG_FILE, json.dumps({**asdict(config), **summary}, indent=2)
        )
    keras.utils.set_random_seed(config.seed)
    policy = set_precision(config.mixed_precision)
    strategy = distribution_strategy(config.distribute)
    with strategy.scope():
        model = build_model(config.backbone, config.input_size, config.weights, config.dropout)
    if isinstance(train_split, Split):
        data = train_dataset(
            train_split,
            config.batch_size,
            balance=config.balance,
            augment=config.augment,
            seed=config.seed,
        )
    else:  # a folder of packed shards, streamed
        data = packed_train_dataset(
            str(train_split),
            config.batch_size,
            balance=config.balance,
            augment=config.augment,
            seed=config.seed,
        )
    steps = int(data.cardinality())
    started = time.time()
    with sigterm_as_interrupt():
        for phase, first, end, peak in config.phases():
            _run_phase(
                model,
                strategy,
                config,
                phase,
                first,
                end,
                peak,
                steps,
                data,
                val_split,
                run_dir,
                verbose,
                callbacks,
            )
    return _finish(run_dir, val_split, config, policy, time.time() - started)


def _run_phase(
    model, strategy, config, phase, first, end, peak, steps, data, val, run_dir, verbose, extra
) -> None:
    done = run_dir / f"phase-{phase}.weights.h5"
    if done.exists():
        model.load_weights(done)
        return
    with strategy.scope():
        _set_trainable(model, phase, config.pretrained)
        _compile(model, config, peak, steps, end - first)
    # Order matters: validation metrics join the logs before they are written, and the
    # epoch's backup is taken last, once everything about it is on disk.
    callbacks = [
        BalancedAccuracyCheckpoint(val, config.batch_size, run_dir),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup" / phase), double_checkpoint=True),
        *extra,
    ]
    model.fit(
        data,
        epochs=end,
        initial_epoch=first,
        callbacks=callbacks,
        verbose=verbose,
    )
    tmp = done.with_name(f".{done.name}.tmp.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, done)


def _finish(run_dir: Path, val: Split, config: TrainConfig, policy: str, seconds: float) -> dict:
    best = keras.models.load_model(run_dir / BEST_MODEL)
    logits = best.predict(eval_dataset(val.images, config.batch_size), verbose=0)
    report = classification_report(val.labels, logits, LABELS)
    report["wall_seconds_this_session"] = round(seconds, 1)
    report["precision_policy"] = policy
    report["best_epoch"] = json.loads((run_dir / "best.json").read_text())["epoch"]
    atomic_write_text(run_dir / "metrics.json", json.dumps(report, indent=2))
    plots.confusion_png(report, run_dir / "confusion.png", "validation, best model")
    plots.curves_png(
        run_dir / "history.csv", run_dir / "curves.png", f"{config.backbone} {config.input_size}px"
    )
    np.save(run_dir / "val_logits.npy", logits)
    return report
