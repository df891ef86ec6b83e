"""Helpers for the nodes' parameter-check tests (no tests here): one table of accepted edge values
and refused values per parameter, checked three ways: the node's pure check function, start-up
(a bad value stops the node with a message naming it) and ``set_parameters`` on a running node
(refused, the old value kept; an edge value accepted)."""

from __future__ import annotations

import math

import pytest
from rclpy.parameter import Parameter


def check_table(specs, check, ranges) -> None:
    """``check(values)`` accepts every edge value and refuses every bad one, naming the parameter;
    the table covers every scalar parameter of ``specs``."""
    defaults = {spec.name: spec.default for spec in specs}
    assert check(defaults) == []
    scalar = {spec.name for spec in specs if not isinstance(spec.default, (list, bool))}
    assert {name for name, _, _ in ranges} == scalar, "every scalar parameter has a range row"
    for name, good, bad in ranges:
        for value in good:
            assert check({**defaults, name: value}) == [], (name, value)
        for value in bad:
            problems = check({**defaults, name: value})
            assert len(problems) == 1 and name in problems[0], (name, value, problems)


def check_start_up(graph, node_class, base: dict, ranges) -> None:
    """Every refused value stops the node at start-up with a ValueError naming the parameter."""
    for name, _, bad in ranges:
        for value in bad:
            with pytest.raises(ValueError, match=f"invalid parameters: .*{name}"):
                graph.add(node_class, {**base, name: value})


def check_run_time(node, specs, ranges) -> None:
    """On a running node: refused values are refused (the value stays), edge values are accepted
    (read-only parameters are refused by rclpy whatever the value)."""
    read_only = {spec.name for spec in specs if spec.read_only}
    for name, good, bad in ranges:
        if name in read_only:
            continue
        before = node.get_parameter(name).value
        for value in bad:
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful and name in result.reason, (name, value, result.reason)
            same = node.get_parameter(name).value
            assert same == before or (isinstance(before, float) and math.isnan(before) and math.isnan(same))
        for value in good:
            assert node.set_parameters([Parameter(name, value=value)])[0].successful, (name, value)
            assert node.get_parameter(name).value == value
        assert node.set_parameters([Parameter(name, value=before)])[0].successful
