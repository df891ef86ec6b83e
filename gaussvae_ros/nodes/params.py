"""Parameter tables of the nodes: declaration with descriptors, validation, change callbacks.

Each node lists its parameters as :class:`ParamSpec` rows (name, default, description with units,
whether it can change at run time) in a module-level tuple, so the launch test and
``config/gaussvae.yaml`` can be checked against the very table the node declares from.

Validation is one function per node, ``check(values) -> list of problems``, run on the whole
parameter set: at start-up (a bad YAML file stops the node with a message naming every bad value)
and in the on-set-parameters callback (a bad ``ros2 param set`` is refused, the node keeps its
old values). Parameters marked ``read_only`` (topics, queue sizes, database path) cannot be changed
once the node runs; rclpy refuses those changes itself.

YAML note: ROS 2 parameter files cannot hold an empty list (``[]`` leaves the parameter unset), so
string lists that may be empty default to ``[""]``; empty strings in a topic list are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult

__all__ = ["ParamSpec", "declare_parameters", "install_validator", "nonempty", "real_list", "yaml_defaults"]


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: ``name``, ``default`` (its type fixes the parameter type; lists are
    string arrays), ``description`` (meaning and units), ``read_only`` (fixed after start-up)."""

    name: str
    default: object
    description: str
    read_only: bool = False

    @property
    def type_name(self) -> str:
        return {bool: "bool", int: "integer", float: "double", str: "string", list: "string_array"}[type(self.default)]


def _descriptor(spec: ParamSpec):
    types = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
             list: ParameterType.PARAMETER_STRING_ARRAY}
    return ParameterDescriptor(type=types[type(spec.default)], description=spec.description,
                               read_only=spec.read_only)


def declare_parameters(node, specs, check: Callable[[dict], list[str]] | None = None) -> dict:
    """Declare every parameter of ``specs`` on ``node`` and return ``{name: value}``.

    Raises:
        ValueError: ``check`` found problems in the values (start-up configuration).
    """
    for spec in specs:
        node.declare_parameter(spec.name, spec.default, _descriptor(spec))
    values = {spec.name: node.get_parameter(spec.name).value for spec in specs}
    for spec in specs:  # rclpy hands out arrays as array/tuple types; keep plain lists
        if isinstance(spec.default, list):
            values[spec.name] = [str(v) for v in (values[spec.name] or [])]
    problems = check(values) if check is not None else []
    if problems:
        raise ValueError(f"{node.get_name()}: invalid parameters: " + "; ".join(problems))
    return values


def install_validator(node, specs, values: dict, check: Callable[[dict], list[str]],
                      apply: Callable[[dict], None]) -> None:
    """Validate run-time parameter changes as a whole and apply accepted ones.

    ``values`` is the node's current ``{name: value}``; it is updated in place when a change is
    accepted, then ``apply(values)`` is called. Parameters not in ``specs`` pass through untouched
    (``use_sim_time`` and the like).
    """
    known = {spec.name: spec for spec in specs}

    def on_set(params) -> SetParametersResult:
        merged = dict(values)
        for p in params:
            if p.name in known:
                value = p.value
                if isinstance(known[p.name].default, list):
                    value = [str(v) for v in (value or [])]
                merged[p.name] = value
        problems = check(merged)
        if problems:
            return SetParametersResult(successful=False, reason="; ".join(problems))
        values.update(merged)
        apply(values)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def real_list(values) -> list[str]:
    """A string-array parameter without its empty entries (``[""]`` stands for an empty list)."""
    return [v for v in values if v]


def nonempty(problems: list, values: dict, name: str) -> None:
    if not values[name]:
        problems.append(f"{name} must not be empty")


def check_range(problems: list, values: dict, name: str, low=None, high=None, *, finite: bool = True) -> None:
    """Append a problem when ``values[name]`` is not a finite number within ``[low, high]``."""
    value = values[name]
    if finite and isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{name} must be finite, got {value}")
        return
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
        problems.append(f"{name} must be {bounds}, got {value}")


def check_choice(problems: list, values: dict, name: str, choices) -> None:
    if values[name] not in choices:
        problems.append(f"{name} must be one of {', '.join(map(str, choices))}, got {values[name]!r}")


def yaml_defaults(specs) -> dict:
    """``{name: default}`` of a table (what an empty parameter file leaves)."""
    return {spec.name: spec.default for spec in specs}
