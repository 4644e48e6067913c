"""The shared plumbing: one error path, early validation, one import name, readable outputs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the dispatcher, then says on stdout whether TensorFlow was imported on the way.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('tensorflow' in sys.modules))\n"
    "from affectlite.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _probe(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # Kivy's own start-up log would otherwise precede `app`'s line (it imports Kivy first).
    env = {**os.environ, "KIVY_NO_ARGS": "1", "KIVY_LOG_MODE": "PYTHON"}
    command = [sys.executable, "-c", PROBE, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def _missing_input_commands(tmp: Path) -> dict[str, list[str]]:
    nope = str(tmp / "missing")
    out = str(tmp / "out")
    return {
        "data inspect": ["data", "inspect", nope, "--format", "folder"],
        "data pack": ["data", "pack", nope, "--format", "folder", "--out", out],
        "train": ["train", "--data", nope, "--format", "folder", "--out", out],
        "evaluate": ["evaluate", "--model", nope + ".keras", "--data", nope, "--format", "folder"],
        "calibrate": ["calibrate", "--data", nope, "--format", "folder", "--out", out],
        "convert": ["convert", "--model", nope + ".keras", "--out", out, "--skip-verify"],
        "bench": ["bench", "--bundle", nope],
        "run": ["run", "--source", nope + ".mp4", "--bundle", nope],
        "app": ["app", "--bundle", nope],
    }


def test_every_command_refuses_a_missing_input_in_one_line_without_tensorflow(tmp_path):
    commands = _missing_input_commands(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(commands, pool.map(lambda a: _probe(a, tmp_path), commands.values())))
    for name, result in results.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"affectlite {name}: "), (name, lines)
        assert "missing" in lines[0], (name, lines)
        assert "Traceback" not in result.stderr, name
        assert result.stdout.strip() == "False", (name, "imported TensorFlow before failing")
    assert not (tmp_path / "out").exists()


def test_verbose_shows_the_traceback_behind_an_error(tmp_path):
    result = _probe(["--verbose", "bench", "--bundle", str(tmp_path / "missing")], tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "BundleError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("affectlite bench: ")


def test_a_bad_backbone_writes_nothing(tmp_path):
    run_dir, data = tmp_path / "run", tmp_path / "faces"
    (data / "train" / "happy").mkdir(parents=True)
    args = ["train", "--data", str(data), "--format", "folder", "--out", str(run_dir)]
    result = _probe([*args, "--backbone", "resnet5"], tmp_path)
    assert result.returncode == 2 and "resnet5" in result.stderr
    assert result.stdout.strip() == "False"
    assert not run_dir.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "values, flag",
    [
        ({"backbone": "resnet5"}, "--backbone"),
        ({"balance": "weights"}, "--balance"),
        ({"mixed_precision": "yes"}, "--mixed-precision"),
        ({"distribute": "tpu"}, "--distribute"),
        ({"input_size": 16}, "--input-size"),
        ({"batch_size": 0}, "--batch-size"),
        ({"dropout": 1.0}, "--dropout"),
        ({"backbone": "compact"}, "--weights none"),
        ({"weights": "nowhere.h5"}, "--weights"),
    ],
)
def test_train_config_validates_itself(values, flag):
    from affectlite.errors import InputError
    from affectlite.train.config import TrainConfig

    with pytest.raises(InputError, match=flag):
        TrainConfig(**values)


def test_train_config_knows_every_backbone_the_model_builds():
    from affectlite.train.config import BACKBONE_NAMES
    from affectlite.train.model import BACKBONES

    assert set(BACKBONE_NAMES) == {"compact", *BACKBONES}


def test_every_domain_error_has_the_one_base():
    from affectlite.calibration.representative import RepresentativeError
    from affectlite.convert.converter import ConversionError, UnknownLayerError
    from affectlite.convert.quantization import CalibrationDataError
    from affectlite.convert.verify import GateError
    from affectlite.edge_app.bundle import BundleError
    from affectlite.edge_app.detector import DetectorUnavailable
    from affectlite.edge_app.preprocess import ImageError
    from affectlite.edge_app.runner import RunnerError
    from affectlite.edge_app.runtime import RuntimeUnavailable
    from affectlite.edge_app.sources import SourceError
    from affectlite.errors import AffectliteError
    from affectlite.train.readers.base import DatasetError

    errors = [
        RepresentativeError, ConversionError, UnknownLayerError, CalibrationDataError,
        BundleError, DetectorUnavailable, ImageError, RunnerError, RuntimeUnavailable,
        SourceError, DatasetError,
    ]  # fmt: skip
    assert all(issubclass(error, AffectliteError) for error in errors)
    assert {error.exit_code for error in errors} == {1, 2}
    assert ConversionError.exit_code == 1 and GateError.exit_code == 3


@pytest.mark.parametrize("folder", ["edge_app", "train", "convert", "calibration", "benchmarks"])
def test_a_folder_has_one_import_name(folder):
    code = f"import sys; sys.path.insert(0, '.'); import {folder}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 1
    assert f"ImportError: Import affectlite.{folder}, not '{folder}'" in result.stderr
    assert (ROOT / folder / "__init__.py").is_file()  # the folder is there, only the name fails


def _modes(folder: Path) -> set[tuple[str, int]]:
    found = {("folder", stat.S_IMODE(folder.stat().st_mode))}
    for path in folder.rglob("*"):
        found.add(("folder" if path.is_dir() else "file", stat.S_IMODE(path.stat().st_mode)))
    return found


def test_a_written_bundle_is_readable_by_other_users(tiny_bundle, tmp_path):
    from affectlite.edge_app.bundle import write_bundle
    from affectlite.schemas import BUNDLE_VERSION

    previous = os.umask(0o077)  # the strictest umask: modes must not depend on it
    try:
        bundle = write_bundle(
            tmp_path / "bundle",
            tiny_bundle.classifier_path,
            tiny_bundle.manifest["classifier"],
            detector=tiny_bundle.detector_path,
        )
    finally:
        os.umask(previous)
    assert _modes(bundle.path) == {("folder", 0o755), ("file", 0o644)}
    assert len(list(bundle.path.iterdir())) == 3
    assert bundle.manifest["schema_version"] == BUNDLE_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no staging folder left


def test_atomic_writes_leave_no_temporary_on_failure(tmp_path):
    from affectlite.files import write_with

    def fails(path: Path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        write_with(tmp_path / "kept.txt", fails)
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]
    assert (tmp_path / "kept.txt").read_text() == "old"


def test_evaluate_reports_carry_their_schema_version(tiny_bundle):
    import numpy as np

    from affectlite.schemas import METRICS_VERSION
    from affectlite.train.evaluate import evaluate, load_predictor

    labels = np.arange(8).repeat(2)
    images = np.random.default_rng(1).integers(0, 256, (len(labels), 32, 32, 3), np.uint8)
    report = evaluate(load_predictor(tiny_bundle.path, num_threads=1), images, labels)
    assert report["schema_version"] == METRICS_VERSION and report["n"] == 16


def test_one_markdown_table_builder():
    from affectlite.markdown import table

    lines = table(["class", "train"], [["happy", "1,204"], ["sad", 7]], right=[1])
    assert lines == ["| class | train |", "|---|---:|", "| happy | 1,204 |", "| sad | 7 |"]
    with pytest.raises(ValueError, match="2 columns"):
        table(["a", "b"], [["only one"]])


def test_training_restores_the_precision_policy():
    import keras

    from affectlite.train.trainer import precision_policy

    before = keras.mixed_precision.global_policy().name
    with pytest.raises(KeyboardInterrupt), precision_policy("on") as policy:
        assert policy == "mixed_float16" == keras.mixed_precision.global_policy().name
        raise KeyboardInterrupt  # an interrupted run restores it too
    assert keras.mixed_precision.global_policy().name == before


def test_calibrate_refuses_an_unknown_detector_before_reading_frames(tmp_path, capsys):
    from affectlite.cli import main

    out = tmp_path / "set"
    args = ["calibrate", "--source", str(tmp_path), "--detector", "blaze", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "--detector: 'blaze' is not a detector" in capsys.readouterr().err
    assert not out.exists()
