"""The run folder's safety rules, checked before any data is loaded (no Keras import).

A run folder is never overwritten: an existing, non-empty one needs ``--resume``. One exception:
a folder that a failed run left without any checkpoint (only its own ``config.json`` and a few
outputs written before the first epoch ended) holds nothing to resume or lose, so the same
command may start again in it; those leftovers are removed first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from affectlite.errors import InputError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
MIN_FREE_BYTES = 600 * 2**20
LEFTOVERS = frozenset({CONFIG_FILE, "augment.png", "history.csv", "tensorboard"})
"""What a run writes before its first checkpoint (best.keras, backup/, phase files)."""


class RunFolderError(InputError):
    """The run folder cannot be used (exists, unwritable, too little disk)."""


def restartable(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds only what a failed run wrote before its first checkpoint."""
    names = {path.name for path in run_dir.iterdir()}
    return CONFIG_FILE in names and names <= LEFTOVERS


def finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` ended: its metrics are written and its resume state,
    which :func:`remove_resume_state` removes on success, is gone."""
    state = (run_dir / "backup").exists() or any(run_dir.glob("phase-*.weights.h5"))
    return (run_dir / METRICS_FILE).is_file() and not state


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuses a run folder that cannot be used, changing nothing (``affectlite train`` calls
    it before loading data; every worker of a multi-worker run may).

    Raises:
        RunFolderError: if the folder exists, is not empty and is not a failed run's
            checkpoint-free folder, without ``resume``; or holds nothing to resume with it
            (no config, or a finished run).
    """
    if resume and not (run_dir / CONFIG_FILE).is_file():
        raise RunFolderError(f"--resume: {run_dir} holds no {CONFIG_FILE}; nothing to resume.")
    if resume and finished(run_dir):
        raise RunFolderError(
            f"--resume: {run_dir} finished (its {METRICS_FILE} is written); nothing to resume. "
            f"To train it further: --init {run_dir / 'best.keras'} with a new --out."
        )
    if not resume and run_dir.is_dir() and any(run_dir.iterdir()) and not restartable(run_dir):
        raise RunFolderError(
            f"{run_dir} already exists and is not empty; pass --resume to continue that run "
            "or choose another --out (runs are never overwritten)."
        )


def prepare_run_dir(run_dir: Path, resume: bool, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Creates (or re-opens, when resuming) the run folder after :func:`check_run_dir`; clears
    a failed run's checkpoint-free leftovers.

    Raises:
        RunFolderError: as :func:`check_run_dir`; also when the folder cannot be written or its
            disk has less than ``min_free_bytes`` free.
    """
    check_run_dir(run_dir, resume)
    if not resume and run_dir.is_dir():
        for name in LEFTOVERS:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise RunFolderError(f"Cannot write to {run_dir}: {error.strerror or error}.") from error
    free = shutil.disk_usage(run_dir).free
    if free < min_free_bytes:
        raise RunFolderError(
            f"Only {free / 2**20:.0f} MiB free at {run_dir}; this run needs about "
            f"{min_free_bytes / 2**20:.0f} MiB for checkpoints. Free space or choose another --out."
        )


def remove_resume_state(run_dir: Path) -> None:
    """After a successful run: the resume state (backup/ and phase weights) is no longer
    needed, and best.keras holds the model."""
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    for path in run_dir.glob("phase-*.weights.h5"):
        path.unlink()
