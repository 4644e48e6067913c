"""``affectlite app``: the Kivy app for a Raspberry Pi screen, an Android phone or a desktop.

A live preview with a box, the emotion and a small probability chart per face, the FPS and the
per-stage latency; a settings panel (bundle, threads, detector, smoothing, camera); a Snapshot
button; the camera's status when it is lost (the app keeps reconnecting).

Threads: capture and inference run in :class:`~.worker.Worker` threads; everything in this
module runs on the Kivy main thread (marked ``[UI thread]``) except the Android permission
answer, which is handed back to it through ``@mainthread``.

Privacy: frames live only in memory. Nothing is stored or sent anywhere; the only file the app
writes is a snapshot, and only when the user presses Snapshot.
"""

# ruff: noqa: E402  (the environment must be set before Kivy is imported)
from __future__ import annotations

import os

# The affectlite CLI owns the command line; without this Kivy would parse (and reject) it.
os.environ.setdefault("KIVY_NO_ARGS", "1")

import argparse
import functools
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.graphics.texture import Texture
from kivy.lang import Builder
from kivy.properties import ListProperty, ObjectProperty, StringProperty
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.widget import Widget
from kivy.utils import platform

from affectlite.errors import InputError
from affectlite.files import write_bytes
from affectlite.options import check_paths

from . import overlay
from .bundle import BundleError, load_bundle
from .detector import DETECTORS, DetectorUnavailable
from .pipeline import Pipeline, PipelineConfig
from .runtime import RuntimeUnavailable
from .sources import Backoff, ReconnectingSource, SourceError, make_source
from .tracking import SMOOTHING
from .worker import Update, Worker

log = logging.getLogger(__name__)

KV_FILE = Path(__file__).with_name("affectlite.kv")
SECTION = "affectlite"
ROTATIONS = ("0", "90", "180", "270")
PRIVACY_NOTE = "Frames stay on this device. Nothing is saved unless you press Snapshot."
DEFAULTS = {
    "bundle": "bundle",
    "source": "android" if platform == "android" else "0",
    "threads": "0",
    "detector": "blazeface",
    "smoothing": str(SMOOTHING),
    "rotation": "90" if platform == "android" else "0",  # back camera, portrait
    "snapshot_dir": "",
}


def _setting(kind: str, title: str, key: str, desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "desc": desc, "section": SECTION, "key": key, **extra}


SETTINGS_PANEL = [
    {"type": "title", "title": "Model"},
    _setting(
        "path", "Bundle", "bundle", "Model bundle folder (bundle.json inside)", dirselect=True
    ),
    _setting(
        "options",
        "Face detector",
        "detector",
        "BlazeFace or OpenCV's Haar cascade",
        options=list(DETECTORS),
    ),
    _setting("numeric", "Threads", "threads", "Interpreter threads (0 = automatic)"),
    _setting(
        "numeric",
        "Smoothing",
        "smoothing",
        "Weight of the past in each face's average (0 = none, 0.9 = very steady)",
    ),
    {"type": "title", "title": "Camera"},
    _setting(
        "string",
        "Source",
        "source",
        "picamera2, android, a webcam index (0, 1, ...), a video file or an image folder",
    ),
    _setting(
        "options",
        "Rotation (Android camera)",
        "rotation",
        "Clockwise degrees that turn the phone camera's frames upright",
        options=list(ROTATIONS),
    ),
    _setting(
        "path", "Snapshot folder", "snapshot_dir", "Empty: the app's data folder", dirselect=True
    ),
]


@dataclass(frozen=True)
class Settings:
    """The app's settings, parsed from its config (the CLI fills the config first)."""

    bundle: Path
    source: str
    threads: int | None
    detector: str
    smoothing: float
    rotation: int
    snapshot_dir: Path | None

    @classmethod
    def from_config(cls, values: dict[str, str]) -> Settings:
        """Parses the ``[affectlite]`` config section; raises ``ValueError`` naming the bad
        setting."""
        try:
            threads = int(values["threads"])
            smoothing = float(values["smoothing"])
        except ValueError as error:
            raise InputError(
                f"Settings: threads must be an integer and smoothing a number ({error})."
            ) from error
        if threads < 0:
            raise InputError(f"Settings: threads must be 0 (automatic) or more, got {threads}.")
        if not 0.0 <= smoothing < 1.0:
            raise InputError(f"Settings: smoothing must be in [0, 1), got {smoothing}.")
        if values["rotation"] not in ROTATIONS:
            raise InputError(
                f"Settings: rotation must be one of {ROTATIONS}, got {values['rotation']!r}."
            )
        return cls(
            bundle=Path(values["bundle"]).expanduser(),
            source=values["source"].strip(),
            threads=threads or None,
            detector=values["detector"],
            smoothing=smoothing,
            rotation=int(values["rotation"]),
            snapshot_dir=Path(values["snapshot_dir"]).expanduser()
            if values["snapshot_dir"].strip()
            else None,
        )


def save_snapshot(frame_rgb: np.ndarray, folder: str | Path) -> Path:
    """Writes ``frame_rgb`` as a PNG in ``folder`` atomically (temp file, then rename) and
    returns its path; the name carries the local time to the millisecond."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV could not encode a frame of shape {frame_rgb.shape} as PNG.")
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"-{int(now % 1 * 1000):03d}"
    target = folder / f"affectlite-{stamp}.png"
    return write_bytes(target, encoded.tobytes())


def open_frame_source(settings: Settings) -> Any:
    """The settings' source, wrapped to reconnect when it is a camera; files and folders loop.
    Not opened yet (the capture thread opens it; on Android the UI thread does)."""
    spec = settings.source
    options: dict[str, Any] = {}
    if spec == "android":
        options["rotation"] = settings.rotation
    elif Path(spec).exists():
        options["loop"] = True
    source = make_source(spec, **options)
    return ReconnectingSource(source, Backoff(initial=0.5, maximum=5.0)) if source.live else source


class FramePreview(Widget):
    """Draws the current frame texture letterboxed in the widget (see ``affectlite.kv``).

    One textured rectangle placed by :func:`overlay.fit_rect`, so the bands beside the frame
    stay black (``kivy.uix.image.Image`` painted them white in the offscreen Mesa window that
    the tests use)."""

    texture = ObjectProperty(None, allownone=True)
    display_rect = ListProperty([0.0, 0.0, 0.0, 0.0])

    def on_texture(self, *args: Any) -> None:
        self._place()

    def on_size(self, *args: Any) -> None:
        self._place()

    def on_pos(self, *args: Any) -> None:
        self._place()

    def _place(self) -> None:
        if self.texture is not None:
            self.display_rect = overlay.fit_rect(self.texture.size, self.pos, self.size)


class PreviewScreen(FloatLayout):
    """The root widget; its layout is in ``affectlite.kv``."""

    status_text = StringProperty("")
    message_text = StringProperty("")
    privacy_text = StringProperty(PRIVACY_NOTE)
    preview = ObjectProperty(None)


class AffectliteApp(App):
    """Owns the lifecycle: settings, worker start/stop, camera permission, preview updates.

    Args:
        overrides: settings given on the command line; they win over the saved config.
        refresh_hz: how often the UI polls the worker for a new frame.
    """

    title = "affectlite"
    use_kivy_settings = False

    def __init__(
        self, overrides: dict[str, str] | None = None, refresh_hz: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.overrides = {k: str(v) for k, v in (overrides or {}).items()}
        self.refresh_hz = refresh_hz
        self.worker: Worker | None = None
        self.last_update: Update | None = None
        self._texture: Texture | None = None

    # --- configuration [UI thread] -------------------------------------------------------
    def get_application_config(self, defaultpath: str = "%(appdir)s/%(appname)s.ini") -> str:
        # Beside the user's data, never inside the installed package.
        if platform == "linux":  # Kivy makes <XDG_CONFIG_HOME>/affectlite, not its parent.
            config_home = os.environ.get("XDG_CONFIG_HOME", "~/.config")
            Path(config_home).expanduser().mkdir(parents=True, exist_ok=True)
        return str(Path(self.user_data_dir) / "affectlite.ini")

    def build_config(self, config: Any) -> None:
        config.setdefaults(SECTION, DEFAULTS)

    def build_settings(self, settings: Any) -> None:
        settings.add_json_panel("affectlite", self.config, data=json.dumps(SETTINGS_PANEL))

    def settings(self) -> Settings:
        return Settings.from_config(dict(self.config.items(SECTION)))

    def snapshot_folder(self) -> Path:
        return self.settings().snapshot_dir or Path(self.user_data_dir) / "snapshots"

    def on_config_change(self, config: Any, section: str, key: str, value: Any) -> None:
        if section == SECTION and key != "snapshot_dir":  # read at each snapshot
            self.restart_worker()

    # --- lifecycle [UI thread] -----------------------------------------------------------
    def build(self) -> PreviewScreen:
        for key, value in self.overrides.items():
            self.config.set(SECTION, key, value)
        Builder.load_file(str(KV_FILE))
        root = PreviewScreen()
        Clock.schedule_interval(self.refresh, 1.0 / self.refresh_hz)
        return root

    def on_start(self) -> None:
        if platform == "android":
            from .android import request_camera_permission

            self.root.status_text = "Waiting for camera permission..."
            request_camera_permission(self._permission_answered)
        else:
            self.start_worker()

    @mainthread
    def _permission_answered(self, granted: bool) -> None:
        """Called from Android's thread; ``@mainthread`` runs it on the UI thread."""
        if granted:
            self.start_worker()
        else:
            self.root.status_text = "Camera permission denied: allow it in Android's settings."

    def on_pause(self) -> bool:
        self.stop_worker()  # Release the camera while in the background.
        return True

    def on_resume(self) -> None:
        self.start_worker()

    def on_stop(self) -> None:
        self.stop_worker()

    # --- worker [UI thread] --------------------------------------------------------------
    def start_worker(self) -> None:
        """Builds the pipeline and the source from the settings and starts the threads; a
        failure is shown on screen and the app stays up so the settings can be fixed."""
        if self.worker is not None:
            return
        try:
            settings = self.settings()
            bundle = load_bundle(settings.bundle)
            config = PipelineConfig(
                num_threads=settings.threads,
                detector=settings.detector,
                smoothing=settings.smoothing,
            )
            pipeline = Pipeline(bundle, config)
            source = open_frame_source(settings)
        except (
            ValueError,
            BundleError,
            SourceError,
            DetectorUnavailable,
            RuntimeUnavailable,
            FileNotFoundError,
        ) as error:
            log.error("cannot start: %s", error)
            self.root.status_text = f"{error} (open Settings to fix)"
            return
        on_exit = None
        if platform == "android":
            from jnius import detach  # Threads that touched pyjnius must detach before exiting.

            on_exit = detach
        if settings.source == "android":
            source.open()  # Kivy's Android camera must be opened on the UI thread.
        annotate = functools.partial(overlay.annotate, labels=pipeline.labels)
        worker = Worker(source, pipeline.process, annotate, on_thread_exit=on_exit)
        if isinstance(source, ReconnectingSource):
            source.on_error = worker.source_failed
        self.worker = worker.start()
        self.root.status_text = ""

    def stop_worker(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop()

    def restart_worker(self) -> None:
        self.stop_worker()
        self.start_worker()

    # --- preview [UI thread] -------------------------------------------------------------
    def refresh(self, dt: float = 0.0) -> None:
        """Shows the worker's newest frame, if any, and what is wrong, if anything (the red
        banner is empty while frames flow). Runs from ``Clock``."""
        if self.worker is None:
            return
        update = self.worker.latest()
        if update is not None:
            self.show(update.frame)
            self.last_update = update
        self.root.status_text = self.worker.status

    def show(self, frame_rgb: np.ndarray) -> None:
        """Uploads a frame into the preview's texture (reused while the size is unchanged)."""
        height, width = frame_rgb.shape[:2]
        if self._texture is None or self._texture.size != (width, height):
            self._texture = Texture.create(size=(width, height), colorfmt="rgb")
            self._texture.flip_vertical()  # NumPy rows run top-down, OpenGL's bottom-up.
        self._texture.blit_buffer(
            np.ascontiguousarray(frame_rgb).tobytes(), colorfmt="rgb", bufferfmt="ubyte"
        )
        self.root.preview.texture = self._texture
        self.root.preview.canvas.ask_update()  # same texture object, new pixels

    def snapshot(self) -> Path | None:
        """Saves the annotated frame on screen; the only place the app writes a frame."""
        if self.last_update is None:
            self.root.message_text = "No frame yet: nothing saved."
            return None
        try:
            path = save_snapshot(self.last_update.frame, self.snapshot_folder())
        except (OSError, ValueError) as error:
            self.root.message_text = f"Snapshot failed: {error}"
            return None
        self.root.message_text = f"Saved {path}"
        return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", help="model bundle folder (default: the saved setting)")
    parser.add_argument(
        "--source",
        help="picamera2, android, a webcam index (0, 1, ...), a video file or an image folder",
    )
    parser.add_argument("--threads", type=int, help="interpreter threads (default: automatic)")
    parser.add_argument("--detector", choices=DETECTORS, help="face detector")
    parser.add_argument("--smoothing", type=float, help="probability smoothing in [0, 1)")
    parser.add_argument("--snapshot-dir", help="folder for snapshots (default: app data folder)")
    parser.add_argument("--fullscreen", action="store_true", help="fullscreen window (kiosk)")


def overrides_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The settings given on the command line, as config strings."""
    names = ("bundle", "source", "threads", "detector", "smoothing", "snapshot_dir")
    return {name: str(getattr(args, name)) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}.")
    if args.smoothing is not None and not 0.0 <= args.smoothing < 1.0:
        raise InputError(f"--smoothing must be in [0, 1), got {args.smoothing}.")
    check_paths(bundle=args.bundle)
    if args.fullscreen:
        from kivy.config import Config

        Config.set("graphics", "fullscreen", "auto")  # before the window exists
    AffectliteApp(overrides_from_args(args)).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for a packaged app (Android's ``main.py``): ``affectlite app`` options."""
    from affectlite.cli import main as dispatch

    return dispatch(["app", *(sys.argv[1:] if argv is None else argv)])
