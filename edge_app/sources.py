"""Frame sources behind one interface: webcams, video files, image folders, the Raspberry Pi
camera (picamera2), the Android camera (Kivy), and a wrapper that survives a lost camera.

Every source yields ``uint8`` RGB frames of shape ``(H, W, 3)`` from :meth:`FrameSource.read`,
``None`` at the end of a finite stream, and raises :class:`SourceError` when the device fails.
:class:`ReconnectingSource` turns those failures into a status message and retries with
exponential back-off, so a pulled camera cable never ends a long run.

Optional hardware APIs (picamera2, Kivy's camera provider) are imported only when their source
is opened, so this module imports on any machine.
"""

from __future__ import annotations

import ctypes
import fnmatch
import glob
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from affectlite.errors import EnvironmentProblem, InputError

from .names import shown
from .preprocess import MAX_FRAME_PIXELS, MAX_STILL_PIXELS, ImageError, media_kind, read_still

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif"}
    | {".avif"}
)
"""The names a folder source lists as photos; each is then decoded by its content."""

DECODER_THREADS = 1
"""FFmpeg threads that decode a video file (see :meth:`OpenCVSource.open`)."""

GLIBC_MMAP_THRESHOLD = (-3, 128 * 1024)
"""``mallopt(M_MMAP_THRESHOLD, 128 KiB)``: glibc's default threshold, fixed (see
:func:`return_freed_frames`)."""

MAX_MATCHES = 100_000
"""Most files one folder or glob pattern may name: beyond it, a one-line error."""


def return_freed_frames() -> None:
    """Has glibc give every freed block over 128 KiB straight back to the system.

    By default glibc raises that threshold to the largest block freed (up to 32 MiB): after the
    first 4K frame (25 MB) is freed, frames and decoder buffers come from the heap, which
    fragments; a 4K video then peaks about 15 MB higher. Does nothing on other C libraries."""
    try:
        if os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            ctypes.CDLL(None).mallopt(*GLIBC_MMAP_THRESHOLD)
    except (AttributeError, OSError, ValueError):  # not glibc (Windows, macOS, musl, bionic)
        return


class SourceError(EnvironmentProblem):
    """A source cannot be opened or has stopped delivering frames (camera lost)."""


class FrameSource(Protocol):
    """What every frame source provides. Use it as a context manager, or call ``open`` and
    ``close``. ``open`` is idempotent."""

    name: str
    live: bool = False
    """True for cameras (worth reconnecting), False for files and folders."""
    still: bool = False
    """True for photos: each frame stands alone (no tracking or smoothing across frames)."""

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The next ``uint8`` RGB frame, or ``None`` at the end of the stream."""
        ...

    def close(self) -> None: ...

    def detection_frame(self) -> np.ndarray | None:
        """A smaller RGB frame of the last read made for detection (picamera2's lores stream),
        or ``None`` when the source has none."""
        return None

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=frame)  # in place: a 4K frame is 25 MB


class OpenCVSource(FrameSource):
    """A webcam (integer index) or a video file through ``cv2.VideoCapture``.

    Args:
        target: webcam index, or a video file path.
        loop: restart a video file at its end (ignored for webcams).
        resolution: ``(width, height)`` to request from a webcam.
        reuse: decode each frame into the array the previous ``read`` returned, for a reader
            that is done with a frame before it asks for the next (a 4K frame is 25 MB).
    """

    def __init__(
        self,
        target: int | str | Path,
        loop: bool = False,
        resolution: tuple[int, int] | None = None,
        reuse: bool = False,
    ) -> None:
        self.target = target if isinstance(target, int) else Path(target)
        self.live = isinstance(target, int)
        self.loop = loop
        self.resolution = resolution
        self.name = f"camera {target}" if self.live else shown(target)
        self.warnings: list[str] = []
        self._capture: cv2.VideoCapture | None = None
        self._frames = 0
        self._reuse = reuse
        self._last: np.ndarray | None = None

    def open(self) -> None:
        if self._capture is not None:
            return
        if not self.live and not self.target.is_file():
            raise SourceError(f"{shown(self.target)}: video file not found.")
        target = self.target if self.live else str(self.target)
        # A file's decoder gets DECODER_THREADS: each FFmpeg frame thread holds frames (12 MB
        # each at 4K), which would put a 4K video over the memory bound on a many-core machine;
        # the classifier, not the decoder, sets the pace.
        params = [] if self.live else [cv2.CAP_PROP_N_THREADS, DECODER_THREADS]
        capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not capture.isOpened():
            capture.release()
            if self.live:
                raise SourceError(
                    f"Cannot open camera {self.target}: not connected, busy or not permitted "
                    "(check the cable, `ls /dev/video*`, and that your user is in the video group)."
                )
            raise SourceError(f"{shown(self.target)}: OpenCV cannot decode this video file.")
        if self.live and self.resolution:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.resolution[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.resolution[1])
        try:
            self._check_size(capture)
        except SourceError:
            capture.release()
            raise
        self._capture = capture

    def _check_size(self, capture: cv2.VideoCapture) -> None:
        """Refuses frames over :data:`MAX_FRAME_PIXELS` from the container's (or camera's)
        declared size, before a frame is decoded."""
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > MAX_FRAME_PIXELS:
            raise SourceError(
                f"{shown(self.name)}: refused, {width}×{height} frames are over the device "
                f"limit of 4K ({MAX_FRAME_PIXELS:,} pixels per frame)."
            )
        if width <= 0 or height <= 0:
            raise SourceError(f"{shown(self.name)}: the video declares no frame size.")

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise SourceError(f"{self.name}: read before open.")
        ok, frame = self._capture.read(self._last)
        if not ok and self.live:
            raise SourceError(f"{self.name} stopped delivering frames (unplugged or busy?).")
        if not ok:
            self._check_length()
        if not ok and self.loop:
            ok, frame = self._rewind()
        self._frames += ok
        if not ok:
            return None
        frame = _bgr_to_rgb(frame)
        self._last = frame if self._reuse else None
        return frame

    def _rewind(self) -> tuple[bool, np.ndarray | None]:
        """The first frame again: by seeking, else by reopening the file (FFmpeg cannot seek
        back in a one-frame video)."""
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = self._capture.read(self._last)
        if not ok:
            self.close()
            self.open()
            ok, frame = self._capture.read(self._last)
        return ok, frame

    @property
    def fps(self) -> float | None:
        """Frames per second that the open file or camera reports, or ``None`` when unknown."""
        rate = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0.0
        return rate if rate > 0 else None

    def _check_length(self) -> None:
        """Warns once when a video file ends before the frame count its header declares."""
        declared = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if 0 < self._frames < declared and not self.warnings:
            message = (
                f"{self.name}: the video ended after {self._frames} of the {declared} frames its "
                "header declares (truncated or damaged file)."
            )
            self.warnings.append(message)
            log.warning("%s", message)
        self._frames = 0

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFilesSource(FrameSource):
    """Photos, one frame each, read by :func:`~.preprocess.read_still` (the one decoder for
    stills): an image over ``max_pixels`` is refused from its header, a large one decoded at
    reduced size (``current_reduction``). ``still`` tells the runner that frames are unrelated
    photos: no tracking or smoothing across them. Unreadable or refused images are logged,
    listed in ``skipped``, passed to ``on_skip`` and passed over; they never end the stream.

    Args:
        paths: the image files, in the order to read them.
        loop: start again after the last image.
        max_pixels: the largest image accepted, in pixels.
        on_skip: called with the path and the reason of each skipped image.
    """

    still = True

    def __init__(
        self,
        paths: list[str | Path],
        loop: bool = False,
        max_pixels: int = MAX_STILL_PIXELS,
        on_skip: Callable[[Path, str], None] | None = None,
    ) -> None:
        if not (math.isfinite(max_pixels) and max_pixels >= 1):
            raise InputError(f"max_pixels must be a finite number of at least 1, got {max_pixels}.")
        self.paths = [Path(p) for p in paths]
        self.loop = loop
        self.max_pixels = max_pixels
        self.on_skip = on_skip
        self.name = ", ".join(map(shown, self.paths[:3])) + (" …" if len(self.paths) > 3 else "")
        self.skipped: list[str] = []
        self.current_path: Path | None = None
        self.current_reduction = 1
        self.current_size: tuple[int, int] | None = None  # the file's upright (width, height)
        self._next = 0

    def open(self) -> None:
        missing = [shown(p) for p in self.paths if not p.is_file()]
        if missing:
            raise SourceError(f"{missing[0]}: image file not found.")
        self._next = 0

    def read(self) -> np.ndarray | None:
        # Bounded so a list whose every image is unreadable ends instead of looping forever.
        for _ in range(len(self.paths)):
            if self._next >= len(self.paths):
                if not self.loop:
                    return None
                self._next = 0
            path = self.paths[self._next]
            self._next += 1
            try:
                still = read_still(path, self.max_pixels)
            except ImageError as error:
                self._skip(path, str(error))
                continue
            self.current_path, self.current_reduction = path, still.reduction
            self.current_size = still.upright_size
            return still.rgb
        return None

    def _skip(self, path: Path, message: str) -> None:
        if message in self.skipped:
            return  # reported once, not once per loop
        self.skipped.append(message)
        log.warning("Skipping %s", message)
        if self.on_skip is not None:
            self.on_skip(path, message)

    def close(self) -> None:
        self.current_path = None


def list_images(folder: str | Path, limit: int = MAX_MATCHES) -> list[Path]:
    """The image files of ``folder`` (``IMAGE_SUFFIXES``) in name order; sub-folders are not
    entered, so a link loop cannot hold it.

    Raises:
        SourceError: if ``folder`` is not a folder, holds no image or more than ``limit``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{shown(folder)}: not a folder.")
    paths = []
    for entry in os.scandir(folder):
        if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
            paths.append(Path(entry.path))
            if len(paths) > limit:
                raise SourceError(
                    f"{shown(folder)}: over {limit:,} images in this folder; split it or give "
                    "a narrower pattern."
                )
    if not paths:
        raise SourceError(
            f"{shown(folder)}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder."
        )
    return sorted(paths)


def expand_glob(pattern: str, limit: int = MAX_MATCHES) -> list[Path]:
    """The files ``pattern`` matches, in name order, as :func:`glob.glob` with ``recursive``
    would find them, except that ``**`` never enters a linked folder: a link loop cannot make
    the expansion endless.

    Raises:
        SourceError: when more than ``limit`` files match.
    """
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    base = Path(*parts[:fixed]) if fixed else Path()
    found: list[Path] = []
    for path in _matches(base, parts[fixed:]):
        found.append(path)
        if len(found) > limit:
            raise SourceError(
                f"{shown(pattern)}: matches over {limit:,} files; give a narrower pattern."
            )
    return sorted(found)


def _matches(folder: Path, parts: tuple[str, ...]) -> Iterator[Path]:
    if not parts:
        if folder.is_file():
            yield folder
        return
    part, rest = parts[0], parts[1:]
    if not glob.has_magic(part):
        yield from _matches(folder / part, rest)
        return
    try:
        entries = sorted(os.scandir(folder or "."), key=lambda entry: entry.name)
    except OSError:
        return
    if part == "**":
        yield from _matches(folder, rest)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _matches(folder / entry.name, parts)
            elif not rest and entry.is_file():  # a final ``**`` names the files too
                yield folder / entry.name
        return
    for entry in entries:
        hidden = entry.name.startswith(".") and not part.startswith(".")
        if not hidden and fnmatch.fnmatchcase(entry.name, part):
            yield from _matches(folder / entry.name, rest)


class ImageFolderSource(ImageFilesSource):
    """The images of a folder in name order, listed when opened (see :class:`ImageFilesSource`).

    Args:
        folder: the folder to read.
        loop: start again after the last image.
        max_pixels, on_skip: as for :class:`ImageFilesSource`.
    """

    def __init__(
        self,
        folder: str | Path,
        loop: bool = False,
        max_pixels: int = MAX_STILL_PIXELS,
        on_skip: Callable[[Path, str], None] | None = None,
    ) -> None:
        super().__init__([], loop, max_pixels, on_skip)
        self.folder = Path(folder)
        self.name = str(self.folder)

    def open(self) -> None:
        if not self.paths:
            self.paths = list_images(self.folder)
            self._next = 0

    def close(self) -> None:
        self.paths, self.current_path = [], None


# picamera2 names formats by the order of the 32-bit word, so the bytes in memory, and hence a
# NumPy array's last axis, are reversed: "RGB888" is B, G, R in memory (OpenCV's BGR).
_PICAMERA_RGB_ORDER = {
    "RGB888": [2, 1, 0],
    "BGR888": [0, 1, 2],
    "XRGB8888": [2, 1, 0],
    "XBGR8888": [0, 1, 2],
}
_PICAMERA_YUV = {"YUV420": cv2.COLOR_YUV2RGB_I420, "YVU420": cv2.COLOR_YUV2RGB_YV12}
PICAMERA_FORMATS = tuple(_PICAMERA_RGB_ORDER) + tuple(_PICAMERA_YUV)


def picamera_to_rgb(array: np.ndarray, fmt: str, width: int) -> np.ndarray:
    """Converts an array from picamera2's ``make_array`` in format ``fmt`` to ``uint8`` RGB.

    YUV arrays come as ``(H * 3 / 2, stride)`` with row padding kept; the padding is cut off
    after conversion, using the stream's ``width``.
    """
    if fmt in _PICAMERA_RGB_ORDER:
        return np.ascontiguousarray(array[:, :width, _PICAMERA_RGB_ORDER[fmt]])
    if fmt in _PICAMERA_YUV:
        return np.ascontiguousarray(cv2.cvtColor(array, _PICAMERA_YUV[fmt])[:, :width])
    raise InputError(f"Unsupported picamera2 format {fmt!r}; use one of {PICAMERA_FORMATS}.")


class Picamera2Source(FrameSource):
    """The Raspberry Pi camera through picamera2: a ``main`` stream for display and a small
    ``lores`` stream for detection, both from one ``captured_request`` (released on leaving it).

    Install: ``sudo apt install python3-picamera2`` and a venv made with
    ``--system-site-packages`` (its libcamera bindings come from apt, not PyPI).

    Args:
        main_size: ``(width, height)`` of the display stream.
        lores_size: ``(width, height)`` of the detection stream, or ``None`` for none.
        main_format: picamera2 format of ``main``; ``"BGR888"`` is R, G, B in memory, no
            conversion needed.
        lores_format: ``"YUV420"`` (every Pi; the only choice before the Pi 5) or an RGB format.
        camera_num: which camera on Pis with two.
        timeout: seconds to wait for a frame before the camera counts as lost.
        picamera2_class: the ``Picamera2`` class to use (tests pass a recording double).
    """

    live = True

    def __init__(
        self,
        main_size: tuple[int, int] = (1280, 720),
        lores_size: tuple[int, int] | None = (320, 240),
        main_format: str = "BGR888",
        lores_format: str = "YUV420",
        camera_num: int = 0,
        timeout: float = 5.0,
        picamera2_class: Callable[..., Any] | None = None,
    ) -> None:
        for fmt in (main_format, lores_format):
            if fmt not in PICAMERA_FORMATS:
                raise InputError(f"Unsupported picamera2 format {fmt!r}; use {PICAMERA_FORMATS}.")
        self.main_size, self.lores_size = tuple(main_size), lores_size
        self.main_format, self.lores_format = main_format, lores_format
        self.camera_num, self.timeout = camera_num, timeout
        self.name = f"picamera2 camera {camera_num}"
        self._class = picamera2_class
        self._camera: Any = None
        self._lores: np.ndarray | None = None

    def open(self) -> None:
        if self._camera is not None:
            return
        camera_class = self._class or _import_picamera2()
        try:
            camera = camera_class(self.camera_num)
            streams = {"main": {"size": self.main_size, "format": self.main_format}}
            if self.lores_size:
                streams["lores"] = {"size": tuple(self.lores_size), "format": self.lores_format}
            camera.configure(camera.create_preview_configuration(**streams))
            camera.start()
        except (RuntimeError, OSError, IndexError) as error:
            raise SourceError(
                f"Cannot open {self.name}: {error} (check the ribbon cable and "
                "`rpicam-hello --list-cameras`)."
            ) from error
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise SourceError(f"{self.name}: read before open.")
        try:
            with self._camera.captured_request(wait=self.timeout) as request:
                main = self._stream(request, "main")
                self._lores = self._stream(request, "lores") if self.lores_size else None
        except (RuntimeError, OSError) as error:  # TimeoutError is an OSError.
            raise SourceError(f"{self.name} stopped delivering frames: {error}") from error
        return main

    def _stream(self, request: Any, name: str) -> np.ndarray:
        config = self._camera.stream_configuration(name)
        return picamera_to_rgb(request.make_array(name), config["format"], config["size"][0])

    def detection_frame(self) -> np.ndarray | None:
        return self._lores

    def close(self) -> None:
        if self._camera is None:
            return
        camera, self._camera, self._lores = self._camera, None, None
        try:
            camera.stop()
        finally:
            camera.close()


def _import_picamera2() -> Callable[..., Any]:
    try:
        # Only on Raspberry Pi OS, from apt; imported here so other machines never need it.
        from picamera2 import Picamera2
    except ImportError as error:
        raise SourceError(
            "picamera2 is not installed. On Raspberry Pi OS: `sudo apt install python3-picamera2` "
            "and create the venv with `python3 -m venv --system-site-packages`."
        ) from error
    return Picamera2


def nv21_to_rgb(buffer: bytes, width: int, height: int) -> np.ndarray:
    """Android camera preview bytes (NV21: Y plane, then interleaved V/U) to RGB."""
    expected = width * height * 3 // 2
    if len(buffer) < expected:
        raise SourceError(f"NV21 frame has {len(buffer)} bytes; {width}×{height} needs {expected}.")
    yuv = np.frombuffer(buffer, dtype=np.uint8, count=expected).reshape(height * 3 // 2, width)
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV21)


def texture_pixels_to_rgb(pixels: bytes, width: int, height: int) -> np.ndarray:
    """Kivy ``Texture.pixels`` (RGBA rows, bottom row first) to a top-down RGB frame.

    Also fits camera4kivy's ``analyze_pixels_callback(pixels, image_size, ...)`` RGBA pixels.
    """
    rgba = np.frombuffer(pixels, dtype=np.uint8, count=width * height * 4)
    return np.ascontiguousarray(rgba.reshape(height, width, 4)[::-1, :, :3])


_ROTATIONS = {
    0: None,
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


class AndroidCameraSource(FrameSource):
    """The Android camera through Kivy's camera provider.

    Frames are taken from the provider's thread-safe ``grab_frame()`` (NV21 preview bytes) when
    it has one (Kivy's ``CameraAndroid``), else from its texture, which must then be read on the
    Kivy main thread. Open it on the main thread after the CAMERA permission was granted
    (``android.permissions.request_permissions`` in the app's ``on_start``).

    Args:
        index: camera index (0 back, 1 front on most phones).
        resolution: ``(width, height)`` preview size to request.
        rotation: clockwise degrees (0, 90, 180, 270) to turn frames upright; phone sensors
            are usually mounted at 90 or 270.
        timeout: seconds to wait for a frame before the camera counts as lost.
        camera_class: the Kivy core camera class to use (tests pass a recording double).
    """

    live = True

    def __init__(
        self,
        index: int = 0,
        resolution: tuple[int, int] = (640, 480),
        rotation: int = 0,
        timeout: float = 5.0,
        camera_class: Callable[..., Any] | None = None,
    ) -> None:
        if rotation not in _ROTATIONS:
            raise InputError(f"rotation must be one of {sorted(_ROTATIONS)}, got {rotation}.")
        self.index, self.resolution = index, tuple(resolution)
        self.rotation, self.timeout = rotation, timeout
        self.name = f"android camera {index}"
        self._class = camera_class
        self._camera: Any = None

    def open(self) -> None:
        if self._camera is not None:
            return
        camera_class = self._class or _import_kivy_camera()
        try:
            camera = camera_class(index=self.index, resolution=self.resolution, stopped=True)
            camera.start()
        except Exception as error:  # Kivy providers raise pyjnius JavaException and others.
            raise SourceError(f"Cannot open {self.name}: {error}") from error
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise SourceError(f"{self.name}: read before open.")
        deadline = time.monotonic() + self.timeout
        while True:
            frame = self._grab()
            if frame is not None:
                rotation = _ROTATIONS[self.rotation]
                return frame if rotation is None else cv2.rotate(frame, rotation)
            if time.monotonic() > deadline:
                raise SourceError(f"{self.name}: no frame for {self.timeout:g} s (camera lost?).")
            time.sleep(0.005)

    def _grab(self) -> np.ndarray | None:
        width, height = self._camera.resolution
        if hasattr(self._camera, "grab_frame"):
            buffer = self._camera.grab_frame()
            return None if buffer is None else nv21_to_rgb(buffer, width, height)
        texture = self._camera.texture
        if texture is None:
            return None
        return texture_pixels_to_rgb(texture.pixels, *texture.size)

    def close(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            camera.stop()


def _import_kivy_camera() -> Callable[..., Any]:
    try:
        # Kivy picks the platform's provider (CameraAndroid on Android) at import.
        from kivy.core.camera import Camera
    except ImportError as error:
        raise SourceError(
            "Kivy's camera provider is unavailable; install Kivy (`pip install kivy`)."
        ) from error
    if Camera is None:
        raise SourceError("Kivy found no camera provider on this platform.")
    return Camera


@dataclass(frozen=True)
class Backoff:
    """Reconnection timing: waits ``initial``, ``2·initial``, … up to ``maximum`` seconds.

    Attributes:
        initial: first wait in seconds.
        maximum: longest wait in seconds.
        max_retries: consecutive failed attempts before giving up; ``None`` retries forever.
    """

    initial: float = 0.5
    maximum: float = 30.0
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise InputError(
                f"Need 0 < initial <= maximum, got initial={self.initial}, maximum={self.maximum}."
            )
        if self.max_retries is not None and self.max_retries < 0:
            raise InputError(f"max_retries must be >= 0 or None, got {self.max_retries}.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnection attempt ``attempt`` (1-based)."""
        return min(self.maximum, self.initial * 2 ** (attempt - 1))


class ReconnectingSource(FrameSource):
    """Keeps a source alive: when it fails to open or stops delivering frames, the failure is
    reported (``status``, ``on_error``) and the source is reopened after a growing wait.

    ``read`` blocks while the camera is away and returns the next frame once it is back; it
    never raises for a lost camera unless ``backoff.max_retries`` is exhausted. ``close`` from
    another thread ends a wait at once (``read`` then returns ``None``).

    Args:
        source: the source to keep alive.
        backoff: reconnection timing.
        on_error: called with a message at every failure and failed attempt.
    """

    def __init__(
        self,
        source: FrameSource,
        backoff: Backoff = Backoff(),
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.name = source.name
        self.live = source.live
        self.backoff = backoff
        self.on_error = on_error
        self.status = f"{self.name}: not opened"
        self.failures = 0
        self.reconnects = 0
        self._opened = False
        self._connected = False
        self._attempt = 0
        self._closed = threading.Event()

    def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self._closed.clear()
        self._connect()

    def read(self) -> np.ndarray | None:
        while not self._closed.is_set():
            if not self._connected and not self._retry():
                continue
            try:
                frame = self.source.read()
            except SourceError as error:
                self._lost(f"{error}")
                continue
            self._attempt = 0
            return frame
        return None

    def _connect(self) -> bool:
        try:
            self.source.open()
        except SourceError as error:
            self._lost(f"{error}")
            return False
        self._connected = True
        self.status = f"{self.name}: connected"
        return True

    def _retry(self) -> bool:
        self._attempt += 1
        limit = self.backoff.max_retries
        if limit is not None and self._attempt > limit:
            raise SourceError(f"{self.name}: gave up after {limit} reconnection attempts.")
        delay = self.backoff.delay(self._attempt)
        self.status = f"{self.name}: reconnecting (attempt {self._attempt}) in {delay:g} s"
        if self._closed.wait(delay):
            return False
        if not self._connect():
            return False
        self.reconnects += 1
        log.info("%s: reconnected after %d attempt(s)", self.name, self._attempt)
        return True

    def _lost(self, message: str) -> None:
        self.failures += 1
        self._connected = False
        try:
            self.source.close()
        except (SourceError, RuntimeError, OSError) as error:  # A vanished device may refuse.
            log.warning("%s: close after failure: %s", self.name, error)
        message = message.rstrip(".")
        limit = self.backoff.max_retries
        if limit is not None and self._attempt >= limit:
            self.status = f"{message}. No retries left."
        else:
            self.status = f"{message}. Retrying in {self.backoff.delay(self._attempt + 1):g} s."
        log.warning(self.status)
        if self.on_error is not None:
            self.on_error(self.status)

    def detection_frame(self) -> np.ndarray | None:
        return self.source.detection_frame() if self._connected else None

    def close(self) -> None:
        self._closed.set()
        self._opened = self._connected = False
        self.source.close()
        self.status = f"{self.name}: closed"


def make_source(spec: str, **options: Any) -> FrameSource:
    """Builds (does not open) the source for ``spec``: ``"picamera2"``, ``"android"``, a webcam
    index (``"0"``), a video file, an image folder or one image file. ``options`` go to that
    source's class.

    Raises:
        SourceError: if ``spec`` names no camera, file or folder.
        ValueError: for an option that source does not take.
    """
    spec = str(spec).strip()
    path = Path(spec)
    if spec == "picamera2":
        cls, args = Picamera2Source, ()
    elif spec == "android":
        cls, args = AndroidCameraSource, ()
    elif spec.isdigit():
        cls, args = OpenCVSource, (int(spec),)
    elif path.is_dir():
        cls, args = ImageFolderSource, (path,)
    elif path.is_file() and _kind(path) == "still":
        cls, args = ImageFilesSource, ([path],)
    elif path.is_file():
        cls, args = OpenCVSource, (path,)
    else:
        raise SourceError(
            f"Source {spec!r}: no such file or folder. Use picamera2, android, a webcam index "
            "(0, 1, …), a video file or a folder of images."
        )
    accepted = set(inspect.signature(cls).parameters) - {"target", "folder", "paths"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InputError(
            f"Source {spec!r} ({cls.__name__}) does not take {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted)) or 'no options'}."
        )
    return cls(*args, **options)


def _kind(path: Path) -> str:
    try:
        return media_kind(path)
    except ImageError as error:
        raise SourceError(str(error)) from None


def open_source(
    spec: str,
    *,
    reconnect: bool | None = None,
    backoff: Backoff = Backoff(),
    on_error: Callable[[str], None] | None = None,
    **options: Any,
) -> FrameSource:
    """Builds and opens the source for ``spec`` (see :func:`make_source`).

    Cameras are wrapped in :class:`ReconnectingSource` unless ``reconnect`` is False, so a
    camera missing at start is reported through ``on_error`` and retried instead of raising.
    Files and folders raise :class:`SourceError` at once when missing or unreadable.
    """
    source = make_source(spec, **options)
    if source.live if reconnect is None else reconnect:
        source = ReconnectingSource(source, backoff, on_error)
    source.open()
    return source
