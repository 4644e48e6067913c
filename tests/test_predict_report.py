"""``affectlite predict`` reports on standard output: a line per photo (file, faces, each face's
label and confidence, or "no face") and a line per video."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np


def test_predict_prints_a_line_per_photo_and_per_video(tmp_path, tiny_bundle, sample_photos):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "b.png"), np.full((240, 320, 3), 128, np.uint8))  # no face
    frame = np.ascontiguousarray(sample_photos["astronaut"][20:340, 70:390])
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 320))
    for _ in range(4):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "affectlite", "predict", str(photos), str(video),
         "--bundle", str(tiny_bundle.path), "--out", str(out)],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    (face,) = records[0]["faces"]
    assert lines[0] == f"{photos / 'a.png'}: 1 face: {face['label']} {face['confidence']:.2f}" + (
        " (uncertain)" if face["uncertain"] else ""
    )
    assert lines[1] == f"{photos / 'b.png'}: no face"
    leading = {r["faces"][0]["label"] for r in records[2:]}
    assert len(records) == 6 and len(leading) >= 1
    assert lines[2].startswith(f"{video}: 4 frames, a face in 4; ")
    assert all(f"{label} in" in lines[2] for label in leading)
    assert len(lines) == 4 and lines[3].startswith("affectlite predict: 2 photo(s)")
