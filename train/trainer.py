"""The training recipe: head warm-up on a frozen backbone, then full fine-tuning.

Why two phases: a freshly initialised head sends large, random gradients into a pretrained
backbone and wrecks its features, so the head is trained first with the backbone frozen. Then the
whole network is fine-tuned with a small learning rate; BatchNorm layers of a pretrained backbone
stay in inference mode, because their ImageNet statistics are better than those of small batches.
From scratch (``weights="none"``) there is nothing to protect: one phase, everything trainable.

The same code runs on JAX and TensorFlow (``keras.backend.backend()``): batches come from a
``keras.utils.PyDataset`` (:mod:`affectlite.train.pipeline`), augmentation runs inside the
compiled step (:mod:`affectlite.train.augment`; jit-compiled on JAX; on TensorFlow without XLA,
which cannot compile ``ImageProjectiveTransformV3``), devices and precision come from
:mod:`affectlite.train.devices`. TensorBoard logs need TensorFlow: on JAX, ``history.csv`` and
``curves.png`` stand in.

Interruptions: the resume state is saved every ``--checkpoint-every`` epochs or minutes
(:class:`~affectlite.train.callbacks.PeriodicBackup`); SIGTERM and SIGINT stop training as
``KeyboardInterrupt`` (:class:`~affectlite.train.callbacks.StopOnSignal`); ``resume=True``
continues from the last saved epoch with the run folder's saved configuration. The best model
(by validation macro-F1) is written atomically.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import keras
import numpy as np

from affectlite.edge_app.labels import LABELS
from affectlite.errors import InputError
from affectlite.files import write_json, write_text, write_with
from affectlite.schemas import METRICS_VERSION, MetricsDocument
from affectlite.train import distill, plots
from affectlite.train.augment import TrainingModel, grid_png
from affectlite.train.callbacks import (
    BEST_MODEL,
    MacroF1Checkpoint,
    PeriodicBackup,
    StopOnSignal,
    Throughput,
    median_rate,
)
from affectlite.train.config import TrainConfig
from affectlite.train.devices import (
    Placement,
    device,
    keras_multiworker_fit,
    placement,
    precision_policy,
)
from affectlite.train.metrics import classification_report
from affectlite.train.model import build_model
from affectlite.train.pipeline import FaceBatches, FaceSource, Split, predict_logits
from affectlite.train.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    prepare_run_dir,
    remove_resume_state,
)

TENSORBOARD_STAND_IN = (
    "no TensorBoard logs on the jax backend (they need TensorFlow): history.csv, written every "
    "epoch, and curves.png stand in"
)


def build_loss(config: TrainConfig) -> keras.losses.Loss:
    """The training loss on logits (one place to change it, e.g. for distillation)."""
    return keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config.label_smoothing
    )


def jit_mode(augment: bool) -> bool | str:
    """JAX always compiles the step; TensorFlow's XLA cannot compile the augmentation's
    ``ImageProjectiveTransformV3``, so it runs without jit when augmenting."""
    if keras.backend.backend() == "jax":
        return True
    return False if augment else "auto"


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
    loss, metrics = build_loss(config), [keras.metrics.CategoricalAccuracy("accuracy")]
    if config.teacher:
        loss, metrics = distill.loss_and_metrics(config)
    model.compile(
        optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_mode(config.augment)
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
    train_source: FaceSource,
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
        config: the recipe's hyper-parameters; ``config.backend`` must be Keras' backend.
        train_source: training faces: an in-memory :class:`Split` or a packed split streamed
            from disk (any :class:`~affectlite.train.pipeline.FaceSource`).
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

    Raises:
        InputError: when the run's backend is not the one Keras runs on.
    """
    run_dir = Path(run_dir)
    if resume and (run_dir / CONFIG_FILE).is_file():
        config = TrainConfig.load(run_dir / CONFIG_FILE)
    backend = keras.backend.backend()
    if config.backend != backend:
        raise InputError(
            f"This run trains on the {config.backend} backend, but Keras runs on {backend} "
            f"here; set KERAS_BACKEND={config.backend} before Keras is imported."
        )
    where = device()
    with precision_policy(config.mixed_precision, where) as policy:
        with placement(config.distribute, where) as place:
            runtime = {
                "backend": backend,
                "precision_policy": policy,
                "device": where.to_dict(),
                "distribution": place.to_dict(),
            }
            run = partial(
                _train,
                place,
                runtime,
                config,
                train_source,
                val_split,
                resume,
                data_summary,
                tuple(callbacks),
            )
            if place.chief:
                return run(run_dir, verbose)
            with worker_scratch(run_dir, resume) as scratch:
                return run(scratch, 0)


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


@dataclass(frozen=True)
class _Session:
    """What every phase of one training run shares."""

    model: TrainingModel
    place: Placement
    config: TrainConfig
    data: FaceBatches
    val: Split
    run_dir: Path
    verbose: int | str
    callbacks: tuple[keras.callbacks.Callback, ...] = ()
    stop: StopOnSignal = field(default_factory=StopOnSignal)


def _train(
    place: Placement,
    runtime: dict,
    config: TrainConfig,
    train_source: FaceSource,
    val_split: Split,
    resume: bool,
    data_summary: dict | None,
    callbacks: tuple[keras.callbacks.Callback, ...],
    run_dir: Path,
    verbose: int | str,
) -> dict:
    if config.batch_size % place.replicas:
        raise InputError(
            f"--batch-size {config.batch_size} does not split over {place.replicas} devices; "
            f"use a multiple of {place.replicas}."
        )
    prepare_run_dir(run_dir, resume)
    if not resume:
        summary = {"config": asdict(config), "runtime": runtime, "data": data_summary or {}}
        write_json(run_dir / CONFIG_FILE, {**asdict(config), **summary})
    _announce(runtime, verbose)
    keras.utils.set_random_seed(config.seed)
    teacher = distill.teacher_targets(config, train_source) if config.teacher else None
    data = FaceBatches(
        train_source, config.batch_size, balance=config.balance, seed=config.seed, teacher=teacher
    )
    with place.scope():
        classifier = build_model(config.backbone, config.input_size, config.weights, config.dropout)
        if config.init and not resume:  # a resumed run restores its own weights
            start_from(classifier, config.init)
        model = TrainingModel(classifier, config.augment, config.seed)
        model(data[0][0][:1])  # builds it, as BackupAndRestore needs before fit
    if config.augment and not (run_dir / "augment.png").exists():
        grid_png(train_source.read(np.arange(min(16, len(train_source)))), run_dir / "augment.png")
    session = _Session(model, place, config, data, val_split, run_dir, verbose, callbacks)
    started = time.time()
    with session.stop.installed():
        for phase, first, end, peak in config.phases():
            _run_phase(session, phase, first, end, peak)
    report = _finish(run_dir, val_split, config, runtime, time.time() - started)
    remove_resume_state(run_dir)  # only after success: a failed run keeps what resumes it
    return report


def _announce(runtime: dict, verbose: int | str) -> None:
    if not verbose:
        return
    device_text = "{platform} ({name}) x{count}".format(**runtime["device"])
    print(
        f"backend {runtime['backend']}, {device_text}, precision {runtime['precision_policy']}, "
        f"distribution {runtime['distribution']['mode']}",
        flush=True,
    )
    if runtime["backend"] == "jax":
        print(TENSORBOARD_STAND_IN, flush=True)


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


def _run_phase(session: _Session, phase: str, first: int, end: int, peak: float) -> None:
    """Trains epochs ``first``..``end`` of ``phase``; a phase finished before is only reloaded."""
    model, config, run_dir = session.model, session.config, session.run_dir
    done = run_dir / f"phase-{phase}.weights.h5"
    if done.exists():
        model.load_weights(done)
        return
    with session.place.scope():
        _set_trainable(model.classifier, phase, config.pretrained)
        _compile(model, config, peak, len(session.data), end - first)
    # Order matters: throughput is measured before other callbacks work, validation metrics
    # join the logs before they are written, and the backup is taken last.
    backup = run_dir / "backup" / phase
    _trim_history(run_dir / "history.csv", _saved_epoch(backup) or first)
    tensorboard = keras.backend.backend() == "tensorflow"
    callbacks = [
        session.stop,
        Throughput(session.data.images_per_epoch, announce=bool(session.verbose)),
        MacroF1Checkpoint(session.val, config.batch_size, run_dir),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        *([keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False)]
          if tensorboard else []),  # fmt: skip
        PeriodicBackup(str(backup), *config.checkpoint_interval()),
        *session.callbacks,
    ]
    with keras_multiworker_fit(model, session.place.strategy, session.data):
        model.fit(
            session.data,
            epochs=end,
            initial_epoch=first,
            callbacks=callbacks,
            verbose=session.verbose,
        )
    write_with(done, model.save_weights)


def _saved_epoch(backup: Path) -> int | None:
    """The epoch a phase's resume state continues from, if it has one."""
    metadata = backup / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.is_file() else None


def _trim_history(history: Path, start: int) -> None:
    """Drops ``history.csv`` rows of epochs ``start`` and later: a resumed run trains them
    again (the resume state is saved every few epochs), so each epoch keeps one row."""
    if not history.is_file():
        return
    lines = history.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < start]
    if len(kept) < len(lines):
        write_text(history, "".join(kept))


def _finish(
    run_dir: Path, val: Split, config: TrainConfig, runtime: dict, seconds: float
) -> MetricsDocument:
    best = keras.models.load_model(run_dir / BEST_MODEL)
    logits = predict_logits(TrainingModel(best, augment=False), val.images, config.batch_size)
    report: MetricsDocument = {
        "schema_version": METRICS_VERSION,
        **classification_report(val.labels, logits, LABELS),
    }
    report["wall_seconds_this_session"] = round(seconds, 1)
    report["precision_policy"] = runtime["precision_policy"]
    report["backend"] = runtime["backend"]
    report["device"] = runtime["device"]
    report["train_images_per_second_median"] = median_rate(run_dir / "history.csv")
    report["best_epoch"] = json.loads((run_dir / "best.json").read_text())["epoch"]
    write_json(run_dir / METRICS_FILE, report)
    plots.confusion_png(report, run_dir / "confusion.png", "validation, best model")
    plots.curves_png(
        run_dir / "history.csv", run_dir / "curves.png", f"{config.backbone} {config.input_size}px"
    )
    write_with(run_dir / "val_logits.npy", lambda tmp: np.save(tmp, logits))
    return report
