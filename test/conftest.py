"""Shared fixtures: paths to the real recordings in ../shared (tests using them skip when absent)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BAGS = SHARED / "data" / "bags"


@pytest.fixture
def bag_path():
    """``bag_path(name)`` -> path of a shared recording, or skip the test if it is not there."""

    def get(name: str) -> Path:
        path = BAGS / name
        if not path.exists():
            pytest.skip(f"shared recording {name} not available at {path}")
        return path

    return get
