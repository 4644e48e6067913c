"""Atomic writes for every file and folder the kit produces.

A reader sees the old content or the new, never half of it: data goes to a temporary name in
the same folder and is renamed into place; on failure the temporary is removed. Files are
written 0644 and folders 0755 explicitly (``mkstemp``/``mkdtemp`` would leave 0600/0700), so a
bundle written by one user is readable by another, e.g. the systemd unit's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILE_MODE = 0o644
DIR_MODE = 0o755


@contextmanager
def atomic_path(path: str | Path, mode: int = FILE_MODE) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds.

    For writers that want a file name (``model.save``, ``np.savez``, ``cv2.imwrite``). The
    temporary keeps ``path``'s suffixes (``.weights.h5``), since some writers choose the format
    by them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (fsynced before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, document: Any) -> Path:
    """Writes ``document`` as indented JSON (NaN refused: it is not JSON) atomically."""
    return write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Calls ``writer(tmp)`` and renames ``tmp`` onto ``path`` if it returns."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


@contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yields an empty staging folder beside ``path``; moves it into place if the block succeeds.

    Args:
        path: the folder to create.
        replace: allow replacing an existing folder (the old one is retired only after the new
            one is in place); otherwise an existing non-empty ``path`` raises FileExistsError.
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not replace:
        raise FileExistsError(f"{path} already exists and is not empty.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        for root, dirs, files in os.walk(staging):
            os.chmod(root, DIR_MODE)
            for name in dirs:
                os.chmod(Path(root, name), DIR_MODE)
            for name in files:
                os.chmod(Path(root, name), FILE_MODE)
        retired = None
        if path.exists():
            retired = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, retired)
        os.replace(staging, path)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_figure(path: str | Path, figure: Any, **savefig_options: Any) -> Path:
    """Saves a matplotlib ``figure`` atomically (format by the suffix), then closes it."""
    import matplotlib.pyplot as plt  # only the callers that draw need matplotlib

    try:
        return write_with(path, lambda tmp: figure.savefig(tmp, **savefig_options))
    finally:
        plt.close(figure)
