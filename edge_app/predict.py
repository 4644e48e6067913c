"""``affectlite predict``: your photos, videos or camera in; annotated pictures and JSON out.

Every SOURCE is an image file, a folder of images, a glob pattern, a video file or a camera
index. Photos are classified one by one (no tracking or smoothing across them); videos and
cameras keep tracking and smoothing. Into ``--out`` (default ``runs/predict-<time>/``) go one
annotated picture per photo, one annotated MP4 per video or camera (at most 1920×1080: a 4K
video is annotated at half its size), and ``predictions.jsonl``
with one line per photo or frame::

    {"file": "photos/a.jpg", "annotated": "a.jpg", "faces": [{"track_id": null,
     "box": [x, y, w, h], "label": "happy", "confidence": 0.81, "uncertain": false,
     "probabilities": {...}, "score": 0.93}]}

The kind of each file is read from its first bytes, never its name (a GIF is a still: its first
frame). An ``--out`` folder that already holds files is refused unless ``--overwrite``, and an
annotated picture never replaces one of the inputs: it takes the name ``stem-2.jpg`` instead.
A source that cannot be read or written is reported on its line and the others go on; the exit
status is then 1 if an output could not be written, else 2. SIGTERM or SIGINT stops after the
current photo (a video file's unfinished MP4 is removed), appends ``{"event": "interrupted",
...}`` and keeps ``predictions.jsonl.partial``, with exit 143 / 130, as ``run`` does.

Examples::

    affectlite predict photo.jpg
    affectlite predict photos/ 'more/*.png' --out runs/mine
    affectlite predict clip.mp4 --bundle bundle/
    affectlite predict 0 --max-frames 100
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite.errors import AffectliteError, EnvironmentProblem, InputError
from affectlite.files import atomic_path, write_bytes
from affectlite.options import (
    add_bundle,
    add_max_pixels,
    add_overwrite,
    add_sources,
    check_positive,
)

from . import overlay
from .bundle import DEFAULT_BUNDLE, BundleError, resolve_bundle
from .detector import DetectorUnavailable
from .names import shown
from .pipeline import FaceResult, FrameResult, Pipeline, PipelineConfig
from .preprocess import MAX_STILL_PIXELS, ImageError, media_kind, read_still
from .recognizer import EmotionRecognizer
from .report import PrintedResults
from .runner import (
    WINDOW,
    JsonLines,
    OutputError,
    RunnerError,
    add_face_options,
    check_display,
    on_signals,
)
from .sources import OpenCVSource, SourceError, expand_glob, list_images, return_freed_frames

PROG = "affectlite predict"
RESULTS = "predictions.jsonl"
VIDEO_OUT_PIXELS = 1920 * 1080
"""Largest annotated MP4 frame: bigger videos are annotated at 1/2, 1/3, … of their size."""
FPS_RANGE = (1.0, 120.0)
"""Frame rates the MP4 writer is given: a header's absurd rate (0, 1e9) is clamped into it."""
Emit = Callable[[dict[str, Any]], None]
Show = Callable[[np.ndarray, bool], bool]


@dataclass(frozen=True)
class Item:
    """One thing to predict on: a ``"photo"`` or ``"video"`` file, or a ``"camera"`` index."""

    kind: str
    target: Path | int

    @property
    def name(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else shown(self.target)


class WriteFailed(AffectliteError):
    """An item's output could not be written (full disk, an encoder that refuses its frames);
    the item is reported and the others go on (exit 1)."""


class Interrupted(Exception):
    """A stop signal arrived while a video file was being read."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PipelineConfig()
    add_sources(
        parser,
        "image file, folder of images, glob pattern ('photos/*.jpg'), video file or "
        "camera index (0, 1, …)",
    )
    add_bundle(parser)
    parser.add_argument(
        "--out", type=Path, help="output folder (default: runs/predict-<date>-<time>)"
    )
    add_overwrite(parser, "results in an existing --out folder (never an input)")
    parser.add_argument(
        "--show", action="store_true", help="also show each result in a window (needs a GUI)"
    )
    parser.add_argument("--max-frames", type=int, help="stop each video or camera after N frames")
    add_max_pixels(parser, MAX_STILL_PIXELS)
    add_face_options(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        default=defaults.threshold,
        help="confidence below which a face is labelled 'uncertain' (0 always names an emotion)",
    )


def expand_sources(specs: list[str]) -> list[Item]:
    """The photos, videos and cameras that ``specs`` name, in order; each file's kind is read
    from its first bytes.

    Raises:
        InputError: for a spec that names nothing (no such file, empty folder, no match) or too
            much (over 100,000 files).
    """
    items = []
    for spec in specs:
        if spec.isdigit():
            items.append(Item("camera", int(spec)))
            continue
        path = Path(spec).expanduser()
        try:
            if path.is_dir():
                paths = list_images(path)
            elif path.is_file():
                paths = [path]
            elif glob.has_magic(spec):
                paths = expand_glob(spec)
                if not paths:
                    raise InputError(f"{shown(spec)}: no file matches this pattern.")
            else:
                raise InputError(
                    f"{shown(spec)}: no such file or folder. Give image files, folders, glob "
                    "patterns, video files or a camera index (0, 1, …)."
                )
            items += [Item(_kind(p), p) for p in paths]
        except SourceError as error:
            raise InputError(str(error)) from error
    return items


def _kind(path: Path) -> str:
    """``"photo"`` or ``"video"`` by the file's first bytes; an unreadable file is a photo, so
    the still reader reports it on its own line."""
    try:
        return "photo" if media_kind(path) == "still" else "video"
    except ImageError:
        return "photo"


def prepare_out(out: Path, overwrite: bool, items: list[Item]) -> list[Path]:
    """Checks and creates the output folder; returns the folders created, deepest first.

    Raises:
        InputError: for an ``--out`` that is a file, lies under one, cannot be created, already
            holds files (unless ``overwrite``), or whose ``predictions.jsonl`` is an input.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {shown(out)} is a file, not a folder; choose a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(
            f"--out {shown(out)} already holds files; choose another folder or pass "
            "--overwrite (inputs are never replaced)."
        )
    if is_input(out / RESULTS, input_ids(items)):
        raise InputError(f"--out {shown(out)}: its {RESULTS} is an input; choose another folder.")
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"--out {shown(out)}: cannot create this folder ({error.strerror}); choose a "
            "writable one."
        ) from None
    return created


def input_ids(items: list[Item]) -> set[tuple[int, int]]:
    """``(device, inode)`` of every input file: what an output must never replace."""
    ids = set()
    for item in items:
        if item.kind != "camera":
            info = os.stat(item.target)
            ids.add((info.st_dev, info.st_ino))
    return ids


def is_input(path: Path, inputs: set[tuple[int, int]]) -> bool:
    """Whether ``path`` (a link followed) is one of the input files."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) in inputs


@dataclass
class Names:
    """The names given in one output folder: never twice, and never an input's file."""

    out: Path
    inputs: set[tuple[int, int]]
    taken: set[str]

    def unique(self, stem: str, suffix: str) -> str:
        """``stem + suffix``, or ``stem-2 + suffix``, … when that name is taken or is an input;
        the stem escaped as :func:`~.names.shown` writes it (no control or undecodable bytes)."""
        stem = shown(stem)
        name, count = stem + suffix, 1
        while name in self.taken or is_input(self.out / name, self.inputs):
            count += 1
            name = f"{stem}-{count}{suffix}"
        self.taken.add(name)
        return name


def fresh_folder(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, … if it exists: a default never mixes two runs."""
    candidate, count = path, 1
    while candidate.exists():
        count += 1
        candidate = path.with_name(f"{path.name}-{count}")
    return candidate


def encode_jpeg(picture_rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise EnvironmentProblem(f"OpenCV cannot encode JPEG here ({picture_rgb.shape}).")
    return data.tobytes()


def predict_photo(
    recognizer: EmotionRecognizer,
    path: Path,
    names: Names,
    emit: Emit,
    max_pixels: float = MAX_STILL_PIXELS,
) -> tuple[Path, np.ndarray]:
    """Classifies one photo, writes its annotated picture and line; returns the picture's path
    and pixels.

    Raises:
        ImageError: when the photo cannot be read.
        WriteFailed: when its picture cannot be written.
    """
    still = read_still(path, max_pixels)
    faces = recognizer.predict(still.rgb)
    picture = recognizer.annotate(still.rgb, faces)
    name = names.unique(path.stem, ".jpg")
    try:
        written = write_bytes(names.out / name, encode_jpeg(picture))
    except OSError as error:
        raise WriteFailed(f"{shown(path)}: cannot write {name} ({error.strerror}).") from None
    record = {"file": shown(path), "annotated": name}
    if still.reduction > 1:  # decoded reduced: boxes in the file's pixels, as `run` writes them
        record["decoded_at"] = f"1/{still.reduction}"
    faces = [face.scaled(still.reduction).inside(*still.upright_size).to_dict() for face in faces]
    emit({**record, "faces": faces})
    return written, picture


def predict_stream(
    pipeline: Pipeline,
    item: Item,
    names: Names,
    emit: Emit,
    max_frames: int | None,
    show: Show | None,
    stop: threading.Event,
) -> int:
    """Classifies a video or camera with tracking and smoothing, writing an annotated MP4 and a
    line per frame; returns the number of frames. ``stop`` ends a camera and keeps its video;
    it abandons a video file (:class:`Interrupted`). The MP4 gets its name only once it is
    complete and plays: a failed one never lands under it.

    Raises:
        SourceError, InputError: when the video cannot be read.
        WriteFailed: when its MP4 cannot be written.
        Interrupted: when ``stop`` is set during a video file.
    """
    pipeline.reset()
    stem = f"camera{item.target}" if item.kind == "camera" else Path(item.target).stem
    name = names.unique(stem, ".mp4")
    frames, stop_after = 0, False
    try:
        with (
            OpenCVSource(item.target, reuse=True) as source,
            atomic_path(names.out / name) as temporary,
        ):
            writer = None
            try:
                while max_frames is None or frames < max_frames:
                    if stop.is_set():
                        if item.kind == "camera":
                            break
                        raise Interrupted
                    frame = source.read()
                    if frame is None:
                        break
                    result = pipeline.process(frame)
                    picture = annotated_frame(frame, result.faces, pipeline.labels)
                    if show is not None and not show(picture, True):
                        stop_after = True
                    if writer is None:
                        writer = open_video_writer(temporary, source.fps, picture.shape, item)
                    writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR, dst=picture))
                    faces = [face.to_dict() for face in result.faces]
                    emit({"file": item.name, "frame": frames, "annotated": name, "faces": faces})
                    frames += 1
                    if stop_after:
                        break
            finally:
                if writer is not None:
                    writer.release()
            if writer is None:
                raise InputError(f"{item.name}: no frame could be read.")
            check_video(temporary, frames, item)
    except OSError as error:  # the temporary file could not be made or renamed
        raise WriteFailed(f"{item.name}: cannot write {name} ({error.strerror}).") from None
    return frames


def annotated_frame(
    frame: np.ndarray, faces: list[FaceResult], labels: tuple[str, ...]
) -> np.ndarray:
    """The frame drawn as a photo is (each face's panel clear of the others, "no face" when
    there is none), for the MP4: drawn on the frame itself, or on a copy
    reduced to at most :data:`VIDEO_OUT_PIXELS` (a 4K video is annotated at 1920×1080, which
    keeps its encoder within the memory bound; the JSON boxes stay in the video's pixels)."""
    height, width = frame.shape[:2]
    reduction = math.ceil(math.sqrt(width * height / VIDEO_OUT_PIXELS))
    if reduction > 1:
        size = (max(2, width // reduction), max(2, height // reduction))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        faces = [face.scaled(1 / reduction) for face in faces]
    overlay.draw_result(frame, FrameResult(0.0, faces, {}), None, labels)
    return frame


def open_video_writer(
    path: Path, fps: float | None, shape: tuple[int, ...], item: Item
) -> cv2.VideoWriter:
    """An MP4 writer for frames of ``shape``.

    Raises:
        EnvironmentProblem: when this OpenCV has no FFmpeg writer at all.
        WriteFailed: when FFmpeg refuses these frames (e.g. 1×1).
    """
    height, width = shape[:2]
    rate = min(max(fps or 15.0, FPS_RANGE[0]), FPS_RANGE[1])
    fourcc = cv2.VideoWriter.fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, fourcc, rate, (width, height))
    if writer.isOpened():
        return writer
    registry = cv2.videoio_registry
    if "FFMPEG" not in map(registry.getBackendName, registry.getWriterBackends()):
        raise EnvironmentProblem(
            f"OpenCV {cv2.__version__} here cannot write MP4 video (no FFmpeg backend); "
            "install opencv-python-headless from PyPI, which includes it."
        )
    raise WriteFailed(
        f"{item.name}: OpenCV's FFmpeg cannot encode its {width}×{height} frames at {rate:g} "
        "frames/s as an MP4; no video written."
    )


def check_video(path: Path, frames: int, item: Item) -> None:
    """Refuses an MP4 that does not open or holds fewer frames than were written (a full
    disk cuts it short without an error from the encoder)."""
    capture = cv2.VideoCapture(str(path))
    try:
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if declared != frames:
        raise WriteFailed(
            f"{item.name}: the annotated MP4 came out unplayable ({declared} of {frames} frames; "
            "full disk?); it was removed."
        )


def window_backend(wanted: bool) -> str | None:
    """How ``--show`` opens its window: ``"opencv"`` (a GUI OpenCV and a display), ``"kivy"``
    (Kivy installed and a display, SDL's included) or ``None``, after saying why on stderr."""
    if not wanted:
        return None
    try:
        check_display()
        return "opencv"
    except RunnerError as error:
        reason = str(error)
    display = not sys.platform.startswith("linux") or any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
    )
    if display and importlib.util.find_spec("kivy") is not None:
        return "kivy"
    print(
        f"{PROG}: no window: {reason} Kivy (`pip install 'affectlite[edge]'`) with a display "
        "would do too. The annotated pictures are written all the same.",
        file=sys.stderr,
    )
    return None


def opencv_show(picture: np.ndarray, moving: bool) -> bool:
    """Shows a picture with ``cv2.imshow``; waits for a key on photos. False after q or Esc."""
    cv2.imshow(WINDOW, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1 if moving else 0) & 0xFF not in (ord("q"), 27)


def kivy_show(pictures: list[Path]) -> None:
    """Shows the annotated photos in a Kivy window (Next, Close) until it is closed."""
    if not pictures:
        print(f"{PROG}: no annotated photo to show (videos: open the MP4 files).", file=sys.stderr)
        return
    os.environ.setdefault("KCFG_KIVY_LOG_LEVEL", "warning")
    from .ui import PictureViewer  # Kivy only now, and only for --show

    PictureViewer(pictures).run()


def _recognizer(args: argparse.Namespace) -> EmotionRecognizer:
    bundle = resolve_bundle(args.bundle)
    default = bundle == DEFAULT_BUNDLE
    if not default:  # the dispatcher names the default bundle itself
        print(f"{PROG}: bundle {bundle}", file=sys.stderr)
    config = PipelineConfig(
        num_threads=args.threads,
        detector=args.detector,
        max_faces=args.max_faces,
        threshold=args.threshold,
    )
    try:
        return EmotionRecognizer(bundle, config)
    except BundleError as error:
        hint = " Pass --bundle with a bundle from `affectlite convert`." if default else ""
        raise InputError(f"{error}{hint}") from error


def _fail(message: object) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    return_freed_frames()
    out = args.out or fresh_folder(Path("runs") / f"predict-{time.strftime('%Y%m%d-%H%M%S')}")
    lines = JsonLines(out / RESULTS, option="--out", overwrite=args.overwrite)
    try:
        check_positive(max_frames=args.max_frames, max_pixels=args.max_pixels)
        items = expand_sources(args.sources)
        created = prepare_out(out, args.overwrite, items)
    except (InputError, ValueError) as error:
        return _fail(error)
    try:
        lines.open()
        recognizer = _recognizer(args)
    except (AffectliteError, ValueError, DetectorUnavailable) as error:
        lines.discard()
        for folder in created:
            folder.rmdir()
        return _fail(error)
    try:
        return _predict(args, recognizer, items, out, lines)
    except OutputError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    finally:
        lines.close()


def _predict(
    args: argparse.Namespace,
    recognizer: EmotionRecognizer,
    items: list[Item],
    out: Path,
    lines: JsonLines,
) -> int:
    """Predicts every item into ``out``; returns the exit status."""
    backend = window_backend(args.show)
    show = opencv_show if backend == "opencv" else None
    shown_pictures: list[Path] = []
    names = Names(out, input_ids(items), {RESULTS, RESULTS + ".partial"})
    counts = {"photo": 0, "frame": 0, "bad": 0, "unwritten": 0}
    stop, received = threading.Event(), []
    interrupted = False
    printed = PrintedResults(lines)

    def halt(signum: int) -> None:
        received.append(signum)
        stop.set()

    with on_signals(halt), printed:
        for item in items:
            if stop.is_set():
                interrupted = True
                break
            try:
                if item.kind == "photo":
                    path, picture = predict_photo(
                        recognizer, item.target, names, printed.write, args.max_pixels
                    )
                    counts["photo"] += 1
                    shown_pictures.append(path)
                    if show is not None and not show(picture, False):
                        show = None
                    continue
                if item.kind == "camera":
                    print(f"{PROG}: reading {item.name}; Ctrl-C stops it.", file=sys.stderr)
                counts["frame"] += predict_stream(
                    recognizer.pipeline, item, names, printed.write, args.max_frames, show, stop
                )
            except Interrupted:
                interrupted = True
                break
            except (SourceError, InputError, WriteFailed) as error:
                counts["unwritten" if isinstance(error, WriteFailed) else "bad"] += 1
                printed.write({"file": item.name, "faces": [], "error": str(error)})
                print(f"{PROG}: skipped {error}", file=sys.stderr)
    if interrupted:
        name = signal.Signals(received[0]).name
        lines.write({"event": "interrupted", "signal": name, **counts})
        lines.close()
        print(f"{PROG}: stopped by {name}; {shown(lines.partial)} is incomplete.", file=sys.stderr)
        return 128 + received[0]
    lines.finish()
    failed = counts["bad"] + counts["unwritten"]
    print(
        f"{PROG}: {counts['photo']} photo(s) and {counts['frame']} video frame(s) annotated in "
        f"{shown(out)}/ with {RESULTS}; {failed} source(s) failed."
    )
    if backend == "kivy":
        kivy_show(shown_pictures)
    if counts["unwritten"]:
        return 1
    if counts["bad"]:
        return 2
    return 128 + signal.SIGINT if received and received[0] == signal.SIGINT else 0
