"""Keeps native libraries' chatter (TensorFlow, absl, CUDA, XNNPACK) off the terminal.

TensorFlow's C++ core and LiteRT write straight to file descriptor 2, below Python and before
``TF_CPP_MIN_LOG_LEVEL`` applies (absl logs "Could not find cuda drivers" before it is
initialised; LiteRT prints "Created TensorFlow Lite XNNPACK delegate" at INFO; the TFLite
converter prints "fully_quantize: 0, …"). So the noisy moments (importing TensorFlow, creating
an interpreter, converting) run with fd 2 captured, and every captured line that is not known
noise is written back. OpenCV's warnings and Keras' shuffle warning are turned off at their
source (:func:`quiet_third_parties`). Errors are never dropped: only lines
matching :data:`NOISE` are. ``affectlite --verbose`` (or ``AFFECTLITE_VERBOSE=1``) shows all.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

VERBOSE_ENV = "AFFECTLITE_VERBOSE"

NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\]"  # absl INFO and WARNING lines
    r"|E\d{4} [\d:.]+ +\d+ \S+:\d+\] .*(cuInit|CUDA|cuDNN|cuFFT|cuBLAS)"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate"
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: )"  # the TFLite converter
)
KERAS_SHUFFLE = r"`shuffle=True` was passed, but will be ignored since the data `x` was provided"
"""Keras' warning when ``fit`` gets a ``tf.data.Dataset`` (the kit shuffles its own)."""
TF_LITE_INTERPRETER = r"\s*Warning: tf.lite.Interpreter is deprecated"
_LOCK = threading.RLock()


def verbose() -> bool:
    """True when the user asked to see everything."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextmanager
def native_stderr() -> Iterator[None]:
    """Runs the block with fd 2 captured, then writes back every line that is not noise.

    Nested or concurrent uses share the outer capture (fd 2 is process-wide)."""
    if verbose() or not _LOCK.acquire(blocking=False):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
                kept = [line for line in text.splitlines(True) if not NOISE.match(line)]
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    finally:
        _LOCK.release()


class _QuietLoader(importlib.abc.Loader):
    """Runs a module's import with :func:`native_stderr`, then initialises TensorFlow's
    devices (the first op's "failed call to cuInit") inside it too."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        with native_stderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices()
        logging.getLogger("tensorflow").setLevel(logging.ERROR)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` through the other finders and wraps its loader."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_third_parties() -> None:
    """Hides OpenCV's warnings (a camera that cannot open, on every retry: the kit says it
    itself) and Keras' shuffle warning, unless verbose; OpenCV's errors still show."""
    if verbose():
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if "cv2" in sys.modules:  # already imported: the variable was read
        cv2 = sys.modules["cv2"]
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    warnings.filterwarnings("ignore", message=KERAS_SHUFFLE, category=UserWarning)
    # The quantization debugger (`convert --debug`) runs tf.lite.Interpreter, which warns.
    warnings.filterwarnings("ignore", message=TF_LITE_INTERPRETER, category=UserWarning)


def quiet_tensorflow() -> None:
    """Hides TensorFlow's start-up chatter from now on (unless verbose): sets
    ``TF_CPP_MIN_LOG_LEVEL`` and filters fd 2 while TensorFlow is imported."""
    if verbose() or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not any(isinstance(finder, _QuietTensorFlow) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlow())


KIVY_NOISE = re.compile(
    r"^(Input: MTDev is not supported"  # libmtdev missing: an ERROR and a traceback per start
    r"|Cutbuffer: Unable to find any valuable Cutbuffer provider"  # no xclip/xsel: CRITICAL
    r"|Config: (Older configuration version detected|Upgrading))"  # a new ~/.kivy, first run
)


class _KivyNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not KIVY_NOISE.match(record.getMessage())


def quiet_kivy() -> None:
    """Drops Kivy's start-up noise that is no fault of the app (a missing libmtdev, no
    xclip/xsel for text fields, the first run's config upgrade) from Kivy's log, unless
    verbose. Call before ``import kivy``."""
    if verbose():
        return
    logger = logging.getLogger("kivy")  # the logger Kivy's own ``Logger`` is
    if not any(isinstance(f, _KivyNoise) for f in logger.filters):
        logger.addFilter(_KivyNoise())
