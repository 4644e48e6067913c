"""``affectlite predict``: your photos, videos or camera in; annotated pictures and JSON out.

Every SOURCE is an image file, a folder of images, a glob pattern, a video file or a camera
index. Photos are classified one by one (no tracking or smoothing across them); videos and
cameras keep tracking and smoothing. Into ``--out`` (default ``runs/predict-<time>/``) go one
annotated picture per photo, one annotated MP4 per video or camera, and ``predictions.jsonl``
with one line per photo or frame::

    {"file": "photos/a.jpg", "annotated": "a.jpg", "faces": [{"track_id": null,
     "box": [x, y, w, h], "label": "happy", "confidence": 0.81, "uncertain": false,
     "probabilities": {...}, "score": 0.93}]}

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
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from affectlite.errors import EnvironmentProblem, InputError
from affectlite.files import atomic_path, write_bytes
from affectlite.options import add_bundle, add_max_pixels, add_sources, check_positive

from . import overlay
from .bundle import DEFAULT_BUNDLE, BundleError, resolve_bundle
from .detector import DetectorUnavailable
from .pipeline import Pipeline, PipelineConfig
from .preprocess import MAX_STILL_PIXELS, ImageError, read_still
from .recognizer import EmotionRecognizer
from .report import PrintedResults
from .runner import WINDOW, JsonLines, RunnerError, add_face_options, check_display
from .runtime import RuntimeUnavailable
from .sources import IMAGE_SUFFIXES, OpenCVSource, SourceError, list_images

PROG = "affectlite predict"
Emit = Callable[[dict[str, Any]], None]
Show = Callable[[np.ndarray, bool], bool]


@dataclass(frozen=True)
class Item:
    """One thing to predict on: a ``"photo"`` or ``"video"`` file, or a ``"camera"`` index."""

    kind: str
    target: Path | int

    @property
    def name(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else str(self.target)


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
    """The photos, videos and cameras that ``specs`` name, in order.

    Raises:
        InputError: for a spec that names nothing (no such file, empty folder, no match).
    """
    items = []
    for spec in specs:
        if spec.isdigit():
            items.append(Item("camera", int(spec)))
            continue
        path = Path(spec).expanduser()
        if path.is_dir():
            try:
                paths = list_images(path)
            except SourceError as error:
                raise InputError(str(error)) from error
        elif path.is_file():
            paths = [path]
        elif glob.has_magic(spec):
            paths = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            paths = [p for p in paths if p.is_file()]
            if not paths:
                raise InputError(f"{spec}: no file matches this pattern.")
        else:
            raise InputError(
                f"{spec}: no such file or folder. Give image files, folders, glob patterns, "
                "video files or a camera index (0, 1, …)."
            )
        items += [
            Item("photo" if p.suffix.lower() in IMAGE_SUFFIXES else "video", p) for p in paths
        ]
    return items


def unique_name(stem: str, suffix: str, taken: set[str]) -> str:
    """``stem + suffix``, or ``stem-2 + suffix``, … when that name is already ``taken``."""
    name, count = stem + suffix, 1
    while name in taken:
        count += 1
        name = f"{stem}-{count}{suffix}"
    taken.add(name)
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
    out: Path,
    taken: set[str],
    emit: Emit,
    max_pixels: float = MAX_STILL_PIXELS,
) -> tuple[Path, np.ndarray] | None:
    """Classifies one photo, writes its annotated picture and line; returns the picture's path
    and pixels, or ``None`` when the photo cannot be read (the line then carries the error)."""
    try:
        still = read_still(path, max_pixels)
    except ImageError as error:
        emit({"file": str(path), "faces": [], "error": str(error)})
        print(f"{PROG}: skipped {error}", file=sys.stderr)
        return None
    faces = recognizer.predict(still.rgb)
    picture = recognizer.annotate(still.rgb, faces)
    name = unique_name(path.stem, ".jpg", taken)
    written = write_bytes(out / name, encode_jpeg(picture))
    record = {"file": str(path), "annotated": name}
    if still.reduction > 1:  # decoded reduced: boxes in the file's pixels, as `run` writes them
        record["decoded_at"] = f"1/{still.reduction}"
    faces = [face.scaled(still.reduction).to_dict() for face in faces]
    emit({**record, "faces": faces})
    return written, picture


def predict_stream(
    pipeline: Pipeline,
    item: Item,
    out: Path,
    taken: set[str],
    emit: Emit,
    max_frames: int | None,
    show: Show | None,
) -> int:
    """Classifies a video or camera with tracking and smoothing, writing an annotated MP4 and a
    line per frame; returns the number of frames. Ctrl-C ends a camera and keeps its video."""
    pipeline.reset()
    stem = f"camera{item.target}" if item.kind == "camera" else Path(item.target).stem
    name = unique_name(stem, ".mp4", taken)
    frames = 0
    with OpenCVSource(item.target) as source, atomic_path(out / name) as temporary:
        writer = None
        try:
            while max_frames is None or frames < max_frames:
                frame = source.read()
                if frame is None:
                    break
                result = pipeline.process(frame)
                picture = overlay.annotate(frame, result, labels=pipeline.labels, stats=False)
                if writer is None:
                    writer = open_video_writer(temporary, source.fps or 15.0, frame.shape)
                writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                faces = [face.to_dict() for face in result.faces]
                emit({"file": item.name, "frame": frames, "annotated": name, "faces": faces})
                frames += 1
                if show is not None and not show(picture, True):
                    break
        except KeyboardInterrupt:
            if item.kind != "camera":
                raise
        finally:
            if writer is not None:
                writer.release()
        if writer is None:
            raise InputError(f"{item.name}: no frame could be read.")
    return frames


def open_video_writer(path: Path, fps: float, shape: tuple[int, ...]) -> cv2.VideoWriter:
    height, width = shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise EnvironmentProblem(
            f"OpenCV {cv2.__version__} here cannot write MP4 video (no FFmpeg backend); "
            "install opencv-python-headless from PyPI, which includes it."
        )
    return writer


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


def run(args: argparse.Namespace) -> int:
    try:
        check_positive(max_frames=args.max_frames, max_pixels=args.max_pixels)
        items = expand_sources(args.sources)
        recognizer = _recognizer(args)
    except (InputError, ValueError, DetectorUnavailable, RuntimeUnavailable) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    out = args.out or fresh_folder(Path("runs") / f"predict-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    backend = window_backend(args.show)
    show = opencv_show if backend == "opencv" else None
    shown: list[Path] = []
    taken: set[str] = {"predictions.jsonl"}
    counts = {"photo": 0, "frame": 0, "failed": 0}
    with PrintedResults(JsonLines(out / "predictions.jsonl")) as lines:
        for item in items:
            if item.kind == "photo":
                done = predict_photo(
                    recognizer, item.target, out, taken, lines.write, args.max_pixels
                )
                counts["photo" if done is not None else "failed"] += 1
                if done is not None:
                    shown.append(done[0])
                    if show is not None and not show(done[1], False):
                        show = None
                continue
            if item.kind == "camera":
                print(f"{PROG}: reading camera {item.target}; Ctrl-C stops it.", file=sys.stderr)
            try:
                counts["frame"] += predict_stream(
                    recognizer.pipeline, item, out, taken, lines.write, args.max_frames, show
                )
            except (SourceError, InputError) as error:
                counts["failed"] += 1
                lines.write({"file": item.name, "faces": [], "error": str(error)})
                print(f"{PROG}: skipped {error}", file=sys.stderr)
    print(
        f"{PROG}: {counts['photo']} photo(s) and {counts['frame']} video frame(s) annotated in "
        f"{out}/ with predictions.jsonl; {counts['failed']} source(s) failed."
    )
    if backend == "kivy":
        kivy_show(shown)
    return 2 if counts["failed"] else 0
