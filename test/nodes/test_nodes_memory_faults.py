"""gaussvae_memory under faults: a locked or damaged store at start-up (exit 2, no traceback), a store
locked while records arrive (queued, retried, none lost), delete_memories disabled by default."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from support.ros_graph import RosGraph, record_msg, wait_until

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import DeleteMemories, GetStats  # noqa: E402

from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402
from gaussvae_ros.store import Store  # noqa: E402

from support.recordings import cli_env  # noqa: E402

S = 1_000_000_000

HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("BEGIN EXCLUSIVE")
else:
    conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def hold(path, mode):
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), mode], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def release(child):
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.wait(timeout=30) == 0


def start_node(database, timeout=60):
    return subprocess.run([sys.executable, "-m", "gaussvae_ros.nodes.memory_node", "--ros-args", "-p",
                           f"database:={database}"], capture_output=True, text=True, timeout=timeout, env=cli_env())


def test_a_locked_store_at_start_up_exits_2_with_the_clear_message(tmp_path):
    path = tmp_path / "m.db"
    Store(path).close()
    holder = hold(path, "exclusive")
    try:
        out = start_node(path)
    finally:
        release(holder)
    assert out.returncode == 2, out.stderr
    assert "locked by another connection" in out.stderr
    assert "Traceback" not in out.stderr and "AttributeError" not in out.stderr


def test_a_damaged_store_is_refused_by_the_node(tmp_path):
    path = tmp_path / "m.db"
    with Store(path) as store:
        from support.memories import SECOND, T0
        from gaussvae_ros.store import Memory

        store.insert_many([Memory(T0 + k * SECOND, "/cam", "f", bytes([k]) * 3000, 8, 8, "mono8") for k in range(30)])
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xab" * 4096)
    out = start_node(path)
    assert out.returncode == 2, out.stderr
    assert "damaged" in out.stderr and "gaussvae db recover" in out.stderr and "Traceback" not in out.stderr


def test_records_arriving_while_the_store_is_locked_are_queued_and_stored_later(tmp_path):
    path = tmp_path / "m.db"
    Store(path).close()
    with RosGraph() as graph:
        node = graph.add(MemoryNode, {"database": str(path)})
        node._store._conn.execute("PRAGMA busy_timeout = 200")  # short lock waits keep the test fast
        pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        graph.wait_for_subscribers(pub)
        diagnostics = graph.collect(DiagnosticArray, "/diagnostics")
        holder = hold(path, "immediate")
        try:
            for i in range(1, 8):
                pub.publish(record_msg(i * S, (float(i), 0.0, 0.0)))
            wait_until(lambda: len(node._queue) == 7, 20.0, "7 records waiting")
            time.sleep(1.5)
            assert node.counters()["stored"] == 0 and node.counters()["given_up"] == 0
        finally:
            release(holder)
        wait_until(lambda: node.counters()["stored"] == 7, 20.0, "7 records stored after the lock")
        assert len(node._queue) == 0 and node.counters()["given_up"] == 0
        pub.publish(record_msg(3 * S, (3.0, 0.0, 0.0)))  # a re-sent record: a duplicate, as before
        wait_until(lambda: node.counters()["duplicates"] == 1, 10.0, "a duplicate")
        waited = [v for a in diagnostics for s in a.status for v in s.values if v.key == "write_queue"]
        assert any(int(v.value) > 0 for v in waited)
        stats = graph.client(GetStats, "get_stats")
        assert graph.call(stats, GetStats.Request()).count == 7


def test_delete_memories_is_refused_unless_allowed(tmp_path):
    with RosGraph() as graph:
        graph.add(MemoryNode, {"database": str(tmp_path / "m.db")})
        client = graph.client(DeleteMemories, "delete_memories")
        r = graph.call(client, DeleteMemories.Request(ids=[1]))
        assert not r.success and "allow_delete is false" in r.message


def test_records_published_while_no_memory_node_runs_are_stored_when_it_comes_back(tmp_path):
    """The encoder's reliable, transient-local publisher holds the last 50 records: a memory node that
    restarts (respawned by gaussvae graph or launch) gets the ones published while it was down."""
    with RosGraph() as graph:
        pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        for i in range(1, 21):  # no memory node yet
            pub.publish(record_msg(i * S, (float(i), 0.0, 0.0)))
        node = graph.add(MemoryNode, {"database": str(tmp_path / "m.db")})
        wait_until(lambda: node.counters()["stored"] == 20, 20.0, "the 20 held records stored")
        graph.remove(node)  # down again: 5 more records, then a new node on the same store
        for i in range(21, 26):
            pub.publish(record_msg(i * S, (float(i), 0.0, 0.0)))
        node = graph.add(MemoryNode, {"database": str(tmp_path / "m.db")})
        wait_until(lambda: node.counters()["stored"] == 5, 20.0, "the 5 records published meanwhile stored")
        assert node.counters()["duplicates"] == 20  # re-delivered, recognised by stream and stamp
