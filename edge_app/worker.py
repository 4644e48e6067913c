"""Capture and inference off the UI thread, always on the newest frame.

Two daemon threads and two single-slot holders::

    capture thread ──► LatestSlot[frame] ──► inference thread ──► LatestSlot[Update] ──► UI

The capture thread reads the source as fast as it delivers (a camera blocks until its next
frame; files are paced to ``max_capture_fps``) and overwrites the frame slot, so a slow
model never makes frames queue up: it skips to the newest one, and the preview lags by at most
one inference. The UI thread polls :meth:`Worker.latest` (non-blocking) from a Kivy ``Clock``
callback. Nothing here imports Kivy.

Thread ownership is marked on each method: ``[capture thread]``, ``[inference thread]`` or
``[any thread]``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from . import overlay

T = TypeVar("T")
log = logging.getLogger(__name__)


class LatestSlot(Generic[T]):
    """A thread-safe holder of at most one item: ``put`` replaces, ``take`` empties.

    ``dropped`` counts items replaced before anyone took them (frames skipped on purpose).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._full = False
        self.puts = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        """Stores ``item``, discarding an untaken older one. [any thread]"""
        with self._condition:
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self.puts += 1
            self._condition.notify_all()

    def take(self, timeout: float | None = 0.0) -> T | None:
        """The newest item, or ``None`` if none arrives within ``timeout`` seconds (``0`` polls,
        ``None`` waits forever). [any thread]"""
        with self._condition:
            if not self._condition.wait_for(lambda: self._full, timeout):
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def __len__(self) -> int:
        with self._condition:
            return int(self._full)


@dataclass(frozen=True)
class Update:
    """One processed frame for the UI.

    Attributes:
        frame: the annotated frame (uint8 RGB), ready to blit and to save as a snapshot.
        result: the pipeline's ``FrameResult``.
        fps: inference throughput (frames per second, smoothed).
        index: the capture index of the frame (gaps = frames skipped for being stale).
    """

    frame: np.ndarray
    result: Any
    fps: float
    index: int


class Worker:
    """Runs a frame source and a ``process(frame) -> FrameResult`` function on two threads.

    Args:
        source: a ``FrameSource`` (``open``/``read``/``close``/``detection_frame``; ``read``
            returns ``None`` at the end of a stream). A ``ReconnectingSource`` blocks in
            ``read`` while its camera is away and reports why in ``.status``.
        process: ``process(frame, detect_frame)``, i.e. ``Pipeline.process``; it runs only on
            the inference thread, so it may keep per-stream state (tracking) without locks.
        annotate: draws a result onto a copy of its frame (default :func:`overlay.annotate`).
        max_capture_fps: upper bound on reads per second (keeps a video file from spinning a
            CPU core; a camera paces itself).
        on_thread_exit: called by each thread as it ends (Android passes ``jnius.detach``:
            a thread that used pyjnius must detach from the JVM before it exits).
        stall_after: seconds without a frame after which the source's own status (e.g.
            "reconnecting (attempt 3) in 2 s") joins :attr:`status`.
    """

    def __init__(
        self,
        source: Any,
        process: Callable[[np.ndarray, np.ndarray | None], Any],
        annotate: Callable[[np.ndarray, Any, float], np.ndarray] = overlay.annotate,
        max_capture_fps: float = 30.0,
        on_thread_exit: Callable[[], None] | None = None,
        stall_after: float = 2.0,
    ) -> None:
        if max_capture_fps <= 0:
            raise ValueError(f"max_capture_fps must be positive, got {max_capture_fps}.")
        self.source = source
        self.process = process
        self.annotate = annotate
        self.min_interval = 1.0 / max_capture_fps
        self.on_thread_exit = on_thread_exit
        self.stall_after = stall_after
        self._last_frame = time.monotonic()
        self.frames: LatestSlot[tuple[int, np.ndarray, np.ndarray | None]] = LatestSlot()
        self.updates: LatestSlot[Update] = LatestSlot()
        self.captured = 0
        self.processed = 0
        self._source_error = ""
        self._capture_message = ""
        self._inference_message = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def status(self) -> str:
        """What the UI should show: empty while frames flow, else why they do not (the lost
        camera's reason and its reconnection state, the end of a stream, an inference error).
        [any thread]"""
        stalled = time.monotonic() - self._last_frame > self.stall_after
        source_status = str(getattr(self.source, "status", "") or "") if stalled else ""
        messages = (
            self._source_error,
            source_status,
            self._capture_message,
            self._inference_message,
        )
        return " | ".join(dict.fromkeys(message for message in messages if message))

    def source_failed(self, message: str) -> None:
        """Keeps a lost camera's reason on screen until frames flow again; pass it as a
        ``ReconnectingSource``'s ``on_error`` (its own status then says when it retries).
        [capture thread]"""
        self._source_error = message

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def _source_name(self) -> str:
        return str(getattr(self.source, "name", "source"))

    def start(self) -> Worker:
        """Starts both threads. [UI thread]"""
        if self._threads:
            raise RuntimeError("Worker already started; build a new one to restart.")
        self._threads = [
            threading.Thread(target=self._capture_loop, name="affectlite-capture", daemon=True),
            threading.Thread(target=self._inference_loop, name="affectlite-infer", daemon=True),
        ]
        self._last_frame = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops both threads and waits for them; the capture thread closes the source.
        [UI thread]"""
        self._stop.set()
        capture = self._threads[0] if self._threads else None
        if capture is not None:
            capture.join(min(timeout, 0.5))
            if capture.is_alive():
                # Blocked in read (a ReconnectingSource waiting for its camera): closing it from
                # here is how that wait ends.
                self.source.close()
        for thread in self._threads:
            thread.join(timeout)

    def latest(self) -> Update | None:
        """The newest processed frame since the last call, or ``None``. Never blocks.
        [UI thread]"""
        return self.updates.take(timeout=0.0)

    def _capture_loop(self) -> None:
        """Reads frames into the single slot until stopped. [capture thread]"""
        try:
            self.source.open()
            while not self._stop.is_set():
                started = time.monotonic()
                frame = self.source.read()
                if frame is None:
                    self._capture_message = f"{self._source_name}: no frame (end of stream)"
                else:
                    self._last_frame = time.monotonic()
                    self._source_error = self._capture_message = ""
                    # picamera2's lores stream, read right after its frame on the same thread.
                    detect_frame = self.source.detection_frame()
                    self.frames.put((self.captured, frame, detect_frame))
                    self.captured += 1
                self._stop.wait(max(0.0, self.min_interval - (time.monotonic() - started)))
        except Exception as error:  # a plain source failed: show why instead of dying silently
            log.exception("capture stopped")
            self._capture_message = f"{self._source_name}: {error}"
        finally:
            self.source.close()
            self._thread_exit()

    def _inference_loop(self) -> None:
        """Processes the newest frame, annotates it and publishes it. [inference thread]"""
        fps, last_done = 0.0, None
        while not self._stop.is_set():
            item = self.frames.take(timeout=0.1)
            if item is None:
                continue
            index, frame, detect_frame = item
            try:
                result = self.process(frame, detect_frame)
            except Exception as error:  # keep the preview alive; the UI shows the error
                log.exception("inference failed")
                self._inference_message = f"inference failed: {error}"
                continue
            self._inference_message = ""
            now = time.monotonic()
            if last_done is not None:
                instant = 1.0 / max(now - last_done, 1e-6)
                fps = instant if fps == 0.0 else 0.8 * fps + 0.2 * instant
            last_done = now
            self.processed += 1
            self.updates.put(Update(self.annotate(frame, result, fps or None), result, fps, index))
        self._thread_exit()

    def _thread_exit(self) -> None:
        if self.on_thread_exit is not None:
            self.on_thread_exit()
