"""The pipeline on real photos and the ``affectlite run`` runner, which is run in subprocesses
where TensorFlow cannot be imported (the tiny test bundle is built with TensorFlow here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlite.cli import main
from affectlite.edge_app.labels import LABELS
from affectlite.edge_app.pipeline import STAGES, FrameResult, Pipeline, PipelineConfig
from affectlite.edge_app.preprocess import crop_face
from affectlite.edge_app.runner import RunStats, run_loop
from affectlite.edge_app.sources import Backoff, ReconnectingSource, SourceError

NO_TENSORFLOW = (
    "import sys\n"
    "sys.modules['tensorflow'] = None  # any import of TensorFlow now fails\n"
    "sys.modules['keras'] = None\n"
    "from affectlite.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "assert sys.modules['tensorflow'] is None\n"
    "sys.exit(status)\n"
)


def affectlite_run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``affectlite run ARGS`` in a fresh interpreter with TensorFlow blocked."""
    command = [sys.executable, "-c", NO_TENSORFLOW, "run", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def fit(image: np.ndarray, width: int = 512, height: int = 600) -> np.ndarray:
    """The image on a grey canvas of a fixed size (a video needs one frame size)."""
    canvas = np.full((height, width, 3), 128, np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    canvas[:h, :w] = image[:h, :w]
    return canvas


def shift(image: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """The image moved by (dx, dy) pixels, the uncovered border filled by its edge."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (image.shape[1], image.shape[0])
    return cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REPLICATE)


def assert_valid_face(face: dict, width: int, height: int) -> None:
    x, y, w, h = face["box"]
    assert 0 <= x + w / 2 <= width and 0 <= y + h / 2 <= height and w > 24 and h > 24
    assert list(face["probabilities"]) == list(LABELS)
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["label"] in (*LABELS, "uncertain")
    assert face["uncertain"] == (face["label"] == "uncertain")
    assert 0 < face["score"] <= 1 and isinstance(face["track_id"], int)


# The pipeline, in this process -------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tiny_bundle) -> Pipeline:
    return Pipeline(tiny_bundle, PipelineConfig(num_threads=1))


def test_pipeline_classifies_the_face_in_a_photo(pipeline, sample_photos):
    pipeline.reset()
    image = sample_photos["grace_hopper"]
    result = pipeline.process(image)
    assert result.error is None and len(result.faces) == 1
    face = result.faces[0]
    detected = pipeline.detector.detect(image)[0]
    np.testing.assert_allclose(face.box, detected.box, atol=0.05 * detected.box[2])
    assert list(face.probabilities) == list(LABELS)
    # A new track shows the classifier's probabilities for the contract crop of its box.
    bundle = pipeline.bundle
    crop = crop_face(image, face.box, bundle.input_size, bundle.crop_policy)
    expected = pipeline.classifier.predict(crop[None])[0]
    np.testing.assert_allclose(list(face.probabilities.values()), expected, atol=1e-6)
    assert face.confidence == pytest.approx(expected.max(), abs=1e-6)
    assert list(result.timings_ms) == list(STAGES)
    assert all(v >= 0 for v in result.timings_ms.values())
    assert result.timings_ms["total"] >= result.timings_ms["detect"]


def test_pipeline_detects_on_a_lores_frame_and_maps_boxes_back(pipeline, sample_photos):
    image = sample_photos["astronaut"]
    pipeline.reset()
    full = pipeline.process(image).faces[0].box
    lores = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    pipeline.reset()
    mapped = pipeline.process(image, detect_frame=lores).faces[0].box
    np.testing.assert_allclose(mapped, full, atol=0.08 * full[2])


def test_pipeline_keeps_track_ids_on_a_moving_face(pipeline, sample_photos):
    pipeline.reset()
    image = sample_photos["astronaut"]
    first = pipeline.process(image).faces[0]
    for step in range(1, 6):
        faces = pipeline.process(shift(image, 6 * step)).faces
        # BlazeFace may add a borderline (score 0.5) false face elsewhere; follow the real one.
        (face,) = [f for f in faces if abs(f.box[1] - first.box[1]) < 10]
        assert face.track_id == first.track_id
        assert face.box[0] - first.box[0] == pytest.approx(6 * step, abs=4)


def test_pipeline_processes_only_the_largest_faces(tiny_bundle, face_mosaic):
    capped = Pipeline(tiny_bundle, PipelineConfig(num_threads=1, max_faces=3, detect_width=640))
    everything = capped.detector.__class__(tiny_bundle.detector_path, 1, max_faces=30)
    found = everything.detect(face_mosaic)
    assert len(found) > 3
    faces = capped.process(face_mosaic).faces
    assert len(faces) == 3
    np.testing.assert_allclose([f.box for f in faces], [d.box for d in found[:3]], atol=1.0)


def test_pipeline_skips_tiny_faces(tiny_bundle, sample_photos):
    """In a 100×100 frame BlazeFace still finds the astronaut (about 18 px wide); faces under
    ``min_face`` pixels are not classified."""
    small = cv2.resize(sample_photos["astronaut"], (100, 100), interpolation=cv2.INTER_AREA)
    strict = Pipeline(tiny_bundle, PipelineConfig(num_threads=1, min_face=24))
    (found,) = strict.detector.detect(small)
    assert found.box[2] < 24
    assert strict.process(small).faces == []
    lenient = Pipeline(tiny_bundle, PipelineConfig(num_threads=1, min_face=8))
    assert len(lenient.process(small).faces) == 1


@pytest.mark.parametrize("value", [0, 3, 252, 255])
def test_pipeline_survives_dark_and_overexposed_frames(pipeline, value):
    result = pipeline.process(np.full((480, 640, 3), value, np.uint8))
    assert result.faces == [] and result.error is None


def test_pipeline_config_rejects_bad_values():
    with pytest.raises(ValueError, match="max_faces must be at least 1, got 0"):
        PipelineConfig(max_faces=0)
    with pytest.raises(ValueError, match="smoothing"):
        PipelineConfig(smoothing=1.5)
    with pytest.raises(ValueError, match="'yolo'"):
        PipelineConfig(detector="yolo")


class UnpluggedCamera:
    """Test double (not a real camera): serves ``frames``, fails once after ``fail_after`` as
    if the cable were pulled, refuses one reopening, then serves the rest."""

    name = "test camera"
    live = True

    def __init__(self, frames: list[np.ndarray], fail_after: int) -> None:
        self.frames = list(frames)
        self.fail_after = fail_after
        self.served = 0
        self.state = "up"

    def open(self) -> None:
        if self.state == "down":
            self.state = "coming back"
            raise SourceError("test camera: device not found")
        self.state = "up"

    def read(self) -> np.ndarray | None:
        if self.served == self.fail_after and self.state == "up" and self.fail_after >= 0:
            self.fail_after, self.state = -1, "down"
            raise SourceError("test camera stopped delivering frames")
        if self.served == len(self.frames):
            return None
        self.served += 1
        return self.frames[self.served - 1]

    def close(self) -> None:
        pass

    def detection_frame(self) -> None:
        return None


def test_run_loop_reports_an_unplugged_camera_and_carries_on(pipeline, sample_photos):
    pipeline.reset()
    lines: list[dict] = []
    stats = RunStats()

    def report(message: str) -> None:
        lines.append({"frame": None, **FrameResult.failure(message).to_dict()})

    frames = [sample_photos["astronaut"]] * 4
    source = ReconnectingSource(UnpluggedCamera(frames, 2), Backoff(0.01, 0.05), report)
    with source:
        run_loop(pipeline, source, lines.append, stats)
    errors = [line["error"] for line in lines]
    assert errors[:2] == [None, None] and errors[-2:] == [None, None]
    assert errors[2].startswith("test camera stopped delivering frames. Retrying in 0.01 s")
    assert errors[3].startswith("test camera: device not found")
    assert [line["frame"] for line in lines] == [0, 1, None, None, 2, 3]
    assert all(len(line["faces"]) == 1 for line in lines if line["error"] is None)
    assert stats.frames == 4


RSS_GROWTH = (
    "import numpy as np\n"
    "from affectlite.edge_app.runner import rss_bytes\n"
    "before = rss_bytes()\n"
    "block = np.ones(64 << 20, np.uint8)  # 64 MiB, touched\n"
    "print(rss_bytes() - before)\n"
)


def test_rss_bytes_is_this_process_resident_memory():
    # A fresh interpreter: in this one, other tests' threads may free memory meanwhile.
    done = subprocess.run([sys.executable, "-c", RSS_GROWTH], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 48 << 20 < int(done.stdout) < 96 << 20


# The runner, in subprocesses without TensorFlow --------------------------------------------


def test_runner_on_a_video_of_real_photos(tmp_path, tiny_bundle, sample_photos):
    astronaut, hopper = fit(sample_photos["astronaut"]), fit(sample_photos["grace_hopper"])
    frames = [shift(astronaut, dx=20 * i) for i in range(3)]
    frames += [shift(hopper, dy=20 * i) for i in range(3)]
    video = write_video(tmp_path / "photos.avi", frames)
    out = tmp_path / "out" / "faces.jsonl"
    args = ["--source", video, "--bundle", tiny_bundle.path, "--jsonl", out]
    done = affectlite_run(*args, "--threads", "1", "--rss-every", "2", "--threshold", "0.1")
    assert done.returncode == 0, done.stderr
    assert not out.with_name("faces.jsonl.partial").exists()
    lines = read_lines(out)
    assert [line["frame"] for line in lines] == list(range(6))
    for line in lines:
        assert line["error"] is None and len(line["faces"]) == 1
        assert_valid_face(line["faces"][0], 512, 600)
        assert list(line["timings_ms"]) == list(STAGES)
        assert ("rss_mb" in line) == (line["frame"] % 2 == 0)
    assert len({line["faces"][0]["track_id"] for line in lines[:3]}) == 1
    # Box centres follow the motion to within BlazeFace's precision (about 5 % of the face).
    centres = [x + w / 2 for x, _, w, _ in (line["faces"][0]["box"] for line in lines[:3])]
    assert np.subtract(centres, centres[0]) == pytest.approx([0, 20, 40], abs=10)
    assert "6 frames, 6 faces" in done.stderr


def test_runner_on_a_folder_with_no_face_dark_and_corrupt_images(
    tmp_path, tiny_bundle, sample_photos
):
    folder = tmp_path / "images"
    folder.mkdir()
    images = {
        "a_astronaut.png": sample_photos["astronaut"],
        "b_coffee.png": sample_photos["coffee"],
        "c_dark.png": np.zeros((240, 320, 3), np.uint8),
        "d_overexposed.png": np.full((240, 320, 3), 255, np.uint8),
    }
    for name, image in images.items():
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "faces.jsonl"
    done = affectlite_run("--source", folder, "--bundle", tiny_bundle.path, "--jsonl", out)
    assert done.returncode == 0, done.stderr
    lines = read_lines(out)
    frames = [line for line in lines if line["frame"] is not None]
    assert [Path(line["file"]).name for line in frames] == list(images)
    assert [len(line["faces"]) for line in frames] == [1, 0, 0, 0]
    (skipped,) = [line for line in lines if line["frame"] is None]  # reported in the stream
    assert Path(skipped["file"]).name == "e_corrupt.jpg" and "e_corrupt.jpg" in skipped["error"]
    assert "skipped 1 unreadable image" in done.stderr and "e_corrupt.jpg" in done.stderr


def test_runner_processes_only_max_faces_of_thirty(tmp_path, tiny_bundle, face_mosaic):
    folder = tmp_path / "crowd"
    folder.mkdir()
    cv2.imwrite(str(folder / "crowd.png"), cv2.cvtColor(face_mosaic, cv2.COLOR_RGB2BGR))
    out = tmp_path / "faces.jsonl"
    args = ["--source", folder, "--bundle", tiny_bundle.path, "--jsonl", out]
    done = affectlite_run(*args, "--max-faces", "3", "--detect-width", "640")
    assert done.returncode == 0, done.stderr
    (line,) = read_lines(out)
    areas = [face["box"][2] * face["box"][3] for face in line["faces"]]
    assert len(areas) == 3 and areas == sorted(areas, reverse=True)


def test_runner_reports_a_missing_camera_and_backs_off(tmp_path, tiny_bundle):
    index = next(i for i in range(8, 64) if not Path(f"/dev/video{i}").exists())
    out = tmp_path / "faces.jsonl"
    args = ["--source", index, "--bundle", tiny_bundle.path, "--jsonl", out]
    done = affectlite_run(*args, "--retry-delay", "0.1", "--max-retries", "3")
    assert done.returncode == 1
    lines = read_lines(out)
    assert all(line["faces"] == [] and line["frame"] is None for line in lines)
    assert all(f"camera {index}" in line["error"] for line in lines)
    assert "gave up after 3" in lines[-1]["error"]
    gaps = np.diff([line["timestamp"] for line in lines[:4]])
    delays = np.array([0.1, 0.2, 0.4])  # doubling back-off
    assert (gaps >= delays - 0.005).all() and (gaps < delays + 0.25).all(), gaps


def wait_for_first_line(process: subprocess.Popen, partial: Path) -> None:
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 0):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no output within 60 s"
        time.sleep(0.05)


def test_runner_stops_cleanly_on_sigterm(tmp_path, tiny_bundle, sample_photos):
    video = write_video(tmp_path / "loop.avi", [fit(sample_photos["astronaut"])] * 2)
    out = tmp_path / "faces.jsonl"
    args = ["--source", video, "--bundle", tiny_bundle.path, "--jsonl", out, "--loop"]
    command = [sys.executable, "-c", NO_TENSORFLOW, "run", *map(str, args)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    partial = out.with_name("faces.jsonl.partial")
    wait_for_first_line(process, partial)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = read_lines(out)
    assert len(lines) >= 1 and not partial.exists()
    assert f"{len(lines)} frames" in stderr


def test_runner_stops_on_sigterm_while_waiting_for_a_camera(tmp_path, tiny_bundle):
    index = next(i for i in range(8, 64) if not Path(f"/dev/video{i}").exists())
    out = tmp_path / "faces.jsonl"
    args = ["--source", index, "--bundle", tiny_bundle.path, "--jsonl", out]
    args += ["--retry-delay", 60, "--max-retry-delay", 60]
    command = [sys.executable, "-c", NO_TENSORFLOW, "run", *map(str, args)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    partial = out.with_name("faces.jsonl.partial")
    wait_for_first_line(process, partial)
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert time.monotonic() - sent < 10  # not the 60 s back-off
    (line,) = read_lines(out)
    assert f"camera {index}" in line["error"] and "Retrying in 60 s" in line["error"]


# Several sources in one run ---------------------------------------------------------------


@pytest.fixture
def two_clips_and_photos(tmp_path, sample_photos) -> list[Path]:
    """Two videos of the same moving face at the same places (a tracker that is not reset
    between them would carry its track and smoothing into the second) and a folder holding a
    photo with a face and one without."""
    frames = [shift(fit(sample_photos["astronaut"]), dx=20 * i) for i in range(3)]
    first = write_video(tmp_path / "first.avi", frames)
    second = write_video(tmp_path / "second.avi", frames)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("grace_hopper", "coffee"):
        image = cv2.cvtColor(sample_photos[name], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{name}.png"), image)
    return [first, second, folder]


def test_runner_reads_several_sources_one_after_another(
    tmp_path, tiny_bundle, two_clips_and_photos
):
    first, second, folder = two_clips_and_photos
    out = tmp_path / "faces.jsonl"
    args = [first, second, folder, "--bundle", tiny_bundle.path, "--jsonl", out]
    done = affectlite_run(*args, "--threads", "1", "--max-frames", "2")
    assert done.returncode == 0, done.stderr
    lines = read_lines(out)
    by_source = {str(first): [], str(second): []}
    for line in lines[:4]:
        by_source[line["source"]].append(line)
    assert [line["frame"] for line in by_source[str(first)]] == [0, 1]  # --max-frames each
    assert [line["frame"] for line in by_source[str(second)]] == [0, 1]
    photos = lines[4:]
    assert [Path(line["file"]).name for line in photos] == ["coffee.png", "grace_hopper.png"]
    assert [len(line["faces"]) for line in photos] == [0, 1]
    assert photos[1]["faces"][0]["track_id"] is None and "source" not in photos[1]
    tracks = [{face["track_id"] for line in lines for face in line["faces"]} for lines in
              by_source.values()]  # fmt: skip
    assert len(tracks[0]) == len(tracks[1]) == 1 and not tracks[0] & tracks[1]
    # The same frames, tracked and smoothed afresh: the same probabilities as the first clip's.
    for a, b in zip(*by_source.values(), strict=True):
        np.testing.assert_allclose(
            list(a["faces"][0]["probabilities"].values()),
            list(b["faces"][0]["probabilities"].values()),
            atol=1e-6,
        )
    assert "6 frames, 5 faces" in done.stderr


def test_runner_reports_a_bad_source_and_reads_the_others(
    tmp_path, tiny_bundle, two_clips_and_photos
):
    first, _, folder = two_clips_and_photos
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "faces.jsonl"
    args = [first, broken, "nowhere.mp4", folder, "--bundle", tiny_bundle.path, "--jsonl", out]
    done = affectlite_run(*args, "--threads", "1")
    assert done.returncode == 2, done.stderr
    lines = read_lines(out)  # complete: renamed from .partial
    assert [line.get("source") for line in lines[:3]] == [str(first)] * 3
    failed = [line for line in lines if line["frame"] is None]
    assert [line["source"] for line in failed] == [str(broken), "nowhere.mp4"]
    assert all(line["faces"] == [] and line["error"] for line in failed)
    assert "cannot decode" in failed[0]["error"] and "no such file" in failed[1]["error"]
    assert [Path(line["file"]).name for line in lines[5:]] == ["coffee.png", "grace_hopper.png"]
    errors = [line for line in done.stderr.splitlines() if "broken.avi" in line]
    assert len(errors) == 1 and "nowhere.mp4" in done.stderr
    assert "5 frames" in done.stderr and "2 source errors" in done.stderr


def test_runner_stops_on_sigterm_during_the_second_source(tmp_path, tiny_bundle, sample_photos):
    face = fit(sample_photos["astronaut"], 320, 240)
    first = write_video(tmp_path / "first.avi", [face] * 2)
    second = write_video(tmp_path / "long.avi", [shift(face, dx=i % 7) for i in range(1500)])
    out = tmp_path / "faces.jsonl"
    args = [first, second, "--bundle", tiny_bundle.path, "--jsonl", out, "--threads", "1"]
    command = [sys.executable, "-c", NO_TENSORFLOW, "run", *map(str, args)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    partial = out.with_name("faces.jsonl.partial")
    deadline = time.monotonic() + 60
    while str(second) not in (partial.read_text() if partial.exists() else ""):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the second source was not reached within 60 s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert not out.exists()
    lines = read_lines(partial)
    assert [line["source"] for line in lines[:2]] == [str(first)] * 2
    assert lines[-1] == {"event": "interrupted", "signal": "SIGTERM", "frames": len(lines) - 1}
    assert 2 < len(lines) - 1 < 1502 and "incomplete" in stderr


def test_runner_never_writes_over_a_file_of_any_source(tmp_path, tiny_bundle, two_clips_and_photos):
    first, _, folder = two_clips_and_photos
    target = folder / "coffee.png"
    before = target.read_bytes()
    args = [first, folder, "--bundle", tiny_bundle.path, "--jsonl", target, "--overwrite"]
    done = affectlite_run(*args)
    assert done.returncode == 2 and "is one of the source's files" in done.stderr
    assert target.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nowhere.mp4"], "no such file or folder"),
        (["0", "1", "--loop"], "--loop repeats one SOURCE; got 2"),
        (["--source", "0", "--max-faces", "0"], "max_faces must be at least 1, got 0"),
        (["--source", "0", "--max-frames", "0"], "--max-frames must be at least 1, got 0"),
        (["--source", "0", "--detector", "haar"], "Haar"),
    ],
)
def test_runner_rejects_bad_input_with_exit_2(tmp_path, tiny_bundle, capsys, args, message):
    if "haar" in args and hasattr(cv2, "CascadeClassifier"):
        pytest.skip("this OpenCV has Haar cascades")
    out = tmp_path / "faces.jsonl"
    status = main(["run", *args, "--bundle", str(tiny_bundle.path), "--jsonl", str(out)])
    assert status == 2 and message in capsys.readouterr().err
    assert not out.exists() and not out.with_name("faces.jsonl.partial").exists()


def test_runner_refuses_a_missing_bundle_and_show_without_gui(tmp_path, tiny_bundle, capsys):
    assert main(["run", "--source", "0", "--bundle", str(tmp_path / "nobundle")]) == 2
    assert "no bundle manifest" in capsys.readouterr().err
    if "GUI:                           NONE" not in cv2.getBuildInformation():
        return
    assert main(["run", "--source", "0", "--bundle", str(tiny_bundle.path), "--show"]) == 2
    assert "without one (opencv-python-headless)" in capsys.readouterr().err
