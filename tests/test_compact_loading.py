"""A saved compact model loads in a fresh process, as `affectlite convert MODEL` loads it."""

import subprocess
import sys

LOAD = (
    "import sys; from affectlite.convert.converter import load_keras_model; "
    "print(load_keras_model(sys.argv[1]).name)"
)


def test_saved_compact_model_loads_in_a_fresh_process(tmp_path):
    from affectlite.train.model import build_model

    path = tmp_path / "best.keras"
    build_model("compact", 32, "none").save(path)
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("affectlite_compact_32")
