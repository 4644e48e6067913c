"""`affectlite demo` end to end at toy size: every stage runs and the run folder is complete."""

import json

import pytest

from affectlite.demo import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_writes_bundles_metrics_report_and_plots(tmp_path):
    config = DemoConfig(
        input_size=32,
        train_images=96,
        val_images=32,
        test_images=48,
        epochs=1,
        batch_size=16,
        representative=32,
        bench_runs=3,
        threads=1,
    )
    out = tmp_path / "demo"
    metrics = run_demo(config, out)

    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dataset"] == "synthetic" and "synthetic" in saved["note"]
    assert saved["test"]["n"] == 48
    for key in ("keras_float", "float32_tflite", "int8_tflite"):
        assert set(saved["test"][key]) == {"accuracy", "balanced_accuracy", "macro_f1"}
    assert saved["sizes_bytes"]["float32_over_int8"] > 3.5
    assert set(saved["latency"]["variants"]) == {"bundle-int8@1t", "bundle-float32@1t"}
    assert saved["goals_met"] == metrics["goals_met"]
    for name in (
        "report.md",
        "confusion-int8.png",
        "confusion-float32.png",
        "train/curves.png",
        "bundle-int8/bundle.json",
        "bundle-int8/face_detector.tflite",
        "representative/manifest.json",
        "bench/bench.json",
    ):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "bundle-int8" / "bundle.json").read_text())
    assert manifest["classifier"]["input_dtype"] == "int8"
    assert "synthetic" in (out / "report.md").read_text()
