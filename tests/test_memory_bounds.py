"""Memory is bounded before decoding (issue 22): ``affectlite predict`` on each listed input, in
its own subprocess (TensorFlow blocked), reports its peak resident memory (``VmHWM``).

| input | expected |
|---|---|
| 40 MP JPEG photo (7300×5479) | annotated; peak ≤ 300 MB |
| 4K MP4 video (3840×2160, 12 frames: past the decoder's warm-up) | annotated; peak ≤ 300 MB |
| 12000×12000 PNG | refused from its header; peak ≤ 300 MB |
| 12000×12000 GIF | refused from its header; peak ≤ 300 MB |
| 12000×12000 MJPEG AVI | refused from its container's size; peak ≤ 300 MB |

The large inputs are made in a subprocess, so their pixels never count against a measurement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT_MB = 300
MEASURE = (
    "import sys\n"
    "sys.modules['tensorflow'] = None\n"
    "from affectlite.cli import main\n"
    "from affectlite.edge_app.runner import peak_rss_bytes\n"
    "status = main(sys.argv[1:])\n"
    "print('PEAK', peak_rss_bytes() / 1e6, file=sys.stderr)\n"
    "sys.exit(status)\n"
)
MAKE = """
import sys
import cv2, numpy as np
from PIL import Image
folder = sys.argv[1]
coarse = np.random.default_rng(0).integers(40, 200, (54, 73, 3)).astype(np.uint8)
photo = cv2.resize(coarse, (7300, 5479), interpolation=cv2.INTER_CUBIC)
cv2.imwrite(f"{folder}/photo40mp.jpg", photo)
frame = cv2.resize(coarse, (3840, 2160), interpolation=cv2.INTER_CUBIC)
writer = cv2.VideoWriter(f"{folder}/uhd.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10, (3840, 2160))
for shift in range(12):
    writer.write(np.roll(frame, 7 * shift, axis=1))
writer.release()
Image.new("P", (12000, 12000), 0).save(f"{folder}/huge.gif")
writer = cv2.VideoWriter(f"{folder}/huge.avi", cv2.VideoWriter_fourcc(*"MJPG"), 5, (12000, 12000))
writer.write(np.zeros((12000, 12000, 3), np.uint8))
writer.release()
"""
CASES = {
    "photo40mp.jpg": 0,
    "uhd.mp4": 0,
    "huge.png": 2,
    "huge.gif": 2,
    "huge.avi": 2,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from test_run_safety import huge_png

    folder = tmp_path_factory.mktemp("large_inputs")
    subprocess.run([sys.executable, "-c", MAKE, folder], check=True, timeout=300)
    huge_png(folder / "huge.png", 12000)
    return folder


@pytest.mark.parametrize(("name", "status"), CASES.items())
def test_peak_memory_of_predict_is_bounded(inputs, tiny_bundle, tmp_path, name, status):
    out = tmp_path / "out"
    command = [sys.executable, "-c", MEASURE, "predict", inputs / name, "--out", out]
    done = subprocess.run(
        [*map(str, command), "--bundle", str(tiny_bundle.path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    peak = float(done.stderr.rsplit("PEAK", 1)[1])
    print(f"{name}: exit {done.returncode}, peak {peak:.0f} MB")
    assert done.returncode == status, done.stderr
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    if status == 0:
        assert all("error" not in line for line in lines) and lines
    else:
        (line,) = lines
        assert "refused, 12000×12000" in line["error"]
    assert peak <= LIMIT_MB, f"{name}: peak {peak:.0f} MB"
