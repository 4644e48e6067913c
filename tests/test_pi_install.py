"""The Raspberry Pi install: the per-release recipes and constraints resolve for 64-bit ARM.

``make pi-check`` installs and runs the kit in emulated arm64 Debian (minutes, not in CI). Here
pip only resolves the ``pi`` extra with each release's constraints for linux aarch64 and the
release's Python, so a dependency bump that breaks the Pi install fails the tests. It needs the
package index: when PyPI cannot be reached the test fails and says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

from affectlite.benchmarks import pi_check
from affectlite.edge_app import runtime

REPO = Path(__file__).resolve().parents[1]
# Raspberry Pi OS 64-bit: (Python, glibc) of each release (Debian 12 and 13).
PI_RELEASES = {"bookworm": ("3.11", 36), "trixie": ("3.13", 41)}
# Wheels fetched once and reused (pip download skips files already there).
WHEELS = Path.home() / ".cache" / "affectlite" / "pi-wheels"


def constraints_file(release: str) -> Path:
    """The ``-c`` file named by the release's recipe in docs/raspberry-pi.md."""
    found = re.search(r" -c src/(\S+)", pi_check.recipe(release))
    assert found, f"the {release} recipe installs without a constraints file"
    return REPO / found.group(1)


def pi_requirements(python: str) -> list[str]:
    """The core dependencies and the ``pi`` extra, markers evaluated for a Pi with ``python``
    (pip would evaluate them for this machine instead)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0")
    env.update(platform_machine="aarch64", sys_platform="linux", platform_system="Linux")
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for r in project["optional-dependencies"]["pi"]]
    kept = [r for r in requirements if r.marker is None or r.marker.evaluate(env)]
    return [f"{r.name}{r.specifier}" for r in kept]


def resolve(release: str) -> dict[str, str]:
    """``pip download`` of the release's Pi install (aarch64, its Python and glibc) into
    WHEELS/<release>, where files already fetched are reused; returns {name: version}."""
    python, glibc = PI_RELEASES[release]
    platforms = [f"manylinux_2_{minor}_aarch64" for minor in range(17, glibc + 1)]
    platforms.append("manylinux2014_aarch64")
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-input"]
    command += ["--python-version", python, "--dest", str(WHEELS / release), "--timeout", "20"]
    command += [arg for platform in platforms for arg in ("--platform", platform)]
    command += ["-c", str(constraints_file(release)), *pi_requirements(python)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        pytest.fail(
            f"pip could not resolve the {release} Pi install (aarch64, Python {python}); "
            f"if the index is unreachable, this test needs network access to PyPI:\n"
            f"{done.stderr.strip()[-1500:]}"
        )
    files = re.findall(r"(?:Saved|File was already downloaded) (\S+\.whl)", done.stdout)
    wheels = [parse_wheel_filename(Path(name).name) for name in files]
    return {str(name): str(version) for name, version, _, _ in wheels}


def pinned_numpy(release: str) -> str:
    found = re.search(r"^numpy==(\S+)$", constraints_file(release).read_text(), re.MULTILINE)
    assert found, f"{constraints_file(release)} does not pin apt's NumPy"
    return found.group(1)


@pytest.mark.parametrize("release", sorted(PI_RELEASES))
def test_pi_install_resolves_for_aarch64(release):
    versions = resolve(release)
    assert versions["numpy"] == pinned_numpy(release)
    assert {"ai-edge-litert", "kivy", "opencv-python-headless"} <= set(versions)
    assert "tensorflow" not in versions
    if release == "bookworm":  # OpenCV 4.12+ needs NumPy 2; apt's NumPy there is 1.24
        assert tuple(map(int, versions["opencv-python-headless"].split(".")[:2])) < (4, 12)


def test_pi_extra_keeps_numpy_1_on_bookworm_without_constraints():
    assert "numpy<2" in pi_requirements("3.11")
    assert "numpy<2" not in pi_requirements("3.13")


@pytest.mark.parametrize("release", sorted(PI_RELEASES))
def test_check_runs_the_documented_recipe_as_root_without_the_pi_archive(release):
    text = pi_check.recipe(release)
    assert "sudo apt install" in text and "python3-picamera2" in text
    guest = pi_check.guest_recipe(text)
    assert "sudo" not in guest and "picamera2" not in guest
    assert "--system-site-packages" in guest and "'./src[pi]'" in guest
    assert "python3-numpy" in pi_check.apt_packages(text)


def test_32_bit_arm_is_named_as_the_reason(monkeypatch):
    monkeypatch.setattr(runtime.platform, "machine", lambda: "armv7l")
    monkeypatch.setattr(runtime, "_CANDIDATES", (("x", "affectlite_no_such_module", "x"),))
    with pytest.raises(runtime.RuntimeUnavailable, match="32-bit ARM .armv7l.*64-bit"):
        runtime.runtime_info()


def test_compare_decides_on_the_top_label():
    def face(happy: float) -> dict:
        return {"label": "uncertain", "probabilities": {"happy": happy, "sad": 1 - happy}}

    same = pi_check.compare({"a.png": [face(0.6)]}, {"a.png": [face(0.59)]})
    assert same[0]["same_labels"] and same[0]["max_probability_diff"] == pytest.approx(0.01)
    flipped = pi_check.compare({"a.png": [face(0.51)]}, {"a.png": [face(0.49)]})
    assert not flipped[0]["same_labels"] and flipped[0]["x86"] == ["happy"]
    missing = pi_check.compare({"a.png": [face(0.6)]}, {"a.png": []})
    assert not missing[0]["same_labels"]


def test_guest_app_driver_shows_a_face_in_the_real_app(tmp_path, sample_photos, tiny_bundle):
    """The driver that `make pi-check` runs inside the arm64 root opens the real Kivy app
    (offscreen here), classifies a photo with a face and saves a screenshot."""
    import json
    import os

    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), sample_photos["astronaut"][..., ::-1])
    out = tmp_path / "app"
    command = [sys.executable, "-m", "affectlite.benchmarks.pi_guest", "app"]
    command += ["--bundle", str(tiny_bundle.path), "--source", str(photos), "--out", str(out)]
    env = {**os.environ, "SDL_VIDEODRIVER": "offscreen", "KIVY_NO_ARGS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "app.json").read_text())
    assert report["frozen"] and len(report["faces"]) == 1
    assert Path(report["screenshot"]).is_file()
    assert report["tensorflow_loaded"] is False
