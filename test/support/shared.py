"""Where the tests find the shared recordings, and the one skip they use when those are missing.

The recordings live in ``shared/`` beside the repository (``../shared``); the environment variable
``GAUSSVAE_SHARED`` points elsewhere (a clone in another place, a CI cache) and is resolved first.
A test that needs a recording calls :func:`shared_bag`; its skip reason starts with
:data:`SKIP_REASON`, which ``test/conftest.py`` counts for the one summary line that says how many
tests the missing data skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = "GAUSSVAE_SHARED"
SKIP_REASON = "shared data not available"


def shared_root() -> Path:
    """``$GAUSSVAE_SHARED`` when set (and not empty), else ``../shared`` beside the repository."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else REPO.parent / "shared"


def bags_dir() -> Path:
    return shared_root() / "data" / "bags"


def shared_bag(name: str) -> Path:
    """Path of the shared recording ``name``, or skip the test (reason :data:`SKIP_REASON`)."""
    path = bags_dir() / name
    if not path.exists():
        pytest.skip(f"{SKIP_REASON}: recording {name} not at {path} (set {ENV} to the shared folder)")
    return path


def count_shared_skips(reports) -> int:
    """How many skip reports in ``reports`` were for missing shared data."""
    count = 0
    for report in reports:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        count += SKIP_REASON in reason
    return count
