"""Shared by test_flake8.py and test_pep257.py: ruff over the shipped code, standing in for
ament_flake8 / ament_pep257 (not pip-installable with their flake8 plugins here)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: What ships: the package, the launch files, the build script and the benchmarks.
PATHS = ("gaussvae_ros", "launch", "setup.py", "benchmarks")


def ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff not installed (requirements-dev.txt)")
    return subprocess.run([exe, "check", "--no-cache", "--output-format", "concise", *args, *PATHS],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
