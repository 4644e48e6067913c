"""One flag vocabulary across the commands: ``--bundle NAME|PATH``, ``--model FILE``, sources
as positional arguments (``--source`` kept), ``--detector NAME|PATH``, ``--verbose`` anywhere,
the input-size default from the backbone, a dataset's only split."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from affectlite.cli import _take_verbose, main
from affectlite.edge_app import bundle as bundle_module
from affectlite.edge_app.detector import blazeface_model_path
from affectlite.options import HelpFormatter, finish, input_size_for


def parse(command: str, *argv: str) -> argparse.Namespace:
    """``affectlite COMMAND ARGV`` parsed as the dispatcher parses it (no run)."""
    import importlib

    from affectlite.cli import COMMANDS

    parser = argparse.ArgumentParser(prog=command, formatter_class=HelpFormatter)
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    args = parser.parse_args(list(argv))
    finish(parser, args)
    return args


def test_shipped_bundles_resolve_by_name_and_paths_win(tmp_path, monkeypatch):
    models = tmp_path / "models"
    for name in ("default", "resnet50"):
        (models / name).mkdir(parents=True)
        (models / name / "bundle.json").write_text("{}")
    (models / "notes").mkdir()  # no bundle.json: not a bundle
    monkeypatch.setattr(bundle_module, "MODELS_DIR", models)
    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", models / "default")
    monkeypatch.delenv(bundle_module.BUNDLES_ENV, raising=False)
    assert list(bundle_module.shipped_bundles()) == ["default", "resnet50"]
    assert bundle_module.resolve_bundle("resnet50") == models / "resnet50"
    assert bundle_module.resolve_bundle("notes") == Path("notes")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet50").mkdir()  # a folder of that name here is what the user means
    assert bundle_module.resolve_bundle("resnet50") == Path("resnet50")


def test_default_bundle_by_name_everywhere():
    default = bundle_module.DEFAULT_BUNDLE
    assert parse("predict", "a.jpg").bundle == default
    assert parse("predict", "a.jpg", "--bundle", "default").bundle == default
    assert parse("run", "0").bundle == default
    assert parse("evaluate", "--bundle", "default", "--data", "d", "--format", "folder").bundle \
        == default  # fmt: skip
    assert parse("calibrate", "--bundle", "default", "--out", "o").bundle == default


@pytest.mark.parametrize("command", ["predict", "run", "bench"])
def test_sources_are_positional_several_and_source_is_kept(command):
    assert parse(command, "clip.mp4").sources == ["clip.mp4"]
    assert parse(command, "--source", "clip.mp4").sources == ["clip.mp4"]
    assert parse(command, "a.mp4", "b/").sources == ["a.mp4", "b/"]
    assert parse(command, "a.jpg", "--source", "b/").sources == ["a.jpg", "b/"]


@pytest.mark.parametrize("argv", [["run"], ["predict"]])
def test_missing_sources_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "SOURCE" in capsys.readouterr().err.splitlines()[-1]


def test_help_hides_the_old_spellings():
    out = subprocess.run(
        [sys.executable, "-m", "affectlite", "run", "--help"], capture_output=True, text=True
    ).stdout
    assert "SOURCE" in out and "--source" not in out and "--verbose" in out


@pytest.mark.parametrize("command", ["predict", "run", "app", "calibrate", "convert"])
def test_detector_takes_a_name_or_a_path(command, tmp_path):
    base = {"predict": ["a.jpg"], "run": ["0"], "app": [], "calibrate": ["--out", "o"],
            "convert": ["--model", "m.keras", "--out", "o"]}[command]  # fmt: skip
    path = str(blazeface_model_path())
    assert parse(command, *base, "--detector", path).detector == path
    assert parse(command, *base, "--detector", "blazeface").detector == "blazeface"
    for bad in ("yolo", str(tmp_path / "missing.tflite")):
        with pytest.raises(SystemExit):
            parse(command, *base, "--detector", bad)


def test_run_with_a_detector_path_finds_the_same_faces(tmp_path, tiny_bundle, sample_photos):
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    outputs = []
    for detector in ("blazeface", str(blazeface_model_path())):
        out = tmp_path / f"{len(outputs)}.jsonl"
        code = main(["run", str(photo), "--bundle", str(tiny_bundle.path), "--detector",
                     detector, "--jsonl", str(out)])  # fmt: skip
        assert code == 0
        outputs.append(json.loads(out.read_text().splitlines()[0])["faces"])
    assert len(outputs[0]) == 1 and outputs[0] == outputs[1]


def test_verbose_is_taken_from_anywhere_before_a_double_dash():
    assert _take_verbose(["predict", "a.jpg", "--verbose"]) == (["predict", "a.jpg"], True)
    assert _take_verbose(["--verbose", "run", "0"]) == (["run", "0"], True)
    assert _take_verbose(["run", "--", "--verbose"]) == (["run", "--", "--verbose"], False)


def test_verbose_after_the_command_shows_the_hidden_lines(tmp_path, tiny_bundle, sample_photos):
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    args = ["predict", str(photo), "--bundle", str(tiny_bundle.path), "--out", "out"]
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", *args, "--verbose"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "XNNPACK delegate" in done.stderr, done.stderr


def test_input_size_default_comes_from_the_backbone_in_train_pack_and_calibrate():
    assert input_size_for("compact") == 48 and input_size_for("resnet50") == 112
    data = ("--data", "d", "--format", "folder")
    assert parse("train", *data, "--backbone", "compact").input_size == 48
    assert parse("train", *data).input_size == 112
    assert parse("train", *data, "--backbone", "compact", "--input-size", "64").input_size == 64
    assert parse("data", "pack", "d", "--format", "folder", "--out", "o",
                 "--backbone", "compact").input_size == 48  # fmt: skip
    assert parse("data", "pack", "d", "--format", "folder", "--out", "o").input_size == 112
    assert parse("calibrate", "--out", "o", "--backbone", "compact").input_size == 48
    assert parse("calibrate", "--out", "o").input_size == 112
    assert parse("calibrate", "--out", "o", "--bundle", "default").input_size is None  # its own


def test_calibrate_crops_at_the_backbones_size(tmp_path, write_face_folders):
    data = write_face_folders(tmp_path / "faces", 24, 0)
    out = tmp_path / "rep"
    assert main(["calibrate", "--data", str(data), "--format", "folder", "--backbone",
                 "compact", "--n", "16", "--out", str(out)]) == 0  # fmt: skip
    from affectlite.calibration.representative import RepresentativeSet

    assert RepresentativeSet.load(out).images.shape[1:] == (48, 48, 3)


def test_evaluate_takes_bundle_or_model_and_a_datasets_only_split(
    tmp_path, tiny_bundle, write_face_folders, capsys
):
    root = write_face_folders(tmp_path / "faces", 16, 0) / "train"  # class folders, no split
    reports = []
    for flag in ("--bundle", "--model"):
        out = tmp_path / f"{flag[2:]}.json"
        code = main(["evaluate", flag, str(tiny_bundle.path), "--data", str(root), "--format",
                     "folder", "--json", str(out)])  # fmt: skip
        assert code == 0
        assert f"{root} has one split, train; using it" in capsys.readouterr().err
        reports.append(json.loads(out.read_text()))
    assert reports[0]["n"] == 16 and reports[0]["data"]["split"] == "train"
    assert reports[0]["accuracy"] == reports[1]["accuracy"]
    with pytest.raises(SystemExit):
        main(["evaluate", "--bundle", "default", "--model", "default", "--data", str(root),
              "--format", "folder"])  # fmt: skip
