"""Distillation (``affectlite train --teacher``): Hinton's loss, cached teacher outputs, bad
teachers refused in one line, and the teacher kept by a resumed run. Tiny synthetic data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from affectlite.edge_app.classifier import softmax
from affectlite.edge_app.labels import LABELS
from affectlite.errors import InputError
from affectlite.train import distill, synthetic


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hinton(labels, teacher_logits, student_logits, temperature, alpha, smoothing=0.0):
    """The formula, written out in float64 NumPy."""
    soft_t = _softmax(teacher_logits / temperature)
    soft_s = _softmax(student_logits / temperature)
    kl = np.sum(soft_t * (np.log(soft_t) - np.log(soft_s)), axis=1)
    smoothed = labels * (1 - smoothing) + smoothing / labels.shape[1]
    ce = -np.sum(smoothed * np.log(_softmax(student_logits)), axis=1)
    return alpha * temperature**2 * kl + (1 - alpha) * ce


@pytest.mark.parametrize(
    ("temperature", "alpha", "smoothing"), [(4.0, 0.9, 0.0), (2.0, 0.5, 0.05), (1.0, 0.0, 0.1)]
)
def test_loss_equals_the_formula(temperature, alpha, smoothing):
    rng = np.random.default_rng(0)
    labels = np.eye(8)[rng.integers(0, 8, 16)]
    labels[:4] = rng.dirichlet(np.ones(8), 4)  # FER+ vote distributions are targets too
    teacher_logits, student_logits = rng.normal(0, 3, (2, 16, 8))
    targets = np.concatenate([labels, softmax(teacher_logits, temperature)], 1)
    loss = distill.DistillationLoss(temperature, alpha, smoothing)
    per_face = keras.ops.convert_to_numpy(loss.call(targets, student_logits))
    expected = _hinton(labels, teacher_logits, student_logits, temperature, alpha, smoothing)
    np.testing.assert_allclose(per_face, expected, rtol=1e-4, atol=1e-5)
    mean = float(keras.ops.convert_to_numpy(loss(targets, student_logits)))
    assert mean == pytest.approx(expected.mean(), rel=1e-4)


def test_loss_survives_a_saved_model(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
    loss, metrics = distill.loss_and_metrics(_Config(2.0, 0.7, 0.0))
    model.compile("sgd", loss=loss, metrics=metrics)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, distill.DistillationLoss)
    assert (loaded.loss.temperature, loaded.loss.alpha) == (2.0, 0.7)


class _Config:
    def __init__(self, temperature: float, alpha: float, smoothing: float) -> None:
        self.distill_temperature, self.distill_alpha = temperature, alpha
        self.label_smoothing = smoothing


def _peaky_teacher(path: Path, shape=(32, 32, 3), outputs: int = 8) -> Path:
    """A random Keras model with confident (large) logits, saved as .keras."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(8, 3, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(outputs, kernel_initializer=keras.initializers.RandomNormal(0, 4)),
        ]
    )
    model.save(path)
    return path


def _kl(teacher: np.ndarray, student_logits: np.ndarray, temperature: float) -> float:
    student = softmax(student_logits, temperature)
    return float(np.mean(np.sum(teacher * (np.log(teacher) - np.log(student)), axis=1)))


def test_with_alpha_one_the_student_moves_toward_the_teacher(tmp_path):
    from affectlite.train.compact import build_compact

    images, labels = synthetic.make_dataset(128, 32, seed=5)
    teacher = distill.load_teacher(_peaky_teacher(tmp_path / "teacher.keras"))
    soft = distill.teacher_probabilities(teacher, images, temperature=2.0)
    assert soft.max(axis=1).mean() > 0.3  # the teacher has opinions to copy
    assert not np.array_equal(soft.argmax(1), labels)  # and they are not the labels
    targets = np.concatenate([np.eye(8)[labels], soft], 1)

    keras.utils.set_random_seed(0)
    student = build_compact(32)
    loss, metrics = distill.loss_and_metrics(_Config(2.0, 1.0, 0.0))
    student.compile(keras.optimizers.Adam(3e-3), loss=loss, metrics=metrics)
    x = images.astype(np.float32)
    before = _kl(soft, student.predict(x, verbose=0), 2.0)
    student.fit(x, targets, batch_size=32, epochs=25, verbose=0)
    after_logits = student.predict(x, verbose=0)
    after = _kl(soft, after_logits, 2.0)
    assert after < 0.5 * before, (before, after)
    agreement = np.mean(after_logits.argmax(1) == soft.argmax(1))
    assert agreement > 0.6, agreement


def test_a_bundle_teacher_gives_its_dequantised_logits_softened(tiny_bundle):
    from affectlite.edge_app.classifier import EmotionClassifier

    images, _ = synthetic.make_dataset(20, 32, seed=1)
    teacher = distill.load_teacher(str(tiny_bundle.path))
    assert (teacher.kind, teacher.input_size) == ("bundle", 32)
    expected = softmax(EmotionClassifier.from_bundle(tiny_bundle).logits(images), 3.0)
    np.testing.assert_allclose(distill.teacher_probabilities(teacher, images, 3.0), expected)
    bigger = distill.teacher_probabilities(teacher, distill.resize_faces(images, 64), 3.0)
    np.testing.assert_allclose(bigger, expected, atol=0.05)  # resized back to the teacher's 32


def test_the_shipped_default_bundle_is_a_teacher_by_name():
    teacher = distill.load_teacher("default")
    assert teacher.kind == "bundle" and teacher.input_size == 48
    assert distill.describe(teacher)["sha256"]


def test_bad_teachers_are_refused_in_one_line(tiny_bundle, tmp_path):
    seven = _peaky_teacher(tmp_path / "seven.keras", outputs=7)
    grey = _peaky_teacher(tmp_path / "grey.keras", shape=(32, 32, 1))
    wide = _peaky_teacher(tmp_path / "wide.keras", shape=(32, 48, 3))
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip file at all")
    reordered = tmp_path / "reordered"
    shutil.copytree(tiny_bundle.path, reordered)
    manifest = json.loads((reordered / "bundle.json").read_text())
    manifest["labels"] = [*LABELS[1:], LABELS[0]]
    manifest["classifier"].pop("tie_break", None)
    (reordered / "bundle.json").write_text(json.dumps(manifest))
    cases = {
        seven: "not the kit's 8 emotions",
        grey: "square RGB",
        wide: "square RGB",
        garbage: "not a loadable Keras model",
        tmp_path / "absent.keras": "no such file",
        reordered: "not the kit's 8 emotions",
        tmp_path / "no-bundle": "no bundle manifest",
    }
    for source, message in cases.items():
        with pytest.raises(InputError, match=message) as caught:
            distill.load_teacher(source)
        assert "\n" not in str(caught.value), str(caught.value)


def test_packed_faces_get_the_same_teacher_columns_as_faces_in_memory(
    face_folders, tiny_bundle, tmp_path
):
    from affectlite.train.datasets import load_dataset
    from affectlite.train.pipeline import load_split
    from affectlite.train.readers import packed

    index = load_dataset(face_folders, "folder", "train", check_files=True)
    packed.pack([index], tmp_path / "pack", 32, source={"format": "folder"}, progress=False)
    on_disk = packed.open_packed(tmp_path / "pack", "train")
    in_memory = load_split(index, 32)
    assert on_disk.ids == in_memory.ids
    config = _Config(3.0, 0.5, 0.0)
    config.teacher = str(tiny_bundle.path)
    from_disk = distill.teacher_targets(config, on_disk)
    assert from_disk.shape == (len(in_memory.ids), 8)
    np.testing.assert_allclose(from_disk, distill.teacher_targets(config, in_memory), atol=1e-6)


def test_temperature_and_alpha_are_checked():
    from affectlite.train.config import TrainConfig

    for options in ({"distill_temperature": 0.0}, {"distill_alpha": 1.5}):
        with pytest.raises(InputError, match="--distill-"):
            TrainConfig(backbone="compact", weights="none", **options)


def _affectlite(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "affectlite", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def face_folders(tmp_path_factory, write_face_folders) -> Path:
    return write_face_folders(tmp_path_factory.mktemp("faces"), 48, 16)


TINY = ["--format", "folder", "--backbone", "compact", "--input-size", "32", "--weights", "none"]


def test_train_refuses_a_bad_teacher_before_reading_data(face_folders, tmp_path):
    seven = _peaky_teacher(tmp_path / "seven.keras", outputs=7)
    result = _affectlite(
        "train", "--data", str(face_folders), *TINY, "--teacher", str(seven),
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and "not the kit's 8 emotions" in result.stderr
    assert "crop train" not in result.stderr and not (tmp_path / "run").exists()


def test_a_resumed_run_keeps_its_teacher(face_folders, tiny_bundle, tmp_path):
    run = tmp_path / "run"
    options = ["--teacher", str(tiny_bundle.path), "--distill-temperature", "3", "--epochs", "1"]
    first = _affectlite(
        "train", "--data", str(face_folders), *TINY, "--batch-size", "16", *options,
        "--out", str(run),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert "cached for 48 faces at T=3.0" in first.stdout
    saved = json.loads((run / "config.json").read_text())
    assert saved["teacher"] == str(tiny_bundle.path) and saved["distill_temperature"] == 3.0
    assert saved["data"]["teacher"]["kind"] == "bundle" and saved["data"]["teacher"]["sha256"]
    finished = _affectlite("train", "--resume", str(run))
    assert finished.returncode == 2 and "finished" in finished.stderr  # nothing to resume
    # As if killed before its first resume state and its metrics: --resume trains again from
    # config.json alone, teacher included.
    (run / "metrics.json").unlink()
    assert not list(run.glob("phase-*.weights.h5")) and not (run / "backup").exists()
    resumed = _affectlite("train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "cached for 48 faces at T=3.0, alpha=0.9" in resumed.stdout
    assert json.loads((run / "config.json").read_text()) == saved


JAX_NO_TENSORFLOW = """
import importlib.abc, os, sys


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("TensorFlow is blocked in this test")


sys.meta_path.insert(0, BlockTensorFlow())
os.environ["KERAS_BACKEND"] = "jax"
import keras
import numpy as np
from affectlite.train import distill, synthetic
from affectlite.train.compact import build_compact

images, labels = synthetic.make_dataset(32, 32, seed=1)
soft = distill.teacher_probabilities(distill.load_teacher(sys.argv[1]), images, 2.0)
targets = np.concatenate([np.eye(8)[labels], soft], 1).astype("float32")
model = build_compact(32)
config = type("Config", (), {"distill_temperature": 2.0, "distill_alpha": 0.5,
                             "label_smoothing": 0.0})
loss, metrics = distill.loss_and_metrics(config)
model.compile("adam", loss=loss, metrics=metrics)
history = model.fit(images.astype("float32"), targets, batch_size=16, epochs=1, verbose=0)
print(keras.backend.backend(), sorted(history.history), "tensorflow" in sys.modules)
"""


def test_distillation_runs_on_jax_without_tensorflow(tiny_bundle):
    """A bundle teacher on LiteRT and the loss on Keras/JAX, TensorFlow unimportable."""
    result = subprocess.run(
        [sys.executable, "-c", JAX_NO_TENSORFLOW, str(tiny_bundle.path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "jax ['accuracy', 'loss'] False"
