"""``affectlite run``: the headless runner for devices without a display.

Reads cameras, video files or image folders, one SOURCE after another, runs the pipeline on
every frame and writes one JSON line per frame::

    {"frame": 0, "timestamp": 1732550000.12, "faces": [{"track_id": 1, "box": [x, y, w, h],
     "label": "happy", "confidence": 0.81, "uncertain": false, "probabilities": {...},
     "score": 0.93}], "timings_ms": {"detect": 2.1, "crop": 0.2, "classify": 9.8, "post": 0.1,
     "total": 12.3}, "error": null, "source": "clip.mp4"}

``frame`` counts from 0 in each source; a photo's line names its ``file``, any other line its
``source`` (the SOURCE as given). Tracking and smoothing restart with each source, so no track
spans two of them. A source that cannot be opened ends a one-source run (exit 2, no output);
among several it gets an error line and one line on standard error, the others are read, and
the exit status is 2.

A camera that is missing at start or lost mid-run produces lines with ``"error"`` set and no
faces, and is reopened with exponential back-off. Still images over ``--max-pixels`` are refused
from their header, with an error line naming the ``file``; large ones are decoded at reduced size
(``"decoded_at": "1/2"``, boxes still in the file's pixels). ``--rss-every N`` adds the current
and peak resident memory (``rss_mb``, ``rss_peak_mb``) to every N-th line, for soak tests.

``--jsonl FILE`` is written as ``FILE.partial`` (one run per file) and renamed when the run
completes; ``--jsonl -`` is standard output. SIGTERM or SIGINT on a finite source (files,
folders, a video without ``--loop``), or with SOURCEs left unread, appends ``{"event":
"interrupted", ...}``, keeps the ``.partial`` name and exits 143 / 130; on the last SOURCE, when
it is a camera or a looping video, SIGTERM is a normal stop.

Examples::

    affectlite run picamera2 --bundle bundle/ --jsonl faces.jsonl
    affectlite run 0 --bundle bundle/ --show
    affectlite run clip.mp4 other.mp4 photos/ --bundle bundle/ --max-frames 100
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite.errors import AffectliteError, EnvironmentProblem, InputError
from affectlite.files import FILE_MODE
from affectlite.options import (
    add_bundle,
    add_detector,
    add_max_pixels,
    add_overwrite,
    add_sources,
    check_positive,
)

from .bundle import load_bundle
from .names import shown
from .pipeline import STAGES, FrameResult, Pipeline, PipelineConfig
from .preprocess import MAX_STILL_PIXELS
from .sources import (
    Backoff,
    FrameSource,
    ImageFilesSource,
    ReconnectingSource,
    SourceError,
    list_images,
    open_source,
    return_freed_frames,
)

WINDOW = "affectlite"
log = logging.getLogger(__name__)


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
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """The most resident memory this process has used: ``VmHWM`` from ``/proc`` (Linux and
    Android), elsewhere ``getrusage``'s ``ru_maxrss``. Linux's ``ru_maxrss`` is not used where
    ``/proc`` exists: it keeps the peak of the parent's address space across ``fork``/``exec``,
    so a runner started by a large process would report the parent's peak."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource  # Unix only; not needed where /proc exists.

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def add_face_options(parser: argparse.ArgumentParser) -> None:
    """``--threads``, ``--detector`` and ``--max-faces``, as ``run`` and ``predict`` take them."""
    defaults = PipelineConfig()
    parser.add_argument("--threads", type=int, help="interpreter threads (default: up to 4)")
    add_detector(parser, defaults.detector)
    parser.add_argument(
        "--max-faces", type=int, default=defaults.max_faces, help="classify the N largest faces"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PipelineConfig()
    backoff = Backoff()
    add_sources(
        parser,
        "picamera2, android, a webcam index (0, 1, …), a video file, an image file or a "
        "folder of images (photos are classified one by one, without tracking or smoothing); "
        "several are read one after another into the same output, tracking restarting with each",
    )
    add_bundle(parser)
    parser.add_argument(
        "--jsonl", type=Path, help="write the JSON lines to this file (default: standard output)"
    )
    add_overwrite(parser, "an existing --jsonl file (never the source)")
    parser.add_argument("--show", action="store_true", help="show frames with boxes (needs a GUI)")
    parser.add_argument("--max-frames", type=int, help="stop each source after this many frames")
    add_face_options(parser)
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
    parser.add_argument(
        "--smoothing",
        type=float,
        default=defaults.smoothing,
        help="weight of the past in each face's probability average, in [0, 1) (0: none)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="smoothed confidence below which a face is 'uncertain'",
    )
    parser.add_argument(
        "--loop", action="store_true", help="restart a video or folder at its end (one SOURCE)"
    )
    add_max_pixels(parser, MAX_STILL_PIXELS)
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
    parser.add_argument(
        "--max-retry-delay",
        type=float,
        default=backoff.maximum,
        help="longest wait in seconds between reconnection attempts",
    )
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
            f"{self.rss_start / mib:.1f} → {self.rss_end / mib:.1f} MiB, "
            f"peak {peak_rss_bytes() / mib:.1f} MiB"
        )


class OutputError(AffectliteError):
    """The ``--jsonl`` file cannot be created or written (exit 2 before the run, 1 during it)."""


class JsonLines:
    """Writes one JSON object per line, flushed at once, to a file or standard output.

    A regular file is written as ``NAME.partial``, created exclusively and held under an
    exclusive ``flock`` while the run lasts, and renamed to ``NAME`` when the run completes: a
    second run on the same path is refused, a complete file never looks unfinished, and a
    stopped or failed run keeps every whole line under the ``.partial`` name. A ``.partial``
    that no live process holds (its writer is gone; the kernel drops the lock with the process)
    is replaced, with a warning. Lines are written whole: after a failed write (a full disk) the
    file is cut back to the last complete line.

    An existing regular ``NAME`` is refused unless ``overwrite``. A symlink is followed: the
    ``.partial`` and the rename are at its target. An existing device or FIFO (``/dev/null``,
    ``/dev/stdout``, a pipe) is opened and written directly, never renamed over.

    Args:
        path: the output file; ``None`` or ``-`` for standard output.
        option: the option that named it, for messages (``--jsonl``, ``--out``).
        overwrite: replace an existing regular file at ``path`` when the run completes.
    """

    def __init__(self, path: Path | None, option: str = "--jsonl", overwrite: bool = False) -> None:
        self.path = None if path is None or str(path) == "-" else Path(path)
        self.option, self.overwrite = option, overwrite
        self._lock = threading.Lock()
        self.partial = self.path.with_name(self.path.name + ".partial") if self.path else None
        self._fd: int | None = None
        self._direct = False
        self._good = 0

    def open(self) -> None:
        """Creates and locks the ``.partial`` file (or opens a device), before any other work.

        Raises:
            OutputError: if the path is a folder, an existing file (without ``overwrite``),
                cannot be created, or another run writes it.
        """
        if self.path is None:
            return
        target = Path(os.path.realpath(self.path))  # a symlink's target, where it is renamed
        shown_path = shown(self.path)
        try:
            info = os.stat(target)
        except OSError:  # none yet; a bad folder is reported when the file is created
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise OutputError(
                f"{self.option} {shown_path} is a folder; give a file name inside it."
            )
        if info is not None and not stat.S_ISREG(info.st_mode):
            self._open_direct(target)
            return
        if info is not None and not self.overwrite:
            raise OutputError(
                f"{self.option} {shown_path} already exists; choose another file or pass "
                "--overwrite to replace it."
            )
        self.path, self.partial = target, target.with_name(target.name + ".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError as error:
            raise OutputError(
                f"{self.option} {shown_path}: cannot create a file there ({error.strerror}); "
                "choose a writable folder."
            ) from None
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.fchmod(handle, FILE_MODE)
        try:
            self._claim(Path(name))
        except BaseException:
            os.close(handle)
            Path(name).unlink(missing_ok=True)
            raise
        self._fd = handle

    def _open_direct(self, target: Path) -> None:
        """Opens an existing device or FIFO for writing, as it is: no ``.partial``, no rename."""
        try:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY)
        except OSError as error:
            raise OutputError(
                f"{self.option} {shown(self.path)}: cannot open it for writing ({error.strerror})."
            ) from None
        self._direct = True
        self.partial = None

    def _claim(self, locked: Path) -> None:
        """Puts the locked file ``locked`` at the ``.partial`` name, unless a live run holds it."""
        try:
            os.link(locked, self.partial)  # fails if the name exists: exclusive, like O_EXCL
            os.unlink(locked)
        except FileExistsError:
            self._replace_stale(locked)

    def _replace_stale(self, locked: Path) -> None:
        try:
            old = os.open(self.partial, os.O_RDONLY)
        except OSError as error:
            raise OutputError(
                f"{self.option} {shown(self.partial)}: cannot open ({error.strerror})."
            ) from None
        try:
            try:
                fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError(
                    f"{self.option} {shown(self.path)}: another affectlite run is writing "
                    f"{shown(self.partial.name)}; wait for it to end or choose another "
                    f"{self.option}."
                ) from None
            log.warning(
                "Replacing %s, left by a run that is no longer running (stopped or failed).",
                self.partial,
            )
            os.replace(locked, self.partial)
        finally:
            os.close(old)  # Held until the new file is in place, so no third run slips in.

    def write(self, record: dict[str, Any]) -> None:
        """Appends one line.

        Raises:
            OutputError: when the file cannot take the line (e.g. the disk is full); the
                file then ends with the last complete line.
        """
        try:
            line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        except ValueError:  # NaN or infinity (a broken model's output) is not JSON: null
            line = json.dumps(_finite(record), separators=(",", ":")) + "\n"
        with self._lock:
            if self._fd is None:
                sys.stdout.write(line)
                sys.stdout.flush()
                return
            data = line.encode("utf-8")
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
            except OSError as error:
                if self._direct:
                    raise OutputError(
                        f"cannot write {shown(self.path)} ({error.strerror})."
                    ) from None
                os.ftruncate(self._fd, self._good)
                raise OutputError(
                    f"cannot write {shown(self.partial)} ({error.strerror}); the {self._good} "
                    "bytes of whole lines written so far are kept there."
                ) from None
            if not self._direct:
                self._good = os.lseek(self._fd, 0, os.SEEK_CUR)

    def __enter__(self) -> JsonLines:
        self.open()
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        """A block that ended normally gets the final name; one that raised keeps
        ``.partial``, so its output never looks complete."""
        if exc_type is None:
            self.finish()
        else:
            self.close()

    def discard(self) -> None:
        """Drops the output file (the run never started); a device is left as it is."""
        if self._fd is not None:
            if not self._direct:
                self.partial.unlink(missing_ok=True)
            self.close()

    def finish(self) -> None:
        """Renames the complete ``.partial`` file to its final name (a device: just closes)."""
        if self._fd is not None:
            if not self._direct:
                os.fsync(self._fd)
                os.replace(self.partial, self.path)
            self.close()

    def close(self) -> None:
        """Closes the file, keeping the ``.partial`` name (and releasing the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None``."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


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
    name: str | None = None,
) -> None:
    """Processes frames until the source ends, ``max_frames`` of it or ``stop`` is set. Lines
    without a ``file`` name the ``source``: ``name``, by default the source's own."""
    stop = stop or threading.Event()
    still = getattr(source, "still", False)  # photos: no tracking or smoothing across them
    first = stats.frames  # the frames of the sources before this one
    while not stop.is_set() and (max_frames is None or stats.frames - first < max_frames):
        frame = source.read()
        if frame is None:
            break
        result = pipeline.process(frame, source.detection_frame(), still=still)
        reduction = getattr(source, "current_reduction", 1)
        reported = result
        if reduction > 1:  # a large still decoded at reduced size: boxes in the file's pixels
            size = source.current_size  # boxes clipped to the file's picture
            faces = [face.scaled(reduction).inside(*size) for face in result.faces]
            reported = replace(result, faces=faces)
        record = {"frame": stats.frames - first, **reported.to_dict()}
        current = getattr(source, "current_path", None)
        if current is not None:
            record["file"] = shown(current)
        else:
            record["source"] = name or source.name
        if reduction > 1:
            record["decoded_at"] = f"1/{reduction}"
        if rss_every and stats.frames % rss_every == 0:
            record["rss_mb"] = round(rss_bytes() / (1 << 20), 2)
            record["rss_peak_mb"] = round(peak_rss_bytes() / (1 << 20), 2)
        emit(record)
        stats.add(result)
        if display and not show(frame, result):
            break


def _config(args: argparse.Namespace) -> tuple[PipelineConfig, Backoff]:
    check_positive(max_frames=args.max_frames, max_pixels=args.max_pixels)
    if args.loop and len(args.sources) > 1:
        raise InputError(f"--loop repeats one SOURCE; got {len(args.sources)}.")
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
def on_signals(handler: Callable[[int], None]) -> Iterator[None]:
    """Routes SIGTERM (``systemctl stop``) and SIGINT (Ctrl-C) to ``handler`` while the run
    lasts, so the output file is ended cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda signum, _: handler(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _check_not_source(output: Path | None, source: str) -> None:
    """Refuses a ``--jsonl`` that is the source file, or an image of the source folder."""
    if output is None or str(output) == "-" or not output.exists() or not Path(source).exists():
        return
    source_path = Path(source)
    try:
        inputs = list_images(source_path) if source_path.is_dir() else [source_path]
    except SourceError:  # no images: nothing to protect; the source says so when opened
        return
    if any(os.path.samefile(output, path) for path in inputs):
        raise InputError(
            f"--jsonl {shown(output)} is one of the source's files; it is never replaced."
        )


def _fail(message: object, status: int = 2) -> int:
    print(f"affectlite run: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    return_freed_frames()
    logging.basicConfig(level=logging.WARNING, format="affectlite run: %(message)s")
    out = JsonLines(args.jsonl, overwrite=args.overwrite)
    try:
        config, backoff = _config(args)
        if args.show:
            check_display()
        for source in args.sources:
            _check_not_source(args.jsonl, source)
        out.open()
    except (AffectliteError, OutputError) as error:
        return _fail(error)
    try:
        pipeline = Pipeline(load_bundle(args.bundle), config)
    except AffectliteError as error:
        out.discard()
        return _fail(error)
    except BaseException:
        out.discard()
        raise
    try:
        return _run(args, pipeline, out, backoff)
    except OutputError as error:
        return _fail(error, 1)
    finally:
        out.close()


def _run(args: argparse.Namespace, pipeline: Pipeline, out: JsonLines, backoff: Backoff) -> int:
    """Runs the opened output and pipeline over the sources in turn; returns the exit status."""
    stats = RunStats()
    stop = threading.Event()
    opened: list[FrameSource] = []
    received: list[int] = []

    def halt(signum: int) -> None:
        received.append(signum)
        stop.set()
        for source in opened:
            if isinstance(source, ReconnectingSource):
                source.close()  # Ends a back-off wait for a missing camera at once.

    def report(name: str, message: str) -> None:
        stats.errors += 1
        out.write({"frame": None, **FrameResult.failure(message).to_dict(), "source": name})

    def skip(path: Path, message: str) -> None:
        out.write({"frame": None, "file": shown(path), **FrameResult.failure(message).to_dict()})

    options = {"loop": True} if args.loop else {}
    status, unfinished = 0, False
    with on_signals(halt):
        for index, spec in enumerate(args.sources):
            if stop.is_set():
                unfinished = True  # sources left unread
                break
            name = shown(spec)
            try:
                source = open_source(
                    spec, backoff=backoff, on_error=partial(report, name), **options
                )
            except AffectliteError as error:
                if len(args.sources) == 1:
                    out.discard()
                    raise
                report(name, str(error))
                _fail(error, 0)
                status = max(status, 2)
                continue
            if isinstance(source, ImageFilesSource):
                source.max_pixels, source.on_skip = int(args.max_pixels), skip
            opened.append(source)
            pipeline.reset()  # no track or smoothing spans two sources
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
                        name=name,
                    )
            except SourceError as error:  # Only when --max-retries is exhausted.
                report(name, str(error))
                status = max(status, 1)
            finite = not source.live and not args.loop
            unfinished = finite or index + 1 < len(args.sources)
    stats.rss_end = rss_bytes()
    status = _end(out, received[0] if received else None, unfinished, stats.frames, status)
    _print_summary(stats, opened)
    return status


def _end(out: JsonLines, signum: int | None, unfinished: bool, frames: int, status: int) -> int:
    """Ends the output and returns the exit status: a run stopped by a signal before its end
    keeps ``.partial``, with a last ``interrupted`` line (128 + the signal); any other run gets
    its final name (SIGINT still exits 130)."""
    if signum is not None and unfinished:
        name = signal.Signals(signum).name
        out.write({"event": "interrupted", "signal": name, "frames": frames})
        out.close()
        _fail(f"stopped by {name}; the output {out.partial or ''} is incomplete.", 0)
        return 128 + signum
    out.finish()
    return 128 + signum if signum == signal.SIGINT else status


def _print_summary(stats: RunStats, sources: list[FrameSource]) -> None:
    print(f"affectlite run: {stats.summary()}", file=sys.stderr)
    for source in sources:
        for warning in getattr(source, "warnings", []):
            print(f"affectlite run: warning: {warning}", file=sys.stderr)
    skipped = [message for source in sources for message in getattr(source, "skipped", [])]
    if skipped:
        print(f"affectlite run: skipped {len(skipped)} unreadable image(s):", file=sys.stderr)
        for message in skipped:
            print(f"  {message}", file=sys.stderr)
