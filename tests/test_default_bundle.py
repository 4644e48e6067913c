"""The trained default bundle that ships inside the package: present, traceable, and reading
real faces. A broken or missing default cannot land: with ``CI=true`` a missing FER+ folder
fails the accuracy test instead of skipping it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import NO_TENSORFLOW

from affectlite.calibration.prior import rarest_first
from affectlite.edge_app.bundle import DEFAULT_BUNDLE, load_bundle
from affectlite.edge_app.classifier import EmotionClassifier
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.preprocess import crop_face

REPO = Path(__file__).resolve().parents[1]
FERPLUS = Path(os.environ.get("AFFECTLITE_FERPLUS", REPO.parent / "shared" / "data" / "ferplus"))

SAMPLE = 500
MIN_SAMPLE_ACCURACY = 0.80


@pytest.fixture(scope="module")
def default_bundle():
    return load_bundle(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def classifier(default_bundle):
    return EmotionClassifier.from_bundle(default_bundle, num_threads=2)


def test_default_bundle_is_small_int8_and_says_where_it_came_from(default_bundle):
    manifest = default_bundle.manifest
    size = sum(path.stat().st_size for path in DEFAULT_BUNDLE.iterdir())
    assert size <= 10 * 2**20, size
    assert manifest["classifier"]["input_dtype"] == "int8"
    assert manifest["labels"] == list(LABELS)
    data = manifest["training_data"]["data"]
    assert data["command"].startswith("affectlite train ")
    assert data["git_commit"]
    assert "MIT" in data["licence"]
    assert sum(data["train_counts"].values()) > 20_000
    assert sum(data["val_counts"].values()) > 2_000
    assert manifest["metrics"]["ferplus_valid"]["n"] == 3191
    assert default_bundle.tie_break == rarest_first(data["train_counts"], LABELS)


def _ferplus_or_fail():
    if (FERPLUS / "FER2013Valid" / "label.csv").is_file():
        return FERPLUS
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but FER+ is missing at {FERPLUS}: the default bundle is unchecked.")
    pytest.skip(f"FER+ not found at {FERPLUS}")


def test_default_bundle_reads_a_fixed_sample_of_ferplus_valid(classifier):
    """Accuracy on 500 fixed FER2013Valid faces (majority vote), through the device classifier."""
    from affectlite.train.datasets import load_crop, load_dataset

    root = _ferplus_or_fail()
    index = load_dataset(root, "ferplus", "val", ferplus_mode="majority")
    picks = np.random.default_rng(2026).permutation(len(index.samples))[:SAMPLE]
    samples = [index.samples[i] for i in np.sort(picks)]
    crops = np.stack([load_crop(sample, classifier.input_size) for sample in samples])
    predicted = classifier.predict(crops).argmax(axis=1)
    accuracy = float(np.mean(predicted == np.array([sample.label for sample in samples])))
    print(f"default bundle, {SAMPLE} FER2013Valid faces: accuracy {accuracy:.4f}")
    assert accuracy >= MIN_SAMPLE_ACCURACY


def test_colour_crop_and_its_grey_version_get_the_same_reading(classifier, sample_photos):
    """The int8 model turns RGB into grey itself: a camera's colour crop and the grey crop
    (as FER+ faces are) get the same label and nearly the same probabilities."""
    face = crop_face(sample_photos["astronaut"], (150, 60, 140, 160), classifier.input_size)
    grey = cv2.cvtColor(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    colour_p, grey_p = classifier.predict(np.stack([face, grey]))
    assert colour_p.argmax() == grey_p.argmax()
    assert np.abs(colour_p - grey_p).max() <= 0.05


def test_astronaut_is_happy_with_no_bundle_named(tmp_path, sample_photos):
    """`affectlite run` on a photo of a smiling face, with the shipped default, TensorFlow
    blocked (as on a device)."""
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    out = tmp_path / "faces.jsonl"
    command = [sys.executable, "-c", NO_TENSORFLOW, "run", "--source", str(photo)]
    result = subprocess.run(
        [*command, "--jsonl", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "default bundle" in result.stderr
    faces = [face for line in out.read_text().splitlines() for face in json.loads(line)["faces"]]
    assert len(faces) == 1
    probabilities = faces[0]["probabilities"]
    assert max(probabilities, key=probabilities.get) == "happy", probabilities
