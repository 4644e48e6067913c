"""Bundles by name: ``resolve_bundle`` and ``shipped_bundles``, a second named bundle selected
in predict, evaluate and the app, and every ``edge_app/models/<name>`` folder in the wheel.

The second bundle is the ``tiny_bundle`` copied into a temporary ``AFFECTLITE_BUNDLES`` folder
under the name ``second``; no fake bundle is ever written into ``edge_app/models``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import pytest
from helpers import NO_TENSORFLOW

from affectlite.edge_app import bundle as bundle_module
from affectlite.edge_app.bundle import (
    BUNDLES_ENV,
    DEFAULT_BUNDLE,
    MODELS_DIR,
    BundleError,
    load_bundle,
    resolve_bundle,
    shipped_bundles,
)

REPO = Path(__file__).resolve().parents[1]


KIVY_PANEL = """
import json
from kivy.config import ConfigParser
from kivy.uix.settings import Settings, SettingOptions, SettingPath
from affectlite.edge_app.app import DEFAULTS, SECTION, settings_panel

config = ConfigParser()
config.setdefaults(SECTION, dict(DEFAULTS) | {"bundle": "second"})
settings = Settings()
settings.add_json_panel("affectlite", config, data=json.dumps(settings_panel()))
rows = [w for w in settings.walk() if isinstance(w, (SettingOptions, SettingPath))]
print([(type(w).__name__, w.title, w.value, getattr(w, "options", None))
       for w in rows if w.key == "bundle"])
"""


@pytest.fixture
def second(tmp_path, tiny_bundle, monkeypatch) -> Path:
    """The tiny bundle, installed by name as ``second`` in an ``AFFECTLITE_BUNDLES`` folder."""
    search = tmp_path / "bundles"
    shutil.copytree(tiny_bundle.path, search / "second")
    (search / "not-a-bundle").mkdir()  # a folder without bundle.json is not listed
    monkeypatch.setenv(BUNDLES_ENV, os.pathsep.join([str(tmp_path / "absent"), str(search)]))
    return search / "second"


def test_names_resolve_to_shipped_and_search_path_bundles(second, tmp_path, monkeypatch):
    assert shipped_bundles() == {"default": DEFAULT_BUNDLE, "second": second}
    assert resolve_bundle("second") == second and resolve_bundle(None) == DEFAULT_BUNDLE
    assert load_bundle(resolve_bundle("second")).input_size == 32
    # A path is a path, even when its last part is a bundle's name.
    assert resolve_bundle("./second") == Path("./second")
    assert resolve_bundle(str(tmp_path / "x" / "second")) == tmp_path / "x" / "second"
    # An unknown name stays a path; loading it says which names exist.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError, match="Bundles by name: default, second"):
        load_bundle(resolve_bundle("resnet5"))


def test_resnet50_where_it_is_not_installed_says_how_it_is_built(tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "default", models / "default")
    monkeypatch.setattr(bundle_module, "MODELS_DIR", models)
    monkeypatch.delenv(BUNDLES_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError, match="resnet50 is not installed here; it is built by make"):
        load_bundle(resolve_bundle("resnet50"))


def test_a_search_path_cannot_replace_a_shipped_bundle(second, tiny_bundle, tmp_path, monkeypatch):
    shutil.copytree(tiny_bundle.path, tmp_path / "shadow" / "default")
    monkeypatch.setenv(BUNDLES_ENV, str(tmp_path / "shadow"))
    assert resolve_bundle("default") == DEFAULT_BUNDLE == shipped_bundles()["default"]


def test_every_models_folder_is_a_shipped_name(monkeypatch, tmp_path, tiny_bundle):
    """Any edge_app/models/<name> with a bundle.json is selectable: here a copy of the package's
    models folder with a second bundle in it."""
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    shutil.copytree(tiny_bundle.path, models / "resnet50")
    monkeypatch.setattr(bundle_module, "MODELS_DIR", models)
    monkeypatch.delenv(BUNDLES_ENV, raising=False)
    assert set(shipped_bundles()) == {"default", "resnet50"}
    assert resolve_bundle("resnet50") == models / "resnet50"


def test_predict_selects_a_bundle_by_name(second, tmp_path, sample_photos):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    runs = {}
    for name in ("second", str(second)):
        out = tmp_path / f"out-{len(runs)}"
        done = subprocess.run(
            [sys.executable, "-c", NO_TENSORFLOW, "predict", str(photo), "--bundle", name,
             "--out", str(out), "--threads", "1"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"bundle {second}" in done.stderr
        lines = (out / "predictions.jsonl").read_text().splitlines()
        runs[name] = [json.loads(line)["faces"] for line in lines]
    assert runs["second"] == runs[str(second)] and runs["second"][0]  # the astronaut's face


def test_evaluate_selects_a_bundle_by_name(second, tmp_path, write_face_folders):
    faces = write_face_folders(tmp_path / "faces", 8, 16)
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", "evaluate", "--model", "second", "--data",
         str(faces), "--format", "folder", "--split", "val", "--json", str(report)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    scored = json.loads(report.read_text())
    assert scored["model"] == str(second) and scored["model_kind"] == "bundle"
    assert scored["n"] == 16


def test_app_settings_offer_and_open_a_bundle_by_name(second, tmp_path):
    from affectlite.edge_app import app

    panel = app.settings_panel()
    (chooser,) = [
        item for item in panel if item.get("type") == "options" and item["key"] == "bundle"
    ]
    assert chooser["options"] == ["default", "second"]
    settings = app.Settings.from_config(dict(app.DEFAULTS) | {"bundle": "second"})
    assert settings.bundle == second

    # Kivy builds the panel: the chooser lists the names, beside the folder picker.
    built = subprocess.run(
        [sys.executable, "-c", KIVY_PANEL], capture_output=True, text=True, timeout=120,
        env={**os.environ, "SDL_VIDEODRIVER": "offscreen", "KIVY_NO_ARGS": "1",
             "KIVY_HOME": str(tmp_path / "kivy")},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    assert built.stdout.splitlines()[-1] == (
        "[('SettingOptions', 'Bundle', 'second', ['default', 'second']), "
        "('SettingPath', 'Bundle folder', 'second', None)]"
    )

    # The real app, in a window: it builds its pipeline from the bundle named in its settings
    # (a bundle error would be its status line), then finds no camera 9 and keeps retrying.
    from test_app import run_app

    overrides = {"bundle": "second", "source": "9", "snapshot_dir": str(tmp_path / "snaps")}
    report = run_app(tmp_path, "lost", overrides)
    assert "camera 9" in report["status"] and "Retrying" in report["status"], report


def test_wheel_installs_every_models_folder(tmp_path, tiny_bundle):
    """A copy of the checkout with one more edge_app/models/<name>/ builds a wheel that holds
    it, with no change to pyproject.toml."""
    pytest.importorskip("setuptools", minversion="77")  # pyproject's build-system requirement
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    source = tmp_path / "checkout"
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    shutil.copytree(tiny_bundle.path, source / "edge_app" / "models" / "second")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "wheel"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    assert "is absent from the `packages` configuration" not in built.stderr
    (wheel,) = (tmp_path / "wheel").glob("affectlite-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundle in ("default", "second"):
        for file in ("bundle.json", "classifier.tflite", "face_detector.tflite"):
            assert f"affectlite/edge_app/models/{bundle}/{file}" in names, (bundle, file)
