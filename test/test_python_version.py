"""The minimum Python version the code needs, checked statically with vermin: 3.10 (Humble's
Python; Jazzy has 3.12, this venv 3.11). A 3.11-only module or member (tomllib, typing.Self,
datetime.UTC, ExceptionGroup, ...) anywhere in the package or the launch files fails here."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MINIMUM = "3.10"


def _vermin(*paths: str) -> subprocess.CompletedProcess:
    exe = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    if exe is None:
        pytest.skip("vermin not installed (requirements-dev.txt)")
    return subprocess.run([exe, "-q", "--no-tips", "--eval-annotations", "--no-parse-comments",
                           f"--target={MINIMUM}-", "--violations", *paths],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.linter
def test_code_runs_on_the_minimum_python():
    result = _vermin("gaussvae_ros", "launch", "setup.py", "benchmarks", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linter
def test_vermin_catches_newer_apis(tmp_path):
    (tmp_path / "new.py").write_text("import tomllib\nfrom typing import Self\n")
    result = _vermin(str(tmp_path / "new.py"))
    assert result.returncode != 0 and "tomllib" in result.stdout, result.stdout + result.stderr
