"""Docstring checks (pydocstyle, PEP 257) over the shipped code, with ruff standing in for
ament_pep257: every module and package has a docstring, and docstrings are well formed (quotes,
indentation, blank lines, no empty ones). Not enforced: a docstring on every public function and
method, the imperative mood, a capital first word (names like rosbags, rclpy), a blank line after a multi-line summary (the code's style)."""

import pytest

from support.lint import ruff

#: pydocstyle rules the code does not follow (see the module docstring), and ruff's incompatible pairs.
IGNORED = ("D101", "D102", "D103", "D105", "D107", "D202", "D203", "D205", "D209", "D213", "D301", "D400",
           "D401", "D403", "D404", "D410", "D411", "D413", "D415", "D417")


@pytest.mark.linter
def test_pep257():
    result = ruff("--select", "D", "--ignore", ",".join(IGNORED))
    assert result.returncode == 0, result.stdout + result.stderr
