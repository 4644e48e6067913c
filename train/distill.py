"""Knowledge distillation: a student trained against a teacher's softened outputs.

Hinton, Vinyals and Dean (2015): with ``s`` and ``t`` the student's and the teacher's logits,

    loss = alpha * T² * KL(softmax(t / T) ‖ softmax(s / T)) + (1 − alpha) * CE(targets, s)

The T² keeps the soft term's gradients the same size whatever the temperature.

How the teacher is run: once, before training, on the plain (un-augmented) training faces; its
probabilities at ``T`` travel as 8 more target columns (targets of width 16: labels ‖ teacher),
so the ordinary ``fit`` trains the student and no custom ``train_step`` is needed on any backend.
The student still sees augmented views; the teacher's answer is that of the plain face.

A teacher is a ``.keras`` model (run with Keras) or a bundle folder or shipped name (run with
LiteRT; int8 logits dequantised). A teacher whose input side differs from the student's sees the
student's crops resized with the device contract's interpolation (area down, linear up): the
face it would have cropped itself when the source images are no larger than the student's crops
(FER+'s 48 px faces); from larger images it sees a softer face than in its own training.

No TensorFlow at import: Keras runs on whichever backend is chosen, LiteRT is imported lazily.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
from keras import ops

from affectlite.edge_app.classifier import softmax
from affectlite.edge_app.labels import LABELS, NUM_CLASSES
from affectlite.errors import InputError
from affectlite.progress import progress

BATCH = 256


@keras.saving.register_keras_serializable(package="affectlite")
class DistillationLoss(keras.losses.Loss):
    """Hinton's loss over targets of width ``2 * num_classes``: labels ‖ teacher probabilities
    at ``temperature``; the student's predictions are logits.

    Args:
        temperature: the softening temperature ``T`` (the teacher columns are already at ``T``).
        alpha: weight of the soft (teacher) term; ``1 - alpha`` weighs the label term.
        label_smoothing: smoothing of the label term, as in an undistilled run.
        num_classes: width of each half of the targets.
    """

    def __init__(
        self,
        temperature: float = 4.0,
        alpha: float = 0.9,
        label_smoothing: float = 0.0,
        num_classes: int = NUM_CLASSES,
        name: str = "distillation",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        logits = ops.cast(y_pred, "float32")
        labels, teacher = y_true[:, : self.num_classes], y_true[:, self.num_classes :]
        hard = keras.losses.categorical_crossentropy(
            labels, logits, from_logits=True, label_smoothing=self.label_smoothing
        )
        log_student = ops.log_softmax(logits / self.temperature, axis=-1)
        log_teacher = ops.log(ops.maximum(teacher, 1e-12))
        kl = ops.sum(teacher * (log_teacher - log_student), axis=-1)
        return self.alpha * self.temperature**2 * kl + (1.0 - self.alpha) * hard

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "label_smoothing": self.label_smoothing,
            "num_classes": self.num_classes,
        }


@keras.saving.register_keras_serializable(package="affectlite")
def label_accuracy(y_true, y_pred, num_classes: int = NUM_CLASSES):
    """Categorical accuracy against the label columns of widened targets."""
    return keras.metrics.categorical_accuracy(y_true[:, :num_classes], y_pred)


def loss_and_metrics(config) -> tuple[keras.losses.Loss, list[keras.metrics.Metric]]:
    """The loss and the accuracy metric of a distilled run (``config.teacher`` set)."""
    loss = DistillationLoss(
        config.distill_temperature, config.distill_alpha, config.label_smoothing
    )
    return loss, [keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")]


@dataclass(frozen=True)
class Teacher:
    """A trained model that answers logits for ``(N, S, S, 3)`` uint8 RGB faces."""

    source: str
    kind: str
    input_size: int
    model_file: Path
    logits: Callable[[np.ndarray], np.ndarray]


def load_teacher(source: str | Path, num_threads: int | None = None) -> Teacher:
    """Opens a ``.keras`` model, a bundle folder or a shipped bundle's name as a teacher.

    Raises:
        InputError: one line, if the file is missing or unreadable, the input is not a square
            RGB image, or the outputs are not the kit's eight emotions in the kit's order.
    """
    text = str(source)
    if text.endswith((".keras", ".h5")):
        return _keras_teacher(Path(text))
    return _bundle_teacher(text, num_threads)


def _keras_teacher(path: Path) -> Teacher:
    import affectlite.train.model  # noqa: F401  registers the kit's layers before loading

    if not path.is_file():
        raise InputError(f"--teacher {path}: no such file.")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"--teacher {path}: not a loadable Keras model ({first}).") from None
    shape, width = tuple(model.input_shape), int(model.output_shape[-1])
    _check_io(path, shape[1:], width, LABELS if width == NUM_CLASSES else None)

    def logits(images: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(images.astype(np.float32), batch_size=BATCH, verbose=0))

    return Teacher(str(path), "keras", int(shape[1]), path, logits)


def _bundle_teacher(name: str, num_threads: int | None) -> Teacher:
    from affectlite.edge_app.bundle import load_bundle, resolve_bundle
    from affectlite.edge_app.classifier import EmotionClassifier

    bundle = load_bundle(resolve_bundle(name))
    classifier = EmotionClassifier.from_bundle(bundle, num_threads)
    size = bundle.input_size
    _check_io(bundle.path, (size, size, 3), len(bundle.labels), bundle.labels)

    def logits(images: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [classifier.logits(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
        )

    return Teacher(str(bundle.path), "bundle", size, bundle.classifier_path, logits)


def _check_io(source, input_shape: tuple, width: int, labels: tuple | None) -> None:
    if len(input_shape) != 3 or input_shape[0] != input_shape[1] or input_shape[2] != 3:
        raise InputError(
            f"--teacher {source}: takes input {input_shape}; a teacher must take square RGB "
            "faces (S, S, 3)."
        )
    if labels is None or tuple(labels) != LABELS:
        shown = ", ".join(labels) if labels else f"{width} outputs"
        raise InputError(
            f"--teacher {source}: its outputs ({shown}) are not the kit's {NUM_CLASSES} "
            f"emotions in order ({', '.join(LABELS)})."
        )


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """Faces resized to ``size``, as :func:`affectlite.edge_app.preprocess.crop_face` would."""
    if images.shape[1] == size:
        return images
    interpolation = cv2.INTER_AREA if size < images.shape[1] else cv2.INTER_LINEAR
    return np.stack(
        [cv2.resize(image, (size, size), interpolation=interpolation) for image in images]
    )


def teacher_probabilities(teacher: Teacher, images: np.ndarray, temperature: float) -> np.ndarray:
    """The teacher's probabilities at ``temperature`` for ``images``, in order."""
    chunks = [
        teacher.logits(resize_faces(images[start : start + BATCH], teacher.input_size))
        for start in range(0, len(images), BATCH)
    ]
    return softmax(np.concatenate(chunks), temperature)


def teacher_targets(config, faces) -> np.ndarray:
    """The teacher columns for the training faces (``config.teacher`` set): a ``FaceSource``
    in memory or packed on disk, read a chunk at a time and cached once."""
    teacher = load_teacher(config.teacher)
    side = faces.read(np.arange(1)).shape[1]
    if teacher.input_size != side:
        print(f"teacher: the {side} px training crops are resized to its {teacher.input_size} px")
    step = BATCH * 8
    chunks = [
        teacher_probabilities(
            teacher,
            faces.read(np.arange(start, min(start + step, len(faces)))),
            config.distill_temperature,
        )
        for start in progress(range(0, len(faces), step), desc="teacher", unit="chunk")
    ]
    probabilities = np.concatenate(chunks)
    agree = float(np.mean(probabilities.argmax(1) == faces.targets.argmax(1)))
    print(
        f"teacher {teacher.source} ({teacher.kind}, {teacher.input_size}px): cached for "
        f"{len(probabilities)} faces at T={config.distill_temperature}, alpha="
        f"{config.distill_alpha}; agrees with the training labels on {agree:.1%}"
    )
    return probabilities


def describe(teacher: Teacher) -> dict:
    """Provenance of a teacher for ``config.json``: where it is and the SHA-256 of its model."""
    digest = hashlib.sha256(teacher.model_file.read_bytes()).hexdigest()
    return {
        "source": teacher.source,
        "kind": teacher.kind,
        "model": str(teacher.model_file),
        "sha256": digest,
    }
