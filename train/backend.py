"""Choosing the Keras backend: once per process, before ``keras`` is imported.

``affectlite train --backend jax|tensorflow`` calls :func:`use_backend` first thing; the
commands that need TensorFlow (convert, calibrate, evaluate of a ``.keras``) call
:func:`require_tensorflow`, whatever ``KERAS_BACKEND`` says. On JAX the process keeps
TensorFlow out: Keras imports it opportunistically when it is installed (``.keras`` saving
checks ``tf.TensorShape``), which costs seconds and, on a GPU, competes for the device, so
importing it raises ImportError there and Keras' optional checks see it as absent.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import Any

from affectlite.errors import EnvironmentProblem
from affectlite.train.config import BACKENDS, default_backend

__all__ = ["BACKENDS", "default_backend", "require_tensorflow", "use_backend"]


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Makes ``import tensorflow`` (and its submodules) fail in a JAX training process."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name}: not imported while training on the jax backend")
        return None


def loaded_backend() -> str | None:
    """The backend of the already imported Keras, or None when Keras is not imported yet."""
    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None else None


def use_backend(name: str) -> None:
    """Makes ``name`` Keras' backend for this process (before Keras is imported).

    Raises:
        EnvironmentProblem: when Keras is already loaded with another backend.
    """
    loaded = loaded_backend()
    if loaded is not None and loaded != name:
        raise EnvironmentProblem(
            f"Keras is already loaded with the {loaded} backend in this process; the {name} "
            "backend needs a fresh process (run the affectlite command on its own)."
        )
    os.environ["KERAS_BACKEND"] = name
    if name == "jax" and not any(isinstance(f, _NoTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoTensorFlow())


def require_tensorflow() -> None:
    """For commands that export, convert or load with TensorFlow: its Keras backend."""
    use_backend("tensorflow")
