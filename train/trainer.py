"""The training recipe: head warm-up on a frozen backbone, then full fine-tuning.

Why two phases: a freshly initialised head sends large, random gradients into a pretrained
backbone and wrecks its features, so the head is trained first with the backbone frozen. Then the
whole network is fine-tuned with a small learning rate; BatchNorm layers of a pretrained backbone
stay in inference mode, because their ImageNet statistics are better than those of small batches.
From scratch (``weights="none"``) there is nothing to protect: one phase, everything trainable.

Interruptions: ``keras.callbacks.BackupAndRestore`` saves the state after every epoch; SIGTERM is
turned into ``KeyboardInterrupt``; ``resume=True`` continues from the last complete epoch with the
run folder's saved configuration. The best model (by validation macro-F1) is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from affectlite.edge_app.labels import LABELS
from affectlite.errors import InputError
from affectlite.files import write_json, write_with
from affectlite.schemas import METRICS_VERSION, MetricsDocument
from affectlite.train import distill, plots
from affectlite.train.config import TrainConfig
from affectlite.train.metrics import classification_report
from affectlite.train.model import build_model
from affectlite.train.pipeline import Split, eval_dataset, packed_train_dataset, train_dataset

CONFIG_FILE = "config.json"
BEST_MODEL = "best.keras"


class RunFolderError(InputError):
    """The run folder cannot be used (exists, unwritable, too little disk)."""


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
        self.data = eval_dataset(val.images, batch_size)
        self.run_dir = run_dir
        self.best_path = run_dir / "best.json"
        self.best = -1.0

    def on_train_begin(self, logs=None) -> None:
        if self.best_path.exists():
            self.best = json.loads(self.best_path.read_text())["macro_f1"]

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
        if report["macro_f1"] > self.best:
            self.best = report["macro_f1"]
            write_with(self.run_dir / BEST_MODEL, self.model.save)
            record = {"epoch": epoch + 1, **{k: report[k] for k in ("accuracy", "macro_f1")}}
            record["val_balanced_accuracy"] = report["balanced_accuracy"]
            write_json(self.best_path, record)


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
        raise InputError(f"distribute must be auto, none, mirrored or multiworker, got {mode!r}.")
    return tf.distribute.get_strategy()


@contextmanager
def precision_policy(mode: str) -> Iterator[str]:
    """Sets the global Keras precision policy for one run and restores the previous one after.

    Mixed float16 on GPUs when ``mode`` is ``auto`` or ``on``; yields the policy name used.
    """
    use = mode == "on" or (mode == "auto" and tf.config.list_physical_devices("GPU"))
    policy = "mixed_float16" if use else "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


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
    metrics = [keras.metrics.CategoricalAccuracy("accuracy")]
    if config.teacher:
        loss, metrics = distill.loss_and_metrics(config)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


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

    With ``TF_CONFIG`` (MultiWorkerMirroredStrategy) every worker runs this same function, as
    Keras' multi-worker guide prescribes: all of them run every step, saving included (a worker
    that skipped one could leave the others waiting in a collective op), but only the chief
    writes ``run_dir``; the others write to a temporary folder deleted when they finish.

    Returns:
        The validation report of the best model (also saved as ``metrics.json``).
    """
    run_dir = Path(run_dir)
    if resume and (run_dir / CONFIG_FILE).is_file():
        config = TrainConfig.load(run_dir / CONFIG_FILE)
    with precision_policy(config.mixed_precision) as policy:
        strategy = distribution_strategy(config.distribute)
        run = partial(
            _train,
            strategy,
            policy,
            config,
            train_split,
            val_split,
            resume,
            data_summary,
            tuple(callbacks),
        )
        if is_chief(strategy):
            return run(run_dir, verbose)
        with worker_scratch(run_dir, resume) as scratch:
            return run(scratch, 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: the only process, the ``chief`` task, or
    worker 0 of a cluster without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    jobs = resolver.cluster_spec().jobs
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs


@contextmanager
def worker_scratch(run_dir: Path, resume: bool):
    """A temporary run folder for a non-chief worker, deleted on exit.

    When resuming, it starts from the chief's saved state (``run_dir`` must be on a file
    system every worker reads, as for Keras' ``BackupAndRestore``).
    """
    scratch = Path(tempfile.mkdtemp(prefix="affectlite-worker-"))
    try:
        if resume:
            for name in (CONFIG_FILE, "best.json", "backup", *_phase_files(run_dir)):
                source = run_dir / name
                if source.is_dir():
                    shutil.copytree(source, scratch / name)
                elif source.is_file():
                    shutil.copy2(source, scratch / name)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _phase_files(run_dir: Path) -> list[str]:
    return [path.name for path in run_dir.glob("phase-*.weights.h5")]


def _train(
    strategy: tf.distribute.Strategy,
    policy: str,
    config: TrainConfig,
    train_split: Split | str | Path,
    val_split: Split,
    resume: bool,
    data_summary: dict | None,
    callbacks: tuple[keras.callbacks.Callback, ...],
    run_dir: Path,
    verbose: int | str,
) -> dict:
    prepare_run_dir(run_dir, resume, min_free_bytes=600 * 2**20)
    if not resume:
        summary = {"config": asdict(config), "data": data_summary or {}}
        write_json(run_dir / CONFIG_FILE, {**asdict(config), **summary})
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config.backbone, config.input_size, config.weights, config.dropout)
        if config.init and not resume:  # a resumed run restores its own weights
            start_from(model, config.init)
    teacher = distill.teacher_targets(config, train_split) if config.teacher else None
    if isinstance(train_split, Split):
        data = train_dataset(
            train_split,
            config.batch_size,
            balance=config.balance,
            augment=config.augment,
            seed=config.seed,
            teacher=teacher,
        )
    else:  # a folder of packed shards, streamed
        data = packed_train_dataset(
            str(train_split),
            config.batch_size,
            balance=config.balance,
            augment=config.augment,
            seed=config.seed,
        )
    session = _Session(
        model,
        strategy,
        config,
        data,
        int(data.cardinality()),
        val_split,
        run_dir,
        verbose,
        callbacks,
    )
    started = time.time()
    with sigterm_as_interrupt():
        for phase, first, end, peak in config.phases():
            _run_phase(session, phase, first, end, peak)
    return _finish(run_dir, val_split, config, policy, time.time() - started)


def start_from(model: keras.Model, path: str | Path) -> None:
    """Copies every weight of a trained model into ``model`` (same architecture required).

    Raises:
        InputError: if the file does not load, or its layers or shapes differ from ``model``'s.
    """
    try:
        trained = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise InputError(f"--init {path}: not a loadable Keras model ({error}).") from error
    shapes = [tuple(w.shape) for w in model.weights]
    same_input = tuple(trained.input_shape) == tuple(model.input_shape)
    if not same_input or [tuple(w.shape) for w in trained.weights] != shapes:
        raise InputError(
            f"--init {path}: {trained.name} does not match the configured {model.name} "
            "(backbone, input size or classes differ)."
        )
    model.set_weights(trained.get_weights())


@dataclass(frozen=True)
class _Session:
    """What every phase of one training run shares."""

    model: keras.Model
    strategy: tf.distribute.Strategy
    config: TrainConfig
    data: tf.data.Dataset
    steps: int
    val: Split
    run_dir: Path
    verbose: int | str
    callbacks: tuple[keras.callbacks.Callback, ...] = ()


@contextmanager
def keras_multiworker_fit(model: keras.Model, strategy: tf.distribute.Strategy, data):
    """Works around two Keras 3 bugs that stop ``fit`` under MultiWorkerMirroredStrategy with
    several workers (keras-team/keras#20585, open in Keras 3.15):

    - ``fit`` builds the model from its first distributed batch after ``strategy.reduce`` of the
      whole (images, targets, weights) tuple, which fails; the model is built here instead from
      one local batch, so ``fit`` has nothing left to build;
    - ``fit`` averages each step's scalar logs with ``strategy.reduce(..., axis=0)``, which
      fails on scalars; during ``fit`` they are averaged with ``axis=None``.

    A no-op for any other strategy.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    with strategy.scope():
        model._symbolic_build(data_batch=next(iter(data)))
    model._maybe_symbolic_build = lambda **kwargs: None
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction != "auto":
            return original(values, strategy, reduction)
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original
        del model._maybe_symbolic_build


def _run_phase(session: _Session, phase: str, first: int, end: int, peak: float) -> None:
    """Trains epochs ``first``..``end`` of ``phase``; a phase finished before is only reloaded."""
    model, config, run_dir = session.model, session.config, session.run_dir
    done = run_dir / f"phase-{phase}.weights.h5"
    if done.exists():
        model.load_weights(done)
        return
    with session.strategy.scope():
        _set_trainable(model, phase, config.pretrained)
        _compile(model, config, peak, session.steps, end - first)
    # Order matters: validation metrics join the logs before they are written, and the
    # epoch's backup is taken last, once everything about it is on disk.
    callbacks = [
        MacroF1Checkpoint(session.val, config.batch_size, run_dir),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup" / phase), double_checkpoint=True),
        *session.callbacks,
    ]
    with keras_multiworker_fit(model, session.strategy, session.data):
        model.fit(
            session.data,
            epochs=end,
            initial_epoch=first,
            callbacks=callbacks,
            verbose=session.verbose,
        )
    write_with(done, model.save_weights)


def _finish(
    run_dir: Path, val: Split, config: TrainConfig, policy: str, seconds: float
) -> MetricsDocument:
    best = keras.models.load_model(run_dir / BEST_MODEL)
    logits = best.predict(eval_dataset(val.images, config.batch_size), verbose=0)
    report: MetricsDocument = {
        "schema_version": METRICS_VERSION,
        **classification_report(val.labels, logits, LABELS),
    }
    report["wall_seconds_this_session"] = round(seconds, 1)
    report["precision_policy"] = policy
    report["best_epoch"] = json.loads((run_dir / "best.json").read_text())["epoch"]
    write_json(run_dir / "metrics.json", report)
    plots.confusion_png(report, run_dir / "confusion.png", "validation, best model")
    plots.curves_png(
        run_dir / "history.csv", run_dir / "curves.png", f"{config.backbone} {config.input_size}px"
    )
    write_with(run_dir / "val_logits.npy", lambda tmp: np.save(tmp, logits))
    return report
