"""Frame sources: real OpenCV video files and image folders; picamera2 and the Android camera
against recording test doubles of their APIs (those cannot exist on this machine)."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlite.edge_app.sources import (
    AndroidCameraSource,
    Backoff,
    ImageFolderSource,
    OpenCVSource,
    Picamera2Source,
    ReconnectingSource,
    SourceError,
    make_source,
    open_source,
)

COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30), (30, 220, 220)]


def write_video(path: Path, colours=COLOURS, size=(64, 48)) -> Path:
    """An MJPG .avi (works in opencv-python-headless) with one flat RGB colour per frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for rgb in colours:
        writer.write(np.full((size[1], size[0], 3), rgb[::-1], np.uint8))
    writer.release()
    return path


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


def read_all(source, limit: int = 100) -> list[np.ndarray]:
    frames = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_video_file_frames_are_rgb_then_end(tmp_path):
    with OpenCVSource(write_video(tmp_path / "clip.avi")) as source:
        frames = read_all(source)
        assert source.read() is None
    assert len(frames) == len(COLOURS)
    for frame, rgb in zip(frames, COLOURS, strict=True):
        assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
        np.testing.assert_allclose(mean_colour(frame), rgb, atol=12)


def test_video_file_loops(tmp_path):
    with OpenCVSource(write_video(tmp_path / "clip.avi"), loop=True) as source:
        frames = read_all(source, limit=12)
    assert len(frames) == 12
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(mean_colour(frame), COLOURS[i % len(COLOURS)], atol=12)


@pytest.mark.parametrize("name", ["one.avi", "one.mp4"])
def test_a_one_frame_video_loops(tmp_path, name):
    fourcc = "MJPG" if name.endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
    writer.write(np.full((48, 64, 3), COLOURS[0][::-1], np.uint8))
    writer.release()
    with OpenCVSource(tmp_path / name, loop=True) as source:
        frames = read_all(source, limit=4)
    assert len(frames) == 4  # it used to end after the first frame
    for frame in frames:
        np.testing.assert_allclose(mean_colour(frame), COLOURS[0], atol=12)


def test_reused_frames_are_decoded_into_one_array_and_stay_rgb(tmp_path):
    clip = write_video(tmp_path / "clip.avi")
    with OpenCVSource(clip, loop=True, reuse=True) as source:
        first = source.read()
        colours = [mean_colour(first)]
        for _ in range(2 * len(COLOURS) - 1):
            frame = source.read()
            assert frame is first  # one 25 MB buffer for a 4K video, not one per frame
            colours.append(mean_colour(frame))
    expected = [COLOURS[i % len(COLOURS)] for i in range(len(colours))]
    np.testing.assert_allclose(colours, expected, atol=12)


def test_missing_or_undecodable_video_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="nothere.avi: video file not found"):
        OpenCVSource(tmp_path / "nothere.avi").open()
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(SourceError, match="junk.avi: OpenCV cannot decode"):
        OpenCVSource(junk).open()


def write_folder(folder: Path) -> Path:
    folder.mkdir()
    for i, rgb in enumerate(COLOURS[:3]):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((20, 30, 3), rgb[::-1], np.uint8))
    (folder / "1b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_image_folder_reports_and_skips_corrupt_images(tmp_path, caplog):
    with caplog.at_level(logging.WARNING), ImageFolderSource(write_folder(tmp_path / "f")) as src:
        frames = read_all(src)
        names = [p.name for p in src.paths]
    assert names == ["0.png", "1.png", "1b_corrupt.jpg", "2.png"]
    assert len(frames) == 3
    for frame, rgb in zip(frames, COLOURS[:3], strict=True):
        np.testing.assert_array_equal(frame[0, 0], rgb)
    assert len(src.skipped) == 1 and "1b_corrupt.jpg" in src.skipped[0]
    assert "1b_corrupt.jpg" in caplog.text


def test_image_folder_loops_and_names_current_file(tmp_path):
    with ImageFolderSource(write_folder(tmp_path / "f"), loop=True) as source:
        names = []
        for _ in range(7):
            source.read()
            names.append(source.current_path.name)
    assert names == ["0.png", "1.png", "2.png", "0.png", "1.png", "2.png", "0.png"]
    assert len(source.skipped) == 1  # reported once, not once per loop


def test_folder_without_readable_images_ends_instead_of_spinning(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"garbage")
    with ImageFolderSource(folder, loop=True) as source:
        assert source.read() is None
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(empty).open()


def test_make_source_picks_the_source_kind(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    folder = write_folder(tmp_path / "f")
    assert isinstance(make_source("picamera2"), Picamera2Source)
    assert isinstance(make_source("android"), AndroidCameraSource)
    webcam = make_source("1")
    assert isinstance(webcam, OpenCVSource) and webcam.live and webcam.target == 1
    assert isinstance(make_source(str(folder)), ImageFolderSource)
    clip = make_source(str(video), loop=True)
    assert isinstance(clip, OpenCVSource) and clip.loop and not clip.live
    with pytest.raises(SourceError, match="no such file or folder"):
        make_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="does not take loop"):
        make_source("picamera2", loop=True)


def free_webcam_index() -> int:
    index = next(i for i in range(8, 64) if not Path(f"/dev/video{i}").exists())
    return index


def test_camera_missing_at_start_is_reported_not_raised():
    index = free_webcam_index()
    errors = []
    source = open_source(
        str(index), backoff=Backoff(0.01, 0.02, max_retries=2), on_error=errors.append
    )
    assert isinstance(source, ReconnectingSource)
    assert len(errors) == 1 and f"camera {index}" in errors[0] and "Retrying" in errors[0]
    with pytest.raises(SourceError, match="gave up after 2"):
        source.read()
    assert len(errors) == 3 and "No retries left" in errors[-1]
    source.close()


def test_file_source_reconnects_when_the_file_appears(tmp_path):
    """A real OpenCV source whose file is missing at first and written after two failures."""
    video = write_video(tmp_path / "made.avi")
    target = tmp_path / "late.avi"
    errors, times = [], []

    def on_error(message: str) -> None:
        errors.append(message)
        times.append(time.monotonic())
        if len(errors) == 3:
            shutil.copyfile(video, target)

    backoff = Backoff(initial=0.05, maximum=1.0)
    source = ReconnectingSource(OpenCVSource(target), backoff, on_error)
    with source:
        assert "late.avi: video file not found" in source.status
        frame = source.read()
        assert frame is not None and source.reconnects == 1
        assert source.status.endswith("connected")
    gaps = np.diff(times)
    assert gaps[0] >= backoff.delay(1) and gaps[1] >= backoff.delay(2)  # 0.05 s, then 0.1 s
    assert source.failures == 3


class FlakyCamera:
    """Test double (not a real camera): delivers frames, then fails as if unplugged, refuses
    to reopen ``refusals`` times, then works again. Records every call."""

    name = "flaky camera"
    live = True

    def __init__(self, frames_before_loss: int = 2, refusals: int = 2) -> None:
        self.calls: list[str] = []
        self.frames_before_loss = frames_before_loss
        self.refusals = refusals
        self.delivered = 0
        self.lost = False

    def open(self) -> None:
        self.calls.append("open")
        if self.lost and self.refusals > 0:
            self.refusals -= 1
            raise SourceError("flaky camera: no device")
        self.lost = False

    def read(self) -> np.ndarray:
        self.calls.append("read")
        if self.lost or self.delivered == self.frames_before_loss:
            self.lost = True
            self.delivered += 1
            raise SourceError("flaky camera stopped delivering frames")
        self.delivered += 1
        return np.full((4, 4, 3), self.delivered, np.uint8)

    def close(self) -> None:
        self.calls.append("close")

    def detection_frame(self) -> None:
        return None


def test_camera_unplugged_mid_run_recovers_without_raising():
    camera = FlakyCamera(frames_before_loss=2, refusals=2)
    errors = []
    source = ReconnectingSource(camera, Backoff(0.01, 0.05), errors.append)
    with source:
        values = [int(source.read()[0, 0, 0]) for _ in range(4)]
    assert values == [1, 2, 4, 5]  # read 3 was the failure; no exception reached the caller
    assert [e.split(". Retrying")[0] for e in errors] == [
        "flaky camera stopped delivering frames",
        "flaky camera: no device",
        "flaky camera: no device",
    ]
    assert source.failures == 3 and source.reconnects == 1
    assert camera.calls.count("open") == 4 and source.status.endswith("closed")


def test_close_from_another_thread_ends_a_long_wait():
    camera = FlakyCamera(frames_before_loss=0, refusals=100)
    source = ReconnectingSource(camera, Backoff(initial=30.0, maximum=60.0))
    source.open()
    threading.Timer(0.1, source.close).start()
    start = time.monotonic()
    assert source.read() is None
    assert time.monotonic() - start < 5


def test_backoff_grows_to_its_cap_and_rejects_nonsense():
    backoff = Backoff(initial=0.5, maximum=4.0)
    assert [backoff.delay(k) for k in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="initial=0"):
        Backoff(initial=0)


# picamera2 -------------------------------------------------------------------------------


def picamera_memory(rgb: np.ndarray, fmt: str, stride: int) -> np.ndarray:
    """What picamera2's make_array returns for ``rgb`` in ``fmt``: its format names give the
    32-bit word order, so "RGB888" holds B, G, R in memory; YUV keeps its row padding."""
    height, width = rgb.shape[:2]
    if fmt in ("RGB888", "BGR888"):
        return np.ascontiguousarray(rgb[..., ::-1] if fmt == "RGB888" else rgb)
    if fmt in ("XRGB8888", "XBGR8888"):
        colour = rgb[..., ::-1] if fmt == "XRGB8888" else rgb
        return np.dstack([colour, np.full((height, width), 255, np.uint8)])
    assert fmt == "YUV420"
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y, u, v = np.split(i420, [width * height, width * height * 5 // 4])
    padded = np.zeros(stride * height * 3 // 2, np.uint8)
    planes = [(y, width, stride, 0), (u, width // 2, stride // 2, stride * height)]
    planes.append((v, width // 2, stride // 2, stride * height + stride * height // 4))
    for plane, row, pitch, offset in planes:
        for r in range(len(plane) // row):
            padded[offset + r * pitch : offset + r * pitch + row] = plane[r * row : (r + 1) * row]
    return padded.reshape(height * 3 // 2, stride)


class RecordingPicamera2:
    """Test double of ``picamera2.Picamera2`` (the real one needs a Raspberry Pi camera):
    records calls and serves each configured stream from the class's ``scenes`` (RGB) in
    picamera2's memory layout, with 64 bytes of row padding on YUV streams."""

    instances: list[RecordingPicamera2] = []
    scenes: dict[str, np.ndarray] = {}

    def __init__(self, camera_num: int = 0) -> None:
        self.calls: list[tuple] = [("init", camera_num)]
        self.config: dict = {}
        self.fail_capture: Exception | None = None
        RecordingPicamera2.instances.append(self)

    def create_preview_configuration(self, **streams):
        self.calls.append(("create_preview_configuration", streams))
        return {name: dict(spec) for name, spec in streams.items()}

    def configure(self, config) -> None:
        self.calls.append(("configure", config))
        for spec in config.values():
            width = spec["size"][0]
            spec["stride"] = width + 64 if spec["format"].startswith("YUV") else width * 3
        self.config = config

    def start(self) -> None:
        self.calls.append(("start",))

    def stream_configuration(self, name: str = "main") -> dict:
        return self.config[name]

    @contextmanager
    def captured_request(self, wait=None, flush=None):
        self.calls.append(("captured_request", wait))
        if self.fail_capture is not None:
            raise self.fail_capture
        try:
            yield self
        finally:
            self.calls.append(("release",))

    def make_array(self, name: str) -> np.ndarray:  # CompletedRequest.make_array
        spec = self.config[name]
        width, height = spec["size"]
        scene = cv2.resize(self.scenes[name], (width, height), interpolation=cv2.INTER_NEAREST)
        return picamera_memory(scene, spec["format"], spec["stride"])

    def stop(self) -> None:
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))


def blocks(height: int, width: int) -> np.ndarray:
    """An RGB test card of flat 8×8 blocks, so 4:2:0 chroma subsampling loses nothing."""
    rng = np.random.default_rng(0)
    card = rng.integers(30, 220, size=(height // 8, width // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(card, 8, axis=0), 8, axis=1)


@pytest.fixture
def picamera():
    RecordingPicamera2.instances.clear()
    RecordingPicamera2.scenes = {"main": blocks(96, 128), "lores": blocks(48, 64)}
    return RecordingPicamera2


@pytest.mark.parametrize("main_format", ["RGB888", "BGR888", "XRGB8888", "XBGR8888"])
def test_picamera2_byte_order_gives_rgb(picamera, main_format):
    source = Picamera2Source((128, 96), (64, 48), main_format, "YUV420", picamera2_class=picamera)
    with source:
        frame = source.read()
        small = source.detection_frame()
    np.testing.assert_array_equal(frame, picamera.scenes["main"])
    assert small.shape == (48, 64, 3)  # row padding cut off
    assert np.abs(small.astype(int) - picamera.scenes["lores"]).max() <= 3  # YUV round trip
    (camera,) = picamera.instances
    names = " ".join(call[0] for call in camera.calls)
    assert names == (
        "init create_preview_configuration configure start captured_request release stop close"
    )
    streams = camera.calls[1][1]
    assert streams["main"] == {"size": (128, 96), "format": main_format}
    assert streams["lores"] == {"size": (64, 48), "format": "YUV420"}
    assert camera.calls[4] == ("captured_request", source.timeout)


def test_picamera2_capture_failure_is_a_source_error_and_reconnects(picamera):
    errors = []
    camera_source = Picamera2Source((128, 96), None, picamera2_class=picamera)
    with ReconnectingSource(camera_source, Backoff(0.01, 0.02), errors.append) as source:
        assert source.read() is not None
        first = picamera.instances[0]
        first.fail_capture = TimeoutError("no frame within 5 s")
        frame = source.read()
    np.testing.assert_array_equal(frame, picamera.scenes["main"])
    assert len(picamera.instances) == 2 and source.reconnects == 1
    assert len(errors) == 1 and "stopped delivering frames: no frame within 5 s" in errors[0]
    assert first.calls[-2:] == [("stop",), ("close",)]


@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None, reason="picamera2 here")
def test_picamera2_missing_says_how_to_install():
    with pytest.raises(SourceError, match="apt install python3-picamera2"):
        Picamera2Source().open()


# Android (Kivy camera provider) ----------------------------------------------------------


def nv21(rgb: np.ndarray) -> bytes:
    """Android preview bytes: the Y plane, then V and U interleaved at quarter resolution."""
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y, u, v = np.split(i420, [width * height, width * height * 5 // 4])
    return y.tobytes() + np.stack([v, u], axis=1).reshape(-1).tobytes()


class RecordingKivyAndroidCamera:
    """Test double of Kivy's ``CameraAndroid`` provider (needs an Android device): records
    calls; ``grab_frame`` serves NV21 bytes of ``scene`` after ``empty_grabs`` empty ones."""

    def __init__(self, index=0, resolution=(640, 480), stopped=True, scene=None, empty_grabs=0):
        self.calls = [("init", index, tuple(resolution), stopped)]
        self.resolution = tuple(resolution)
        self.scene = scene
        self.empty_grabs = empty_grabs

    def start(self):
        self.calls.append(("start",))

    def grab_frame(self):
        self.calls.append(("grab_frame",))
        if self.empty_grabs > 0 or self.scene is None:
            self.empty_grabs -= 1
            return None
        return nv21(self.scene)

    def stop(self):
        self.calls.append(("stop",))


class FakeTexture:
    """Test double of a Kivy ``Texture``: RGBA ``pixels``, bottom row first."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.size = (rgb.shape[1], rgb.shape[0])
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        self.pixels = rgba[::-1].tobytes()


class RecordingKivyTextureCamera:
    """Test double of a Kivy camera provider without ``grab_frame`` (desktop providers)."""

    def __init__(self, index=0, resolution=(640, 480), stopped=True):
        self.resolution = tuple(resolution)
        self.texture = None

    def start(self):
        pass

    def stop(self):
        pass


def test_android_nv21_frames_become_rgb_and_wait_for_the_first_frame():
    scene = blocks(48, 64)

    def factory(**kwargs):
        return RecordingKivyAndroidCamera(**kwargs, scene=scene, empty_grabs=3)

    source = AndroidCameraSource(1, (64, 48), camera_class=factory)
    with source:
        camera = source._camera
        frame = source.read()
    assert np.abs(frame.astype(int) - scene).max() <= 3
    assert camera.calls[0] == ("init", 1, (64, 48), True)
    assert camera.calls.count(("grab_frame",)) == 4 and camera.calls[-1] == ("stop",)


def test_android_rotation_and_lost_camera():
    scene = blocks(48, 64)
    source = AndroidCameraSource(
        0,
        (64, 48),
        rotation=90,
        timeout=0.05,
        camera_class=lambda **kw: RecordingKivyAndroidCamera(**kw, scene=scene),
    )
    with source:
        frame = source.read()
        assert frame.shape == (64, 48, 3)
        assert np.abs(frame.astype(int) - np.rot90(scene, k=-1)).max() <= 3
        source._camera.scene = None  # the preview stops delivering
        with pytest.raises(SourceError, match="no frame for 0.05 s"):
            source.read()


def test_android_texture_pixels_are_flipped_upright():
    scene = blocks(48, 64)
    source = AndroidCameraSource(0, (64, 48), camera_class=RecordingKivyTextureCamera)
    with source:
        source._camera.texture = FakeTexture(scene)
        np.testing.assert_array_equal(source.read(), scene)
