"""Training on Keras' JAX backend: no TensorFlow in the process, a compiled step, the same run
folder as on TensorFlow, a model that converts on TensorFlow, and data parallelism over two
devices. JAX trainings run in subprocesses (a process chooses its Keras backend once)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("jax")

NO_TENSORFLOW = r"""
import importlib.abc, json, os, sys


class NoTensorFlow(importlib.abc.MetaPathFinder):
    # As on the GPU machine of issue 20: TensorFlow is not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, NoTensorFlow())
"""

TRAIN_COUNTING_TRACES = NO_TENSORFLOW + r"""
os.environ["KERAS_BACKEND"] = "jax"
import jax

from affectlite.cli import main
from affectlite.train.augment import TrainingModel

calls, jit = [], []
call, fit = TrainingModel.call, TrainingModel.fit


def counted_call(self, images, training=False):
    if training:  # Python runs here only while JAX traces the step, if it is compiled
        calls.append([list(images.shape), isinstance(images, jax.core.Tracer)])
    return call(self, images, training)


def recorded_fit(self, *args, **kwargs):
    jit.append(self.jit_compile)
    return fit(self, *args, **kwargs)


TrainingModel.call, TrainingModel.fit = counted_call, recorded_fit
code = main(sys.argv[1:])
tensorflow = sorted(name for name in sys.modules if name.split(".")[0] == "tensorflow")
print("RESULT " + json.dumps({"code": code, "tensorflow": tensorflow, "calls": calls, "jit": jit}))
"""

EPOCHS, BATCH, TRAIN_FACES = 3, 4, 480


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **extra}


def _run(args: list[str], timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
    )


def _result(process: subprocess.CompletedProcess) -> dict:
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, (process.stdout[-3000:], process.stderr[-3000:])
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def faces(tmp_path_factory, write_face_folders) -> Path:
    return write_face_folders(tmp_path_factory.mktemp("faces"), TRAIN_FACES, 160)


@pytest.fixture(scope="module")
def jax_run(faces, tmp_path_factory) -> tuple[Path, dict, str]:
    """``affectlite train --backend jax`` (augmentation on) where TensorFlow cannot be imported."""
    run = tmp_path_factory.mktemp("jax") / "run"
    process = _run(
        [
            "-c", TRAIN_COUNTING_TRACES, "train", "--backend", "jax", "--data", str(faces),
            "--format", "folder", "--backbone", "compact", "--input-size", "32", "--weights",
            "none", "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--learning-rate",
            "0.002", "--label-smoothing", "0", "--balance", "none", "--out", str(run),
        ]  # fmt: skip
    )
    result = _result(process)
    assert result["code"] == 0, (process.stdout[-3000:], process.stderr[-3000:])
    return run, result, process.stdout


def test_jax_training_never_imports_tensorflow_and_writes_the_whole_run(jax_run):
    run, result, stdout = jax_run
    assert result["tensorflow"] == []
    for name in ("best.keras", "metrics.json", "history.csv", "curves.png", "config.json",
                 "confusion.png", "augment.png", "best.json"):  # fmt: skip
        assert (run / name).stat().st_size > 0, name
    assert not (run / "tensorboard").exists()
    # Success: no resume state left, and best.keras is the classifier alone, no optimizer.
    assert not (run / "backup").exists() and not list(run.glob("phase-*"))
    with zipfile.ZipFile(run / "best.keras") as archive, archive.open("model.weights.h5") as f:
        with h5py.File(io.BytesIO(f.read())) as weights:
            assert "optimizer" not in weights and "layers" in weights
    assert "history.csv, written every epoch, and curves.png stand in" in stdout
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert metrics["schema_version"] == 2 and metrics["backend"] == "jax"
    assert metrics["precision_policy"] == "float32" and metrics["device"]["platform"] == "cpu"
    assert config["backend"] == "jax" and config["runtime"]["backend"] == "jax"
    assert config["runtime"]["precision_policy"] == "float32"
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == EPOCHS and all(float(r["train_images_per_second"]) > 0 for r in rows)
    assert metrics["train_images_per_second_median"] > 0
    assert stdout.count(" training images/s") == EPOCHS


def test_jax_step_is_compiled_and_traced_once_per_input_shape(jax_run):
    _, result, _ = jax_run
    assert result["jit"] == [True]  # model.jit_compile, read when fit starts
    # EPOCHS * TRAIN_FACES // BATCH = 360 train steps of one input shape ran, but the step's
    # Python body ran once, on JAX tracers: it was traced once and compiled.
    assert result["calls"] == [[[BATCH, 32, 32, 3], True]]


def test_resume_refuses_another_backend_by_name(jax_run):
    run, _, _ = jax_run
    process = _run(["-m", "affectlite", "train", "--resume", str(run), "--backend", "tensorflow"])
    assert process.returncode == 2
    error = process.stderr.strip().splitlines()
    assert len(error) == 1 and "trains on the jax backend" in error[0], process.stderr
    assert "cannot continue on tensorflow" in error[0]


def test_a_jax_trained_model_converts_to_int8_on_tensorflow(jax_run, faces, tmp_path):
    """convert runs on TensorFlow even when KERAS_BACKEND says jax; the int8 bundle agrees
    with the float model and reads new faces well above chance (1/8)."""
    import cv2

    from affectlite.edge_app.labels import LABELS
    from affectlite.train import synthetic

    run, _, _ = jax_run
    bundle = tmp_path / "bundle"
    process = _run(
        [
            "-m", "affectlite", "convert", "--model", str(run / "best.keras"), "--mode",
            "int8", "--data", str(faces), "--format", "folder", "--split", "val", "--out",
            str(bundle),
        ],  # fmt: skip
        KERAS_BACKEND="jax",
    )
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads((tmp_path / "bundle-report" / "conversion.json").read_text())
    assert report["gate"]["passed"], report["gate"]
    assert report["verification"]["agreement"] >= 0.98, report["verification"]

    unseen = tmp_path / "unseen"
    images, labels = synthetic.make_dataset(160, 32, seed=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = unseen / "val" / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    scored = tmp_path / "unseen.json"
    process = _run(
        [
            "-m", "affectlite", "evaluate", "--model", str(bundle), "--data", str(unseen),
            "--format", "folder", "--split", "val", "--json", str(scored),
        ]  # fmt: skip
    )
    assert process.returncode == 0, process.stderr[-3000:]
    balanced = json.loads(scored.read_text())["balanced_accuracy"]
    assert balanced > 2 / 8, balanced


DATA_PARALLEL = NO_TENSORFLOW + r"""
os.environ["KERAS_BACKEND"] = "jax"
import jax, keras
import numpy as np

from affectlite.train import synthetic
from affectlite.train.config import TrainConfig
from affectlite.train.pipeline import Split, one_hot
from affectlite.train.trainer import train

seen = {}


class Probe(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        kernel = self.model.trainable_variables[0].value
        seen["variable_devices"] = len(kernel.sharding.device_set)
        layout = keras.distribution.distribution().get_data_layout((16, 32, 32, 3))
        seen["data_axes"] = list(layout.axes)
        seen["mesh"] = dict(zip(layout.device_mesh.axis_names, layout.device_mesh.shape))


def split(n, seed):
    images, labels = synthetic.make_dataset(n, 32, seed=seed)
    return Split(images, one_hot(labels), [str(i) for i in range(n)])


config = TrainConfig(backbone="compact", input_size=32, weights="none", epochs=1, batch_size=16,
                     distribute="data-parallel", backend="jax")
report = train(config, split(64, 1), split(24, 2), sys.argv[1], verbose=0, callbacks=[Probe()])
seen["devices"] = len(jax.devices())
seen["n"] = report["n"]
seen["tensorflow"] = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
print("RESULT " + json.dumps(seen))
"""


def test_data_parallel_over_two_host_devices(tmp_path):
    run = tmp_path / "run"
    process = _run(
        ["-c", DATA_PARALLEL, str(run)],
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        KERAS_BACKEND="jax",
    )
    seen = _result(process)
    assert seen["devices"] == 2 and seen["tensorflow"] == []
    assert seen["variable_devices"] == 2  # weights replicated on both devices
    assert seen["data_axes"][0] == "batch" and seen["mesh"] == {"batch": 2}  # batches split
    assert seen["n"] == 24  # the padded last validation batch is trimmed again
    runtime = json.loads((run / "config.json").read_text())["runtime"]
    assert runtime["distribution"] == {"mode": "data-parallel", "replicas": 2}
    assert runtime["device"]["count"] == 2


RESUME = NO_TENSORFLOW + r"""
os.environ["KERAS_BACKEND"] = "jax"
import csv, keras
from pathlib import Path

from affectlite.train import synthetic
from affectlite.train.config import TrainConfig
from affectlite.train.pipeline import Split, one_hot
from affectlite.train.trainer import train


class StopAfterThirdEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def split(n, seed):
    images, labels = synthetic.make_dataset(n, 32, seed=seed)
    return Split(images, one_hot(labels), [str(i) for i in range(n)])


run = Path(sys.argv[1])
data = split(64, 1), split(16, 2)
config = TrainConfig(backbone="compact", input_size=32, weights="none", epochs=4, batch_size=16,
                     augment=False, checkpoint_every="2", backend="jax")
try:
    train(config, *data, run, verbose=0, callbacks=[StopAfterThirdEpoch()])
except KeyboardInterrupt:
    pass
saved = json.loads((run / "backup" / "finetune" / "training_metadata.json").read_text())["epoch"]
epochs = Epochs()
train(config, *data, run, resume=True, verbose=0, callbacks=[epochs])
with (run / "history.csv").open() as handle:
    history = [int(row["epoch"]) for row in csv.DictReader(handle)]
print("RESULT " + json.dumps({"saved": saved, "resumed": epochs.seen, "history": history,
                              "backup": (run / "backup").exists()}))
"""


def test_jax_run_resumes_from_its_last_saved_state(tmp_path):
    """BackupAndRestore on JAX: saved every 2 epochs, interrupted after the third, the resumed
    run trains the third and fourth again; history.csv keeps one row per epoch."""
    process = _run(["-c", RESUME, str(tmp_path / "run")], KERAS_BACKEND="jax")
    result = _result(process)
    assert result == {"saved": 2, "resumed": [2, 3], "history": [0, 1, 2, 3], "backup": False}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_jax_training_within_seconds_and_keeps_the_resume_state(
    faces, tmp_path, sig
):
    """SIGTERM (a scheduler) or SIGINT (Ctrl-C) after the first epoch: exit 130 with the resume
    command, the resume state kept. A signal landing in NumPy's conversion of a JAX array (after
    every batch) used to be swallowed there, and training went on to its last epoch."""
    run, log = tmp_path / "run", tmp_path / "log.txt"
    command = [sys.executable, "-m", "affectlite", "train", "--backend", "jax", "--data"]
    command += [str(faces), "--format", "folder", "--backbone", "compact", "--input-size", "32"]
    command += ["--weights", "none", "--epochs", "1000", "--batch-size", "4", "--balance", "none"]
    command += ["--checkpoint-every", "1", "--out", str(run)]
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, env=_env())
        try:
            history, started = run / "history.csv", time.monotonic()
            while not (history.is_file() and len(history.read_text().splitlines()) >= 2):
                assert process.poll() is None and time.monotonic() - started < 300, log.read_text()
                time.sleep(0.2)
            process.send_signal(sig)
            process.wait(timeout=60)
        finally:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode == 130, text[-3000:]
    assert f"affectlite train --resume {run}" in text
    assert (run / "backup").is_dir() and not (run / "metrics.json").exists()


# In-process checks (the test process runs Keras on TensorFlow) ------------------------------


def test_in_step_resize_matches_what_crop_face_gives_the_device():
    """Faces stored at 48 px and trained at 96 px: the step's resize is crop_face's."""
    from affectlite.edge_app.preprocess import crop_face
    from affectlite.train import synthetic
    from affectlite.train.augment import resize

    faces, _ = synthetic.make_dataset(8, 48, seed=0)
    device = np.stack([crop_face(face, None, 96) for face in faces]).astype(np.float32)
    step = np.asarray(resize(faces.astype(np.float32), 96))
    assert np.abs(step - device).max() <= 1.0  # cv2's fixed-point rounding only


def test_augmentation_is_random_in_training_identity_at_inference_and_not_saved(tmp_path):
    import keras

    from affectlite.train.augment import Augment, TrainingModel
    from affectlite.train.model import build_model

    faces = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.float32)
    layer = Augment(seed=1)
    once, twice = (np.asarray(layer(faces, training=True)) for _ in range(2))
    assert once.shape == faces.shape and 0 <= once.min() and once.max() <= 255
    assert not np.allclose(once, faces) and not np.allclose(once, twice)
    np.testing.assert_array_equal(np.asarray(layer(faces, training=False)), faces)

    classifier = build_model("compact", 32, "none")
    model = TrainingModel(classifier, augment=True)
    np.testing.assert_allclose(
        model.predict(faces.astype(np.uint8), verbose=0), classifier.predict(faces, verbose=0),
        atol=1e-5,
    )  # fmt: skip
    classifier.save(tmp_path / "best.keras")
    saved = keras.models.load_model(tmp_path / "best.keras")
    assert not any(isinstance(layer, Augment) for layer in saved._flatten_layers())


def test_precision_policies():
    from affectlite.train.devices import Device, policy_name

    h200, t4, cpu = Device("gpu", "H200", 1, True), Device("gpu", "T4", 1, False), Device(
        "cpu", "cpu", 1, False
    )
    assert policy_name("auto", h200) == "mixed_bfloat16"
    assert policy_name("auto", t4) == "mixed_float16"
    assert policy_name("auto", cpu) == "float32"
    assert policy_name("bf16", cpu) == "mixed_bfloat16"
    assert policy_name("on", h200) == "mixed_float16" and policy_name("off", h200) == "float32"


def test_resume_state_is_saved_every_n_epochs_not_every_epoch(tmp_path):
    import keras

    from affectlite.train.callbacks import PeriodicBackup

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile("adam", "mse")
    backup = PeriodicBackup(str(tmp_path / "backup"), epochs=3)
    backup.set_model(model)
    metadata = tmp_path / "backup" / "training_metadata.json"
    saved = []
    for epoch in range(7):
        backup.on_epoch_end(epoch)
        saved.append(json.loads(metadata.read_text())["epoch"] if metadata.exists() else None)
    assert saved == [None, None, 3, 3, 3, 6, 6]
    timed = PeriodicBackup(str(tmp_path / "timed"), seconds=3600)
    timed.set_model(model)
    timed.on_epoch_end(0)
    assert not (tmp_path / "timed").exists()  # an hour has not passed


MIXED = NO_TENSORFLOW + r"""
os.environ["KERAS_BACKEND"] = "jax"
import keras
import numpy as np
from pathlib import Path
from affectlite.train.callbacks import save_classifier
from affectlite.train.model import build_model

out = Path(sys.argv[1])
faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3)).astype(np.float32)
keras.mixed_precision.set_global_policy("mixed_bfloat16")
mixed = build_model("compact", 48, "none")
np.save(out / "expected-1.npy", mixed.predict(faces, verbose=0))
written = save_classifier(mixed, out / "best-1.keras")
# A later best epoch: the same float32 copy gets the new weights, not a rebuild.
mixed.set_weights([weight * 0.5 for weight in mixed.get_weights()])
np.save(out / "expected-2.npy", mixed.predict(faces, verbose=0))
reused = save_classifier(mixed, out / "best-2.keras", written) is written
print("RESULT " + json.dumps({"reused": reused}))
"""


def test_a_mixed_precision_classifier_is_saved_in_float32(tmp_path):
    """bf16 is a training detail: best.keras is float32, loads and converts on TensorFlow.
    The bf16 model runs on JAX: TensorFlow's oneDNN has no bf16 convolution on an AVX2-only
    CPU."""
    from affectlite.convert.converter import load_keras_model

    result = _result(_run(["-c", MIXED, str(tmp_path)], KERAS_BACKEND="jax"))
    assert result == {"reused": True}
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3)).astype(np.float32)
    for save in (1, 2):
        saved = load_keras_model(tmp_path / f"best-{save}.keras")
        assert {layer.dtype_policy.name for layer in saved._flatten_layers()} == {"float32"}
        expected = np.load(tmp_path / f"expected-{save}.npy")
        np.testing.assert_allclose(saved.predict(faces, verbose=0), expected, atol=0.05)
