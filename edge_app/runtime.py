"""The LiteRT interpreter loader used by every stage that runs a ``.tflite`` model.

Order of preference: ``ai_edge_litert`` (LiteRT, works with NumPy 2 and current Pythons), then
``tflite_runtime`` (older Raspberry Pi images; fails under NumPy 2), then LiteRT's Java
interpreter on Android (``edge_app/android.py``), then ``tf.lite`` (a workstation with
TensorFlow). The device path never needs TensorFlow.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from affectlite.errors import EnvironmentProblem, InputError
from affectlite.quiet import native_stderr

log = logging.getLogger(__name__)

_CANDIDATES = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    # Android: LiteRT's Java interpreter through pyjnius (this module imports only there).
    ("litert-java", "affectlite.edge_app.android", "litert-java"),
    ("tensorflow", "tensorflow.lite", "tensorflow"),
)


UNSUPPORTED_MACHINES = ("armv7l", "armv6l")
"""32-bit ARM (e.g. Raspberry Pi OS 32-bit): no LiteRT wheels exist for it."""


class RuntimeUnavailable(EnvironmentProblem, ImportError):
    """No TFLite interpreter package is installed."""


@dataclass(frozen=True)
class RuntimeInfo:
    """Which interpreter package ran a model."""

    name: str
    version: str


def default_threads() -> int:
    """Threads for inference: ``AFFECTLITE_THREADS`` if set, else the CPU count (at most 4).

    Raises:
        InputError: if ``AFFECTLITE_THREADS`` is set to anything but a whole number ≥ 1.
    """
    value = os.environ.get("AFFECTLITE_THREADS", "").strip()
    if not value:
        return min(4, os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise InputError(
            f"AFFECTLITE_THREADS={value!r}: must be a whole number of threads, at least 1 "
            "(or unset it to use the CPU count, at most 4)."
        )
    return check_threads(int(value))


def check_threads(threads: int) -> int:
    """Returns ``threads``, warning once when it exceeds this machine's cores.

    Raises:
        InputError: for fewer than one thread.
    """
    if threads < 1:
        raise InputError(f"Interpreter threads must be at least 1, got {threads}.")
    cores = os.cpu_count() or 1
    if threads > cores:
        _warn_oversubscribed(threads, cores)
    return threads


@functools.cache
def _warn_oversubscribed(threads: int, cores: int) -> None:
    log.warning(
        "%d interpreter threads on a machine with %d cores: threads above the core count only "
        "add switching overhead; use at most %d.",
        threads,
        cores,
        cores,
    )


def _interpreter_class(prefer: str | None) -> tuple[type, RuntimeInfo]:
    errors = []
    for name, module_name, dist in _CANDIDATES:
        if prefer and name != prefer:
            continue
        try:
            # Imported by name: only the first available package is loaded, and TensorFlow
            # is reached only where neither LiteRT nor tflite-runtime is installed.
            module = importlib.import_module(module_name)
        except ImportError as error:
            errors.append(f"{name}: {error}")
            continue
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "unknown"
        return module.Interpreter, RuntimeInfo(name, version)
    if platform.machine() in UNSUPPORTED_MACHINES:
        raise RuntimeUnavailable(
            f"No TFLite runtime found, and this is 32-bit ARM ({platform.machine()}), which "
            "affectlite does not support: LiteRT (ai-edge-litert) publishes no 32-bit ARM "
            "wheels. Install Raspberry Pi OS (64-bit) (see docs/raspberry-pi.md)."
        )
    raise RuntimeUnavailable(
        "No TFLite runtime found. Install LiteRT with `pip install ai-edge-litert` "
        "(or `pip install 'affectlite[edge]'`). Tried: " + "; ".join(errors)
    )


def runtime_info(prefer: str | None = None) -> RuntimeInfo:
    """Names the interpreter package :func:`load_interpreter` would use."""
    return _interpreter_class(prefer)[1]


def load_interpreter(
    model: str | Path | bytes, num_threads: int | None = None, prefer: str | None = None
) -> tuple[Any, RuntimeInfo]:
    """Builds an interpreter with tensors allocated.

    Args:
        model: a ``.tflite`` path or the model's bytes.
        num_threads: CPU threads for the interpreter (default :func:`default_threads`).
        prefer: force one runtime (``"ai-edge-litert"``, ``"tflite-runtime"``, ``"tensorflow"``).

    Returns:
        The interpreter and which runtime built it.

    Raises:
        FileNotFoundError: if a model path does not exist.
        InputError: for fewer than one thread or a bad ``AFFECTLITE_THREADS``.
        RuntimeUnavailable: if no runtime is installed.
        ValueError: if the file is not a valid TFLite model.
    """
    interpreter_class, info = _interpreter_class(prefer)
    threads = default_threads() if num_threads is None else check_threads(num_threads)
    if isinstance(model, bytes):
        kwargs = {"model_content": model}
        name = "<model bytes>"
    else:
        path = Path(model)
        if not path.is_file():
            raise InputError(f"TFLite model not found: {path}")
        kwargs = {"model_path": str(path)}
        name = str(path)
    try:
        with native_stderr():  # LiteRT prints "Created ... XNNPACK delegate" (INFO) here
            interpreter = interpreter_class(num_threads=threads, **kwargs)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise InputError(f"{name}: not a loadable TFLite model ({error}).") from error
    return interpreter, info
