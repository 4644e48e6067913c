"""Conversion: quantize to TFLite, verify against the float model, gate, write a bundle.

This folder is the package ``affectlite.convert`` and has no other import name
(docs/architecture.md says why).
"""

if __name__ != "affectlite.convert":
    raise ImportError(
        f"Import affectlite.convert, not {__name__!r}: this folder is that package's source "
        "(install the kit with `pip install -e .`)."
    )
