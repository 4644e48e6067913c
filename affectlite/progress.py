"""Progress of long work on standard error: a tqdm bar on a terminal, a line per 10 % otherwise.

One helper for every command (evaluate, convert's verification, calibrate, data inspect,
train), so a pipe or a log file gets readable lines instead of carriage-return bars (work done
within a second gets its end line only)::

    for sample in progress(samples, len(samples), "crop val"):
        ...
    logits = batched(classifier.logits, images, 64, "verify int8")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, TypeVar

import numpy as np

T = TypeVar("T")
STEP = 10
"""Percent between two lines when standard error is not a terminal."""


class Progress:
    """Counts work done out of ``total`` and shows it on ``file`` (standard error).

    On a terminal it is a tqdm bar; elsewhere it writes ``desc: done/total (P %, Ts)`` each
    time another 10 % is done once the work has run ``quiet_seconds`` (work done sooner gets
    its end line only), and once at the end. ``total`` 0 or ``None`` writes only the end line.
    """

    quiet_seconds = 1.0

    def __init__(
        self, total: int | None, desc: str, unit: str = "img", file: IO[str] | None = None
    ) -> None:
        self.total, self.desc, self.done = total or 0, desc, 0
        self.file = file or sys.stderr
        self._started = time.monotonic()
        self._shown = 0  # last percent step written
        self._closed = False
        self._bar = None
        if _is_terminal(self.file):
            from tqdm import tqdm

            self._bar = tqdm(total=total or None, desc=desc, unit=unit, file=self.file)

    def update(self, count: int = 1) -> None:
        """Adds ``count`` to the work done."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        if self.total:
            step = min(100, 100 * self.done // self.total) // STEP * STEP
            if self._shown < step < 100 and self._seconds() >= self.quiet_seconds:
                self._shown = step
                self._line()

    def close(self) -> None:
        """Ends the bar, or writes the last line."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._line()

    def _seconds(self) -> float:
        return time.monotonic() - self._started

    def _line(self) -> None:
        seconds = self._seconds()
        if self.total:
            percent = 100 * self.done // self.total
            text = f"{self.desc}: {self.done}/{self.total} ({percent} %, {seconds:.0f} s)"
        else:
            text = f"{self.desc}: {self.done} done ({seconds:.0f} s)"
        print(text, file=self.file, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


def progress(
    iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "img"
) -> Iterator[T]:
    """Yields the items of ``iterable`` while showing progress (see :class:`Progress`)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, unit) as bar:
        for item in iterable:
            yield item
            bar.update()


def batched(
    function: Callable[[np.ndarray], np.ndarray], images: np.ndarray, size: int, desc: str
) -> np.ndarray:
    """``function`` applied to ``images`` in batches of ``size``, concatenated, with progress
    counted in images."""
    outputs = []
    with Progress(len(images), desc) as bar:
        for start in range(0, len(images), size):
            outputs.append(np.asarray(function(images[start : start + size])))
            bar.update(len(outputs[-1]))
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
