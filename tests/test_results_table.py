"""The RESULTS.md model table (benchmarks/results_table.py) on tiny bundles and synthetic faces:
rows by role, named bundles, absent models said, training runs read from their folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_classifier

from affectlite.benchmarks import results_table
from affectlite.edge_app.bundle import BUNDLES_ENV


@pytest.fixture(scope="module")
def faces(tmp_path_factory, write_face_folders) -> Path:
    return write_face_folders(tmp_path_factory.mktemp("faces"), 8, 24)


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    """Two training run folders: images/s per epoch in history.csv, or in metrics.json."""
    gpu, cpu = tmp_path / "gpu-run", tmp_path / "cpu-run"
    for folder in (gpu, cpu):
        folder.mkdir()
    (gpu / "metrics.json").write_text(json.dumps({"wall_seconds": 161.0, "device": "H200"}))
    (gpu / "config.json").write_text(json.dumps({"backbone": "resnet50", "input_size": 96}))
    (gpu / "history.csv").write_text(
        "epoch,images_per_second,loss\n0,900,2.0\n1,21000,1.5\n2,22500,1.2\n3,21500,1.1\n"
    )
    cpu_metrics = {"wall_seconds_this_session": 40.5, "images_per_second": [310.0, 290.0, 300.0]}
    (cpu / "metrics.json").write_text(json.dumps(cpu_metrics))
    return {"gpu": gpu, "cpu": cpu}


def _keras_float(path: Path) -> Path:
    tiny_classifier(seed=4).save(path)
    return path


def test_one_table_from_one_run(tmp_path, tiny_bundle, faces, runs, monkeypatch):
    search = tmp_path / "bundles"
    shutil.copytree(tiny_bundle.path, search / "resnet50")  # found by name, as shipped ones are
    monkeypatch.setenv(BUNDLES_ENV, str(search))
    out = tmp_path / "table"
    argv = [
        "--data", str(faces), "--format", "folder", "--split", "val",
        "--compact-before", str(tiny_bundle.path),
        "--compact-distilled", str(tiny_bundle.classifier_path),
        "--resnet50-float", str(_keras_float(tmp_path / "float.keras")),
        "--fer", str(tmp_path / "no-fer.tflite"),
        "--run", f"ResNet50={runs['gpu']}", "--run", f"compact={runs['cpu']}",
        "--runs", "5", "--out", str(out),
    ]  # fmt: skip
    assert results_table.main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    rows = {row["name"]: row for row in doc["models"]}
    assert list(rows) == [
        "compact before",
        "compact distilled",
        "ResNet50 int8",
        "ResNet50 float (rebuilt)",
    ]
    assert rows["ResNet50 int8"]["file"] == str(search / "resnet50" / "classifier.tflite")
    # The same classifier three ways (bundle, .tflite, named copy): the same scores.
    for name in ("compact distilled", "ResNet50 int8"):
        for key in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert rows[name][key] == rows["compact before"][key]
    assert all(row["n"] == 24 for row in rows.values())
    for name in ("compact before", "compact distilled", "ResNet50 int8"):
        latency = rows[name]["latency_ms"]
        assert 0 < latency["median"] <= latency["p90"]
    assert rows["ResNet50 float (rebuilt)"]["latency_ms"] is None  # Keras: scored, not timed
    size = tiny_bundle.classifier_path.stat().st_size
    assert rows["compact before"]["size_bytes"] == size
    assert doc["missing"] == [f"fer: {tmp_path / 'no-fer.tflite'} not found "
                              "(see affectlite.benchmarks.compare)"]  # fmt: skip
    assert doc["latency"]["threads"] == 2 and doc["latency"]["cpu_flags"]

    gpu, cpu = doc["training_runs"]
    assert (gpu["device"], gpu["wall_seconds"], gpu["backbone"]) == ("H200", 161.0, "resnet50")
    assert gpu["median_images_per_second"] == float(np.median([900, 21000, 22500, 21500]))
    assert cpu["median_images_per_second"] == 300.0 and cpu["wall_seconds"] == 40.5
    assert doc["training_seconds_total"] == 201.5

    text = (out / "results.md").read_text()
    assert text.count("| model |") == 1 and "| training run |" in text
    assert "Not in this run: fer:" in text and "Training wall time in all: 201.5 s." in text
    assert f"{size / 2**20:.2f}" in text


def test_absent_models_are_left_out_and_said(tmp_path, faces, monkeypatch):
    monkeypatch.setenv(BUNDLES_ENV, str(tmp_path / "none"))
    out = tmp_path / "table"
    argv = [
        "--data",
        str(faces),
        "--format",
        "folder",
        "--no-fer",
        "--runs",
        "2",
        "--out",
        str(out),
    ]
    assert results_table.main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [row["name"] for row in doc["models"]] == ["compact before"]  # the shipped default
    assert doc["missing"] == [
        "compact distilled: not given (--compact-distilled)",
        "ResNet50 int8: resnet50 not found",
        "ResNet50 float (rebuilt): not given (--resnet50-float)",
        "fer: left out (--no-fer)",
    ]
    assert doc["training_runs"] == [] and doc["training_seconds_total"] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--compact-before", "", "--resnet50", "", "--no-fer"], "No model to score"),
        (["--run", "x={runs}/nowhere"], "no metrics.json"),
        (["--out", "{existing}"], "already exists"),
        (["--run", "no-label"], "expected LABEL=RUN_FOLDER"),
    ],
)
def test_bad_input_is_one_line(tmp_path, faces, extra, message):
    existing = tmp_path / "existing"
    existing.mkdir()
    extra = [arg.format(runs=tmp_path, existing=existing) for arg in extra]
    command = ["--data", str(faces), "--format", "folder", "--no-fer", "--runs", "2"]
    out = [] if "--out" in extra else ["--out", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "affectlite.benchmarks.results_table", *command, *out, *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr
    assert not (tmp_path / "out").exists() and list(existing.iterdir()) == []
