"""The launch files and config/gaussvae.yaml, without a launch install: the launch files are run
against stub ``launch`` / ``launch_ros`` modules, and every executable, parameter and remapping they
set is checked against setup.py, the YAML file and the nodes' parameter tables; ``gaussvae graph``
must start the same processes."""

import ast
import importlib.util
import shlex
import sys
import types
from pathlib import Path

import pytest
import yaml

from gaussvae_ros.apps.graph import GraphOptions, graph_commands
from gaussvae_ros.nodes import EXECUTABLES

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "gaussvae.yaml"
ALWAYS_DECLARED = {"use_sim_time"}  # declared by every rclpy node


def _console_scripts() -> dict:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in entries}
    raise AssertionError("no console_scripts in setup.py")


def _node_tables() -> dict:
    """executable -> {parameter name: default} from each node module's PARAMETERS (needs rclpy)."""
    pytest.importorskip("rclpy")
    pytest.importorskip("gaussvae_ros_interfaces.msg", reason="build_ros/env.sh not sourced")
    tables = {}
    for executable, module in EXECUTABLES.items():
        specs = importlib.import_module(module).PARAMETERS
        tables[executable] = {s.name: s.default for s in specs}
    return tables


def _flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _yaml_sections() -> dict:
    """``gaussvae_encoder`` -> flattened parameters of the ``/**/gaussvae_encoder`` section."""
    data = yaml.safe_load(CONFIG.read_text())
    sections = {}
    for key, value in data.items():
        assert key.startswith("/**/"), f"{key}: use /**/NAME so the section matches in any namespace"
        sections[key[4:]] = _flatten(value["ros__parameters"])
    return sections


# --- stub launch modules ------------------------------------------------------------------------

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


def _stub_modules(monkeypatch, real_ament_index: bool = False) -> None:
    classes = {}

    def module(name, **attrs):
        mod = types.ModuleType(name)
        for key, value in attrs.items():
            setattr(mod, key, value)
        monkeypatch.setitem(sys.modules, name, mod)
        return mod

    for name in ("LaunchDescription", "DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess",
                 "IncludeLaunchDescription", "PythonLaunchDescriptionSource", "Node"):
        classes[name] = type(name, (_Action,), {})
    module("launch", LaunchDescription=classes["LaunchDescription"])
    module("launch.actions", **{n: classes[n] for n in ("DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess",
                                                       "IncludeLaunchDescription")})
    module("launch.substitutions", LaunchConfiguration=_LaunchConfiguration)
    module("launch.launch_description_sources", PythonLaunchDescriptionSource=classes["PythonLaunchDescriptionSource"])
    module("launch_ros")
    module("launch_ros.actions", Node=classes["Node"])
    if real_ament_index:  # an installed package (test_colcon_install.py)
        return
    module("ament_index_python")
    module("ament_index_python.packages", get_package_share_directory=lambda package: str(REPO),
           get_package_prefix=lambda package: str(REPO / "no-install"), PackageNotFoundError=KeyError)


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"launch_file_{path.stem.replace('.', '_')}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(path: Path, monkeypatch, real_ament_index: bool = False, **arguments):
    """Evaluate a launch file: returns (declared argument defaults, actions incl. OpaqueFunction output)."""
    _stub_modules(monkeypatch, real_ament_index)
    description = _load(path).generate_launch_description()
    entities = description.args[0]
    defaults = {e.args[0]: e.kwargs.get("default_value") for e in entities
                if type(e).__name__ == "DeclareLaunchArgument"}
    values = dict(defaults, **arguments)
    actions = []
    for entity in entities:
        if type(entity).__name__ == "OpaqueFunction":
            actions.extend(entity.kwargs["function"](_Context(values)))
        elif type(entity).__name__ != "DeclareLaunchArgument":
            actions.append(entity)
    return defaults, actions


# --- tests --------------------------------------------------------------------------------------

def test_yaml_lists_every_declared_parameter_with_its_type():
    tables, sections = _node_tables(), _yaml_sections()
    assert set(sections) == set(tables)
    for executable, table in tables.items():
        yaml_params = sections[executable]
        assert set(yaml_params) - ALWAYS_DECLARED == set(table), executable
        for name, default in table.items():
            value = yaml_params[name]
            assert type(value) is type(default), f"{executable}.{name}: YAML {value!r} vs declared {default!r}"
            if name != "database":
                assert value == default, f"{executable}.{name}: YAML {value!r}, node default {default!r}"


def test_gaussvae_launch(monkeypatch):
    scripts, tables, sections = _console_scripts(), _node_tables(), _yaml_sections()
    defaults, actions = _run(REPO / "launch" / "gaussvae.launch.py", monkeypatch, namespace="robot",
                             database="/tmp/db.sqlite", image_topic="/camera/image_raw", use_sim_time="true",
                             compressed_image_topics="/a/compressed, /b/compressed", pose_topics="/pose")
    assert {"namespace", "database", "image_topic", "odom_topic", "use_sim_time", "params_file"} <= set(defaults)
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    assert sorted(n.kwargs["executable"] for n in nodes) == sorted(EXECUTABLES)
    for node in nodes:
        executable = node.kwargs["executable"]
        assert node.kwargs["package"] == "gaussvae_ros" and node.kwargs["name"] == executable
        assert scripts[executable] == f"{EXECUTABLES[executable]}:main"
        assert node.kwargs["namespace"] == "robot"
        params_file, overrides = node.kwargs["parameters"]
        assert Path(params_file) == CONFIG
        for name, value in overrides.items():
            assert name in sections[executable], f"{executable}: {name} set by the launch file is not in the YAML"
            assert name in tables[executable] or name in ALWAYS_DECLARED, f"{executable} does not declare {name}"
            if name in tables[executable]:
                assert type(value) is type(tables[executable][name]), (executable, name, value)
        assert overrides["use_sim_time"] is True
    by_name = {n.kwargs["executable"]: n for n in nodes}
    encoder = by_name["gaussvae_encoder"]
    assert dict(encoder.kwargs["remappings"]) == {"image_raw": "/camera/image_raw", "odom": "odom",
                                                   "camera_info": "camera_info"}
    assert encoder.kwargs["parameters"][1]["compressed_image_topics"] == ["/a/compressed", "/b/compressed"]
    assert encoder.kwargs["parameters"][1]["pose_topics"] == ["/pose"]
    # the remapped names are the encoder's default topics
    assert tables["gaussvae_encoder"]["image_topics"] == ["image_raw"]
    assert tables["gaussvae_encoder"]["odometry_topics"] == ["odom"]
    assert tables["gaussvae_encoder"]["camera_info_topics"] == ["camera_info"]
    for executable in ("gaussvae_memory", "gaussvae_recall"):
        assert by_name[executable].kwargs["parameters"][1]["database"] == "/tmp/db.sqlite"

    _, actions = _run(REPO / "launch" / "gaussvae.launch.py", monkeypatch)  # defaults: nothing overridden
    for node in actions:
        assert set(node.kwargs["parameters"][1]) == {"use_sim_time"} and node.kwargs["namespace"] == ""


def test_replay_launch(monkeypatch):
    defaults, actions = _run(REPO / "launch" / "replay.launch.py", monkeypatch, bag="/data/bag",
                             image_topic="/camera/image_raw")
    assert defaults["bag"] is None  # required
    include = next(a for a in actions if type(a).__name__ == "IncludeLaunchDescription")
    source = include.args[0]
    assert Path(source.args[0]).name == "gaussvae.launch.py" and Path(source.args[0]).exists()
    forwarded = dict(include.kwargs["launch_arguments"])
    assert forwarded["use_sim_time"] == "true"
    graph_defaults, _ = _run(REPO / "launch" / "gaussvae.launch.py", monkeypatch)
    assert set(forwarded) <= set(graph_defaults)  # only arguments the included file declares
    assert _load(REPO / "launch" / "replay.launch.py").GRAPH_DEFAULTS == {
        k: v for k, v in graph_defaults.items() if k in forwarded and k != "use_sim_time"}
    player = next(a for a in actions if type(a).__name__ == "ExecuteProcess")
    cmd = player.kwargs["cmd"]
    # not installed by colcon here (the stub prefix has no lib/gaussvae_ros): gaussvae on PATH
    assert Path(cmd[0]).name == "gaussvae" and Path(cmd[0]).is_absolute()
    assert cmd[1:3] == ["play", "/data/bag"] and "--clock" in cmd
    assert cmd[cmd.index("--wait-for") + 1:cmd.index("--wait-for") + 2] == ["/camera/image_raw"]
    _, actions = _run(REPO / "launch" / "replay.launch.py", monkeypatch, bag="/data/bag", image_topic="image_raw",
                      compressed_image_topics="/cam/image/compressed, /b/compressed")
    cmd = next(a for a in actions if type(a).__name__ == "ExecuteProcess").kwargs["cmd"]
    assert cmd[cmd.index("--wait-for") + 1:] == ["/cam/image/compressed", "/b/compressed"]
    assert "gaussvae" in _console_scripts()
    _, actions = _run(REPO / "launch" / "replay.launch.py", monkeypatch, bag="/data/bag", player="ros2")
    assert next(a for a in actions if type(a).__name__ == "ExecuteProcess").kwargs["cmd"][:4] == [
        "ros2", "bag", "play", "/data/bag"]


def test_graph_command_matches_the_launch_file(monkeypatch):
    _, actions = _run(REPO / "launch" / "gaussvae.launch.py", monkeypatch, namespace="robot",
                      database="/tmp/db.sqlite", image_topic="/camera/image_raw", odom_topic="/odom",
                      use_sim_time="true")
    launched = {a.kwargs["executable"]: a for a in actions}
    options = GraphOptions(params_file=CONFIG, namespace="robot", database="/tmp/db.sqlite",
                           image_topic="/camera/image_raw", odom_topic="/odom", use_sim_time=True)
    commands = dict(graph_commands(options))
    assert set(commands) == set(launched)
    for executable, argv in commands.items():
        node = launched[executable]
        assert argv[1:3] == ["-m", EXECUTABLES[executable]]
        ros_args = argv[argv.index("--ros-args") + 1:]
        pairs = list(zip(ros_args[::2], ros_args[1::2]))
        assert ("--params-file", str(CONFIG)) in pairs
        assert ("-r", "__ns:=/robot") in pairs
        remaps = {v.split(":=")[0]: v.split(":=")[1] for k, v in pairs if k == "-r" and not v.startswith("__")}
        expected = {a: b for a, b in node.kwargs.get("remappings", []) if a != b}
        assert remaps == expected, executable
        params = {v.split(":=")[0]: v.split(":=")[1] for k, v in pairs if k == "-p"}
        overrides = node.kwargs["parameters"][1]
        assert set(params) == set(overrides), executable
        assert params["use_sim_time"] == "true"
        if "database" in overrides:
            assert params["database"] == overrides["database"]
    bag = dict(graph_commands(GraphOptions(params_file=CONFIG, bag="/data/bag", use_sim_time=True,
                                           image_topic="/camera/image_raw")))["player"]
    assert bag[2:6] == ["gaussvae_ros.cli.main", "play", "/data/bag", "--rate"] and "--clock" in bag
    assert shlex.join(bag)


def test_graph_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown nodes"):
        GraphOptions(nodes=("encoder", "planner"))
    with pytest.raises(FileNotFoundError):
        graph_commands(GraphOptions(params_file=tmp_path / "missing.yaml"))
    assert dict(graph_commands(GraphOptions(params_file=CONFIG, nodes=("memory",)))).keys() == {"gaussvae_memory"}
