"""Tests of ``affectlite bench``: statistics, interleaving, the JSON document of real runs,
MAC counting, the peak probe model, the Markdown and PNG reports, the soak mode, and the
command line without TensorFlow. No test asserts a timing."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlite.benchmarks import latency, report
from affectlite.benchmarks.cli import default_out_dir, parse_size, parse_threads
from affectlite.benchmarks.latency import (
    STAT_KEYS,
    Variant,
    fps,
    make_variants,
    ratio,
    round_order,
    run_benchmark,
    sample_frames,
    summarize,
)
from affectlite.benchmarks.macs import count_macs, fully_connected_model, op_macs
from affectlite.benchmarks.soak import write_loop_video
from affectlite.cli import main
from affectlite.edge_app.bundle import DEFAULT_BUNDLE, load_bundle, write_bundle
from affectlite.edge_app.runtime import load_interpreter
from affectlite.edge_app.sources import open_source

REPO = Path(__file__).resolve().parents[1]
TINY_MACS = 8 * 8 * 4 * 3 * 3 * 3 + 4 * 8  # conftest's Conv2D(4, 3, strides=4) on 32² + Dense(8)


# --- statistics -------------------------------------------------------------------------------


def test_summarize_known_values():
    stats = summarize(range(1, 101))
    assert stats["min"] == 1 and stats["median"] == 50.5 and stats["mean"] == 50.5
    assert stats["p90"] == pytest.approx(90.1)  # rank 0.9·99 = 89.1 between 90 and 91
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["std"] == pytest.approx(math.sqrt(100 * 101 / 12))  # sample std of 1..100
    assert set(stats) == set(STAT_KEYS)


def test_summarize_single_and_invalid():
    assert summarize([4.0]) == {k: (0.0 if k == "std" else 4.0) for k in STAT_KEYS}
    with pytest.raises(ValueError, match="finite"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])


def test_ratio_and_fps():
    assert ratio(30.0, 20.0) == 1.5
    assert ratio(None, 2.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None
    assert fps([10.0, 20.0, 30.0]) == 50.0


def test_round_order_rotates_and_covers_every_position():
    assert round_order(3, 0) == [0, 1, 2]
    assert round_order(3, 1) == [1, 2, 0]
    assert round_order(3, 5) == [2, 0, 1]
    positions = np.array([round_order(4, r) for r in range(4)])
    for column in positions.T:  # over n rounds every variant runs once in every slot
        assert sorted(column) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        round_order(0, 0)


def test_variants_and_names(tmp_path):
    variants = make_variants(
        [tmp_path / "a" / "b", tmp_path / "c" / "b"], [tmp_path / "m.tflite"], [1, 4]
    )
    assert [v.name for v in variants] == ["a/b@1t", "a/b@4t", "c/b@1t", "c/b@4t", "m@1t", "m@4t"]
    assert [v.kind for v in variants] == ["bundle"] * 4 + ["reference"] * 2
    with pytest.raises(ValueError, match="exactly one"):
        Variant("x", 1)
    with pytest.raises(ValueError, match="threads"):
        Variant.for_bundle(tmp_path, 0)


# --- real runs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_frames(sample_photos):
    """The two real face photos, each fitted into a 640×480 frame on a grey background."""
    frames = []
    for name in ("astronaut", "grace_hopper"):
        photo = sample_photos[name]
        width = int(photo.shape[1] * 480 / photo.shape[0])
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[:, 80 : 80 + width] = cv2.resize(photo, (width, 480), interpolation=cv2.INTER_AREA)
        frames.append(canvas)
    return frames


@pytest.fixture(scope="module")
def scored_bundle(tiny_bundle, tmp_path_factory):
    """A second bundle with the same models that carries a measured accuracy."""
    metrics = {
        "verification": {
            "converted": {"balanced_accuracy": 0.42, "accuracy": 0.5},
            "data": "test fixture",
        }
    }
    root = tmp_path_factory.mktemp("scored")
    return write_bundle(
        root / "scored",
        tiny_bundle.classifier_path,
        tiny_bundle.manifest["classifier"],
        detector=tiny_bundle.detector_path,
        metrics=metrics,
    )


@pytest.fixture(scope="module")
def bench_run(tiny_bundle, scored_bundle, face_frames):
    variants = make_variants(
        [tiny_bundle.path, scored_bundle.path], [tiny_bundle.classifier_path], [1, 2]
    )
    return run_benchmark(variants, face_frames, runs=4, warmup=1, frames_origin="test photos")


def test_bench_document_schema(bench_run, tiny_bundle):
    doc = bench_run.to_dict()
    assert doc["schema"] == "affectlite-bench" and doc["schema_version"] == 1
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    for key in ("cpu_model", "logical_cpus", "usable_cores", "os", "python", "runtime"):
        assert doc["host"][key], key
    assert doc["host"]["runtime"]["name"] == "ai-edge-litert"
    settings = doc["settings"]
    assert settings["runs"] == 4 and settings["warmup"] == 1 and settings["threads"] == [1, 2]
    assert settings["input_stage"]["kind"] == "jpeg-decode"
    assert settings["frames"] == {"count": 2, "shapes": [[480, 640, 3]], "origin": "test photos"}
    assert settings["baseline"] == "bundle@1t"
    assert doc["memory"]["peak_rss_bytes"] >= doc["memory"]["rss_bytes_end"] > 0
    names = [v["name"] for v in doc["variants"]]
    assert names == [
        "bundle@1t",
        "bundle@2t",
        "scored@1t",
        "scored@2t",
        "classifier@1t",
        "classifier@2t",
    ]
    assert {p["name"] for p in doc["probes"]} == {
        "numpy-matmul-float32",
        "litert-fc-float32",
        "litert-fc-int8",
    }
    assert doc["problems"] == []


def test_bench_stage_samples_are_consistent(bench_run):
    for v in bench_run.variants:
        bundle = v["kind"] == "bundle"
        expected = latency.STAGES if bundle else ("classifier_only",)
        assert tuple(v["stages_ms"]) == expected and tuple(v["samples_ms"]) == expected
        for stage, samples in v["samples_ms"].items():
            assert len(samples) == 4
            stats = v["stages_ms"][stage]
            assert stats == pytest.approx(summarize(samples), abs=1e-3)
            assert stats["min"] <= stats["median"] <= stats["p90"] <= stats["p99"]
        if bundle:
            s = v["samples_ms"]
            for i in range(4):  # end to end is timed around input + pipeline
                assert s["end_to_end"][i] + 1e-3 >= s["input"][i] + s["pipeline"][i]
                parts = sum(s[k][i] for k in latency.PIPELINE_STAGES)
                assert s["pipeline"][i] + 1e-3 >= parts
            assert v["fps"] == pytest.approx(fps(s["end_to_end"]), rel=1e-3)
            assert v["faces_per_frame"] == 1  # BlazeFace finds each photo's one real face
        else:
            assert v["fps"] is None and v["faces_per_frame"] is None


def test_bench_ratios_against_first_variant(bench_run):
    base = bench_run.variants[0]
    assert base["ratios_vs_baseline"] == {
        "median_end_to_end": 1.0,
        "fps": 1.0,
        "median_classifier_only": 1.0,
    }
    other = bench_run.variant("scored@2t")
    assert other["ratios_vs_baseline"]["median_end_to_end"] == pytest.approx(
        other["stages_ms"]["end_to_end"]["median"] / base["stages_ms"]["end_to_end"]["median"]
    )
    assert other["ratios_vs_baseline"]["fps"] == pytest.approx(other["fps"] / base["fps"])
    reference = bench_run.variant("classifier@1t")["ratios_vs_baseline"]
    assert reference["median_end_to_end"] is None and reference["fps"] is None
    assert reference["median_classifier_only"] > 0
    with pytest.raises(KeyError, match="bundle@1t"):
        bench_run.variant("nope")


def test_bench_models_limit_and_accuracy(bench_run, tiny_bundle):
    for v in bench_run.variants:
        assert v["limit"]["macs"] == TINY_MACS
        assert v["limit"]["compute_dtype"] == "float32"
        assert v["limit"]["peak_probe"] == "litert-fc-float32"
        peak = next(
            p
            for p in bench_run.doc["probes"]
            if p["name"] == "litert-fc-float32" and p["threads"] == v["threads"]
        )
        achieved = TINY_MACS / (v["stages_ms"]["classifier_only"]["median"] / 1e3)
        assert v["limit"]["achieved_macs_per_s"] == pytest.approx(achieved)
        assert v["limit"]["fraction_of_peak"] == pytest.approx(achieved / peak["macs_per_s"])
        assert v["model"]["classifier_bytes"] == tiny_bundle.classifier_path.stat().st_size
    assert bench_run.variant("bundle@1t")["accuracy"] is None
    assert bench_run.variant("scored@1t")["accuracy"] == {
        "metric": "balanced_accuracy",
        "value": 0.42,
        "source": "verification.converted",
        "data": "test fixture",
    }
    reference = bench_run.variant("classifier@2t")["model"]
    assert reference["input_shape"] == [1, 32, 32, 3] and reference["input_dtype"] == "float32"


def test_bench_interleaves_variants(tiny_bundle, face_frames, monkeypatch):
    calls = []
    original = latency._Runner.run

    def recording_run(self, acquire):  # a spy: records the order, then runs the real round
        calls.append(self.variant.name)
        return original(self, acquire)

    monkeypatch.setattr(latency._Runner, "run", recording_run)
    variants = make_variants([tiny_bundle.path], [tiny_bundle.classifier_path], [1, 2])
    run_benchmark(variants, face_frames, runs=3, warmup=1, probe=False)
    names = [v.name for v in variants]
    expected = [names[i] for r in range(4) for i in round_order(len(names), r)]
    assert calls == expected


def test_bench_reads_a_source(tiny_bundle, face_frames, tmp_path):
    video = write_loop_video(face_frames, tmp_path / "clip.avi")
    source = open_source(str(video), loop=True)
    try:
        result = run_benchmark(
            [Variant.for_bundle(tiny_bundle.path, 1)],
            [source.read()],
            runs=5,
            warmup=1,
            source=source,
            probe=False,
        )
    finally:
        source.close()
    doc = result.to_dict()
    assert doc["settings"]["input_stage"] == {"kind": "source-read", "source": str(video)}
    assert doc["settings"]["frames"]["origin"] == str(video)
    entry = doc["variants"][0]
    assert len(entry["samples_ms"]["input"]) == 5 and entry["faces_per_frame"] == 1
    assert entry["limit"] is None and doc["probes"] == []


def test_bench_rejects_bad_input(tiny_bundle, face_frames):
    variant = Variant.for_bundle(tiny_bundle.path, 1)
    with pytest.raises(ValueError, match="at least one"):
        run_benchmark([], face_frames)
    with pytest.raises(ValueError, match="unique"):
        run_benchmark([variant, variant], face_frames)
    with pytest.raises(ValueError, match="runs"):
        run_benchmark([variant], face_frames, runs=0)
    with pytest.raises(ValueError, match="frame"):
        run_benchmark([variant], [])


# --- MACs and probes --------------------------------------------------------------------------


def test_op_macs_formulas():
    assert op_macs("CONV_2D", [(1, 8, 8, 3), (16, 3, 3, 3), (16,)], (1, 8, 8, 16)) == 27648
    assert op_macs("DEPTHWISE_CONV_2D", [(1, 8, 8, 16), (1, 3, 3, 16)], (1, 4, 4, 16)) == 2304
    assert op_macs("FULLY_CONNECTED", [(2, 10), (5, 10)], (2, 5)) == 100
    assert op_macs("BATCH_MATMUL", [(3, 4, 6), (3, 6, 5)], (3, 4, 5)) == 360
    assert op_macs("BATCH_MATMUL", [(3, 6, 4), (3, 6, 5)], (3, 4, 5)) == 360  # adj_x
    assert op_macs("TRANSPOSE_CONV", [(4,), (4, 2, 2, 8), (1, 8, 8, 8)], (1, 16, 16, 4)) == 8192
    assert op_macs("ADD", [(1, 4), (1, 4)], (1, 4)) == 0


def test_count_macs_of_converted_keras_model():
    """A model whose MACs are worked out by hand, converted by TF (tests may use TF)."""
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)  # 16·16·8 × 3·3·3 = 55296
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 8·8·8 × 3·3 = 4608
    x = keras.layers.Conv2DTranspose(4, 2, strides=2)(x)  # 8·8·8 × 2·2·4 = 8192
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 4 × 5 = 20
    model = keras.Model(inputs, outputs)
    expected = {
        "CONV_2D": 55296,
        "DEPTHWISE_CONV_2D": 4608,
        "TRANSPOSE_CONV": 8192,
        "FULLY_CONNECTED": 20,
    }
    counted = count_macs(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert counted.by_op == expected and counted.macs == sum(expected.values())
    assert counted.compute_dtype == "float32" and counted.input_shape == [1, 16, 16, 3]
    assert counted.ops["MEAN"] == 1

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)] for _ in range(4)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    quantized = count_macs(converter.convert())
    assert quantized.by_op == expected and quantized.compute_dtype == "int8"


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_probe_model_is_a_correct_fully_connected(dtype):
    model = fully_connected_model(6, 10, 4, dtype)
    counted = count_macs(model)
    assert counted.macs == 6 * 10 * 4 and counted.by_op == {"FULLY_CONNECTED": 240}
    assert counted.compute_dtype == dtype
    interpreter, _ = load_interpreter(model, 1)
    weights = interpreter.get_tensor(1).astype(np.float64)
    x = np.arange(60, dtype=np.float64).reshape(6, 10) % 7 - 3
    interpreter.set_tensor(0, x.astype(dtype))
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.float64)
    if dtype == "float32":
        np.testing.assert_allclose(y, x @ weights.T, rtol=1e-5)
    else:  # y_q = round(s_x·s_w / s_y · x_q·W_q), saturated to int8
        expected = np.clip(np.round(0.05 * 0.01 / 0.5 * (x @ weights.T)), -128, 127)
        np.testing.assert_allclose(y, expected, atol=1)
    with pytest.raises(ValueError, match="float32"):
        fully_connected_model(2, 2, 2, "float16")


# --- reports ----------------------------------------------------------------------------------


def test_markdown_table(bench_run):
    text = report.markdown(bench_run.to_dict())
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    header = rows[0].split(" | ")
    assert header[2] == "decode" and "end-to-end" in header and "FPS" in header
    for v in bench_run.variants:
        row = next(r for r in rows if r.startswith(f"| {v['name']} |"))
        cells = row.strip("| ").split(" | ")
        assert len(cells) == len(header)
        median = v["stages_ms"]["classifier_only"]["median"]
        assert cells[header.index("classifier only")] == report._ms(median)
    assert "1.00×" in rows[1]
    assert "litert-fc-int8" in text and "## Not measured" not in text
    source_doc = json.loads(json.dumps(bench_run.to_dict()))
    source_doc["settings"]["input_stage"] = {"kind": "source-read", "source": "0"}
    assert report.markdown(source_doc).split("| variant | threads | ")[1].startswith("capture")


def test_write_report_files(bench_run, tmp_path):
    paths = report.write_report(bench_run, tmp_path / "out")
    assert set(paths) == {"json", "markdown", "stages", "distribution", "accuracy_latency"}
    for key in ("stages", "distribution", "accuracy_latency"):
        data = paths[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, key
    assert json.loads(paths["json"].read_text()) == bench_run.to_dict()
    assert "![stages](stages.png)" in paths["markdown"].read_text()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_no_accuracy_plot_without_measured_accuracy(bench_run, tmp_path):
    doc = json.loads(json.dumps(bench_run.to_dict()))
    doc["variants"] = [v for v in doc["variants"] if v["accuracy"] is None]
    assert "accuracy_latency" not in report.write_plots(doc, tmp_path)


# --- frames, command line, soak ---------------------------------------------------------------


def test_sample_frames_deterministic():
    frames, origin = sample_frames((320, 240), count=2, seed=3)
    again, _ = sample_frames((320, 240), count=2, seed=3)
    assert [f.shape for f in frames] == [(240, 320, 3)] * 2
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    assert "grace_hopper" in origin and "synthetic" in origin
    with pytest.raises(ValueError, match="64"):
        sample_frames((32, 32))


def test_parsers_and_out_dir(tmp_path):
    assert parse_threads("1,2,4") == [1, 2, 4] and parse_threads("2,2") == [2]
    assert parse_size("640x480") == (640, 480)
    for bad in ("0", "a,b", ""):
        with pytest.raises(Exception, match="thread counts"):
            parse_threads(bad)
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        parse_size("640")
    first = default_out_dir(tmp_path)
    first.mkdir()
    assert default_out_dir(tmp_path) == first.with_name(first.name + "-2")


def test_bench_without_a_bundle_measures_the_default_one(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["--runs", "1", "--warmup", "0", "--frames", "1", "--no-probe", "--no-plots"]
    assert main(["bench", *args, "--out", str(out)]) == 0
    assert f"using the default bundle {DEFAULT_BUNDLE}" in capsys.readouterr().err
    assert str(DEFAULT_BUNDLE) in (out / "bench.json").read_text()


def test_cli_rejects_bad_requests(tiny_bundle, capsys):
    bundle = str(tiny_bundle.path)
    assert main(["bench", "--bundle", bundle, "--bundle", bundle, "--soak", "1"]) == 2
    assert "one bundle" in capsys.readouterr().err
    assert main(["bench", "--bundle", "/nonexistent/bundle", "--runs", "1"]) == 2
    assert "no bundle manifest" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--bundle", bundle, "--threads", "0"])


def test_loop_video_round_trip(face_frames, tmp_path):
    path = write_loop_video(face_frames, tmp_path / "loop.avi")
    source = open_source(str(path), loop=True)
    try:
        shapes = [source.read().shape for _ in range(5)]  # loops past its 2 frames
    finally:
        source.close()
    assert shapes == [(480, 640, 3)] * 5
    with pytest.raises(ValueError, match="the video is 640×480"):
        write_loop_video([face_frames[0], face_frames[0][:100]], tmp_path / "bad.avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.avi"]  # no partial file left


def _run_without_tensorflow(args: list[str]) -> subprocess.CompletedProcess:
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from affectlite.cli import main\n"
        f"code = main({args!r})\n"
        "assert sys.modules['tensorflow'] is None, 'tensorflow was replaced'\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )


def test_cli_bench_runs_without_tensorflow(tiny_bundle, tmp_path):
    copy = shutil.copytree(tiny_bundle.path, tmp_path / "second")
    load_bundle(copy)
    out = tmp_path / "results"
    done = _run_without_tensorflow(
        [
            "bench",
            "--bundle",
            str(tiny_bundle.path),
            "--bundle",
            str(copy),
            "--reference",
            str(tiny_bundle.classifier_path),
            "--threads",
            "1,2",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--frames",
            "2",
            "--frame-size",
            "320x240",
            "--out",
            str(out),
            "--json",
            "-",
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert [v["name"] for v in doc["variants"]] == [
        "bundle@1t",
        "bundle@2t",
        "second@1t",
        "second@2t",
        "classifier@1t",
        "classifier@2t",
    ]
    assert doc["settings"]["frames"]["shapes"] == [[240, 320, 3]]
    assert all(v["limit"]["macs"] == TINY_MACS for v in doc["variants"])
    assert {p.name for p in out.iterdir()} == {
        "bench.json",
        "bench.md",
        "stages.png",
        "distribution.png",
    }


def test_cli_bench_reads_several_sources_in_turn(tiny_bundle, face_frames, sample_photos, tmp_path):
    faces = write_loop_video(face_frames, tmp_path / "faces.avi")
    coffee = cv2.resize(sample_photos["coffee"], (640, 480), interpolation=cv2.INTER_AREA)
    empty = write_loop_video([coffee, coffee[::-1]], tmp_path / "no_face.avi")  # no face
    args = ["bench", str(faces), str(empty)]
    for name in ("second", "third"):
        load_bundle(shutil.copytree(tiny_bundle.path, tmp_path / name))
        args += ["--bundle", str(tmp_path / name)]
    args += ["--bundle", str(tiny_bundle.path), "--threads", "1", "--runs", "4", "--warmup", "1"]
    args += ["--no-probe", "--no-plots"]
    done = _run_without_tensorflow([*args, "--out", str(tmp_path / "out"), "--json", "-"])
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    source = f"{faces} + {empty}"
    assert doc["settings"]["input_stage"] == {"kind": "source-read", "source": source}
    assert doc["settings"]["frames"]["origin"] == source
    # A round from each source in turn: every variant saw each scene in half of its rounds
    # (three variants: reading a frame from each source in turn would give 1/4 or 3/4).
    assert [v["faces_per_frame"] for v in doc["variants"]] == [0.5, 0.5, 0.5]
    assert all(len(v["samples_ms"]["input"]) == 4 for v in doc["variants"])


def test_cli_soak_runs_without_tensorflow(tiny_bundle, tmp_path):
    out = tmp_path / "soak"
    done = _run_without_tensorflow(
        [
            "bench",
            "--bundle",
            str(tiny_bundle.path),
            "--soak",
            "3",
            "--soak-interval",
            "1",
            "--threads",
            "1",
            "--frames",
            "2",
            "--frame-size",
            "320x240",
            "--out",
            str(out),
            "--json",
            "-",
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["schema"] == "affectlite-soak" and doc["schema_version"] == 1
    samples = doc["samples"]
    assert len(samples) >= 4 and samples[0]["t_s"] == 0 and samples[-1]["t_s"] >= 3
    assert [s["frames"] for s in samples] == sorted(s["frames"] for s in samples)
    assert all(s["rss_bytes"] > 0 for s in samples)
    summary = doc["summary"]
    assert summary["frames"] == samples[-1]["frames"] > 0
    assert summary["rss_start_bytes"] == samples[0]["rss_bytes"]
    assert summary["growth_after_first_interval_bytes"] == (
        samples[-1]["rss_bytes"] - samples[1]["rss_bytes"]
    )
    assert {p.name for p in out.iterdir()} == {"soak.json", "soak.md", "soak.png"}
