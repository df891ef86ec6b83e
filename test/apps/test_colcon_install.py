"""The package as a ROS user runs it: a fresh ``colcon build`` of gaussvae_ros (ament_python), then
``. install/setup.bash``; the launch files are evaluated against that install (the real
``ament_index_python``, stub ``launch`` / ``launch_ros``, which are not installable here), and the
processes they describe are started from the install: the three nodes (found by package path, as
``launch_ros``' ``Node`` / ``ros2 run gaussvae_ros <executable>`` find them) come up on DDS and
answer, and the player of replay.launch.py is ``<install>/lib/gaussvae_ros/gaussvae``.

The interface package comes from this checkout's build (build_ros/env.sh, an underlay), so the test
skips when that is not sourced or colcon is not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_launch import REPO, _run

pytestmark = pytest.mark.skipif(not (Path(sys.executable).parent / "colcon").exists(),
                                reason="colcon not installed in this venv (requirements-ros.txt)")


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """``(install dir, environment after sourcing install/setup.bash)`` of a fresh colcon build."""
    pytest.importorskip("gaussvae_ros_interfaces.msg", reason="build_ros/env.sh not sourced")
    ws = tmp_path_factory.mktemp("ws")
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [str(bindir / "colcon"), "--log-base", str(ws / "log"), "build", "--base-paths", str(REPO),
         "--packages-select", "gaussvae_ros", "--build-base", str(ws / "build"), "--install-base",
         str(ws / "install")], cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    dump = subprocess.run(["bash", "-c", f". {ws / 'install' / 'setup.bash'} && env -0"], env=env,
                          capture_output=True, timeout=60, check=True).stdout
    sourced = dict(item.split("=", 1) for item in dump.decode().split("\0") if "=" in item)
    return ws / "install", sourced


def _package_executable(executable: str) -> Path:
    """Where ``ros2 run gaussvae_ros EXECUTABLE`` (launch_ros' ExecutableInPackage) finds it."""
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix("gaussvae_ros")) / "lib" / "gaussvae_ros" / executable


def _ros_args(node) -> list[str]:
    """The ``--ros-args`` launch_ros' Node gives a process: name, namespace, parameters, remappings."""
    kw = node.kwargs
    args = ["--ros-args", "-r", f"__node:={kw['name']}"]
    if kw.get("namespace"):
        args += ["-r", f"__ns:=/{kw['namespace'].lstrip('/')}"]  # launch_ros makes it absolute
    for entry in kw["parameters"]:
        if isinstance(entry, dict):
            for name, value in entry.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                args += ["-p", f"{name}:={text}"]
        else:
            args += ["--params-file", str(entry)]
    for src, dst in kw.get("remappings", []):
        args += ["-r", f"{src}:={dst}"]
    return args


def test_installed_launch_files_start_what_they_describe(install, monkeypatch, tmp_path):
    from gaussvae_ros_interfaces.srv import GetStats, Recall
    from sensor_msgs.msg import Image

    from support.ros_graph import RosGraph

    prefix, env = install
    monkeypatch.setenv("AMENT_PREFIX_PATH", env["AMENT_PREFIX_PATH"])
    share = prefix / "gaussvae_ros" / "share" / "gaussvae_ros"
    assert (share / "launch" / "gaussvae.launch.py").exists() and (share / "config" / "gaussvae.yaml").exists()
    assert (share / "package.xml").exists()

    # replay.launch.py: the player is the installed console script, not whatever is on PATH
    _, actions = _run(share / "launch" / "replay.launch.py", monkeypatch, real_ament_index=True, bag="/data/bag",
                      image_topic="/camera/image_raw")
    player = next(a for a in actions if type(a).__name__ == "ExecuteProcess").kwargs["cmd"]
    assert Path(player[0]) == prefix / "gaussvae_ros" / "lib" / "gaussvae_ros" / "gaussvae", player
    assert subprocess.run([player[0], "play", "--help"], env=env, capture_output=True, timeout=120).returncode == 0

    # gaussvae.launch.py: its three nodes, from the install, with the installed parameter file
    with RosGraph() as graph:
        _, actions = _run(share / "launch" / "gaussvae.launch.py", monkeypatch, real_ament_index=True,
                          namespace=graph.ns.lstrip("/"), database=str(tmp_path / "m.db"),
                          image_topic="/cam/image_raw")
        nodes = [a for a in actions if type(a).__name__ == "Node"]
        assert {n.kwargs["executable"] for n in nodes} == {"gaussvae_encoder", "gaussvae_memory", "gaussvae_recall"}
        assert all(Path(n.kwargs["parameters"][0]) == share / "config" / "gaussvae.yaml" for n in nodes)
        child_env = dict(env, ROS_DOMAIN_ID=str(graph.domain_id))
        procs = {}
        try:
            for node in nodes:
                exe = _package_executable(node.kwargs["executable"])
                assert exe.exists() and os.access(exe, os.X_OK), exe
                procs[node.kwargs["executable"]] = subprocess.Popen([str(exe), *_ros_args(node)], env=child_env,
                                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                stats = graph.call(graph.client(GetStats, f"{graph.ns}/get_stats", timeout=60.0), GetStats.Request())
                assert stats.count == 0
                graph.client(Recall, f"{graph.ns}/recall", timeout=60.0)
                graph.wait_for_subscribers(graph.publisher(Image, "/cam/image_raw"), timeout=60.0)
            except AssertionError as exc:
                failed = exc
            else:
                failed = None
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 30
            codes = {}
            for name, proc in procs.items():
                try:
                    codes[name] = proc.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    codes[name] = proc.wait()
        outputs = {name: proc.stdout.read().decode(errors="replace")[-2000:] for name, proc in procs.items()}
        assert failed is None, f"{failed}: {outputs}"
        assert all(code in (0, -signal.SIGINT) for code in codes.values()), (codes, outputs)
