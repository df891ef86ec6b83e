"""``gaussvae graph`` respawns a node that dies (bounded, logged); the launch file sets respawn for the
memory and recall nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gaussvae_ros.apps.respawn import Respawner

REPO = Path(__file__).resolve().parents[2]


def test_respawns_are_bounded_and_not_for_configuration_errors():
    r = Respawner(max_respawns=2, delay_s=1.0)
    assert r.decide("memory", 2, now=0.0) is None and r.decide("memory", 0, now=0.0) is None
    line = r.decide("memory", -9, now=0.0)
    assert "signal 9" in line and "respawn 1 of 2" in line
    assert r.due(now=0.5) == [] and r.waiting("memory")
    assert r.due(now=1.0) == ["memory"] and not r.waiting("memory")
    assert "respawn 2 of 2" in r.decide("memory", 1, now=2.0)
    assert r.due(now=3.0) == ["memory"]
    assert r.decide("memory", -9, now=4.0) is None  # used up


def test_the_launch_file_respawns_the_memory_and_recall_nodes():
    text = (REPO / "launch" / "gaussvae.launch.py").read_text()
    for executable in ("gaussvae_memory", "gaussvae_recall"):
        block = text.split(f'executable="{executable}"', 1)[1].split("Node(", 1)[0]
        assert "respawn=True" in block, executable


def _children(pid: int) -> dict[str, int]:
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        child, _, args = line.strip().partition(" ")
        for name in ("memory_node", "recall_node", "encoder_node"):
            if f"gaussvae_ros.nodes.{name}" in args:
                found[name] = int(child)
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="ps --ppid")
def test_a_killed_memory_node_is_respawned_and_the_graph_keeps_running(tmp_path):
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "42"))
    proc = subprocess.Popen([sys.executable, "-m", "gaussvae_ros.cli.main", "graph", "--nodes", "memory",
                             "--params", str(REPO / "config" / "gaussvae.yaml"),
                             "--database", str(tmp_path / "m.db"), "--namespace", f"/respawn{os.getpid()}",
                             "--respawn", "1", "--respawn-delay", "0.5", "--grace", "5"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "memory_node" not in _children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        first = _children(proc.pid)["memory_node"]
        time.sleep(2.0)
        os.kill(first, signal.SIGKILL)
        while time.monotonic() < deadline:
            now = _children(proc.pid).get("memory_node")
            if now and now != first:
                break
            time.sleep(0.2)
        second = _children(proc.pid)["memory_node"]
        assert second != first and proc.poll() is None
        time.sleep(2.0)
        os.kill(second, signal.SIGKILL)  # respawns used up: the graph stops
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "gaussvae_memory died (signal 9); respawning in 0.5 s (respawn 1 of 1)" in output
    assert "respawned gaussvae_memory" in output
    assert "died again after 1 respawns" in output and proc.returncode == 1
