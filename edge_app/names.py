"""File names as the kit shows them: one escaped form on the terminal, in JSON and in errors.

A POSIX file name is bytes. Python decodes the bytes that are not UTF-8 to lone surrogates
(``surrogateescape``), which are not valid UTF-8 and crash a strict standard output; and control
characters (ESC, CR, …) in a name would reach the terminal raw. :func:`shown` writes each byte
that is not UTF-8 and each control character as ``\\xNN`` (``caf\\xe9.jpg``, ``\\x1b[2J.png``), so
``run``, ``predict`` and the Python API's errors all carry the same valid UTF-8 text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(name: str | Path) -> str:
    """``name`` as valid, printable UTF-8: undecodable bytes and control characters as ``\\xNN``."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
