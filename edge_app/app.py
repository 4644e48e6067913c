"""``affectlite app``: the Kivy app for a Raspberry Pi screen, an Android phone or a desktop.

A live preview with a box and the emotion per face, and beside it (below it on a portrait
screen) the largest face's per-class bars, the FPS and the per-stage latency; Open photo (pick
a picture, see its faces and emotions; one tap back to the camera); a folder source shown one
photo at a time (Next, or a timer); a settings panel (bundle, threads, detector, smoothing,
camera); a Snapshot button; the camera's status while it is lost (the app keeps reconnecting).

This module is the command line and the settings; it imports no Kivy, so ``--help`` and a
missing bundle answer at once, before any window opens. The window is :mod:`.ui`.

Privacy: frames live only in memory. Nothing is stored or sent anywhere; the only file the app
writes is a snapshot, and only when the user presses Snapshot.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite.errors import EnvironmentProblem, InputError
from affectlite.files import write_bytes
from affectlite.options import add_detector
from affectlite.quiet import quiet_kivy, verbose

from .bundle import BundleError, load_bundle, resolve_bundle, shipped_bundles
from .detector import DETECTORS
from .sources import Backoff, ReconnectingSource, make_source, return_freed_frames
from .tracking import SMOOTHING

# What Kivy's ``platform`` says, without importing Kivy (python-for-android sets these).
ANDROID = "ANDROID_ARGUMENT" in os.environ or hasattr(sys, "getandroidapilevel")
SECTION = "affectlite"
ROTATIONS = ("0", "90", "180", "270")
PRIVACY_NOTE = "Frames stay on this device. Nothing is saved unless you press Snapshot."
DEFAULTS = {
    # Android: the bundle staged beside main.py (docs/android.md); elsewhere the shipped one.
    "bundle": "bundle" if ANDROID else "default",
    "source": "android" if ANDROID else "0",
    "threads": "0",
    "detector": "blazeface",
    "smoothing": str(SMOOTHING),
    "rotation": "90" if ANDROID else "0",  # back camera, portrait
    "snapshot_dir": "",
    "slide_seconds": "0",
    "photo_folder": "",  # the file chooser's last folder; not in the settings panel
}


def _setting(kind: str, title: str, key: str, desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "desc": desc, "section": SECTION, "key": key, **extra}


SETTINGS_PANEL = [
    {"type": "title", "title": "Model"},
    _setting(
        "path", "Bundle folder", "bundle", "Or a bundle folder (bundle.json inside)", dirselect=True
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
        "numeric",
        "Seconds per photo",
        "slide_seconds",
        "A folder source shows one photo at a time: the next after this many seconds "
        "(0 = on Next only)",
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


def settings_panel() -> list[dict[str, Any]]:
    """:data:`SETTINGS_PANEL` with a chooser of the bundles installed by name first."""
    names = list(shipped_bundles())
    named = _setting("options", "Bundle", "bundle", "A bundle by name", options=names)
    return [SETTINGS_PANEL[0], named, *SETTINGS_PANEL[1:]]


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
    slide_seconds: float = 0.0

    @classmethod
    def from_config(cls, values: dict[str, str]) -> Settings:
        """Parses the ``[affectlite]`` config section; raises ``ValueError`` naming the bad
        setting."""
        try:
            threads = int(values["threads"])
            smoothing = float(values["smoothing"])
            slide_seconds = float(values.get("slide_seconds") or 0)
        except ValueError as error:
            raise InputError(
                "Settings: threads must be an integer, smoothing and slide_seconds numbers "
                f"({error})."
            ) from error
        if not 0.0 <= slide_seconds < float("inf"):
            raise InputError(f"Settings: slide_seconds must be 0 or more, got {slide_seconds}.")
        if threads < 0:
            raise InputError(f"Settings: threads must be 0 (automatic) or more, got {threads}.")
        if not 0.0 <= smoothing < 1.0:
            raise InputError(f"Settings: smoothing must be in [0, 1), got {smoothing}.")
        if values["rotation"] not in ROTATIONS:
            raise InputError(
                f"Settings: rotation must be one of {ROTATIONS}, got {values['rotation']!r}."
            )
        return cls(
            bundle=resolve_bundle(values["bundle"].strip()).expanduser(),
            source=values["source"].strip(),
            threads=threads or None,
            detector=values["detector"],
            smoothing=smoothing,
            rotation=int(values["rotation"]),
            snapshot_dir=Path(values["snapshot_dir"]).expanduser()
            if values["snapshot_dir"].strip()
            else None,
            slide_seconds=slide_seconds,
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


def config_path() -> Path | None:
    """The settings file on a desktop: Kivy's ``user_data_dir`` of an app named "affectlite",
    computed without Kivy. ``None`` on Android (Kivy decides there)."""
    if ANDROID:
        return None
    if sys.platform == "win32":
        folder = Path(os.environ.get("APPDATA", "~"))
    elif sys.platform == "darwin":
        folder = Path("~/Library/Application Support")
    else:
        folder = Path(os.environ.get("XDG_CONFIG_HOME", "~/.config"))
    return (folder / "affectlite" / "affectlite.ini").expanduser()


def saved_setting(key: str) -> str:
    """A setting as the app will start with it: the saved config's value, else the default."""
    parser = configparser.ConfigParser(interpolation=None)
    path = config_path()
    if path is not None and path.is_file():
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error:
            pass  # Kivy will report its own config file; the default stands here.
    return parser.get(SECTION, key, fallback=DEFAULTS[key])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bundle", help="model bundle folder, or 'default' (default: the saved setting)"
    )
    parser.add_argument(
        "--source",
        help="picamera2, android, a webcam index (0, 1, ...), a video file or an image folder",
    )
    parser.add_argument("--threads", type=int, help="interpreter threads (default: automatic)")
    add_detector(parser, None)
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
    bundle = resolve_bundle(args.bundle or saved_setting("bundle"))
    try:
        load_bundle(bundle)  # before Kivy: a missing bundle is one line, not a window
    except BundleError as error:
        raise InputError(f"{error} Pass --bundle with a bundle folder.") from error
    # The affectlite CLI owns the command line; Kivy's start-up lines wait for --verbose.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    if not verbose():
        os.environ.setdefault("KCFG_KIVY_LOG_LEVEL", "warning")
    quiet_kivy()  # before Kivy's first log line
    return_freed_frames()
    try:
        import kivy  # noqa: F401  (the edge extra's; `pip install affectlite[train]` lacks it)
    except ImportError as error:
        raise EnvironmentProblem(
            "the app needs Kivy, which is not installed here: pip install 'affectlite[edge]' "
            f"(or 'kivy>=2.3'). ({error})"
        ) from error
    from .ui import AffectliteApp, set_fullscreen

    if args.fullscreen:
        set_fullscreen()
    AffectliteApp(overrides_from_args(args)).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for a packaged app (Android's ``main.py``): ``affectlite app`` options."""
    from affectlite.cli import main as dispatch

    return dispatch(["app", *(sys.argv[1:] if argv is None else argv)])
