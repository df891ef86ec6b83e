"""The shared recordings: found through $GAUSSVAE_SHARED first, and when they are missing the suite
says so once in its summary, with the number of tests skipped for it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.shared import ENV, REPO, shared_root

#: A test module whose shared-data tests are cheap and which skips for no other reason.
MODULE = "test/bag/test_bag_reader.py"


def _run_pytest(shared: Path | None, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(ENV, None)
    if shared is not None:
        env[ENV] = str(shared)
    return subprocess.run([sys.executable, "-m", "pytest", MODULE, "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_the_variable_is_resolved_first(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, str(tmp_path))
    assert shared_root() == tmp_path
    monkeypatch.delenv(ENV)
    assert shared_root() == REPO.parent / "shared"


def test_missing_shared_data_is_counted_once_in_the_summary(tmp_path):
    run = _run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    skipped = int(re.search(r"(\d+) skipped", run.stdout).group(1))
    lines = [line for line in run.stdout.splitlines() if "skipped: shared data not found" in line]
    assert len(lines) == 1, run.stdout
    assert lines[0].startswith(f"{skipped} tests skipped: shared data not found at {tmp_path}") and ENV in lines[0]
    assert skipped >= 4


def test_no_summary_line_when_the_shared_data_is_there(tmp_path):
    real = shared_root()
    if not (real / "data" / "bags").exists():
        import pytest

        pytest.skip(f"shared data not available: nothing at {real} to point {ENV} at")
    link = tmp_path / "elsewhere"
    link.symlink_to(real.resolve())  # the same data under another name: found only through the variable
    run = _run_pytest(link, "-k", "synthetic_fixtures")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped: shared data not found" not in run.stdout
    assert " passed" in run.stdout and "skipped" not in run.stdout
