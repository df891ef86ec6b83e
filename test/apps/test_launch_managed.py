"""gaussvae.launch.py managed:=true, evaluated with stub launch modules (no launch install here):
lifecycle encoder and memory nodes under their usual names, configured then activated on start."""

import ast
import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "gaussvae.launch.py"


class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.values[self.name]


class _Context:
    def __init__(self, values):
        self.values = values


def _stubs(monkeypatch):
    names = ("LaunchDescription", "DeclareLaunchArgument", "OpaqueFunction", "EmitEvent", "RegisterEventHandler",
             "Node", "LifecycleNode", "OnStateTransition", "ChangeState")
    classes = {n: type(n, (_Action,), {}) for n in names}

    def module(name, **attrs):
        mod = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(mod, key, value)
        monkeypatch.setitem(sys.modules, name, mod)

    module("launch", LaunchDescription=classes["LaunchDescription"])
    module("launch.actions", **{n: classes[n] for n in ("DeclareLaunchArgument", "OpaqueFunction", "EmitEvent",
                                                       "RegisterEventHandler")})
    module("launch.events", matches_action=lambda action: ("matches", action))
    module("launch.substitutions", LaunchConfiguration=_LaunchConfiguration)
    module("launch_ros")
    module("launch_ros.actions", Node=classes["Node"], LifecycleNode=classes["LifecycleNode"])
    module("launch_ros.event_handlers", OnStateTransition=classes["OnStateTransition"])
    module("launch_ros.events")
    module("launch_ros.events.lifecycle", ChangeState=classes["ChangeState"])
    module("ament_index_python")
    module("ament_index_python.packages", get_package_share_directory=lambda package: str(REPO))


def _actions(monkeypatch, **arguments):
    _stubs(monkeypatch)
    spec = importlib.util.spec_from_file_location("gaussvae_launch_managed", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    entities = mod.generate_launch_description().args[0]
    values = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    values.update(arguments)
    function = next(e for e in entities if type(e).__name__ == "OpaqueFunction").kwargs["function"]
    return values, function(_Context(values))


def _console_scripts() -> dict:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries}
    raise AssertionError("no console_scripts")


def test_managed_launch_brings_up_lifecycle_nodes(monkeypatch):
    from gaussvae_ros.nodes import MANAGED_EXECUTABLES

    defaults, actions = _actions(monkeypatch, managed="true", namespace="robot", database="/tmp/m.db")
    assert defaults["autostart"] == "true"
    kinds = [type(a).__name__ for a in actions]
    lifecycle = [a for a in actions if type(a).__name__ == "LifecycleNode"]
    assert {a.kwargs["executable"] for a in lifecycle} == set(MANAGED_EXECUTABLES)
    assert {a.kwargs["name"] for a in lifecycle} == {"gaussvae_encoder", "gaussvae_memory"}
    assert all(a.kwargs["namespace"] == "robot" for a in lifecycle)
    scripts = _console_scripts()
    for executable, module in MANAGED_EXECUTABLES.items():
        assert scripts[executable] == f"{module}:main"
    memory = next(a for a in lifecycle if a.kwargs["name"] == "gaussvae_memory")
    assert memory.kwargs["parameters"][1]["database"] == "/tmp/m.db"
    assert [a.kwargs["executable"] for a in actions if type(a).__name__ == "Node"] == ["gaussvae_recall"]
    # each lifecycle node: a configure event at start, an activate event once it is inactive
    from lifecycle_msgs.msg import Transition

    emitted = [a for a in actions if type(a).__name__ == "EmitEvent"]
    assert sorted(e.kwargs["event"].kwargs["transition_id"] for e in emitted) == [Transition.TRANSITION_CONFIGURE] * 2
    handlers = [a.args[0] for a in actions if type(a).__name__ == "RegisterEventHandler"]
    assert {h.kwargs["target_lifecycle_node"].kwargs["name"] for h in handlers} == {"gaussvae_encoder",
                                                                                     "gaussvae_memory"}
    for h in handlers:
        assert h.kwargs["goal_state"] == "inactive"
        assert h.kwargs["entities"][0].kwargs["event"].kwargs["transition_id"] == Transition.TRANSITION_ACTIVATE
    assert kinds.count("LifecycleNode") == 2

    _, actions = _actions(monkeypatch, managed="true", autostart="false")
    assert not [a for a in actions if type(a).__name__ in ("EmitEvent", "RegisterEventHandler")]
    _, actions = _actions(monkeypatch)  # default: the plain nodes
    assert [type(a).__name__ for a in actions] == ["Node"] * 3
