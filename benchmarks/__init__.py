"""Benchmarks: per-stage latency, memory soak and their reports.

This folder is the package ``affectlite.benchmarks`` and has no other import name
(docs/architecture.md says why).
"""

if __name__ != "affectlite.benchmarks":
    raise ImportError(
        f"Import affectlite.benchmarks, not {__name__!r}: this folder is that package's source "
        "(install the kit with `pip install -e .`)."
    )
