"""``affectlite run``: the headless runner for devices without a display.

Reads a camera, video file or image folder, runs the pipeline on every frame and writes one
JSON line per frame::

    {"frame": 0, "timestamp": 1732550000.12, "faces": [{"track_id": 1, "box": [x, y, w, h],
     "label": "happy", "confidence": 0.81, "uncertain": false, "probabilities": {...},
     "score": 0.93}], "timings_ms": {"detect": 2.1, "crop": 0.2, "classify": 9.8, "post": 0.1,
     "total": 12.3}, "error": null}

A camera that is missing at start or lost mid-run produces lines with ``"error"`` set and no
faces, and is reopened with exponential back-off. ``--rss-every N`` adds the process's resident
memory (``rss_mb``) to every N-th line, for soak tests. Examples::

    affectlite run --source picamera2 --bundle bundle/ --jsonl faces.jsonl
    affectlite run --source 0 --bundle bundle/ --show
    affectlite run --source clip.mp4 --bundle bundle/ --max-frames 100
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from affectlite.errors import AffectliteError, EnvironmentProblem, InputError
from affectlite.options import add_bundle

from .bundle import load_bundle
from .detector import DETECTORS
from .pipeline import STAGES, FrameResult, Pipeline, PipelineConfig
from .sources import Backoff, FrameSource, ReconnectingSource, SourceError, open_source

WINDOW = "affectlite"


class RunnerError(EnvironmentProblem):
    """The runner cannot start as asked."""


def rss_bytes() -> int:
    """Resident memory of this process now (Linux and Android ``/proc``); elsewhere the peak
    reported by ``getrusage``."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # Unix only; not needed where /proc exists.

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PipelineConfig()
    backoff = Backoff()
    parser.add_argument(
        "--source",
        required=True,
        help="picamera2, android, a webcam index (0, 1, …), a video file, an image file or a "
        "folder of images (photos are classified one by one, without tracking or smoothing)",
    )
    add_bundle(parser)
    parser.add_argument(
        "--jsonl", type=Path, help="write the JSON lines to this file (default: standard output)"
    )
    parser.add_argument("--show", action="store_true", help="show frames with boxes (needs a GUI)")
    parser.add_argument("--threads", type=int, help="interpreter threads (default: up to 4)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--detector", choices=DETECTORS, default=defaults.detector)
    parser.add_argument(
        "--max-faces", type=int, default=defaults.max_faces, help="classify the N largest faces"
    )
    parser.add_argument(
        "--min-face",
        type=int,
        default=defaults.min_face,
        help="skip faces smaller than this many pixels",
    )
    parser.add_argument(
        "--detect-width",
        type=int,
        default=defaults.detect_width,
        help="downscale frames to this width for detection",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=defaults.score_threshold,
        help="least face detector score (raise to 0.6 to drop borderline false faces)",
    )
    parser.add_argument("--smoothing", type=float, default=defaults.smoothing)
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="smoothed confidence below which a face is 'uncertain'",
    )
    parser.add_argument("--loop", action="store_true", help="restart a video or folder at its end")
    parser.add_argument(
        "--rss-every",
        type=int,
        default=0,
        metavar="N",
        help="add resident memory (rss_mb) to every N-th line, for soak tests",
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=backoff.initial,
        help="first wait in seconds before reopening a lost camera (doubles each attempt)",
    )
    parser.add_argument("--max-retry-delay", type=float, default=backoff.maximum)
    parser.add_argument(
        "--max-retries",
        type=int,
        help="give up after this many failed reconnection attempts (default: never)",
    )


@dataclass
class RunStats:
    """Totals of one run, for the summary on standard error."""

    frames: int = 0
    faces: int = 0
    errors: int = 0
    stage_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    rss_start: int = field(default_factory=rss_bytes)
    rss_end: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.faces += len(result.faces)
        for stage, value in result.timings_ms.items():
            self.stage_ms[stage] += value

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        fps = self.frames / seconds if seconds > 0 else 0.0
        means = ", ".join(
            f"{stage} {total / max(self.frames, 1):.1f}" for stage, total in self.stage_ms.items()
        )
        mib = 1 << 20
        return (
            f"{self.frames} frames, {self.faces} faces, {self.errors} source errors, "
            f"{fps:.1f} frames/s; mean ms: {means}; resident memory "
            f"{self.rss_start / mib:.1f} → {self.rss_end / mib:.1f} MiB"
        )


class JsonLines:
    """Writes one JSON object per line, flushed at once, to a file or standard output.

    A file is written as ``NAME.partial`` and renamed to ``NAME`` when the run ends, so a
    complete file never looks unfinished and an interrupted one keeps every line written.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._partial = path.with_name(path.name + ".partial") if path else None
        self._handle: IO[str] | None = None

    def __enter__(self) -> JsonLines:
        if self._partial is not None:
            self._partial.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self._partial, "w", encoding="utf-8")  # noqa: SIM115
        return self

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            stream = self._handle or sys.stdout
            stream.write(line)
            stream.flush()

    def discard(self) -> None:
        """Drops the output file (the run never started)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._partial.unlink(missing_ok=True)

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()
            os.replace(self._partial, self.path)


def check_display() -> None:
    """Raises :class:`RunnerError` saying why ``cv2.imshow`` cannot work here, if it cannot."""
    gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    if gui is None or gui.group(1).upper() == "NONE":
        raise RunnerError(
            f"--show needs OpenCV with a GUI backend, but OpenCV {cv2.__version__} here was built "
            "without one (opencv-python-headless). Install opencv-python instead, use "
            "`affectlite app` for a live preview, or drop --show."
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise RunnerError("--show needs a display, but DISPLAY and WAYLAND_DISPLAY are unset.")


def draw(frame_rgb: np.ndarray, result: FrameResult) -> np.ndarray:
    """A BGR copy of the frame with each face's box and label, for ``cv2.imshow``."""
    image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    for face in result.faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        colour = (0, 200, 255) if face.uncertain else (0, 220, 0)
        cv2.rectangle(image, (x, y), (x + w, y + h), colour, 2)
        track = "" if face.track_id is None else f"{face.track_id}: "  # photos have none
        text = f"{track}{face.label} {face.confidence:.2f}"
        cv2.putText(image, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    return image


def show(frame_rgb: np.ndarray, result: FrameResult) -> bool:
    """Shows the annotated frame; False once the user pressed q or Esc."""
    cv2.imshow(WINDOW, draw(frame_rgb, result))
    return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)


def run_loop(
    pipeline: Pipeline,
    source: FrameSource,
    emit: Callable[[dict[str, Any]], None],
    stats: RunStats,
    *,
    max_frames: int | None = None,
    rss_every: int = 0,
    display: bool = False,
    stop: threading.Event | None = None,
) -> None:
    """Processes frames until the source ends, ``max_frames`` or ``stop`` is set."""
    stop = stop or threading.Event()
    still = getattr(source, "still", False)  # photos: no tracking or smoothing across them
    while not stop.is_set() and (max_frames is None or stats.frames < max_frames):
        frame = source.read()
        if frame is None:
            break
        result = pipeline.process(frame, source.detection_frame(), still=still)
        record = {"frame": stats.frames, **result.to_dict()}
        current = getattr(source, "current_path", None)
        if current is not None:
            record["file"] = str(current)
        if rss_every and stats.frames % rss_every == 0:
            record["rss_mb"] = round(rss_bytes() / (1 << 20), 2)
        emit(record)
        stats.add(result)
        if display and not show(frame, result):
            break


def _config(args: argparse.Namespace) -> tuple[PipelineConfig, Backoff]:
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}.")
    if args.rss_every < 0:
        raise InputError(f"--rss-every must be >= 0, got {args.rss_every}.")
    config = PipelineConfig(
        num_threads=args.threads,
        detector=args.detector,
        max_faces=args.max_faces,
        detect_width=args.detect_width,
        smoothing=args.smoothing,
        threshold=args.threshold,
        min_face=args.min_face,
        score_threshold=args.score_threshold,
    )
    return config, Backoff(args.retry_delay, args.max_retry_delay, args.max_retries)


@contextmanager
def _on_sigterm(handler: Callable[[], None]) -> Iterator[None]:
    """Lets ``systemctl stop`` end the run cleanly (the output file is completed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: handler())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="affectlite run: %(message)s")
    config, backoff = _config(args)
    if args.show:
        check_display()
    pipeline = Pipeline(load_bundle(args.bundle), config)
    stats = RunStats()
    stop = threading.Event()
    opened: list[FrameSource] = []

    def halt() -> None:
        stop.set()
        for source in opened:
            if isinstance(source, ReconnectingSource):
                source.close()  # Ends a back-off wait for a missing camera at once.

    options = {"loop": True} if args.loop else {}
    status = 0
    with JsonLines(args.jsonl) as out, _on_sigterm(halt):

        def report(message: str) -> None:
            stats.errors += 1
            out.write({"frame": None, **FrameResult.failure(message).to_dict()})

        try:
            source = open_source(args.source, backoff=backoff, on_error=report, **options)
        except AffectliteError:
            out.discard()
            raise
        opened.append(source)
        try:
            with source:
                run_loop(
                    pipeline,
                    source,
                    out.write,
                    stats,
                    max_frames=args.max_frames,
                    rss_every=args.rss_every,
                    display=args.show,
                    stop=stop,
                )
        except SourceError as error:  # Only when --max-retries is exhausted.
            report(str(error))
            status = 1
        finally:
            stats.rss_end = rss_bytes()
    print(f"affectlite run: {stats.summary()}", file=sys.stderr)
    skipped = getattr(source, "skipped", [])
    if skipped:
        print(f"affectlite run: skipped {len(skipped)} unreadable image(s):", file=sys.stderr)
        for message in skipped:
            print(f"  {message}", file=sys.stderr)
    return status
