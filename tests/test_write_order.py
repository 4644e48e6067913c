"""Order of writes and untrusted model files (issue 13): ``convert`` puts its report in place
only with the bundle, ``bench`` saves its numbers before plotting, and legacy ``.h5`` models
are refused unless asked for."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from affectlite.cli import main
from affectlite.convert.converter import load_keras_model
from affectlite.convert.export import BundleOptions, convert_to_bundle
from affectlite.convert.quantization import QuantizationConfig
from affectlite.edge_app.labels import LABELS
from affectlite.errors import InputError


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(2, 3, strides=4),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(LABELS)),
        ]
    )


def test_convert_writes_no_report_when_the_bundle_cannot_be_written(tiny_model, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    report = tmp_path / "report"
    with pytest.raises(OSError):
        convert_to_bundle(tiny_model, QuantizationConfig.for_float32(), tmp_path / "file" / "b",
                          options=BundleOptions(report_dir=report))  # fmt: skip
    assert not (report / "conversion.json").exists()  # (success: see test_convert.py)


def test_legacy_h5_models_are_refused_unless_allowed(tiny_model, tmp_path, capsys):
    path = tmp_path / "model.h5"
    tiny_model.save(path)
    with pytest.raises(InputError, match="legacy HDF5 .* pass --allow-legacy-h5"):
        load_keras_model(path)
    assert load_keras_model(path, allow_legacy_h5=True).output_shape == (None, len(LABELS))
    faces = tmp_path / "faces" / "neutral"
    faces.mkdir(parents=True)
    cv2.imwrite(str(faces / "face.png"), np.full((48, 48, 3), 128, np.uint8))
    data = ["--data", str(faces.parent), "--format", "folder", "--split", "train"]
    assert main(["evaluate", "--model", str(path), *data]) == 2
    assert "pass --allow-legacy-h5" in capsys.readouterr().err
    assert (
        main(
            [
                "convert",
                "--model",
                str(path),
                "--mode",
                "float32",
                "--skip-verify",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )
    assert "pass --allow-legacy-h5" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_saves_its_numbers_before_plotting_and_a_failed_plot_is_a_warning(
    tiny_bundle, tmp_path, capsys
):
    out = tmp_path / "results"
    (out / "stages.png").mkdir(parents=True)  # the first plot cannot be saved
    args = ["bench", "--bundle", str(tiny_bundle.path), "--threads", "1", "--runs", "2"]
    args += ["--warmup", "0", "--frames", "1", "--frame-size", "160x120", "--no-probe"]
    assert main([*args, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning: plots not saved" in captured.err
    assert "bundle@1t" in captured.out  # the table was printed
    doc = json.loads((out / "bench.json").read_text())
    assert [variant["name"] for variant in doc["variants"]] == ["bundle@1t"]
    assert (out / "bench.md").is_file() and Path(out / "stages.png").is_dir()
