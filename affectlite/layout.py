"""The kit's one-name rule: each stage folder imports only as ``affectlite.<folder>``.

The folders train/, convert/, calibration/, edge_app/ and benchmarks/ sit at the repository root
(the card's layout) and are mapped into the ``affectlite`` package by pyproject's package-dir.
Run from the root, Python could also import them as top-level ``train`` etc.: two names for one
module, two copies of its state. Each folder's ``__init__`` calls :func:`require_name` to refuse
that second name (docs/architecture.md).
"""

from __future__ import annotations


def require_name(name: str, folder: str) -> None:
    """Raises ImportError unless the package ``name`` is ``affectlite.<folder>``."""
    if name != f"affectlite.{folder}":
        raise ImportError(
            f"Import affectlite.{folder}, not {name!r}: this folder is that package's source "
            "(install the kit with `pip install -e .`)."
        )
