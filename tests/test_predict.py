"""``affectlite predict`` and the photo path of ``affectlite run``, on real photos (scikit-image's
astronaut, matplotlib's Grace Hopper), in subprocesses where TensorFlow cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

NO_TENSORFLOW = (
    "import sys\n"
    "sys.modules['tensorflow'] = None  # any import of TensorFlow now fails\n"
    "from affectlite.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def affectlite(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """``affectlite ARGS`` in a fresh interpreter with TensorFlow blocked."""
    command = [sys.executable, "-c", NO_TENSORFLOW, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample_photos) -> Path:
    """A folder with the astronaut (PNG) and Grace Hopper (matplotlib's own JPEG file)."""
    from matplotlib import cbook

    folder = tmp_path_factory.mktemp("photos")
    astronaut = cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "astronaut.png"), astronaut)
    hopper = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    (folder / "grace_hopper.jpg").write_bytes(hopper.read_bytes())
    return folder


def predict(bundle, out: Path, *sources: object) -> list[dict]:
    done = affectlite("predict", *sources, "--bundle", bundle.path, "--out", out)
    assert done.returncode == 0, done.stderr
    assert f"bundle {bundle.path}" in done.stderr and str(out) in done.stdout
    assert "XNNPACK" not in done.stderr and "absl" not in done.stderr
    return read_lines(out / "predictions.jsonl")


def test_predict_folder_and_single_photos_agree(tmp_path, tiny_bundle, photos, sample_photos):
    folder_lines = predict(tiny_bundle, tmp_path / "folder", photos)
    assert [Path(line["file"]).name for line in folder_lines] == [
        "astronaut.png",
        "grace_hopper.jpg",
    ]
    for line in folder_lines:
        (face,) = line["faces"]  # one face in each photo
        assert face["track_id"] is None and set(face) >= {"box", "label", "confidence"}
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        annotated = cv2.imread(str(tmp_path / "folder" / line["annotated"]))
        original = cv2.imread(line["file"])
        assert annotated.shape == original.shape
        # The box and bars are drawn: many pixels changed, most of the photo did not.
        changed = np.abs(annotated.astype(int) - original.astype(int)).max(axis=-1) > 60
        assert 0.005 < changed.mean() < 0.3, changed.mean()
    # Each photo alone gives exactly what it gave in the folder: no smoothing across photos,
    # one decoder.
    for line in folder_lines:
        name = Path(line["file"]).name
        (alone,) = predict(tiny_bundle, tmp_path / name, line["file"])
        assert alone["faces"] == line["faces"]
    # The two photos differ: the folder did not carry one face's probabilities into the next.
    first, second = (line["faces"][0]["probabilities"] for line in folder_lines)
    assert first != second


def test_run_gives_photos_the_same_faces_as_predict(tmp_path, tiny_bundle, photos):
    expected = {
        Path(line["file"]).name: line["faces"]
        for line in predict(tiny_bundle, tmp_path / "p", photos)
    }
    for source in (photos, photos / "grace_hopper.jpg"):
        out = tmp_path / "run.jsonl"
        out.unlink(missing_ok=True)  # an existing --jsonl is refused
        done = affectlite("run", "--source", source, "--bundle", tiny_bundle.path, "--jsonl", out)
        assert done.returncode == 0, done.stderr
        for line in read_lines(out):
            assert line["faces"] == expected[Path(line["file"]).name]


def test_python_api_matches_the_command(tmp_path, tiny_bundle, photos, sample_photos):
    from affectlite import EmotionRecognizer

    recognizer = EmotionRecognizer(bundle=tiny_bundle)
    lines = predict(tiny_bundle, tmp_path / "p", photos / "astronaut.png")
    (from_path,) = recognizer.predict(photos / "astronaut.png")
    (from_array,) = recognizer.predict(sample_photos["astronaut"])
    assert from_path.to_dict() == from_array.to_dict() == lines[0]["faces"][0]
    with pytest.raises(ValueError, match="RGB uint8"):
        recognizer.predict(sample_photos["astronaut"].astype(np.float32))


def test_predict_annotates_a_video_with_tracking(tmp_path, tiny_bundle, sample_photos):
    frame = np.ascontiguousarray(sample_photos["astronaut"][20:340, 70:390])
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 320))
    for _ in range(5):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    lines = predict(tiny_bundle, tmp_path / "out", video)
    assert [line["frame"] for line in lines] == list(range(5))
    assert {line["faces"][0]["track_id"] for line in lines} == {1}  # one face, followed
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (320, 320, 3)


def test_predict_keeps_going_past_a_bad_photo_and_says_so(tmp_path, tiny_bundle, photos):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    done = affectlite(
        "predict",
        tmp_path / "broken.jpg",
        photos / "astronaut.png",
        "--bundle",
        tiny_bundle.path,
        "--out",
        out,
    )
    assert done.returncode == 2 and "broken.jpg" in done.stderr
    broken, good = read_lines(out / "predictions.jsonl")
    assert "corrupt" in broken["error"] and broken["faces"] == []
    assert len(good["faces"]) == 1 and (out / good["annotated"]).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.jpg"], "no such file or folder"),
        (["pics/*.png"], "no file matches"),
        (["."], "no images"),
        (["{photo}", "--bundle", "missing"], "no bundle manifest"),
        (["{photo}", "--max-frames", "0"], "--max-frames must be at least 1"),
    ],
)
def test_predict_refuses_bad_input_in_one_line(tmp_path, photos, args, message):
    args = [arg.format(photo=photos / "astronaut.png") for arg in args]
    done = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, "predict", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_show_picks_a_window_that_can_open_here_or_says_why(monkeypatch, capsys):
    from affectlite.edge_app.predict import window_backend

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    assert window_backend(False) is None and capsys.readouterr().err == ""
    if sys.platform.startswith("linux"):
        assert window_backend(True) is None  # no display at all
        assert "no window" in capsys.readouterr().err
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")  # SDL has a display: Kivy can show
    assert window_backend(True) in ("opencv", "kivy")


def test_boxes_of_a_reduced_photo_stay_inside_the_file(tmp_path, sample_photos):
    """A 3001×3001 JPEG, decoded at 1/2 (libjpeg rounds up to 1501 px: a box clipped there and
    doubled would end at 3002), whose face is cut by the right edge: the boxes predict and run
    report in the file's pixels stay inside it."""
    crop = sample_photos["astronaut"][0:250, 20:270]  # the face cut at the right
    big = cv2.resize(crop, (3001, 3001), interpolation=cv2.INTER_CUBIC)
    photo = tmp_path / "big.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    done = affectlite("predict", photo, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    (line,) = read_lines(tmp_path / "out" / "predictions.jsonl")
    assert line["decoded_at"] == "1/2" and line["faces"]
    ran = affectlite("run", photo, "--jsonl", tmp_path / "run.jsonl", "--max-frames", "1")
    assert ran.returncode == 0, ran.stderr
    (frame,) = read_lines(tmp_path / "run.jsonl")
    for face in line["faces"] + frame["faces"]:
        x, y, w, h = face["box"]
        assert x >= 0 and y >= 0 and x + w <= 3001 and y + h <= 3001, face["box"]
    x, _, w, _ = line["faces"][0]["box"]
    assert x + w == 3001  # it did reach the edge
