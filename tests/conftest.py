"""Shared test fixtures: real-data locations and headless settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
FERPLUS = Path(os.environ.get("AFFECTLITE_FERPLUS", REPO.parent / "shared" / "data" / "ferplus"))


@pytest.fixture(scope="session")
def ferplus_root() -> Path:
    """The FER+ dataset beside the checkout; tests using it skip when it is absent."""
    if not (FERPLUS / "FER2013Train" / "label.csv").is_file():
        pytest.skip(f"FER+ not found at {FERPLUS} (set AFFECTLITE_FERPLUS to run real-data tests)")
    return FERPLUS
