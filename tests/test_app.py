"""The Kivy app and its worker.

The worker is tested with real ``ReconnectingSource`` objects around small camera *test doubles*
(there is no camera here). The app itself is started for real, in a real SDL2 window with the
offscreen video driver (Mesa llvmpipe renders it; ``KIVY_GL_BACKEND=mock`` would draw nothing),
on a video made from real face photos and the ``tiny_bundle``, in a subprocess where TensorFlow
cannot be imported. The subprocess takes a screenshot that the tests check pixel by pixel.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlite.edge_app import overlay
from affectlite.edge_app.sources import (
    Backoff,
    ImageFolderSource,
    ReconnectingSource,
    SourceError,
)
from affectlite.edge_app.worker import LatestSlot, Worker

# Kivy, imported below through the app module, must leave Python logging alone and keep its
# files out of the home folder.
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
os.environ.setdefault("KIVY_HOME", tempfile.mkdtemp(prefix="affectlite-kivy-"))
os.environ.setdefault("KIVY_NO_ARGS", "1")

REPO = Path(__file__).resolve().parents[1]
MESA_HINT = (
    "The app test needs an OpenGL-capable SDL2 offscreen window: Mesa's llvmpipe via EGL "
    "(Debian/Ubuntu: apt-get install -y libgl1 libegl1 libgl1-mesa-dri libegl-mesa0)."
)


# --- test doubles ----------------------------------------------------------------------------
class CountingCamera:
    """Test double for a fast camera: frame ``i`` is filled with ``i % 256`` and carries ``i``
    in its first pixel row; records how many frames it delivered."""

    name = "counting camera"
    live = True

    def __init__(self, period: float = 0.002) -> None:
        self.period = period
        self.delivered = 0
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1

    def read(self) -> np.ndarray:
        time.sleep(self.period)
        frame = np.full((24, 32, 3), self.delivered % 256, np.uint8)
        frame[0, :4, 0] = np.frombuffer(np.uint32(self.delivered).tobytes(), np.uint8)
        self.delivered += 1
        return frame

    def close(self) -> None:
        self.closed += 1

    def detection_frame(self) -> None:
        return None


def frame_number(frame: np.ndarray) -> int:
    return int(np.frombuffer(frame[0, :4, 0].tobytes(), np.uint32)[0])


class UnpluggableCamera(CountingCamera):
    """Test double for a camera whose cable can be pulled: while ``unplugged`` is set, ``open``
    and ``read`` raise ``SourceError`` as the real OpenCV/picamera2 sources do."""

    name = "test camera"

    def __init__(self) -> None:
        super().__init__(period=0.01)
        self.unplugged = threading.Event()

    def open(self) -> None:
        if self.unplugged.is_set():
            raise SourceError(f"Cannot open {self.name}: not connected.")
        super().open()

    def read(self) -> np.ndarray:
        if self.unplugged.is_set():
            raise SourceError(f"{self.name} stopped delivering frames (unplugged?).")
        return super().read()


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def plain_annotate(frame, result, fps):
    return frame


# --- the single-slot holder and the worker ---------------------------------------------------
def test_latest_slot_keeps_only_the_newest_item():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take() is None
    for i in range(5):
        slot.put(i)
    assert len(slot) == 1
    assert slot.take() == 4
    assert slot.take() is None and len(slot) == 0
    assert (slot.puts, slot.dropped) == (5, 4)


def test_latest_slot_take_waits_for_a_put_from_another_thread():
    slot: LatestSlot[str] = LatestSlot()
    threading.Timer(0.05, slot.put, args=("frame",)).start()
    started = time.monotonic()
    assert slot.take(timeout=2.0) == "frame"
    assert time.monotonic() - started < 1.0
    assert slot.take(timeout=0.05) is None


def test_worker_skips_to_the_newest_frame_when_inference_is_slow():
    camera = CountingCamera(period=0.002)
    lags = []

    def slow_process(frame, detect_frame):
        lags.append(camera.delivered - 1 - frame_number(frame))  # frames newer than this one
        time.sleep(0.05)
        return frame_number(frame)

    worker = Worker(camera, slow_process, plain_annotate, max_capture_fps=500).start()
    assert wait_until(lambda: worker.processed >= 8)
    worker.stop()
    assert not worker.running and camera.closed == 1
    # Capture ran ~25x faster than inference, yet no backlog built up: every processed frame
    # was at most a few frames old when inference took it, and most frames were skipped.
    assert camera.delivered > 3 * worker.processed
    assert worker.frames.dropped > worker.processed
    assert max(lags) <= 5, lags  # a queue would lag by ~25 frames per processed frame
    assert len(worker.frames) <= 1


def test_worker_publishes_annotated_updates_in_capture_order():
    camera = CountingCamera(period=0.005)
    worker = Worker(camera, lambda frame, small: frame_number(frame), plain_annotate).start()
    seen = []
    deadline = time.monotonic() + 5
    while len(seen) < 5 and time.monotonic() < deadline:
        update = worker.latest()
        if update is not None:
            assert update.result == update.index == frame_number(update.frame)
            seen.append(update.index)
        time.sleep(0.02)
    worker.stop()
    assert len(seen) == 5 and seen == sorted(set(seen))


def test_lost_camera_shows_status_and_recovers():
    camera = UnpluggableCamera()
    source = ReconnectingSource(camera, Backoff(initial=0.05, maximum=0.2))
    worker = Worker(source, lambda frame, small: None, plain_annotate, stall_after=0.15)
    source.on_error = worker.source_failed
    worker.start()
    try:
        assert wait_until(lambda: worker.processed >= 3)
        assert worker.status == ""  # frames flow: nothing to report
        camera.unplugged.set()
        assert wait_until(lambda: "test camera stopped delivering frames" in worker.status)
        # Then the reconnection attempts fail too: the latest reason stays on screen while the
        # source waits to retry.
        assert wait_until(lambda: "reconnecting (attempt 2)" in worker.status)
        assert "Cannot open test camera: not connected" in worker.status
        assert worker.running
        stalled = worker.processed
        time.sleep(0.3)
        assert worker.running and worker.processed <= stalled + 1
        camera.unplugged.clear()
        assert wait_until(lambda: worker.processed >= stalled + 3)
        assert worker.status == ""
        assert source.reconnects >= 1
    finally:
        worker.stop()


def test_stop_ends_a_reconnection_wait_at_once():
    camera = UnpluggableCamera()
    camera.unplugged.set()
    source = ReconnectingSource(camera, Backoff(initial=30.0, maximum=30.0))
    worker = Worker(source, lambda frame, small: None, plain_annotate, stall_after=0.1).start()
    assert wait_until(lambda: "reconnecting (attempt 1)" in worker.status)
    started = time.monotonic()
    worker.stop()
    assert not worker.running
    assert time.monotonic() - started < 2.0


def test_inference_errors_are_shown_and_do_not_stop_the_worker():
    camera = CountingCamera(period=0.005)
    calls = []

    def flaky(frame, small):
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("interpreter exploded")
        return "ok"

    worker = Worker(camera, flaky, plain_annotate).start()
    try:
        assert wait_until(lambda: "inference failed: interpreter exploded" in worker.status)
        assert wait_until(lambda: worker.processed >= 2)
        assert "inference failed" not in worker.status
    finally:
        worker.stop()


def test_end_of_a_finite_source_is_reported(tmp_path, sample_photos):
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(sample_photos["coffee"], cv2.COLOR_RGB2BGR))
    source = ImageFolderSource(tmp_path)  # the real folder source, one image, no loop
    worker = Worker(source, lambda frame, small: frame.shape, plain_annotate).start()
    try:
        assert wait_until(lambda: "no frame (end of stream)" in worker.status)
        update = worker.latest()
        assert worker.processed == 1 and update.result == sample_photos["coffee"].shape
    finally:
        worker.stop()


def test_worker_rejects_bad_pacing():
    with pytest.raises(ValueError, match="max_capture_fps"):
        Worker(CountingCamera(), lambda f, s: None, max_capture_fps=0)


# --- app helpers (imported in-process; no window is opened) ----------------------------------
@pytest.fixture(scope="module")
def app_module():
    from affectlite.edge_app import app

    return app


def test_save_snapshot_writes_png_atomically(app_module, tmp_path, sample_photos):
    frame = sample_photos["astronaut"]
    path = app_module.save_snapshot(frame, tmp_path / "snaps")
    assert path.parent == tmp_path / "snaps" and path.suffix == ".png"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    saved = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(saved, frame)


def test_save_snapshot_leaves_nothing_when_writing_fails(app_module, tmp_path, monkeypatch):
    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)  # fault injection: the rename fails
    with pytest.raises(OSError, match="No space left"):
        app_module.save_snapshot(np.zeros((8, 8, 3), np.uint8), tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither a snapshot nor its temp file


def test_settings_parse_and_reject_bad_values(app_module, tmp_path):
    values = dict(app_module.DEFAULTS) | {"bundle": str(tmp_path), "threads": "2"}
    settings = app_module.Settings.from_config(values)
    assert settings.threads == 2 and settings.smoothing == 0.6 and settings.snapshot_dir is None
    assert app_module.Settings.from_config(values | {"threads": "0"}).threads is None
    assert settings.slide_seconds == 0.0
    assert app_module.Settings.from_config(values | {"slide_seconds": "2.5"}).slide_seconds == 2.5
    for key, bad in [
        ("threads", "two"),
        ("threads", "-1"),
        ("smoothing", "1.5"),
        ("rotation", "45"),
        ("slide_seconds", "-1"),
        ("slide_seconds", "soon"),
    ]:
        with pytest.raises(ValueError, match=key):
            app_module.Settings.from_config(values | {key: bad})


def test_cli_arguments_become_setting_overrides(app_module):
    parser = argparse.ArgumentParser()
    app_module.add_arguments(parser)
    args = parser.parse_args(
        [
            "--bundle",
            "b",
            "--source",
            "picamera2",
            "--threads",
            "3",
            "--detector",
            "haar",
            "--fullscreen",
        ]
    )
    assert app_module.overrides_from_args(args) == {
        "bundle": "b",
        "source": "picamera2",
        "threads": "3",
        "detector": "haar",
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--detector", "yolo"])


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--smoothing", "1.0"]])
def test_cli_rejects_bad_numbers_before_opening_a_window(app_module, argv, capsys):
    assert app_module.main(argv) == 2
    assert argv[0] in capsys.readouterr().err


NO_KIVY = textwrap.dedent(
    """
    import sys

    class NoKivy:  # as if only the train extra were installed: `import kivy` fails
        def find_spec(self, name, path=None, target=None):
            if name == "kivy" or name.startswith("kivy."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NoKivy())
    from affectlite.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def test_app_without_kivy_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run(
        [sys.executable, "-c", NO_KIVY, "app", "--bundle", "default"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    (line,) = [line for line in lines if "using the default bundle" not in line]
    assert "Kivy" in line and "pip install 'affectlite[edge]'" in line, line
    assert "Traceback" not in done.stderr


KIVY_NOISE = textwrap.dedent(
    """
    from affectlite.edge_app import ui  # Kivy's input providers load with the window below
    from kivy.core.window import Window
    from kivy.uix.textinput import TextInput

    TextInput(text="a text field asks for a cut buffer")
    Window.close()
    """
)


def test_kivy_start_up_noise_is_hidden_unless_verbose(tmp_path):
    """Kivy logs an ERROR with a traceback when libmtdev is missing, a CRITICAL when a text
    field finds no xclip/xsel and warnings when it writes a new config; none is the app's
    fault, so only --verbose shows them (AFFECTLITE_VERBOSE is what --verbose sets)."""
    env = dict(os.environ, SDL_VIDEODRIVER="offscreen", KIVY_NO_ARGS="1")
    env.pop("KIVY_LOG_MODE", None)
    env.pop("AFFECTLITE_VERBOSE", None)
    runs = {}
    for verbose in ("", "1"):
        done = subprocess.run(
            [sys.executable, "-c", KIVY_NOISE],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(env, AFFECTLITE_VERBOSE=verbose, KIVY_HOME=str(tmp_path / verbose)),
        )
        assert done.returncode == 0, f"{MESA_HINT}\n{done.stderr[-3000:]}"
        runs[verbose] = done.stderr
    noises = (
        "MTDev is not supported",
        "Unable to find any valuable Cutbuffer provider",
        "Older configuration version detected",
    )
    if not any(noise in runs["1"] for noise in noises):
        pytest.skip("this machine has libmtdev and xclip/xsel: Kivy makes no noise to hide")
    for noise in noises:
        assert noise not in runs[""], runs[""]
    assert "Traceback" not in runs[""], runs[""]


# --- the real app in a real window ------------------------------------------------------------
DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.modules["tensorflow"] = None  # importing TensorFlow now raises ImportError
    import numpy as np
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch
    from affectlite.edge_app import ui
    from affectlite.edge_app.ui import AffectliteApp

    job = json.loads(sys.argv[1])
    out = Path(job["out"])
    snaps = Path(job["overrides"]["snapshot_dir"])
    app = AffectliteApp(job["overrides"])
    report = {"ticks": 0}
    state = {"phase": "run", "start": time.monotonic()}

    def files():
        return sorted(p.name for p in snaps.glob("*")) if snaps.exists() else []

    def finish():
        report["elapsed"] = time.monotonic() - state["start"]
        app.stop()

    def tick(dt):
        report["ticks"] += 1
        worker, root = app.worker, app.root
        elapsed = time.monotonic() - state["start"]
        if elapsed > job["timeout"]:
            report["timed_out"] = True
            report["status"] = root.status_text
            return finish()
        if job["mode"] == "video":
            if state["phase"] == "run" and worker and worker.processed >= 6 and app.last_update:
                report["files_before_press"] = files()
                report["processed"] = worker.processed
                app.stop_worker()  # freeze the preview on the frame in app.last_update
                state["phase"] = "frozen"
            elif state["phase"] == "frozen":
                update = app.last_update
                report["screenshot"] = Window.screenshot(name=str(out / "screen.png"))
                np.save(out / "annotated.npy", update.frame)
                report["faces"] = [
                    {"box": [float(v) for v in f.box], "label": f.label}
                    for f in update.result.faces
                ]
                report["display_rect"] = list(root.preview.display_rect)
                report["preview_widget"] = [*root.preview.to_window(*root.preview.pos),
                                            *root.preview.size]
                report["window_size"] = list(Window.size)
                report["panel"] = {"title": root.title_text, "stats": root.stats_text,
                                   "bars": {b.name: [b.value, b.percent]
                                            for b in root.ids.bars.children}}
                report["largest"] = update.result.faces[0].probabilities
                root.ids.snapshot_button.trigger_action(0)  # the user presses Snapshot
                state["phase"] = "pressed"
            elif state["phase"] == "pressed":
                report["files_after_press"] = files()
                report["message"] = root.message_text
                finish()
        elif job["mode"] == "photo":
            photo(worker, root, elapsed)
        elif job["mode"] == "lost":
            lost(worker, root, elapsed)
        elif job["mode"] == "stills":
            stills(root, elapsed)

    def lost(worker, root, elapsed):
        phase = state["phase"]
        if phase == "run" and elapsed > 2.5:
            report["status"] = root.status_text
            report["worker_running"] = bool(worker and worker.running)
            report["screenshot"] = Window.screenshot(name=str(out / "screen.png"))
            report["window_size"] = list(Window.size)
            click(root.ids.snapshot_button)  # nothing to save yet: a transient message
            report["message"] = root.message_text
            state.update(phase="pressed", pressed=elapsed)
        elif phase == "pressed" and elapsed > state["pressed"] + ui.MESSAGE_SECONDS + 1:
            report["message_later"] = root.message_text  # cleared by now
            report["status_later"] = root.status_text  # the state lasts: still shown
            report["files"] = files()
            finish()

    def stills(root, elapsed):
        phase = state["phase"]
        update = app.last_update
        if phase == "run" and update is not None:
            report["shown"] = [shown(root, update)]
            report["worker"] = app.worker is not None
            report["next_button"] = [root.ids.context_button.text,
                                     root.ids.context_button.opacity]
            click(root.ids.context_button)  # the user presses Next
            state["phase"] = "next"
        elif phase == "next":
            report["shown"].append(shown(root, app.last_update))
            app.config.set("affectlite", "slide_seconds", "0.5")  # then the timer turns them
            app.restart_worker()
            state.update(phase="timer", timer=elapsed)
            report["timed"] = []
        elif phase == "timer":
            if not report["timed"] or report["timed"][-1] != root.source_text:
                report["timed"].append(root.source_text)
            if elapsed > state["timer"] + 2.4:
                finish()

    def shown(root, update):
        (face,) = update.result.faces
        return {"name": root.source_text, "title": root.title_text, "stats": root.stats_text,
                "track_id": face.track_id, "probabilities": face.probabilities}

    def click(widget):  # a real touch, down and up, at the widget's centre
        touch = UnitTestTouch(*widget.to_window(*widget.center))
        touch.touch_down()
        touch.touch_up()

    def photo(worker, root, elapsed):
        phase = state["phase"]
        if phase == "run" and worker and worker.processed >= 2:
            click(root.ids.open_photo_button)  # the user presses Open photo
            state["phase"] = "chooser"
        elif phase == "chooser" and app.chooser is not None:
            report["chooser_started_in"] = app.chooser.ids.files.path
            app.chooser.ids.files.path = job["photo_dir"]  # the user goes to the folder
            state["phase"] = "listing"
        elif phase == "listing":
            files = app.chooser.ids.files
            entries = [w for w in files.walk() if getattr(w, "path", None) == job["photo"]]
            if entries:
                rows = [w for w in files.walk() if hasattr(w, "locked")]  # the file rows
                report["listed"] = sorted(Path(w.path).name for w in rows if w.path != "../")
                click(entries[0])  # the user taps the photo's row
                state["phase"] = "selected"
        elif phase == "selected":
            report["selection"] = list(app.chooser.ids.files.selection)
            click(app.chooser.ids.open_button)  # and presses Open
            state.update(phase="opened", opened=elapsed)
        elif phase == "opened" and root.photo_mode and elapsed > state["opened"] + 1.0:
            update = app.last_update
            report["screenshot"] = Window.screenshot(name=str(out / "screen.png"))
            np.save(out / "annotated.npy", update.frame)
            report["faces"] = [
                {"box": [float(v) for v in f.box], "label": f.label, "track_id": f.track_id,
                 "probabilities": f.probabilities}
                for f in update.result.faces
            ]
            report["display_rect"] = list(root.preview.display_rect)
            report["window_size"] = list(Window.size)
            report["source_text"] = root.source_text
            report["title"] = root.title_text
            report["worker_in_photo_mode"] = app.worker is not None
            report["back_button"] = root.ids.context_button.text
            report["window_children"] = [type(c).__name__ for c in Window.children]
            click(root.ids.context_button)  # one tap back to the camera
            state["phase"] = "back"
        elif phase == "back":
            report["photo_mode_after_back"] = root.photo_mode
            report["worker_after_back"] = bool(app.worker and app.worker.running)
            click(root.ids.open_photo_button)  # the chooser again: in the photo's folder
            state["phase"] = "again"
        elif phase == "again" and app.chooser is not None:
            report["chooser_reopened_in"] = app.chooser.ids.files.path
            app.chooser.dismiss()
            finish()

    Clock.schedule_interval(tick, 0.1)
    app.run()
    report["tensorflow_loaded"] = sys.modules.get("tensorflow") is not None
    (out / "report.json").write_text(json.dumps(report))
    """
)


def run_app(
    tmp_path: Path, mode: str, overrides: dict, timeout: float = 40.0, extra: dict | None = None
) -> dict:
    """Runs the app in a subprocess with an offscreen window; returns the driver's report."""
    out = tmp_path / "out"
    out.mkdir()
    env = dict(
        os.environ,
        KIVY_NO_ARGS="1",
        KIVY_HOME=str(tmp_path / "kivy"),
        KIVY_NO_CONSOLELOG="1",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        SDL_VIDEODRIVER="offscreen",
        AFFECTLITE_THREADS="1",
    )
    env.pop("KIVY_GL_BACKEND", None)
    env.pop("KIVY_LOG_MODE", None)
    job = {"mode": mode, "out": str(out), "overrides": overrides, "timeout": timeout - 10}
    job |= extra or {}
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(job)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    report_path = out / "report.json"
    if completed.returncode != 0 or not report_path.exists():
        pytest.fail(
            f"app exited with {completed.returncode}. {MESA_HINT}\n"
            f"stderr tail:\n{completed.stderr[-3000:]}"
        )
    report = json.loads(report_path.read_text())
    assert not report.get("timed_out"), report
    assert report["tensorflow_loaded"] is False
    return report


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, sample_photos) -> tuple[Path, np.ndarray]:
    """A short MJPG video of two real faces side by side (astronaut, Grace Hopper), 640×320."""
    astronaut = sample_photos["astronaut"][20:340, 70:390]
    hopper = cv2.resize(sample_photos["grace_hopper"][60:460, 70:470], (320, 320))
    frame = np.ascontiguousarray(np.concatenate([astronaut, hopper], axis=1))
    path = tmp_path_factory.mktemp("video") / "faces.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 15, (640, 320))
    for _ in range(15):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    ok, decoded = capture.read()
    capture.release()
    assert ok, "OpenCV could not read back the test video"
    return path, cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def app_run(tmp_path_factory, tiny_bundle, face_video) -> tuple[dict, Path, np.ndarray]:
    tmp_path = tmp_path_factory.mktemp("app_video")
    video, decoded = face_video
    overrides = {
        "bundle": str(tiny_bundle.path),
        "source": str(video),
        "snapshot_dir": str(tmp_path / "snapshots"),
    }
    report = run_app(tmp_path, "video", overrides)
    return report, tmp_path / "out", decoded


def _screen_region(report: dict, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """The screenshot (RGB) and the preview's part of it, resized to the frame's size."""
    screen = cv2.cvtColor(cv2.imread(report["screenshot"]), cv2.COLOR_BGR2RGB)
    scale_x = screen.shape[1] / report["window_size"][0]
    scale_y = screen.shape[0] / report["window_size"][1]
    x, y, w, h = report["display_rect"]
    # Kivy's y axis points up; image rows go down.
    top = round(screen.shape[0] - (y + h) * scale_y)
    left = round(x * scale_x)
    region = screen[top : top + round(h * scale_y), left : left + round(w * scale_x)]
    return screen, region


def test_app_preview_shows_the_video_frames(app_run):
    report, out, decoded = app_run
    screen, region = _screen_region(report, out)
    frame_h, frame_w = decoded.shape[:2]
    shown = cv2.resize(region, (frame_w, frame_h), interpolation=cv2.INTER_AREA)
    # Not black, and it is the video: most pixels match the decoded frame closely (the rest
    # are the overlay).
    assert shown.mean() > 60
    difference = np.abs(shown.astype(int) - decoded.astype(int)).max(axis=-1)
    assert np.median(difference) < 12, np.median(difference)
    # It is exactly what the app drew: the annotated frame it held at screenshot time.
    annotated = np.load(out / "annotated.npy")
    assert np.abs(shown.astype(int) - annotated.astype(int)).mean() < 6
    # Above and below the picture, the preview's letterbox bands are black, not the frame.
    px, py, pw, ph = report["preview_widget"]
    x, y, w, h = report["display_rect"]
    band = screen[round(screen.shape[0] - (py + ph)) : round(screen.shape[0] - (y + h)), :]
    band = band[:, round(px) : round(px + pw)]
    assert band.shape[0] > 20 and band.mean() < 5


def assert_boxes_drawn(shown: np.ndarray, decoded: np.ndarray, faces: list[dict]) -> None:
    """Each face's box edges are on screen in its label's colour, which the photo lacks."""
    for face in faces:
        x, y, w, h = (round(v) for v in face["box"])
        colour = np.array(overlay.label_colour(face["label"]))
        # Left and right edges of the box, below the caption and above the chart.
        rows = slice(y + h // 4, y + 3 * h // 4)
        edges = [shown[rows, max(0, x - 2) : x + 4], shown[rows, x + w - 3 : x + w + 3]]
        for edge in edges:
            match = np.all(np.abs(edge.astype(int) - colour) < 50, axis=-1).any(axis=1)
            assert match.mean() > 0.9, (face, match.mean())
        # That colour is the overlay's, not the photo's.
        raw = decoded[rows, max(0, x - 2) : x + 4]
        assert np.all(np.abs(raw.astype(int) - colour) < 50, axis=-1).mean() < 0.1


def test_app_draws_a_box_around_each_face(app_run):
    report, out, decoded = app_run
    _, region = _screen_region(report, out)
    frame_h, frame_w = decoded.shape[:2]
    shown = cv2.resize(region, (frame_w, frame_h), interpolation=cv2.INTER_NEAREST)
    faces = report["faces"]
    centres = sorted((x + w / 2) for x, y, w, h in (f["box"] for f in faces))
    assert len(faces) == 2 and centres[0] < 320 < centres[1], faces  # one face per photo
    assert_boxes_drawn(shown, decoded, faces)


def test_app_saves_a_snapshot_only_when_pressed(app_run):
    report, out, _ = app_run
    assert report["processed"] >= 6
    assert report["files_before_press"] == []
    assert len(report["files_after_press"]) == 1
    name = report["files_after_press"][0]
    assert name.startswith("affectlite-") and name.endswith(".png")
    assert name in report["message"]
    snapshot = cv2.cvtColor(cv2.imread(str(out.parent / "snapshots" / name)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(snapshot, np.load(out / "annotated.npy"))


def test_app_keeps_running_and_shows_status_when_the_camera_is_missing(tmp_path, tiny_bundle):
    overrides = {
        "bundle": str(tiny_bundle.path),
        "source": "9",  # no /dev/video9 here: the camera is "lost" from the start
        "snapshot_dir": str(tmp_path / "snapshots"),
    }
    report = run_app(tmp_path, "lost", overrides)
    assert "camera 9" in report["status"] and "Retrying" in report["status"], report
    assert report["worker_running"] and report["ticks"] >= 15
    assert report["files"] == []
    screen = cv2.cvtColor(cv2.imread(report["screenshot"]), cv2.COLOR_BGR2RGB)
    banner = screen[:40].astype(int)
    red = (banner[..., 0] > 100) & (banner[..., 1] < 40) & (banner[..., 2] < 40)
    white = np.all(banner > 200, axis=-1)
    assert red.mean() > 0.3 and white.any()  # the status banner with its text
    # A transient message clears after a few seconds; the state banner stays while it lasts.
    assert report["message"] == "No frame yet: nothing saved."
    assert report["message_later"] == ""
    assert "camera 9" in report["status_later"] and "reconnecting" in report["status_later"]


def test_open_photo_shows_the_chosen_photo_with_its_face(
    tmp_path, tiny_bundle, face_video, sample_photos
):
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut = photos / "astronaut.png"
    cv2.imwrite(str(astronaut), cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR))
    hopper = cv2.cvtColor(sample_photos["grace_hopper"], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(photos / "grace_hopper.jpg"), hopper)
    (photos / "notes.txt").write_text("not a photo")
    overrides = {
        "bundle": str(tiny_bundle.path),
        "source": str(face_video[0]),  # the camera runs first; the photo replaces it
        "snapshot_dir": str(tmp_path / "snapshots"),
    }
    extra = {"photo_dir": str(photos), "photo": str(astronaut)}
    report = run_app(tmp_path, "photo", overrides, timeout=60.0, extra=extra)
    # The chooser listed the photos (not the text file); the tap selected the astronaut.
    assert report["listed"] == ["astronaut.png", "grace_hopper.jpg"], report
    assert report["selection"] == [str(astronaut)]
    assert not report["worker_in_photo_mode"] and report["source_text"] == "astronaut.png"
    assert report["back_button"] == "Back"
    # The screen shows the photo, exactly as the app annotated it, with a box on the face.
    decoded = sample_photos["astronaut"]
    _, region = _screen_region(report, tmp_path / "out")
    shown = cv2.resize(region, decoded.shape[1::-1], interpolation=cv2.INTER_AREA)
    difference = np.abs(shown.astype(int) - decoded.astype(int)).max(axis=-1)
    assert np.median(difference) < 12, np.median(difference)
    annotated = np.load(tmp_path / "out" / "annotated.npy")
    assert np.abs(shown.astype(int) - annotated.astype(int)).mean() < 6
    (face,) = report["faces"]
    assert face["track_id"] is None  # a photo: no tracking
    nearest = cv2.resize(region, decoded.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    assert_boxes_drawn(nearest, decoded, report["faces"])
    # The same probabilities as the Python API gives for that file (one decoder for photos).
    from affectlite import EmotionRecognizer

    (expected,) = EmotionRecognizer(tiny_bundle).predict(astronaut)
    assert face["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    # One tap on Camera: the video runs again.
    assert report["window_children"] == ["PreviewScreen"]  # the chooser is gone
    assert report["worker_after_back"] and not report["photo_mode_after_back"]
    # The chooser started in the working folder, then in the folder of the photo opened.
    assert report["chooser_started_in"] == str(tmp_path)
    assert report["chooser_reopened_in"] == str(photos)


def test_a_folder_source_shows_one_photo_at_a_time(tmp_path, tiny_bundle, sample_photos):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "grace_hopper"):
        image = cv2.cvtColor(sample_photos[name], cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(photos / f"{name}.png"), image)
    overrides = {
        "bundle": str(tiny_bundle.path),
        "source": str(photos),
        "snapshot_dir": str(tmp_path / "snapshots"),
    }
    report = run_app(tmp_path, "stills", overrides, timeout=60.0)
    # No capture thread: the first photo waits for Next, which shows the second.
    assert report["worker"] is False and report["next_button"] == ["Next", 1]
    first, second = report["shown"]
    assert (
        first["name"] == "astronaut.png (1 of 2)" and second["name"] == "grace_hopper.png (2 of 2)"
    )
    # Each is a still: no tracking, no smoothing (the API's probabilities for that file), and
    # the panel shows them with its latency, without an FPS.
    from affectlite import EmotionRecognizer

    recognizer = EmotionRecognizer(tiny_bundle)
    for shown, name in zip((first, second), ("astronaut", "grace_hopper"), strict=True):
        (expected,) = recognizer.predict(photos / f"{name}.png")
        assert shown["track_id"] is None
        assert shown["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
        assert shown["title"] == overlay.face_caption(expected)
        assert "ms a frame" in shown["stats"] and "FPS" not in shown["stats"]
    # With a timer setting, the photos turn by themselves (0.5 s each, over 2.4 s).
    assert len(report["timed"]) >= 4, report["timed"]
    assert set(report["timed"]) == {first["name"], second["name"]}


def test_app_panel_shows_the_largest_faces_bars_and_the_fps(app_run):
    report, _, _ = app_run
    panel = report["panel"]
    assert set(panel["bars"]) == set(report["largest"])  # every class, by its full name
    for name, (value, percent) in panel["bars"].items():
        assert value == pytest.approx(report["largest"][name])
        assert percent == f"{report['largest'][name]:.0%}"
    assert "FPS" in panel["stats"] and "ms a frame" in panel["stats"]
    assert panel["title"].startswith("2 faces; largest: ")


def test_app_layout_holds_at_every_screen_and_state(tmp_path, sample_photos):
    """At the Pi display, a phone in portrait and a desktop, in each state, with the longest
    label, title, message and status: nothing covers the picture or leaves the window, no
    text overflows its widget, every touch target is at least 48 dp."""
    from affectlite.edge_app import screenshots

    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut = cv2.cvtColor(sample_photos["astronaut"], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(photos / "astronaut.png"), astronaut)
    screens = screenshots.SCREENS | screenshots.ALSO_CHECKED  # and sideways, and upright
    for screen, (width, height, _) in screens.items():
        report = screenshots.shoot(screen, tmp_path / screen, photos, check=True, timeout=90)
        assert not report.get("timed_out"), report
        assert set(report["problems"]) == set(screenshots.STATES)
        assert report["problems"] == dict.fromkeys(screenshots.STATES, []), screen
        assert report["window"] == [width, height]
        assert report["status"] == screenshots.LONG_STATUS


LAYOUT_CONTROL = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.button import Button
    from kivy.uix.label import Label
    from affectlite.edge_app import screenshots, ui

    class Control(ui.App):
        kv_file = str(ui.KV_FILE)

        def build(self):
            return ui.PreviewScreen()

    app = Control()

    state = {}

    def tick(dt):
        root = app.root
        if list(root.size) != list(Window.size):  # not laid out yet
            return
        if "clean" not in state:
            root.preview.texture = ui.rgb_texture(np.full((48, 64, 3), 200, np.uint8))
            state["clean"] = None
        elif state["clean"] is None:
            state["clean"] = screenshots.layout_problems(Window, root)
            fixed = {"size_hint": (None, None), "size": (100, 30)}
            Window.add_widget(Button(text="over", pos=(10, 100), **fixed))
            Window.add_widget(Label(text="x" * 80, pos=(Window.width - 50, 10), **fixed))
        else:
            bad = screenshots.layout_problems(Window, root)
            print(json.dumps({"clean": state["clean"], "bad": bad}))
            app.stop()

    Clock.schedule_interval(tick, 0.2)
    app.run()
    """
)


def test_layout_check_finds_what_it_looks_for(tmp_path):
    env = dict(
        os.environ,
        KIVY_HOME=str(tmp_path / "kivy"),
        KIVY_NO_CONSOLELOG="1",
        SDL_VIDEODRIVER="offscreen",
    )
    done = subprocess.run(
        [sys.executable, "-c", LAYOUT_CONTROL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{MESA_HINT}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["clean"] == []
    bad = "\n".join(report["bad"])
    assert "Button 'over'" in bad and "covers the picture" in bad and "under 48 dp" in bad
    assert "leaves the" in bad and "overflows" in bad


VIEWER_DRIVER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.modules["tensorflow"] = None
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch
    from affectlite.edge_app.ui import PictureViewer

    job = json.loads(sys.argv[1])
    out = Path(job["out"])
    viewer = PictureViewer([Path(p) for p in job["pictures"]])
    shots = []

    def tick(dt):
        if viewer.next_button.x < 100:  # not laid out yet (Next sits right of the caption)
            return
        shot = {"path": Window.screenshot(name=str(out / "viewer.png"))}
        shot["caption"] = viewer.caption.text
        shot["display_rect"] = list(viewer.preview.display_rect)
        shot["window_size"] = list(Window.size)
        shots.append(shot)
        if len(shots) == 1:
            button = viewer.next_button  # the user presses Next
            touch = UnitTestTouch(*button.to_window(*button.center))
            touch.touch_down()
            touch.touch_up()
        else:
            viewer.stop()

    Clock.schedule_interval(tick, 0.5)
    viewer.run()
    (out / "report.json").write_text(json.dumps(shots))
    """
)


def test_predict_show_viewer_pages_through_the_pictures(tmp_path, sample_photos):
    names = ("astronaut", "grace_hopper")
    pictures = []
    for name in names:
        pictures.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(pictures[-1]), cv2.cvtColor(sample_photos[name], cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    out.mkdir()
    env = dict(
        os.environ,
        KIVY_HOME=str(tmp_path / "kivy"),
        KIVY_NO_CONSOLELOG="1",
        SDL_VIDEODRIVER="offscreen",
    )
    job = {"out": str(out), "pictures": [str(p) for p in pictures]}
    done = subprocess.run(
        [sys.executable, "-c", VIEWER_DRIVER, json.dumps(job)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{MESA_HINT}\n{done.stderr[-3000:]}"
    shots = json.loads((out / "report.json").read_text())
    assert [shot["caption"].split()[0] for shot in shots] == ["astronaut.png", "grace_hopper.png"]
    for shot, name in zip(shots, names, strict=True):
        picture = sample_photos[name]
        _, region = _screen_region({"screenshot": shot["path"], **shot}, out)
        shown = cv2.resize(region, picture.shape[1::-1], interpolation=cv2.INTER_AREA)
        difference = np.abs(shown.astype(int) - picture.astype(int)).max(axis=-1)
        assert np.median(difference) < 12, (name, np.median(difference))
