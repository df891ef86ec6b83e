"""The store file under stress: damaged and foreign files, newer versions, another process holding the
write lock, a reader process while writing, a writer killed mid-run, and migrating an older file."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gaussvae_ros.store import SCHEMA_VERSION, Memory, Pose, Store, StoreError
from gaussvae_ros.store import schema
from support.memories import SECOND, T0, random_memories

REPO = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def child(script: str, *args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def filled_store(path: Path, count: int = 2000) -> list[Memory]:
    memories = random_memories(11, count)
    with Store(path) as store:
        store.insert_many(memories, batch_size=250)
    return memories


def test_garbage_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    before = digest(path)
    with pytest.raises(StoreError, match="damaged or not a SQLite database"):
        Store(path)
    assert digest(path) == before


def test_damaged_pages_give_a_store_error(tmp_path):
    path = tmp_path / "m.db"
    filled_store(path)
    data = bytearray(path.read_bytes())
    start, end = len(data) * 2 // 5, len(data) * 3 // 5
    data[start:end] = np.random.default_rng(1).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(StoreError, match="damaged"):
        with Store(path) as store:
            store.by_time(with_payload=True)
    assert digest(path) == before  # nothing was "repaired" or overwritten


def test_integrity_check_reports_damage(tmp_path):
    path = tmp_path / "m.db"
    filled_store(path)
    data = bytearray(path.read_bytes())
    page = 8192
    victim = len(data) // page // 2 * page  # a page in the middle: a memories leaf, most likely
    data[victim + 8:victim + 200] = bytes(range(192))  # cell pointers and cells scrambled
    path.write_bytes(bytes(data))
    with Store(path) as store:
        try:
            problems = store.integrity_check()
        except StoreError:
            return  # also a clear answer
        assert problems


def test_foreign_sqlite_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(StoreError, match="not a gaussvae memory store"):
        Store(path)
    assert digest(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    assert conn.execute("SELECT text FROM notes").fetchall() == [("keep me",)]


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "m.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this gaussvae_ros supports"):
        Store(path)


HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_a_locked_database_gives_a_clear_error_and_loses_nothing(tmp_path):
    path = tmp_path / "m.db"
    memories = filled_store(path, 300)
    later = [Memory(T0 - k * SECOND, "/cam", "front", b"late", 8, 8, "mono8") for k in range(1, 30)]
    holder = child(HOLD_WRITE_LOCK, str(path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Store(path, timeout_s=0.2) as store:
            started = time.monotonic()
            with pytest.raises(StoreError, match="locked by another connection"):
                store.insert(later[0])
            assert time.monotonic() - started >= 0.15  # it waited busy_timeout first
            with pytest.raises(StoreError, match="the 0 memories before this batch were stored"):
                store.insert_many(later, batch_size=10)
            assert store.stats().count == len(memories)  # reading is not blocked by the writer
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
    with Store(path) as store:
        assert store.insert_many(later, batch_size=10).inserted == len(later)
        assert store.stats().count == len(memories) + len(later)
        assert store.integrity_check() == []


READ_IN_A_LOOP = """
import json, sys, time
from gaussvae_ros.store import Store
counts, newest = [], []
with Store(sys.argv[1], create=False) as store:
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts.append(store.stats().count)
        newest.extend(r.stamp_ns for r in store.by_time(order="desc", limit=1))
        store.nearest((0.0, 0.0, 0.0), 3)
        if counts[-1] >= int(sys.argv[2]):
            break
print(json.dumps({"counts": counts, "newest": newest}))
"""


def test_another_process_reads_while_this_one_writes(tmp_path):
    path = tmp_path / "m.db"
    Store(path).close()
    memories = sorted(random_memories(12, 1500), key=lambda m: m.stamp_ns)
    reader = child(READ_IN_A_LOOP, str(path), str(len(memories)))
    try:
        assert reader.stdout.readline().strip() == "ready"
        with Store(path, timeout_s=1.0) as store:  # a reader never makes the writer wait
            for start in range(0, len(memories), 50):
                store.insert_many(memories[start:start + 50])
                time.sleep(0.01)
        out, err = reader.communicate(timeout=90)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    seen = json.loads(out)
    assert seen["counts"] == sorted(seen["counts"]) and seen["counts"][-1] == len(memories)
    assert len(set(seen["counts"])) > 3  # it saw the store grow, batch by batch
    assert all(c % 50 == 0 or c == len(memories) for c in seen["counts"])  # whole transactions only


WRITE_UNTIL_KILLED = """
import sys
sys.path.insert(0, sys.argv[2])
from gaussvae_ros.store import Store
from support.memories import random_memories
memories = random_memories(13, 20000, pose_fraction=1.0)
with Store(sys.argv[1]) as store:
    for start in range(0, len(memories), 100):
        store.insert_many(memories[start:start + 100])
        if start == 1000:
            print("writing", flush=True)
"""


def test_a_killed_writer_leaves_whole_batches_and_replay_resumes(tmp_path):
    path = tmp_path / "m.db"
    writer = child(WRITE_UNTIL_KILLED, str(path), str(Path(__file__).parents[1]))  # test/: support.memories
    try:
        assert writer.stdout.readline().strip() == "writing"
        time.sleep(0.3)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    memories = random_memories(13, 20000, pose_fraction=1.0)
    with Store(path) as store:
        assert store.integrity_check() == []
        count = store.stats().count
        assert 0 < count < len(memories) and count % 100 == 0
        result = store.insert_many(memories, batch_size=500)  # the replay, run again
        assert result.skipped == count and result.inserted == len(memories) - count
        assert store.stats().count == len(memories)
        point = memories[-1].pose.position
        assert store.nearest(point, 1)[0].distance_m == 0.0


def v1_file(path: Path) -> list[Memory]:
    """A schema-version-1 file, written the way version 1 wrote it (no stream counters)."""
    memories = random_memories(14, 120)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    schema.migrate(conn, target=1)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute("BEGIN")
    streams, profiles = {}, {}
    for i, m in enumerate(memories, start=1):
        key = (m.topic, m.camera_frame_id)
        if key not in streams:
            streams[key] = conn.execute("INSERT INTO streams (topic, camera_frame_id) VALUES (?, ?)", key).lastrowid
        pkey = (m.pose_frame_id, m.width, m.height, m.encoding, m.intrinsics.to_json() if m.intrinsics else None,
                m.codec, m.model_id)
        if pkey not in profiles:
            profiles[pkey] = conn.execute("INSERT INTO profiles (pose_frame_id, width, height, encoding, intrinsics, "
                                          "codec, model_id) VALUES (?, ?, ?, ?, ?, ?, ?)", pkey).lastrowid
        pose = (*m.pose.position, *m.pose.orientation) if m.pose else (None,) * 7
        conn.execute("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (i, streams[key], m.stamp_ns, profiles[pkey], *pose, m.psnr, m.ssim, m.payload))
        if m.pose:  # version 1 indexed poses the same way; one segment per memory is a valid layout
            x, y, z = m.pose.position
            conn.execute("INSERT INTO pose_segments VALUES (?, ?)", (i, i))
            conn.execute("INSERT INTO pose_index VALUES (?, ?, ?, ?, ?, ?, ?)", (i, x, x, y, y, z, z))
    conn.execute("COMMIT")
    conn.close()
    return memories


def test_migration_from_version_1(tmp_path):
    path = tmp_path / "old.db"
    memories = v1_file(path)
    with Store(path) as store:
        stats = store.stats()
        assert stats.count == len(memories)
        assert stats.payload_bytes == sum(len(m.payload) for m in memories)
        assert stats.pose_count == sum(m.pose is not None for m in memories)
        for s in stats.streams:
            mine = [m for m in memories if (m.topic, m.camera_frame_id) == (s.topic, s.camera_frame_id)]
            assert s.count == len(mine)
        records = store.get(list(range(1, len(memories) + 1)), with_payload=True)
        assert [(r.stamp_ns, r.pose, r.payload, r.intrinsics) for r in records] == \
            [(m.stamp_ns, m.pose, m.payload, m.intrinsics) for m in memories]
        posed = [(i, m) for i, m in enumerate(memories, start=1) if m.pose]
        assert store.nearest(posed[0][1].pose.position, 1)[0].id == posed[0][0]
        new_id = store.insert(Memory(T0 - SECOND, "/cam", "front", b"new", 8, 8, "mono8", pose=Pose((0, 0, 0))))
        assert new_id == len(memories) + 1
        assert store.stats().count == len(memories) + 1
        assert store.integrity_check() == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    memories = v1_file(path)

    def broken(db):
        db.execute("ALTER TABLE streams ADD COLUMN half_done INTEGER")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(schema, "MIGRATIONS", [schema.MIGRATIONS[0], broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "half_done" not in [r[1] for r in conn.execute("PRAGMA table_info(streams)")]
    assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == len(memories)
    conn.close()
    monkeypatch.undo()
    with Store(path) as store:
        assert store.stats().count == len(memories)


def test_pragmas_of_an_open_store(tmp_path):
    with Store(tmp_path / "m.db", timeout_s=2.5) as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
