"""The ``affectlite`` command as a new user meets it: ``--help`` is instant and harmless, a
missing bundle is one line, the README's Python example runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from affectlite.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
HELP = (
    "import json, sys\n"
    "from affectlite.cli import main\n"
    "try:\n"
    "    main([sys.argv[1], '--help'])\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = [m for m in ('tensorflow', 'keras', 'kivy') if m in sys.modules]\n"
    "print(json.dumps(heavy), file=sys.stderr)\n"
)


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a new user whose home folder is ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIVY_", "XDG_"))}
    env["HOME"] = str(home)
    return env


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_imports_neither_tensorflow_nor_kivy_and_writes_nothing(tmp_path, command):
    home = tmp_path / "home"
    home.mkdir()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HELP, command],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(home),
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f"affectlite {command}" in done.stdout  # the usage line
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    assert list(home.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert elapsed < 10, elapsed  # about 0.5 s when the machine is idle


def test_app_with_a_missing_bundle_is_one_line_and_exit_2(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", "app", "--bundle", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(home),
    )
    assert done.returncode == 2
    assert time.monotonic() - started < 20
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing" in lines[0] and "--bundle" in lines[0], done.stderr
    assert list(home.iterdir()) == []  # Kivy never started: no ~/.kivy


def test_app_with_an_altered_bundle_is_refused_before_the_window(tmp_path, tiny_bundle):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle.path, bundle)
    with open(bundle / "classifier.tflite", "ab") as handle:
        handle.write(b"tampered")
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", "app", "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(tmp_path),
    )
    assert done.returncode == 2 and "classifier.tflite" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def readme_python_example() -> str:
    """The first ``python`` code block of the README."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "README has no python example"
    return match.group(1)


def test_readme_python_api_example_runs(tmp_path, tiny_bundle, sample_photos):
    import cv2

    example = readme_python_example()
    code_lines = [line for line in example.splitlines() if line.strip()]
    assert len(code_lines) == 3 and "EmotionRecognizer()" in example
    # The structure on the tiny bundle (the shipped default bundle has its own tests).
    code = example.replace("EmotionRecognizer()", f"EmotionRecognizer({str(tiny_bundle.path)!r})")
    photo = cv2.cvtColor(sample_photos["grace_hopper"], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "photo.jpg"), photo)
    script = (
        "import sys\nsys.modules['tensorflow'] = None\n"
        + code
        + "import json\nprint(json.dumps([face.to_dict() for face in faces]))\n"
        + "assert 'kivy' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    (face,) = json.loads(done.stdout)
    assert len(face["box"]) == 4 and face["label"] and len(face["probabilities"]) == 8
    assert "XNNPACK" not in done.stderr


def test_import_affectlite_is_light():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, affectlite; heavy = ('tensorflow', 'kivy', 'cv2', 'ai_edge_litert'); "
            "print(affectlite.__version__, sorted(m for m in heavy if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split(maxsplit=1)[1].strip() == "[]", done.stdout


def test_verbose_shows_what_is_hidden_by_default(tmp_path, tiny_bundle, sample_photos):
    import cv2

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    args = ["predict", str(photo), "--bundle", str(tiny_bundle.path), "--out", "out", "--overwrite"]
    quiet = subprocess.run(
        [sys.executable, "-m", "affectlite", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    loud = subprocess.run(
        [sys.executable, "-m", "affectlite", "--verbose", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "XNNPACK" not in quiet.stderr and "XNNPACK delegate" in loud.stderr


NATIVE_NOISE = (
    "import os\n"
    "from affectlite.quiet import native_stderr\n"
    "with native_stderr():\n"
    "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
    "    os.write(2, b'I0000 00:00:1.2 123 cudart_stub.cc:31] Could not find cuda drivers\\n')\n"
    "    os.write(2, b'E0000 00:00:1.2 123 model.cc:9] a real error\\n')\n"
    "    os.write(2, b'something else\\n')\n"
    "    os.write(2, b'fully_quantize: 0, inference_type: 6, input_inference_type: INT8, '\n"
    "             b'output_inference_type: INT8\\n')\n"
)


@pytest.mark.parametrize("verbose", ["", "1"])
def test_native_noise_is_dropped_and_everything_else_kept(verbose):
    env = dict(os.environ, AFFECTLITE_VERBOSE=verbose)
    done = subprocess.run(
        [sys.executable, "-c", NATIVE_NOISE], capture_output=True, text=True, env=env
    )
    kept = done.stderr.splitlines()
    assert "something else" in kept and any("a real error" in line for line in kept)
    assert any("XNNPACK" in line for line in kept) == bool(verbose)
    assert any("cuda drivers" in line for line in kept) == bool(verbose)
    assert any("fully_quantize" in line for line in kept) == bool(verbose)


@pytest.mark.slow
def test_tensorflow_import_is_quiet_through_the_dispatcher():
    code = (
        "from affectlite.quiet import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "print(float(tf.constant(2.0) * 3))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0 and done.stdout.strip() == "6.0", done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("verbose", [False, True])
def test_opencv_camera_warnings_only_with_verbose(verbose):
    args = ["run", "97", "--max-retries", "1", "--retry-delay", "0.01"]
    # An earlier in-process command of this test session may have set the variable the kit
    # sets: a user's own OPENCV_LOG_LEVEL is theirs to keep, so this run starts without it.
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", *args, *(["--verbose"] if verbose else [])],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert "Cannot open camera 97" in done.stderr  # the kit's own line, always
    assert ("[ WARN" in done.stderr) == verbose, done.stderr


KERAS_FIT = (
    "import sys, warnings\n"
    "warnings.simplefilter('always')\n"
    "from affectlite.quiet import quiet_tensorflow, quiet_third_parties\n"
    "quiet_tensorflow()\n"
    "quiet_third_parties()\n"
    "import keras, numpy as np, tensorflow as tf\n"
    "model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
    "model.compile('sgd', 'mse')\n"
    "data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4))).batch(2)\n"
    "model.fit(data, epochs=1, verbose=0)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("verbose", ["", "1"])
def test_keras_shuffle_warning_only_with_verbose(verbose):
    env = dict(os.environ, AFFECTLITE_VERBOSE=verbose, KERAS_BACKEND="tensorflow")
    done = subprocess.run(
        [sys.executable, "-c", KERAS_FIT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert ("`shuffle=True` was passed" in done.stderr) == bool(verbose), done.stderr
