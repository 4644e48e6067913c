"""Calibration: the int8 representative set and the softmax temperature.

This folder is the package ``affectlite.calibration`` and has no other import name
(docs/architecture.md says why).
"""

if __name__ != "affectlite.calibration":
    raise ImportError(
        f"Import affectlite.calibration, not {__name__!r}: this folder is that package's source "
        "(install the kit with `pip install -e .`)."
    )
