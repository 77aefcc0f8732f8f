"""Shared fixtures: where the real RAW samples live, and cached conversions per session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_RAW = REPO.parent / "shared" / "data" / "raw"


@pytest.fixture(scope="session")
def shared_raw() -> Path:
    """The real RAW captures in ../shared/data/raw (CI always has that folder)."""
    if not SHARED_RAW.is_dir():
        pytest.fail(f"{SHARED_RAW} is missing: clone the project with ../shared beside it")
    return SHARED_RAW
