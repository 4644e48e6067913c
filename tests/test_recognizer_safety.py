"""Bundles that load always classify, and one recognizer is safe to share (issue 22).

The bad bundles are real: tiny Keras models converted to ``.tflite`` here (a rank-3 output, a
model that outputs NaN, one that is finite on the load probe but NaN on bright faces), put in a
copy of the tiny bundle with matching checksums, so only the model itself can fail the load."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from affectlite.edge_app.bundle import BundleError, load_bundle, sha256_file
from affectlite.edge_app.recognizer import EmotionRecognizer
from affectlite.errors import InputError


def tflite(layers: list) -> bytes:
    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255), *layers])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def nan_dense():
    from tensorflow import keras

    dense = keras.layers.Dense(8)
    dense.build((None, 4))
    dense.set_weights([np.full((4, 8), np.nan, np.float32), np.zeros(8, np.float32)])
    return dense


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    from tensorflow import keras

    return {
        "rank3": tflite([keras.layers.Conv2D(8, 16, strides=16), keras.layers.Reshape((4, 8))]),
        "nan": tflite(
            [
                keras.layers.Conv2D(4, 3, strides=4),
                keras.layers.GlobalAveragePooling2D(),
                nan_dense(),
            ]
        ),  # fmt: skip
        # log(0.995 - brightest pixel): finite on a grey probe, NaN where a face has a white pixel
        "bright_nan": tflite(
            [
                keras.layers.GlobalMaxPooling2D(),
                keras.layers.Lambda(lambda x: keras.ops.log(0.995 - x)),
                keras.layers.Dense(8),
            ]
        ),
    }


def copy_with(tiny_bundle, folder: Path, model: bytes | None = None, change=None) -> Path:
    """A copy of the tiny bundle with another classifier and/or manifest change, re-hashed."""
    bundle = folder / "bundle"
    shutil.copytree(tiny_bundle.path, bundle)
    if model is not None:
        (bundle / "classifier.tflite").write_bytes(model)
    manifest = json.loads((bundle / "bundle.json").read_text())
    if change is not None:
        change(manifest)
    for name in manifest["files"]:
        manifest["files"][name] = sha256_file(bundle / name)
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    return bundle


def with_white_patch(photo: np.ndarray) -> np.ndarray:
    frame = photo.copy()
    frame[120:126, 220:226] = 255  # inside the astronaut's face
    return frame


# Proven at load -------------------------------------------------------------------------------


def test_a_rank_3_classifier_output_is_refused_at_load(tmp_path, tiny_bundle, models):
    bundle = copy_with(tiny_bundle, tmp_path, models["rank3"])
    with pytest.raises(BundleError, match=r"outputs shape \[1, 4, 8\].*one \(batch, 8\) tensor"):
        load_bundle(bundle)


def test_a_model_that_outputs_nan_is_refused_at_load(tmp_path, tiny_bundle, models):
    bundle = copy_with(tiny_bundle, tmp_path, models["nan"])
    with pytest.raises(BundleError, match="probe inference gave non-finite outputs"):
        load_bundle(bundle)


@pytest.mark.parametrize("value", [1e-300, 1e-40, 1e39])
def test_a_temperature_float32_cannot_hold_is_refused(tmp_path, tiny_bundle, value):
    bundle = copy_with(tiny_bundle, tmp_path, change=lambda m: m.update(temperature=value))
    with pytest.raises(BundleError, match="'temperature' must be a finite number > 0 in float32"):
        load_bundle(bundle)


def test_uncertain_is_a_reserved_label(tmp_path, tiny_bundle):
    def rename(manifest: dict) -> None:
        manifest["labels"][-1] = "Uncertain"

    with pytest.raises(BundleError, match="'labels' must be names other than uncertain"):
        load_bundle(copy_with(tiny_bundle, tmp_path, change=rename))


def test_the_model_run_is_the_one_verified_not_a_later_swap(
    tmp_path, tiny_bundle, models, sample_photos
):
    bundle = load_bundle(copy_with(tiny_bundle, tmp_path))
    (bundle.path / "classifier.tflite").write_bytes(models["nan"])  # swapped after the check
    faces = EmotionRecognizer(bundle).predict(sample_photos["astronaut"])
    expected = EmotionRecognizer(tiny_bundle).predict(sample_photos["astronaut"])
    assert faces and [f.probabilities for f in faces] == [f.probabilities for f in expected]


# Checked at every inference -------------------------------------------------------------------


def test_a_non_finite_output_marks_the_face_failed_never_a_label(
    tmp_path, tiny_bundle, models, sample_photos
):
    bundle = load_bundle(copy_with(tiny_bundle, tmp_path, models["bright_nan"]))
    recognizer = EmotionRecognizer(bundle)
    frame = with_white_patch(sample_photos["astronaut"])
    (face,) = recognizer.predict(frame)
    record = face.to_dict()
    assert record["label"] == "uncertain" and record["uncertain"] is True
    assert record["confidence"] == 0.0 and set(record["probabilities"].values()) == {0.0}
    assert "non-finite" in record.get("error", "")
    json.dumps(record, allow_nan=False)
    for _ in range(3):  # a video: the NaN never enters a track's smoothed probabilities
        assert "error" in recognizer.pipeline.process(frame).faces[0].to_dict()
    (clean,) = recognizer.pipeline.process(sample_photos["astronaut"]).faces
    assert "error" not in clean.to_dict() and np.isfinite(clean.confidence)


def test_a_zero_size_array_is_an_input_error(tiny_bundle):
    recognizer = EmotionRecognizer(tiny_bundle)
    for shape in [(0, 0, 3), (0, 10, 3), (10, 0, 3)]:
        with pytest.raises(InputError, match="non-empty RGB uint8 array"):
            recognizer.predict(np.zeros(shape, np.uint8))


# Shared between threads -----------------------------------------------------------------------


def test_eight_threads_share_one_recognizer(sample_photos):
    recognizer = EmotionRecognizer()  # the shipped int8 bundle
    photos = list(sample_photos.values())
    serial = [recognizer.predict(photo) for photo in photos]
    assert sum(len(faces) for faces in serial) >= 2
    errors: list[BaseException] = []
    results: list[tuple[int, list]] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait()
        for call in range(16):
            index = (worker + call) % len(photos)
            try:
                results.append((index, recognizer.predict(photos[index])))
            except BaseException as error:  # noqa: BLE001 - every error is a failure here
                errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(results) == 128
    for index, faces in results:
        expected = serial[index]
        assert [f.label for f in faces] == [f.label for f in expected]
        for face, reference in zip(faces, expected, strict=True):
            got = np.array(list(face.probabilities.values()))
            want = np.array(list(reference.probabilities.values()))
            np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failed_face_keeps_its_place_among_the_faces(tiny_bundle, monkeypatch, failing):
    """Faces come largest first (the app labels ``faces[0]`` the largest), failed or not."""
    from affectlite.edge_app.detector import Detection
    from affectlite.edge_app.pipeline import Pipeline

    pipeline = Pipeline(tiny_bundle)
    boxes = [(10.0, 10.0, 60.0, 60.0), (100.0, 20.0, 30.0, 30.0)]  # largest first
    detections = [Detection(box, 0.9, np.full((6, 2), np.nan)) for box in boxes]
    monkeypatch.setattr(pipeline, "_detect", lambda frame, small: detections)
    predict = pipeline.classifier.predict

    def one_nan(crops: np.ndarray) -> np.ndarray:
        probabilities = predict(crops)
        probabilities[failing] = np.nan
        return probabilities

    monkeypatch.setattr(pipeline.classifier, "predict", one_nan)
    frame = np.full((120, 160, 3), 128, np.uint8)
    faces = pipeline.process(frame, still=True).faces
    assert [face.box for face in faces] == boxes
    assert ["error" in face.to_dict() for face in faces] == [i == failing for i in range(2)]
