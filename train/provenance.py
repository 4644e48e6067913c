"""Where a model came from: the command that trained it, the kit's commit, the data's licence.

Recorded in the run folder's ``config.json`` and carried into every bundle made from the run.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

from affectlite import __version__

LICENCES = {
    "ferplus": "FER+ labels: MIT licence (Microsoft, github.com/microsoft/FERPlus); FER2013 "
    "images: research use only (ICML 2013 representation-learning challenge).",
    "fer2013": "FER2013 images and labels: research use only (ICML 2013 challenge).",
    "fer2013-folder": "FER2013 images and labels: research use only (ICML 2013 challenge).",
    "affectnet": "AffectNet: academic research licence, granted per request (mohammadmahoor.com).",
    "affectnet7": "AffectNet: academic research licence, granted per request (mohammadmahoor.com).",
    "rafdb": "RAF-DB: non-commercial research licence, granted per request (whdeng.cn/RAF).",
}


def command_line() -> str:
    """This process's command as a user would type it (``affectlite train …``)."""
    program = Path(sys.argv[0]).name
    program = "affectlite" if program in ("affectlite", "__main__.py", "cli.py") else program
    return shlex.join([program, *sys.argv[1:]])


def git_commit(where: Path | None = None) -> str:
    """The kit's git commit (``+dirty`` when it has uncommitted changes), or its version when
    it is not a git checkout."""
    where = where or Path(__file__).resolve().parent
    try:
        commit = _git(where, "rev-parse", "HEAD")
        dirty = _git(where, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return f"affectlite {__version__} (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def _git(where: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True, timeout=10
    )
    return result.stdout.strip()


def licence(format_: str) -> str:
    """The licence note of a dataset format (a folder of your own: yours to state)."""
    return LICENCES.get(format_, "your own data: state its licence when you share the model.")


def init_source(model: str | Path) -> dict:
    """What a run started from (``train --init``): the model's path and SHA-256, and the command
    and commit of the run that trained it when its ``config.json`` sits beside it."""
    model = Path(model)
    source = {"model": str(model), "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    config = model.parent / "config.json"
    if config.is_file():
        data = json.loads(config.read_text()).get("data", {})
        source.update({key: data[key] for key in ("command", "git_commit") if key in data})
    return source
