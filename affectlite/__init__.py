"""affectlite: on-device facial emotion recognition (train, int8 TFLite, Raspberry Pi, Android).

The Python API in three lines (TensorFlow is never imported; the classes load on first use)::

    from affectlite import EmotionRecognizer
    recognizer = EmotionRecognizer()          # the shipped default bundle, or bundle="path/"
    faces = recognizer.predict("photo.jpg")   # or an RGB uint8 array
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["EmotionRecognizer", "FaceResult", "__version__"]

_LAZY = {
    "EmotionRecognizer": "affectlite.edge_app.recognizer",
    "FaceResult": "affectlite.edge_app.pipeline",
}


def __getattr__(name: str) -> Any:
    """Imports the API classes when first used, so ``import affectlite`` stays light."""
    if name not in _LAZY:
        raise AttributeError(f"module 'affectlite' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
