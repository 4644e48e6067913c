"""Training stage: run-folder safety, kill -9 resume, and a real FER+ subset above chance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from affectlite.edge_app.labels import LABELS


def _affectlite(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "affectlite", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kwargs,
    )


@pytest.fixture(scope="module")
def face_folders(tmp_path_factory, write_face_folders) -> Path:
    """A class-per-folder dataset of synthetic faces written as PNG files."""
    return write_face_folders(tmp_path_factory.mktemp("faces"), 96, 32)


def _saved_epoch(run: Path) -> int | None:
    metadata = run / "backup" / "finetune" / "training_metadata.json"
    try:
        return json.loads(metadata.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_kill_9_then_resume_continues_from_the_saved_epoch(face_folders, tmp_path):
    run = tmp_path / "run"
    common = ["--input-size", "32", "--weights", "none", "--batch-size", "16", "--no-augment",
              "--checkpoint-every", "1"]  # fmt: skip
    process = _affectlite(
        "train",
        "--data",
        str(face_folders),
        "--format",
        "folder",
        "--epochs",
        "8",
        "--out",
        str(run),
        *common,
    )
    deadline = time.time() + 400
    while _saved_epoch(run) is None and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    output = process.communicate()[0]
    saved = _saved_epoch(run)
    assert saved is not None and saved < 8, output[-3000:]

    resumed = _affectlite("train", "--resume", str(run))
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output[-3000:]
    epochs_run = [line for line in output.splitlines() if line.startswith("Epoch ")]
    assert epochs_run[0].startswith(f"Epoch {saved + 1}/8"), epochs_run
    history = (run / "history.csv").read_text().splitlines()[1:]
    assert sorted(int(row.split(",")[0]) for row in history) == list(range(8))  # each once
    assert json.loads((run / "metrics.json").read_text())["n"] == 32
    assert not (run / "backup").exists() and not list(run.glob("phase-*"))  # success: removed


def test_existing_run_folder_is_never_overwritten(face_folders, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_text("a previous run")
    process = _affectlite(
        "train",
        "--data",
        str(face_folders),
        "--format",
        "folder",
        "--input-size",
        "32",
        "--weights",
        "none",
        "--out",
        str(run),
    )
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 2
    assert "already exists and is not empty" in output and "--resume" in output
    assert (run / "best.keras").read_text() == "a previous run"


def test_out_is_checked_before_the_data_is_loaded(tmp_path):
    """A taken --out is refused before a (here unreadable) dataset is even looked at."""
    run, data = tmp_path / "run", tmp_path / "not-a-dataset"
    run.mkdir()
    data.mkdir()
    (run / "best.keras").write_text("a previous run")
    process = _affectlite("train", "--data", str(data), "--format", "folder", "--out", str(run))
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2 and "already exists and is not empty" in output, output


def test_a_failed_run_without_checkpoint_does_not_block_its_out(face_folders, tmp_path):
    """A run that failed before its first checkpoint left only config.json (and a few outputs):
    the same command starts again in that --out; a folder with anything else stays refused."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "augment.png").write_bytes(b"")
    command = ["train", "--data", str(face_folders), "--format", "folder", "--backbone",
               "compact", "--input-size", "32", "--weights", "none", "--epochs", "1",
               "--batch-size", "16", "--out", str(run)]  # fmt: skip
    process = _affectlite(*command)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output[-3000:]
    assert json.loads((run / "config.json").read_text())["backbone"] == "compact"
    assert (run / "best.keras").is_file() and not list(run.glob("phase-*"))

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "notes.txt").write_text("mine")
    process = _affectlite(*command[:-1], str(other))
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2 and "already exists" in output, output
    assert (other / "notes.txt").read_text() == "mine"


def test_unwritable_or_missing_resume_folder_fails_before_training(tmp_path):
    from affectlite.train.run_folder import RunFolderError, prepare_run_dir

    with pytest.raises(RunFolderError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "absent", resume=True, min_free_bytes=0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match="Cannot write"):
        prepare_run_dir(blocker / "run", resume=False, min_free_bytes=0)
    with pytest.raises(RunFolderError, match="MiB free"):
        prepare_run_dir(tmp_path / "big", resume=False, min_free_bytes=1 << 60)


def test_resume_of_a_finished_run_is_refused_and_points_to_init(tmp_path):
    from affectlite.train.run_folder import RunFolderError, check_run_dir

    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.json", "best.keras"):
        (run / name).write_text("{}")
    with pytest.raises(RunFolderError, match=r"finished .*nothing to resume.*--init .*best\.keras"):
        check_run_dir(run, resume=True)
    (run / "backup").mkdir()  # interrupted after metrics of an earlier session: resumable
    check_run_dir(run, resume=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_becomes_keyboard_interrupt_now_and_at_the_next_batch(sig):
    from affectlite.train.callbacks import StopOnSignal

    stop, before = StopOnSignal(), [signal.getsignal(number) for number in StopOnSignal.SIGNALS]
    with pytest.raises(KeyboardInterrupt), stop.installed():
        os.kill(os.getpid(), sig)
        time.sleep(5)
    stop.on_epoch_begin(0)
    with pytest.raises(KeyboardInterrupt, match=f"signal {int(sig)}"):
        stop.on_train_batch_end(0)  # raised again where nothing can swallow it
    assert [signal.getsignal(number) for number in StopOnSignal.SIGNALS] == before  # restored


def test_imagenet_weights_offline_say_where_to_put_the_file(monkeypatch, tmp_path):
    from affectlite.train.model import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    try:
        build_model("resnet50", 32, "imagenet")
    except RuntimeError as error:
        assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in str(error)
        assert "--weights none" in str(error)
    else:
        pytest.skip("ImageNet weights were downloadable here; the offline message is not reachable")


def test_model_outputs_logits_for_raw_pixels():
    from affectlite.train.model import build_model

    model = build_model("resnet50", 32, "none")
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 8)
    assert model.get_layer("preprocess") is not None
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_model("vgg", 32, "none")


THRESHOLD_OVER_MAJORITY = 0.10
MIN_BALANCED = 0.25


@pytest.mark.slow
def test_ferplus_subset_trains_clearly_above_chance(ferplus_root, tmp_path):
    """A few minutes of CPU training of the compact CNN on real FER+ faces learns with a wide
    margin over chance on held-out validation faces, whatever the CPU's kernels."""
    run = tmp_path / "ferplus"
    process = _affectlite(
        "train",
        "--data",
        str(ferplus_root),
        "--format",
        "ferplus",
        "--limit",
        "4000",
        "--val-limit",
        "800",
        "--backbone",
        "compact",
        "--input-size",
        "48",
        "--weights",
        "none",
        "--epochs",
        "4",
        # Small batches: 1 000 steps, so BatchNorm's moving statistics (momentum 0.99) have
        # caught up with the weights when the model is scored in inference mode.
        "--batch-size",
        "16",
        "--learning-rate",
        "0.002",
        "--weight-decay",
        "0.05",
        "--balance",
        "none",
        "--no-augment",
        "--out",
        str(run),
    )
    output = process.communicate(timeout=1200)[0]
    assert process.returncode == 0, output[-3000:]
    report = json.loads((run / "metrics.json").read_text())
    counts = np.array([report["per_class"][label]["support"] for label in LABELS])
    majority = counts.max() / counts.sum()
    assert report["n"] >= 700
    print(json.dumps({k: report[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}))
    # Chance is 1/8 balanced; always answering the majority class scores `majority`.
    assert report["accuracy"] > majority + THRESHOLD_OVER_MAJORITY, (report["accuracy"], majority)
    assert report["balanced_accuracy"] > MIN_BALANCED, report["balanced_accuracy"]


def test_compact_model_sees_a_colour_crop_and_its_grey_version_alike():
    """RGB→grey happens inside the model, so a camera's colour crop and the same crop in grey
    (R = G = B = luminance, as FER+ faces are) give the same logits."""
    import cv2
    import keras

    from affectlite.train.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model("compact", 48, "none")
    colour = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3)).astype(np.uint8)
    grey = np.stack(
        [cv2.cvtColor(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for c in colour]
    )
    swapped = colour[..., ::-1]  # the same pixels with red and blue swapped: a different grey

    def logits(images):
        return model.predict(images.astype(np.float32), verbose=0)

    grey_change = np.abs(logits(grey) - logits(colour)).max()
    swap_change = np.abs(logits(swapped) - logits(colour)).max()
    # Only uint8 rounding of the luminance separates the grey crop from the colour one.
    assert grey_change < swap_change / 10, (grey_change, swap_change)


def test_in_model_preprocessing_survives_int8(tmp_path):
    """The ResNet50 normalisation layer alone, int8-converted, stays within a few steps."""
    import keras

    from affectlite.convert.converter import convert_model
    from affectlite.convert.quantization import QuantizationConfig
    from affectlite.edge_app.runtime import load_interpreter
    from affectlite.train.model import CaffePreprocess

    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, CaffePreprocess()(inputs))
    images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3)).astype(np.uint8)
    path = convert_model(model, QuantizationConfig.for_int8(images), tmp_path)
    interpreter, _ = load_interpreter(path, num_threads=1)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = source["quantization"]
    out_scale, out_zero = target["quantization"]
    image = images[:1].astype(np.float32)
    interpreter.set_tensor(source["index"], np.round(image / in_scale + in_zero).astype(np.int8))
    interpreter.invoke()
    got = (interpreter.get_tensor(target["index"]).astype(np.float32) - out_zero) * out_scale
    expected = image[..., ::-1] - np.array(CaffePreprocess.MEAN_BGR, np.float32)
    assert np.abs(got - expected).max() <= 3 * out_scale


@pytest.mark.slow
def test_train_from_a_packed_folder_then_evaluate(face_folders, tmp_path):
    """Faces packed at 32 px stream from disk into a 48 px model (resized in the train step)."""
    packed, run, report = tmp_path / "packed", tmp_path / "run", tmp_path / "eval.json"
    steps = [
        (
            "data",
            "pack",
            str(face_folders),
            "--format",
            "folder",
            "--out",
            str(packed),
            "--input-size",
            "32",
        ),
        (
            "train",
            "--data",
            str(packed),
            "--format",
            "packed",
            "--backbone",
            "compact",
            "--input-size",
            "48",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--limit",
            "80",
            "--val-limit",
            "20",
            "--out",
            str(run),
        ),
        (
            "evaluate",
            "--model",
            str(run / "best.keras"),
            "--data",
            str(face_folders),
            "--format",
            "folder",
            "--json",
            str(report),
        ),
    ]
    outputs = {}
    for step in steps:
        process = _affectlite(*step)
        outputs[step[0]] = output = process.communicate(timeout=600)[0]
        assert process.returncode == 0, (step[0], output[-3000:])
    assert np.load(packed / "train-images.npy", mmap_mode="r").shape[:3] == (96, 32, 32)
    assert "train 80 images, validation 20 images" in outputs["train"]  # --limit reads a pack too
    assert json.loads((run / "config.json").read_text())["data"]["format"] == "packed"
    from affectlite.convert.converter import load_keras_model

    assert load_keras_model(run / "best.keras").input_shape == (None, 48, 48, 3)
    scored = json.loads(report.read_text())
    assert scored["n"] == 32 and scored["model_kind"] == "keras"
    assert set(scored) >= {"accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion"}
    assert report.with_suffix(".png").is_file()


def test_evaluate_a_bundle_on_a_dataset_without_contempt(tiny_bundle, tmp_path):
    from affectlite.edge_app.labels import LABELS_7
    from affectlite.train.evaluate import evaluate, load_predictor

    predictor = load_predictor(tiny_bundle.path, num_threads=1)
    assert predictor.kind == "bundle" and predictor.input_size == 32
    labels = np.repeat(np.arange(7), 4)
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 32, 32, 3), np.uint8)
    report = evaluate(predictor, images, labels)
    assert report["classes_evaluated"] == list(LABELS_7)
    assert "no contempt" in report["note"]


def test_measure_pipeline_reports_images_per_second(face_folders):
    process = _affectlite(
        "train", "--data", str(face_folders), "--format", "folder", "--input-size", "32",
        "--batch-size", "16", "--measure-pipeline", "4",
    )  # fmt: skip
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output[-2000:]
    rate = float(output.split("input pipeline: ")[1].split(" images/s")[0])
    assert rate > 0


# Class balancing ----------------------------------------------------------------------------

# FER2013Train majority labels (`affectlite data inspect … --format ferplus`): 75x imbalance.
FERPLUS_TRAIN_COUNTS = [8_733, 7_284, 3_022, 3_136, 536, 116, 2_098, 120]


def _imbalanced_split(counts: list[int]):
    from affectlite.train.pipeline import Split

    labels = np.repeat(np.arange(len(counts)), counts)
    targets = np.eye(len(LABELS), dtype=np.float32)[labels]
    images = np.zeros((len(labels), 8, 8, 3), np.uint8)
    return Split(images, targets, [str(i) for i in range(len(labels))])


def test_loss_weights_equalise_classes_and_sqrt_is_the_square_root():
    from affectlite.train.pipeline import loss_weights

    counts = np.array(FERPLUS_TRAIN_COUNTS, np.float32)
    full, root = loss_weights(counts[None], "loss"), loss_weights(counts[None], "sqrt")
    assert np.ptp(full * counts) < 1e-3 * (full * counts).max()  # every class weighs the same
    assert full.mean() == pytest.approx(1) and root.mean() == pytest.approx(1)
    assert full.max() / full.min() == pytest.approx(8_733 / 116, rel=1e-4)
    assert root.max() / root.min() == pytest.approx((8_733 / 116) ** 0.5, rel=1e-4)
    assert np.array_equal(loss_weights(counts[None], "none"), np.ones(len(LABELS)))
    with_absent = loss_weights(np.array([[5, 0, 5, 0, 5, 0, 5, 0]], np.float32), "loss")
    assert with_absent.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]


def _epoch(batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, targets, weights = zip(*(batches[i] for i in range(len(batches))))
    return np.concatenate(images), np.concatenate(targets), np.concatenate(weights)


@pytest.mark.parametrize("balance", ["loss", "sqrt", "none"])
def test_train_batches_carry_the_class_weight_of_each_example(balance):
    from affectlite.train.pipeline import FaceBatches, loss_weights

    split = _imbalanced_split([40, 20, 10, 10, 5, 5, 5, 1])
    split.images[:] = np.arange(len(split))[:, None, None, None] % 256  # face i is all i
    expected = loss_weights(split.targets, balance)
    batches = FaceBatches(split, 16, balance=balance)
    images, targets, weights = _epoch(batches)
    assert len(batches) == 6 and images.dtype == np.uint8 and len(weights) == 96
    np.testing.assert_allclose(weights, expected[targets.argmax(1)], 1e-6)
    faces = images[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(targets, split.targets[faces])  # each face with its target
    assert sorted(faces) == list(range(96))  # every face once per epoch
    batches.on_epoch_end()
    assert not np.array_equal(_epoch(batches)[0][:, 0, 0, 0], faces)  # reshuffled


def test_sampling_draws_classes_evenly():
    from affectlite.train.pipeline import FaceBatches

    split = _imbalanced_split([400, 200, 100, 100, 50, 50, 50, 50])
    labels = _epoch(FaceBatches(split, 50, balance="sampling"))[1].argmax(1)
    shares = np.bincount(labels, minlength=len(LABELS)) / len(labels)
    assert len(labels) == 1000 and np.all(np.abs(shares - 1 / 8) < 0.05), shares


def test_unknown_balance_mode_is_refused(face_folders):
    from affectlite.train.pipeline import FaceBatches

    with pytest.raises(ValueError, match="balance must be one of loss, sqrt, sampling, none"):
        FaceBatches(_imbalanced_split([2] * 8), 4, balance="inverse")
    process = _affectlite(
        "train", "--data", str(face_folders), "--format", "folder", "--balance", "inverse"
    )  # fmt: skip
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2 and "invalid choice: 'inverse'" in output, output[-1000:]


def test_init_copies_a_trained_model_and_refuses_another_architecture(tmp_path):
    import keras

    from affectlite.errors import InputError
    from affectlite.train.compact import build_compact
    from affectlite.train.trainer import start_from

    keras.utils.set_random_seed(1)
    trained = build_compact(32)
    trained.save(tmp_path / "trained.keras")
    keras.utils.set_random_seed(2)
    model = build_compact(32)
    start_from(model, tmp_path / "trained.keras")
    for mine, theirs in zip(model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    for other in (build_compact(48), build_compact(32, widths=(8, 16, 32, 64))):
        with pytest.raises(InputError, match="does not match"):
            start_from(other, tmp_path / "trained.keras")


def test_train_init_records_where_the_run_started(face_folders, tmp_path):
    """`train --init` continues a finished run's model; config.json names it by SHA-256 and
    carries the command that trained it."""
    import hashlib

    common = [
        "--data",
        str(face_folders),
        "--format",
        "folder",
        "--backbone",
        "compact",
        "--input-size",
        "32",
        "--weights",
        "none",
        "--batch-size",
        "16",
        "--epochs",
        "1",
    ]
    first = _affectlite("train", *common, "--out", str(tmp_path / "first"))
    assert first.wait(timeout=600) == 0, first.stdout.read()[-2000:]
    model = tmp_path / "first" / "best.keras"
    second = _affectlite("train", *common, "--init", str(model), "--out", str(tmp_path / "second"))
    assert second.wait(timeout=600) == 0, second.stdout.read()[-2000:]
    saved = json.loads((tmp_path / "second" / "config.json").read_text())
    assert saved["init"] == str(model)
    init = saved["data"]["init"]
    assert init["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert "--out " + str(tmp_path / "first") in init["command"]
