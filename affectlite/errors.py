"""The kit's error base: every domain error derives from :class:`AffectliteError`.

The ``affectlite`` dispatcher alone turns these into one line on stderr and the error's exit
code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_GATE_REFUSED = 3


class AffectliteError(Exception):
    """A failure the user can act on; ``exit_code`` is what the command returns."""

    exit_code: int = EXIT_INTERNAL


class InputError(AffectliteError, ValueError):
    """Bad input: a missing file, a wrong option, data the kit cannot read (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class GateRefused(AffectliteError):
    """A converted model failed its verification gate (exit 3)."""

    exit_code = EXIT_GATE_REFUSED


class EnvironmentProblem(AffectliteError, RuntimeError):
    """The machine lacks something the command needs: a package, a runtime, disk (exit 2)."""

    exit_code = EXIT_BAD_INPUT
