"""flake8's checks (pyflakes F, pycodestyle E / W) over the shipped code, with ruff standing in
for ament_flake8. Line length is not enforced: the code wraps at about 120 columns, a few tables
and messages run longer."""

import pytest

from support.lint import ruff


@pytest.mark.linter
def test_flake8():
    result = ruff("--select", "E,W,F", "--ignore", "E501")
    assert result.returncode == 0, result.stdout + result.stderr
