"""Android packaging (buildozer.spec), the Android runtime (edge_app/android.py) and the kiosk
systemd unit.

Android's Java classes and python-for-android's ``android`` module cannot exist here, so
``android.py`` runs against *recording test doubles* of the pyjnius classes it loads. The double
of ``org.tensorflow.lite.Interpreter`` follows the Java API's byte-buffer semantics and is backed
by the real LiteRT interpreter, so the numbers that come out are real.
"""

from __future__ import annotations

import argparse
import configparser
import importlib
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter as LiteRTInterpreter

from affectlite.edge_app.pipeline import Pipeline, PipelineConfig
from affectlite.edge_app.runtime import load_interpreter, runtime_info

EDGE_APP = Path(__file__).resolve().parents[1] / "edge_app"
SPEC = EDGE_APP / "buildozer.spec"
SERVICE = EDGE_APP / "affectlite.service"


# --- buildozer.spec -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.optionxform = str  # buildozer keys are case-sensitive
    assert parser.read(SPEC), f"{SPEC} is missing"
    return parser["app"]


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def test_spec_requirements_cover_the_device_code(spec):
    requirements = {re.split("[=<>]", item)[0] for item in _items(spec["requirements"])}
    assert {"python3", "kivy", "numpy", "opencv", "pyjnius", "android"} <= requirements
    assert not requirements & {"tensorflow", "keras", "ai-edge-litert"}  # no wheels on Android


def test_spec_asks_for_the_camera_only(spec):
    assert _items(spec["android.permissions"]) == ["CAMERA"]
    assert "android.hardware.camera" in _items(spec["android.features"])


def test_spec_packages_models_layout_and_manifest(spec):
    extensions = set(_items(spec["source.include_exts"]))
    assert {"py", "kv", "tflite", "json"} <= extensions
    excluded = _items(spec["source.exclude_dirs"])
    assert "affectlite/train" in excluded and "tests" in excluded


def _packaged(stage: Path, spec: configparser.SectionProxy) -> set[str]:
    """The files buildozer copies from a staging folder, by its rules for ``source.include_exts``
    and ``source.exclude_dirs`` (buildozer's ``_copy_application_sources``: a folder is skipped
    when its relative path plus ``/`` starts with an excluded folder plus ``/``; a file is kept
    when its extension is listed)."""
    extensions = set(_items(spec["source.include_exts"]))
    excluded = [item.rstrip("/") + "/" for item in _items(spec["source.exclude_dirs"])]
    kept = set()
    for path in stage.rglob("*"):
        relative = path.relative_to(stage).as_posix()
        folder = path.parent.relative_to(stage).as_posix() + "/"
        if path.is_file() and path.suffix[1:] in extensions:
            if not any(folder.startswith(prefix) for prefix in excluded):
                kept.add(relative)
    return kept


def test_apk_carries_only_the_staged_default_bundle_unless_more_are_staged(spec, tmp_path):
    """Staged as docs/android.md says, with the package holding two shipped bundles: only
    ``bundle/`` (the default) goes in; ``bundles/<name>/`` adds one by choice."""
    files = ("bundle.json", "classifier.tflite", "face_detector.tflite")
    stage = tmp_path / "stage"
    for folder in ("affectlite/edge_app/models/default", "affectlite/edge_app/models/resnet50",
                   "bundle"):  # fmt: skip
        (stage / folder).mkdir(parents=True)
        for name in files:
            (stage / folder / name).write_text("x")
    (stage / "affectlite/train").mkdir()
    for module in ("main.py", "affectlite/edge_app/app.py", "affectlite/train/trainer.py"):
        (stage / module).write_text("")
    models = {path for path in _packaged(stage, spec) if path.endswith((".tflite", ".json"))}
    assert models == {f"bundle/{name}" for name in files}
    code = {path for path in _packaged(stage, spec) if path.endswith(".py")}
    assert code == {"main.py", "affectlite/edge_app/app.py"}

    (stage / "bundles").mkdir()
    shutil.copytree(stage / "affectlite/edge_app/models/resnet50", stage / "bundles/resnet50")
    assert f"bundles/resnet50/{files[1]}" in _packaged(stage, spec)


def test_spec_targets_64_and_32_bit_arm(spec):
    assert set(_items(spec["android.archs"])) == {"arm64-v8a", "armeabi-v7a"}
    assert int(spec["android.minapi"]) >= 21 and int(spec["android.api"]) >= 33


def test_spec_pulls_litert_1_4_from_maven(spec):
    dependencies = _items(spec["android.gradle_dependencies"])
    litert = [d for d in dependencies if d.startswith("com.google.ai.edge.litert:litert:")]
    assert len(litert) == 1 and re.fullmatch(r".*:1\.4\.\d+", litert[0]), dependencies
    source = (EDGE_APP / "android.py").read_text()
    assert f'LITERT_ARTEFACT = "{litert[0]}"' in source  # the error message names the same one


def test_spec_version_comes_from_the_package(spec):
    version_file = Path(spec["version.filename"].replace(".", str(EDGE_APP.parent), 1))
    assert version_file.name == "__init__.py" and version_file.parent.name == "affectlite"
    match = re.search(spec["version.regex"], version_file.read_text())
    from affectlite import __version__

    assert match and match.group(1) == __version__


# --- android.py against recording doubles ------------------------------------------------------
class JavaException(Exception):
    """Double of ``jnius.JavaException``."""


class FakeJava:
    """Recording test double of the Java classes ``android.py`` loads with ``autoclass``.

    ``calls`` records every Java call. ``Interpreter`` copies input bytes into, and output
    bytes out of, a real LiteRT interpreter, as ``org.tensorflow.lite.Interpreter`` does with
    ``ByteBuffer`` arguments (raw bytes in native order; size must match the tensor).
    """

    def __init__(self, missing: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple] = []
        self.missing = missing
        java = self

        class ByteArray:  # what pyjnius returns for a Java byte[]
            def __init__(self, data: bytes) -> None:
                self._data = bytes(data)

            def tostring(self) -> bytes:
                return self._data

        class ByteBuffer:
            def __init__(self, data: bytearray, direct: bool) -> None:
                self.data, self.direct, self.position = data, direct, 0

            @staticmethod
            def wrap(data: bytes) -> ByteBuffer:
                assert isinstance(data, bytes), "pyjnius passes byte[] as Python bytes"
                return ByteBuffer(bytearray(data), False)

            @staticmethod
            def allocate(size: int) -> ByteBuffer:
                return ByteBuffer(bytearray(size), False)

            @staticmethod
            def allocateDirect(size: int) -> ByteBuffer:
                return ByteBuffer(bytearray(size), True)

            def order(self, byte_order: str) -> ByteBuffer:
                assert byte_order == sys.byteorder
                return self

            def put(self, data: bytes) -> ByteBuffer:
                self.data[self.position : self.position + len(data)] = data
                self.position += len(data)
                return self

            def rewind(self) -> ByteBuffer:
                self.position = 0
                return self

            def array(self) -> ByteArray:
                if self.direct:
                    raise JavaException("UnsupportedOperationException: direct buffer")
                return ByteArray(self.data)

        class ByteOrder:
            @staticmethod
            def nativeOrder() -> str:
                return sys.byteorder

        class Options:
            def __init__(self) -> None:
                self.threads = None

            def setNumThreads(self, threads: int) -> None:
                java.calls.append(("setNumThreads", threads))
                self.threads = threads

        class File:
            def __init__(self, path: str) -> None:
                self.path = path

        class Named:
            def __init__(self, text: str) -> None:
                self.text = text

            def name(self) -> str:
                return self.text

        class Quantization:
            def __init__(self, scale: float, zero_point: int) -> None:
                self.scale, self.zero_point = scale, zero_point

            def getScale(self) -> float:
                return self.scale

            def getZeroPoint(self) -> int:
                return self.zero_point

        class Tensor:
            def __init__(self, details: dict) -> None:
                self.details = details

            def shape(self) -> list[int]:
                return [int(v) for v in self.details["shape"]]

            def dataType(self) -> Named:
                return Named(np.dtype(self.details["dtype"]).name.upper())

            def quantizationParams(self) -> Quantization:
                scale, zero_point = self.details["quantization"]
                return Quantization(scale, zero_point)

            def numBytes(self) -> int:
                return int(np.prod(self.shape())) * np.dtype(self.details["dtype"]).itemsize

            def name(self) -> str:
                return self.details["name"]

        class Interpreter:
            def __init__(self, model, options: Options) -> None:
                java.calls.append(("Interpreter", type(model).__name__, options.threads))
                if isinstance(model, File):
                    kwargs = {"model_path": model.path}
                else:
                    assert model.direct, "a model ByteBuffer must be direct"
                    kwargs = {"model_content": bytes(model.data)}
                self.real = LiteRTInterpreter(num_threads=options.threads, **kwargs)
                self.real.allocate_tensors()

            def getInputTensorCount(self) -> int:
                return len(self.real.get_input_details())

            def getOutputTensorCount(self) -> int:
                return len(self.real.get_output_details())

            def getInputTensor(self, i: int) -> Tensor:
                return Tensor(self.real.get_input_details()[i])

            def getOutputTensor(self, j: int) -> Tensor:
                return Tensor(self.real.get_output_details()[j])

            def resizeInput(self, i: int, dims: list[int]) -> None:
                java.calls.append(("resizeInput", i, list(dims)))
                self.real.resize_tensor_input(self.real.get_input_details()[i]["index"], dims)

            def allocateTensors(self) -> None:
                self.real.allocate_tensors()

            def runForMultipleInputsOutputs(self, inputs: list, outputs: dict) -> None:
                java.calls.append(("run", len(inputs), sorted(outputs)))
                for i, buffer in enumerate(inputs):
                    tensor = self.getInputTensor(i)
                    if len(buffer.data) != tensor.numBytes():
                        raise JavaException("IllegalArgumentException: byte count mismatch")
                    value = np.frombuffer(bytes(buffer.data), tensor.details["dtype"])
                    self.real.set_tensor(tensor.details["index"], value.reshape(tensor.shape()))
                self.real.invoke()
                for j, buffer in outputs.items():
                    details = self.real.get_output_details()[j]
                    buffer.rewind().put(self.real.get_tensor(details["index"]).tobytes())

            def close(self) -> None:
                java.calls.append(("close",))

        class HashMap(dict):
            def put(self, key, value) -> None:
                self[key] = value

        class Integer:
            @staticmethod
            def valueOf(value: int) -> int:
                return int(value)

        self.classes = {
            "org.tensorflow.lite.Interpreter": Interpreter,
            "org.tensorflow.lite.Interpreter$Options": Options,
            "java.io.File": File,
            "java.nio.ByteBuffer": ByteBuffer,
            "java.nio.ByteOrder": ByteOrder,
            "java.util.HashMap": HashMap,
            "java.lang.Integer": Integer,
        }

    def autoclass(self, name: str):
        self.calls.append(("autoclass", name))
        if name in self.missing or name not in self.classes:
            raise JavaException(f"Class not found {name!r}")
        return self.classes[name]


class FakePermissions:
    """Recording test double of python-for-android's ``android.permissions``."""

    class Permission:
        CAMERA = "android.permission.CAMERA"

    def __init__(self, granted: bool) -> None:
        self.granted = granted
        self.requests: list[tuple[list[str], object]] = []

    def check_permission(self, permission: str) -> bool:
        return self.granted

    def request_permissions(self, permissions: list[str], callback) -> None:
        self.requests.append((list(permissions), callback))


def install_android_doubles(monkeypatch, java: FakeJava, permissions: FakePermissions):
    """Puts the doubles where ``import jnius`` / ``import android.permissions`` find them and
    returns a freshly imported ``affectlite.edge_app.android``."""
    jnius = types.ModuleType("jnius")
    jnius.autoclass, jnius.JavaException = java.autoclass, JavaException
    android = types.ModuleType("android")
    android_permissions = types.ModuleType("android.permissions")
    android_permissions.Permission = permissions.Permission
    android_permissions.check_permission = permissions.check_permission
    android_permissions.request_permissions = permissions.request_permissions
    android.permissions = android_permissions
    monkeypatch.setitem(sys.modules, "jnius", jnius)
    monkeypatch.setitem(sys.modules, "android", android)
    monkeypatch.setitem(sys.modules, "android.permissions", android_permissions)
    monkeypatch.delitem(sys.modules, "affectlite.edge_app.android", raising=False)
    return importlib.import_module("affectlite.edge_app.android")


def test_android_module_only_imports_on_android():
    assert "jnius" not in sys.modules
    with pytest.raises(ImportError):
        importlib.import_module("affectlite.edge_app.android")
    assert runtime_info().name == "ai-edge-litert"  # the Java candidate is skipped here


def test_camera_permission_already_granted(monkeypatch):
    permissions = FakePermissions(granted=True)
    android = install_android_doubles(monkeypatch, FakeJava(), permissions)
    answers = []
    android.request_camera_permission(answers.append)
    assert answers == [True] and permissions.requests == []


@pytest.mark.parametrize(("grants", "expected"), [([True], True), ([False], False), ([], False)])
def test_camera_permission_is_requested_at_runtime(monkeypatch, grants, expected):
    permissions = FakePermissions(granted=False)
    android = install_android_doubles(monkeypatch, FakeJava(), permissions)
    answers = []
    android.request_camera_permission(answers.append)
    assert answers == [] and len(permissions.requests) == 1
    requested, callback = permissions.requests[0]
    assert requested == ["android.permission.CAMERA"]
    callback(requested, grants)  # the user answers the system dialog
    assert answers == [expected]


def test_java_interpreter_matches_litert_on_the_detector(monkeypatch, tiny_bundle, sample_photos):
    java = FakeJava()
    android = install_android_doubles(monkeypatch, java, FakePermissions(True))
    path = tiny_bundle.detector_path
    ours, info = load_interpreter(path, 2, prefer="litert-java")
    assert isinstance(ours, android.Interpreter) and info.name == "litert-java"
    assert ("Interpreter", "File", 2) in java.calls and ("setNumThreads", 2) in java.calls
    real = LiteRTInterpreter(model_path=str(path), num_threads=2)
    real.allocate_tensors()
    for mine, theirs in zip(ours.get_input_details(), real.get_input_details(), strict=True):
        assert np.array_equal(mine["shape"], theirs["shape"]) and mine["dtype"] == theirs["dtype"]
    image = np.resize(sample_photos["astronaut"][:128, :128], (1, 128, 128, 3))
    tensor = image.astype(np.float32) / 127.5 - 1.0
    ours.set_tensor(ours.get_input_details()[0]["index"], tensor)
    real.set_tensor(real.get_input_details()[0]["index"], tensor)
    ours.invoke()
    real.invoke()
    for mine, theirs in zip(ours.get_output_details(), real.get_output_details(), strict=True):
        assert np.array_equal(ours.get_tensor(mine["index"]), real.get_tensor(theirs["index"]))


def test_java_interpreter_loads_model_bytes_and_checks_inputs(monkeypatch, tiny_bundle):
    android = install_android_doubles(monkeypatch, FakeJava(), FakePermissions(True))
    interpreter = android.Interpreter(model_content=tiny_bundle.classifier_path.read_bytes())
    interpreter.allocate_tensors()
    with pytest.raises(ValueError, match="call invoke"):
        interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with pytest.raises(ValueError, match="set_tensor was not called"):
        interpreter.invoke()
    with pytest.raises(ValueError, match="needs float32"):
        interpreter.set_tensor(0, np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="not an input"):
        interpreter.set_tensor(5, np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="model_path or model_content"):
        android.Interpreter()


def test_missing_litert_artefact_names_the_gradle_dependency(monkeypatch, tiny_bundle):
    java = FakeJava(missing=("org.tensorflow.lite.Interpreter",))
    install_android_doubles(monkeypatch, java, FakePermissions(True))
    with pytest.raises(ValueError, match=r"com\.google\.ai\.edge\.litert:litert:1\.4"):
        load_interpreter(tiny_bundle.classifier_path, prefer="litert-java")


def test_pipeline_runs_on_the_java_interpreter_like_on_litert(
    monkeypatch, tiny_bundle, sample_photos
):
    frame = sample_photos["astronaut"]
    expected = Pipeline(tiny_bundle, PipelineConfig(num_threads=1)).process(frame, timestamp=0.0)

    java = FakeJava()
    install_android_doubles(monkeypatch, java, FakePermissions(True))
    for absent in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, absent, None)  # as on a phone: only the Java runtime
    pipeline = Pipeline(tiny_bundle, PipelineConfig(num_threads=1))
    assert pipeline.classifier.runtime.name == "litert-java"
    assert pipeline.detector.runtime.name == "litert-java"
    result = pipeline.process(frame, timestamp=0.0)

    assert len(result.faces) == len(expected.faces) == 1
    face, reference = result.faces[0], expected.faces[0]
    assert np.allclose(face.box, reference.box)
    assert face.label == reference.label
    assert np.allclose(list(face.probabilities.values()), list(reference.probabilities.values()))
    assert any(call[0] == "run" for call in java.calls)


def test_batch_resizing_goes_through_resize_input(monkeypatch, tiny_bundle, sample_photos):
    java = FakeJava()
    install_android_doubles(monkeypatch, java, FakePermissions(True))
    for absent in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, absent, None)
    from affectlite.edge_app.classifier import EmotionClassifier

    classifier = EmotionClassifier.from_bundle(tiny_bundle)
    crops = np.stack([sample_photos["astronaut"][100:132, 200:232]] * 3)
    probabilities = classifier.predict(crops)
    assert probabilities.shape == (3, 8) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert ("resizeInput", 0, [3, 32, 32, 3]) in java.calls


@pytest.fixture(scope="module")
def int8_classifier(tmp_path_factory) -> Path:
    """A tiny full-integer int8 classifier (int8 in and out), as ``convert`` makes them."""
    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8),
        ]
    )
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.integers(0, 256, (1, 32, 32, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("int8") / "classifier.tflite"
    path.write_bytes(converter.convert())
    return path


def test_int8_classifier_logits_match_through_the_java_interpreter(
    monkeypatch, int8_classifier, sample_photos
):
    from affectlite.edge_app.classifier import EmotionClassifier

    crops = np.stack([sample_photos["astronaut"][i : i + 32, 200:232] for i in (80, 100, 120)])
    reference = EmotionClassifier(int8_classifier, num_threads=1)
    assert reference.input_dtype == np.int8 and reference.runtime.name == "ai-edge-litert"
    expected = reference.logits(crops)

    install_android_doubles(monkeypatch, FakeJava(), FakePermissions(True))
    for absent in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, absent, None)
    classifier = EmotionClassifier(int8_classifier, num_threads=1)
    assert classifier.runtime.name == "litert-java" and classifier.input_dtype == np.int8
    assert np.array_equal(classifier.logits(crops), expected)
    assert len(np.unique(expected)) > 8  # real, varied outputs, not a constant


# --- the kiosk systemd unit ---------------------------------------------------------------------
def _unit() -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in SERVICE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def test_service_runs_the_app_fullscreen_with_valid_arguments():
    service = dict(_unit()["Service"])
    command = service["ExecStart"].split()
    assert Path(command[0]).name == "affectlite" and command[1] == "app"
    from affectlite.edge_app import app

    parser = argparse.ArgumentParser()
    app.add_arguments(parser)
    args = parser.parse_args(command[2:])
    assert args.fullscreen and args.bundle and args.source == "picamera2"
    assert service["Restart"] in ("on-failure", "always")
    assert {"video", "render"} <= set(service["SupplementaryGroups"].split())


def test_service_sets_the_kms_display_environment():
    environment = dict(v.split("=", 1) for k, v in _unit()["Service"] if k == "Environment")
    assert environment["SDL_VIDEODRIVER"] == "kmsdrm" and environment["KIVY_WINDOW"] == "sdl2"
    assert _unit()["Install"] == [("WantedBy", "multi-user.target")]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_service_passes_systemd_analyze(tmp_path):
    # The unit's own executable does not exist here; point it at one that does, keep the rest.
    text = re.sub(
        r"^ExecStart=\S+", f"ExecStart={shutil.which('true')}", SERVICE.read_text(), flags=re.M
    )
    unit = tmp_path / "affectlite.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "affectlite.service" in line]
    assert problems == [], result.stderr
