"""Benchmarks: per-stage latency, memory soak and their reports.

Imported only as ``affectlite.benchmarks`` (see :mod:`affectlite.layout`)."""

from affectlite.layout import require_name

require_name(__name__, "benchmarks")
