"""Shared test fixtures: real-data locations and headless settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
FERPLUS = Path(os.environ.get("AFFECTLITE_FERPLUS", REPO.parent / "shared" / "data" / "ferplus"))


@pytest.fixture(scope="session")
def ferplus_root() -> Path:
    """The FER+ dataset beside the checkout; tests using it skip when it is absent."""
    if not (FERPLUS / "FER2013Train" / "label.csv").is_file():
        pytest.skip(f"FER+ not found at {FERPLUS} (set AFFECTLITE_FERPLUS to run real-data tests)")
    return FERPLUS


@pytest.fixture(scope="session")
def write_face_folders() -> Callable[[Path, int, int], Path]:
    """``write_face_folders(root, train, val)``: that many synthetic 32 px faces (seeds 1 and
    2) as PNG files in ``root/train/<label>/`` and ``root/val/<label>/``; returns ``root``."""
    import cv2

    from affectlite.edge_app.labels import LABELS
    from affectlite.train import synthetic

    def write(root: Path, train: int, val: int) -> Path:
        for split, n, seed in (("train", train, 1), ("val", val, 2)):
            images, labels = synthetic.make_dataset(n, 32, seed=seed)
            for i, (image, label) in enumerate(zip(images, labels)):
                folder = root / split / LABELS[label]
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return root

    return write


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory):
    """A real bundle with a tiny random float classifier (32×32 in, 8 logits out) and the
    installed BlazeFace short-range detector. Builds in seconds: one Keras model, converted with
    ``tf.lite.TFLiteConverter``; nothing is trained, so its emotions are meaningless."""
    import tensorflow as tf
    from helpers import tiny_classifier

    from affectlite.edge_app.bundle import write_bundle
    from affectlite.edge_app.detector import blazeface_model_path

    model = tiny_classifier(seed=0)
    root = tmp_path_factory.mktemp("tiny_bundle")
    classifier = root / "classifier.tflite"
    classifier.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    info = {"input_size": 32, "mode": "float", "backbone": "tiny-test", "input_dtype": "float32"}
    return write_bundle(root / "bundle", classifier, info, detector=blazeface_model_path())


@pytest.fixture(scope="session")
def sample_photos() -> dict:
    """Real photos that ship with scikit-image and matplotlib, as uint8 RGB: two with one face
    each (``astronaut``, ``grace_hopper``) and two without a face (``coffee``, ``chelsea``)."""
    from matplotlib import cbook
    from skimage import data

    from affectlite.edge_app.preprocess import read_image

    return {
        "astronaut": data.astronaut(),
        "grace_hopper": read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
    }


@pytest.fixture(scope="session")
def face_mosaic(sample_photos):
    """A 640×640 frame holding 30 copies of the astronaut's face: six large ones (tiles of
    210…160 px) and 24 small ones (40 px tiles). BlazeFace short-range finds several of the
    large faces and none of the small ones (below ~1/6 of the frame side)."""
    import cv2
    import numpy as np

    face = sample_photos["astronaut"][30:230, 127:327]
    canvas = np.full((640, 640, 3), 90, np.uint8)
    for i, side in enumerate((210, 200, 190, 180, 170, 160)):
        row, col = divmod(i, 3)
        y, x = row * 220, col * 213
        canvas[y : y + side, x : x + side] = cv2.resize(
            face, (side, side), interpolation=cv2.INTER_AREA
        )
    for i in range(24):
        row, col = divmod(i, 16)
        y, x = 560 + row * 40, col * 40
        canvas[y : y + 40, x : x + 40] = cv2.resize(face, (40, 40), interpolation=cv2.INTER_AREA)
    return canvas
