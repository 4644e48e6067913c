"""Conversion: the mode table, calibration checks, the gate, int8 bundles without TensorFlow, CLI.

A tiny convnet learns 8 colour blobs (one per label) to 100 % so that metrics mean something: a
correct int8 calibration keeps them, a wrongly scaled one (pixels ×1/255) destroys them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from affectlite.calibration.representative import IMAGES_FILE, RepresentativeSet
from affectlite.cli import main
from affectlite.convert.converter import (
    ConversionError,
    convert_model,
    quantization_errors,
    resolve_layers,
)
from affectlite.convert.export import BundleOptions, convert_to_bundle
from affectlite.convert.quantization import CalibrationDataError, QuantizationConfig
from affectlite.convert.verify import Gate, GateError, verify
from affectlite.edge_app.bundle import load_bundle
from affectlite.edge_app.classifier import EmotionClassifier
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.runtime import load_interpreter

SIZE = 32
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (230, 220, 40),
           (220, 40, 220), (40, 220, 220), (250, 250, 250), (10, 10, 10)]  # fmt: skip


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy grey images, each with one disc in its class's colour."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(LABELS)
    images = rng.integers(60, 190, (n, SIZE, SIZE, 3)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        radius = int(rng.integers(SIZE // 5, SIZE // 3))
        x, y = rng.integers(radius, SIZE - radius, 2)
        cv2.circle(image, (int(x), int(y)), radius, COLOURS[label], -1)
    return images, labels


def tiny_convnet(classes: int = len(LABELS)) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x), name="blobnet")


@pytest.fixture(scope="module")
def train_data():
    return blobs(320, seed=0)


@pytest.fixture(scope="module")
def val_data():
    return blobs(192, seed=1)


@pytest.fixture(scope="module")
def model(train_data, val_data):
    keras.utils.set_random_seed(0)
    net = tiny_convnet()
    net.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, labels = train_data
    net.fit(images.astype("float32"), labels, epochs=20, batch_size=32, verbose=0)
    val_images, val_labels = val_data
    accuracy = np.mean(net.predict(val_images, verbose=0).argmax(1) == val_labels)
    assert accuracy > 0.95, f"the blob model should learn the colours, got {accuracy:.3f}"
    return net


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "blobnet.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def dataset(train_data, val_data, tmp_path_factory) -> Path:
    """The same blobs as a class-per-folder dataset with train and val splits."""
    root = tmp_path_factory.mktemp("blobs")
    for split, (images, labels) in (("train", train_data), ("val", val_data)):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / LABELS[label]
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="module")
def good_set(train_data, tmp_path_factory) -> Path:
    images, labels = train_data
    folder = tmp_path_factory.mktemp("sets") / "good"
    return RepresentativeSet(images[:64], labels[:64], range(64), {"split": "train"}).save(folder)


def test_mode_table_rejects_options_a_mode_does_not_support():
    with pytest.raises(ValueError, match=r"--io for mode float16: 'int8' .*choose from float32"):
        QuantizationConfig.from_options("float16", "int8")
    with pytest.raises(ValueError, match=r"Unknown mode 'int4'; choose from float32, float16"):
        QuantizationConfig.from_options("int4")
    with pytest.raises(ValueError, match="--float-layers applies to mode int8 only"):
        QuantizationConfig.from_options("dynamic", float_layers=("conv1",))
    images = np.zeros((16, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match=r"--float-layers: 'uint8' .*choose from int8, float32"):
        QuantizationConfig.for_int8(images, io="uint8", float_layers=("conv1",))
    with pytest.raises(ValueError, match="takes no representative data"):
        QuantizationConfig("float16", representative=images)
    assert QuantizationConfig.from_options("int8", representative=images).io == "int8"
    assert QuantizationConfig.for_float16() == QuantizationConfig.from_options("float16")


def test_calibration_data_is_checked(model, caplog):
    with pytest.raises(CalibrationDataError, match="needs representative images"):
        QuantizationConfig.for_int8(None)
    with pytest.raises(CalibrationDataError, match="empty"):
        QuantizationConfig.for_int8(np.zeros((0, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(CalibrationDataError, match=r"shape \(N, S, S, 3\)"):
        QuantizationConfig.for_int8(np.zeros((20, SIZE, SIZE), np.uint8))
    with pytest.raises(CalibrationDataError, match="dtype <U1"):
        QuantizationConfig.for_int8(np.full((20, SIZE, SIZE, 3), "a"))
    with pytest.raises(CalibrationDataError, match="Only 15 .* at least 16"):
        QuantizationConfig.for_int8(np.zeros((15, SIZE, SIZE, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        config = QuantizationConfig.for_int8(np.zeros((20, 16, 16, 3), np.float32))
    assert "Only 20 representative images; about 300" in caplog.text
    assert "look scaled to 0..1" in caplog.text
    with pytest.raises(CalibrationDataError, match="rebuild the set with --input-size 32"):
        convert_model(model, config, "unused")


def test_int8_bundle_passes_the_gate_and_runs_without_tensorflow(
    model, train_data, val_data, tmp_path
):
    images, labels = val_data
    config = QuantizationConfig.for_int8(train_data[0][:64], io="int8")
    options = BundleOptions(report_dir=tmp_path / "report")
    report = convert_to_bundle(model, config, tmp_path / "bundle", images, labels, options)

    verification = report["verification"]
    assert report["gate"]["passed"], report["gate"]
    assert verification["converted"]["balanced_accuracy"] > 0.95
    assert verification["agreement"] >= 0.95 and verification["kl_divergence"] < 0.05
    bundle = load_bundle(tmp_path / "bundle")
    info = bundle.manifest["classifier"]
    assert info["input_dtype"] == "int8" and info["output_dtype"] == "int8"
    assert info["input_quantization"]["zero_point"] == -128
    assert 0.9 < info["input_quantization"]["scale"] <= 1.01  # 0..255 pixels over int8
    assert bundle.metrics["verification"]["agreement"] == verification["agreement"]
    assert bundle.temperature == pytest.approx(report["temperature"]["temperature"])
    assert bundle.metrics["sizes"]["tflite_bytes"] == bundle.classifier_path.stat().st_size
    for name in ("conversion.json", "conversion.md", "reliability.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0

    expected = EmotionClassifier.from_bundle(bundle).predict(images).argmax(1)
    np.save(tmp_path / "crops.npy", images)
    script = f"""
import sys
sys.modules["tensorflow"] = None
import numpy as np
from affectlite.edge_app.bundle import load_bundle
from affectlite.edge_app.classifier import EmotionClassifier
from affectlite.edge_app.detector import FaceDetector
bundle = load_bundle({str(tmp_path / "bundle")!r})
classifier = EmotionClassifier.from_bundle(bundle)
FaceDetector(bundle.detector_path)
probs = classifier.predict(np.load({str(tmp_path / "crops.npy")!r}))
print(classifier.runtime_info.name, *probs.argmax(1))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    runtime, *predicted = result.stdout.split()
    assert runtime == "ai-edge-litert"
    assert [int(p) for p in predicted] == expected.tolist()


def test_wrongly_scaled_calibration_fails_the_gate(model, train_data, val_data, tmp_path):
    images, labels = val_data
    broken = QuantizationConfig.for_int8(train_data[0][:64].astype(np.float32) / 255)
    with pytest.raises(
        GateError, match=r"balanced accuracy .*drop [0-9.]+ points > 1 allowed"
    ) as info:
        options = BundleOptions(report_dir=tmp_path / "report")
        convert_to_bundle(model, broken, tmp_path / "bundle", images, labels, options)
    assert info.value.report["agreement"] < 0.5
    assert not (tmp_path / "bundle").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    saved = json.loads((tmp_path / "report" / "conversion.json").read_text())
    assert saved["gate"]["passed"] is False and saved["gate"]["failures"]


def _convert(model: Path, *args: str) -> int:
    return main(["convert", "--model", str(model), *map(str, args)])


def test_cli_converts_gates_and_forces(model_file, dataset, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert _convert(model_file, "--data", dataset, "--format", "folder", "--out", out) == 0
    bundle = load_bundle(out)
    calibration = bundle.metrics["calibration"]
    assert calibration["split"] == "train" and calibration["count"] == 300
    assert bundle.metrics["gate"]["passed"] is True
    assert "bundle:" in capsys.readouterr().out

    images = RepresentativeSet.load(_rep(dataset, tmp_path)).images
    scaled = RepresentativeSet(images // 255, np.zeros(len(images)), range(len(images)))
    broken = scaled.save(tmp_path / "broken")
    bad = tmp_path / "bad"
    args = (model_file, "--representative", broken, "--data", dataset, "--format", "folder")
    assert _convert(*args, "--out", bad) == 3
    error = capsys.readouterr().err
    assert "fails the gate" in error and "balanced accuracy" in error and "agreement" in error
    assert not bad.exists() and not list(tmp_path.glob(".bad*"))
    assert (tmp_path / "bad-report" / "conversion.json").is_file()

    assert _convert(*args, "--out", bad, "--force") == 0
    gate = load_bundle(bad).metrics["gate"]
    assert gate["passed"] is False and gate["forced"] is True


def _rep(dataset: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "rep"
    assert main(["calibrate", "--data", str(dataset), "--format", "folder", "--input-size",
                 str(SIZE), "--n", "40", "--out", str(folder)]) == 0  # fmt: skip
    return folder


def test_cli_rejects_bad_inputs_with_clear_errors(model_file, dataset, tmp_path, capsys):
    data = ("--data", dataset, "--format", "folder")
    out = tmp_path / "out"

    def fails(*args: str) -> str:
        assert _convert(*args) == 2
        assert not out.exists()
        return capsys.readouterr().err

    missing = tmp_path / "missing.keras"
    assert f"--model {missing}: no such file" in fails(missing, *data, "--out", out)
    wrong = tmp_path / "five.keras"
    tiny_convnet(classes=5).save(wrong)
    assert "outputs 5 classes but the label set has 8" in fails(wrong, *data, "--out", out)
    message = fails(model_file, "--mode", "dynamic", "--io", "uint8", *data, "--out", out)
    assert "'uint8' is not supported; choose from float32" in message

    rep = _rep(dataset, tmp_path)
    few = RepresentativeSet.load(rep)
    small = RepresentativeSet(few.images[:8], few.labels[:8], few.ids[:8]).save(tmp_path / "few")
    assert "Only 8 representative images" in fails(
        model_file, "--representative", small, *data, "--out", out
    )
    shrunk = np.stack([cv2.resize(image, (16, 16)) for image in few.images])
    resized = RepresentativeSet(shrunk, few.labels, few.ids).save(tmp_path / "sixteen")
    assert "--input-size 32" in fails(model_file, "--representative", resized, *data, "--out", out)
    with open(rep / IMAGES_FILE, "ab") as handle:
        handle.write(b"x")
    assert "checksum mismatch" in fails(model_file, "--representative", rep, *data, "--out", out)
    (rep / IMAGES_FILE).unlink()
    assert "images.npz: missing" in fails(model_file, "--representative", rep, *data, "--out", out)
    assert "--data PATH --format F" in fails(model_file, "--mode", "float16", "--out", out)
    message = fails(model_file, *data, "--n", "16", "--float-layers", "nope", "--out", out)
    assert "'nope' matches no quantized layer; run with --debug" in message

    out.mkdir()
    assert _convert(model_file, *data, "--out", out) == 2
    assert "already exists" in capsys.readouterr().err


def test_unsupported_op_is_named_not_turned_into_flex(tmp_path):
    class Erfinv(keras.layers.Layer):
        def call(self, x):
            return keras.ops.erfinv(keras.ops.clip(x / 300.0, -0.9, 0.9))

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Flatten()(Erfinv(name="erfinv_layer")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(LABELS))(x))
    with pytest.raises(ConversionError, match=r"no TFLite builtin kernel: Erfinv \(at .*erfinv"):
        convert_model(model, QuantizationConfig.for_float32(), tmp_path)
    assert not (tmp_path / "classifier.tflite").exists()


def test_debugger_ranks_layers_and_float_layers_stay_float(model, train_data, val_data, tmp_path):
    images = train_data[0][:32]
    errors = quantization_errors(model, QuantizationConfig.for_int8(images), tmp_path / "d")
    assert {e.op for e in errors} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert [e.rmse_over_scale for e in errors] == sorted(
        (e.rmse_over_scale for e in errors), reverse=True
    )
    conv1 = [e.tensor for e in errors if "conv1" in e.tensor]
    assert resolve_layers(("conv1",), [e.tensor for e in errors]) == conv1
    tensors = [e.tensor for e in errors]
    aliases = {e.layer: e.tensor for e in errors}
    assert all(resolve_layers((e.layer,), tensors, aliases) == [e.tensor] for e in errors)
    assert any(len(e.layer) < len(e.tensor) for e in errors)
    assert [e.op for e in errors if e.layer == "logits"] == ["FULLY_CONNECTED"]
    with pytest.raises(ValueError, match="'nope' matches no quantized layer; run with --debug"):
        resolve_layers(("nope",), [e.tensor for e in errors])

    config = QuantizationConfig.for_int8(images, float_layers=("conv1",))
    path = convert_model(model, config, tmp_path / "selective")
    interpreter, _ = load_interpreter(path)
    dtypes = {t["name"]: t["dtype"] for t in interpreter.get_tensor_details()}
    assert dtypes[conv1[0]] == np.float32
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    report = verify(model, path, *val_data)
    assert not Gate().failures(report)

    config = QuantizationConfig.for_int8(images, io="float32", float_layers=("logits",))
    interpreter, _ = load_interpreter(convert_model(model, config, tmp_path / "float-logits"))
    fully_connected = [
        op for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"
    ]
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    assert [dtypes[i] for i in fully_connected[0]["outputs"]] == [np.float32]
    confusion = np.array(report["confusion"]["converted"])
    assert confusion.shape == (8, 8) and confusion.sum() == report["n"]
    assert np.trace(confusion) == round(report["converted"]["accuracy"] * report["n"])


def test_fit_temperature_cli(model_file, dataset, tmp_path):
    out = tmp_path / "temperature"
    assert main(["calibrate", "--fit-temperature", "--model", str(model_file),
                 "--data", str(dataset), "--format", "folder", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "temperature.json").read_text())
    assert result["n"] == 192 and result["temperature"] > 0
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_saved_model_with_caffe_preprocess_loads_and_converts(tmp_path):
    from affectlite.convert.converter import load_keras_model
    from affectlite.train.model import CaffePreprocess

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(CaffePreprocess(name="preprocess")(inputs))
    keras.Model(inputs, keras.layers.Dense(len(LABELS))(x)).save(tmp_path / "m.keras")
    model = load_keras_model(tmp_path / "m.keras")
    assert isinstance(model.get_layer("preprocess"), CaffePreprocess)
    path = convert_model(model, QuantizationConfig.for_float16(), tmp_path)
    pixels = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        EmotionClassifier(path).logits(pixels), model.predict(pixels, verbose=0), atol=0.05
    )
    with pytest.raises(ValueError, match="expected a Keras model file ending in .keras"):
        load_keras_model(path)


@pytest.mark.slow
def test_resnet50_converts_to_int8_and_runs(tmp_path):
    from affectlite.train.model import build_model

    model = build_model("resnet50", SIZE, weights=None)
    images = np.random.default_rng(0).integers(0, 256, (16, SIZE, SIZE, 3), dtype=np.uint8)
    path = convert_model(model, QuantizationConfig.for_int8(images), tmp_path)
    classifier = EmotionClassifier(path)
    assert classifier.input_dtype == np.int8
    probs = classifier.predict(images[:4])
    assert probs.shape == (4, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_exact_int8_ties_go_to_the_bundles_tie_break_order(model, train_data, val_data, tmp_path):
    """Contempt's logits copied from neutral's tie exactly in int8: argmax alone gives neutral
    (the lower index); the bundle's rarest-first order gives contempt, on every stage's path."""
    tied = keras.models.clone_model(model)
    tied.set_weights(model.get_weights())
    kernel, bias = tied.get_layer("logits").get_weights()
    kernel[:, 7], bias[7] = kernel[:, 0], bias[0]
    tied.get_layer("logits").set_weights([kernel, bias])
    images, labels = val_data
    order = ("contempt", "disgust", "fear", "anger", "surprise", "sad", "happy", "neutral")
    options = BundleOptions(tie_break=order, gate=Gate(max_drop=100, min_agreement=0))
    config = QuantizationConfig.for_int8(train_data[0][:64], io="int8")
    report = convert_to_bundle(tied, config, tmp_path / "bundle", images, labels, options)
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.tie_break == order

    neutral = images[labels == 0]
    plain = EmotionClassifier(bundle.classifier_path)
    logits = plain.logits(neutral)
    np.testing.assert_array_equal(logits[:, 0], logits[:, 7])  # the tie is exact
    assert (logits.argmax(1) == 0).all()
    broken = EmotionClassifier.from_bundle(bundle)
    assert (broken.predict(neutral).argmax(1) == 7).all()
    assert np.abs(broken.predict(neutral) - plain.predict(neutral)).max() < 1e-4
    assert report["verification"]["per_class_recall"]["converted"]["neutral"] == 0.0


def test_cli_records_the_training_runs_rarest_class_first(model_file, dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(model_file.read_bytes())
    counts = dict(zip(LABELS, (900, 700, 300, 300, 60, 20, 200, 15), strict=True))
    (run / "config.json").write_text(json.dumps({"data": {"train_counts": counts}}))
    out = tmp_path / "bundle"
    args = ("--data", dataset, "--format", "folder", "--out", out)
    assert _convert(run / "model.keras", *args) == 0
    expected = ["contempt", "disgust", "fear", "anger", "sad", "surprise", "happy", "neutral"]
    assert load_bundle(out).manifest["classifier"]["tie_break"] == expected


def test_cli_refuses_a_chance_level_float_model_unless_allowed(dataset, tmp_path, capfd):
    """A float model that says 'happy' for every face is refused (exit 3) with the reason;
    --allow-weak converts it and the report says it was allowed."""
    weak = tiny_convnet()
    kernel, bias = weak.get_layer("logits").get_weights()
    bias[:] = 0
    bias[LABELS.index("happy")] = 5
    weak.get_layer("logits").set_weights([np.zeros_like(kernel), bias])
    path = tmp_path / "weak.keras"
    weak.save(path)
    args = (path, "--data", dataset, "--format", "folder", "--mode", "float32")
    assert _convert(*args, "--out", tmp_path / "refused") == 3
    error = capfd.readouterr().err
    assert "fully_quantize" not in error  # the converter's line on fd 2 is hidden
    assert "too weak" in error and "balanced accuracy 0.125 is below chance + 0.05 = 0.175" in error
    assert "it predicts happy for all 192 faces" in error and "--allow-weak" in error
    assert not (tmp_path / "refused").exists()

    assert _convert(*args, "--allow-weak", "--out", tmp_path / "allowed") == 0
    out = capfd.readouterr().out
    assert "gate passed: float balanced accuracy 0.125 vs chance + 0.05 = 0.175 (weak" in out
    gate = load_bundle(tmp_path / "allowed").metrics["gate"]
    assert gate["passed"] is True and gate["allow_weak"] is True
