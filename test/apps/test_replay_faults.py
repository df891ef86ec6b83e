"""Replay under faults: damaged and truncated recordings, recordings with nothing usable."""

from __future__ import annotations

import json

import pytest

from support.damage import copy_recording, overwrite, storage_file, truncate
from support.recordings import open_store, run_cli, shared, synthetic_recording

FAST_CLI = ("--size", "32", "--gaussians", "24", "--iterations", "15", "--threads", "1", "--json")


def replay(bag, db, *extra):
    out = run_cli("replay", str(bag), "--db", str(db), *FAST_CLI, *extra)
    assert "Traceback" not in out.stderr, out.stderr
    return out, (json.loads(out.stdout) if out.stdout.strip() else None)


def test_replay_reads_past_a_damaged_chunk_and_stores_the_frames_after_it(tmp_path):
    bag = copy_recording(shared("kitti07_mono8_mcap"), tmp_path / "bag")
    overwrite(storage_file(bag), 0.5)
    out, report = replay(bag, tmp_path / "m.db")
    assert out.returncode == 4, out.stderr
    assert "damaged recording" in out.stderr and "frames lost to damage" in out.stderr
    lost = report["frames_lost"]["/camera/image_raw"]
    assert report["frames_read"] == 160 - lost and report["error_count"] == 0
    (part,) = report["damaged"]
    with open_store(tmp_path / "m.db") as store:
        stamps = [r.stamp_ns for r in store.by_time()]
    assert len(stamps) == report["memories_stored"]
    assert sum(s > part["end_ns"] for s in stamps) >= 8  # the intact frames after the damage are stored
    # a re-run reads past the same damage and stores nothing twice
    out, again = replay(bag, tmp_path / "m.db")
    assert out.returncode == 4 and again["memories_stored"] == 0
    assert again["already_stored"] == report["memories_stored"]


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_replay_salvages_the_part_of_a_truncated_recording_before_the_cut(tmp_path, fraction):
    bag = copy_recording(shared("kitti07_mono8_mcap"), tmp_path / "bag")
    truncate(storage_file(bag), fraction)
    out, report = replay(bag, tmp_path / "m.db")
    assert out.returncode == 4, out.stderr
    assert report["frames_read"] >= int(150 * fraction) and report["memories_stored"] >= 5
    assert report["frames_lost"]["/camera/image_raw"] == 160 - report["frames_read"]
    assert "read up to here" in out.stderr


def test_replay_reads_past_a_damaged_sqlite3_page(tmp_path):
    bag = copy_recording(shared("kitti07_compressed_sqlite3"), tmp_path / "bag")
    overwrite(storage_file(bag), 0.5, align=4096)
    out, report = replay(bag, tmp_path / "m.db")
    assert out.returncode == 4, out.stderr
    lost = report["frames_lost"]["/camera/image_raw/compressed"]
    assert 1 <= lost <= 3 and report["frames_read"] == 40 - lost and report["memories_stored"] >= 1


def test_a_recording_whose_every_frame_is_bad_exits_non_zero(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=4, broken=(0, 1, 2, 3))
    out, report = replay(bag, tmp_path / "m.db", "--image-topic", "/front/image_raw")
    assert out.returncode == 1, out.stderr
    assert report["memories_stored"] == 0 and report["error_count"] == 4
    assert "nothing stored from 4 frames" in out.stderr


def test_a_frame_too_thin_to_fit_gets_a_clear_message(tmp_path):
    import numpy as np

    from gaussvae_ros.bag.writer import BagMessage, image_message, write_bag
    from support.recordings import MS, T0

    messages = [BagMessage("/thin/image_raw", "sensor_msgs/msg/Image", T0 + k * 500 * MS,
                           image_message(T0 + k * 500 * MS, "thin", np.full((2, 1000), 40 * k, np.uint8)))
                for k in range(3)]
    bag = write_bag(tmp_path / "bag", messages, storage="mcap")
    out, report = replay(bag, tmp_path / "m.db", "--no-pose-topic")
    assert out.returncode == 1, out.stderr
    assert report["error_count"] == 3
    assert "too thin to fit" in report["errors"][0] and "1000x2" in report["errors"][0]


HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def _locked(db):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder):
    holder.stdin.write("go\n")
    holder.stdin.flush()
    holder.wait(timeout=30)


def _replay_process(bag, db, *extra):
    import subprocess
    import sys

    from support.recordings import cli_env

    return subprocess.Popen([sys.executable, "-m", "gaussvae_ros.cli.main", "replay", str(bag), "--db", str(db),
                             *FAST_CLI, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())


def test_a_locked_store_delays_replay_but_no_fitted_batch_is_dropped(tmp_path):
    from gaussvae_ros.store import Store

    bag = synthetic_recording(tmp_path / "bag", frames=4)
    db = tmp_path / "m.db"
    out, clean = replay(bag, tmp_path / "clean.db")
    Store(db).close()
    holder = _locked(db)
    try:
        proc = _replay_process(bag, db, "--busy-timeout", "0.2", "--batch-size", "2")
        line = proc.stderr.readline()  # the first batch is fitted, then waits for the lock
        while line and "retrying" not in line:
            line = proc.stderr.readline()
        assert "retrying" in line
    finally:
        _release(holder)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["memories_stored"] == clean["memories_stored"] > 0


def test_a_store_locked_past_the_give_up_time_stops_with_the_right_count(tmp_path):
    from gaussvae_ros.store import Store

    bag = synthetic_recording(tmp_path / "bag", frames=4)
    db = tmp_path / "m.db"
    Store(db).close()
    holder = _locked(db)
    try:
        proc = _replay_process(bag, db, "--busy-timeout", "0.2", "--lock-give-up", "1")
        _, stderr = proc.communicate(timeout=120)
    finally:
        _release(holder)
    assert proc.returncode == 2 and "lock_give_up_s" in stderr and "Traceback" not in stderr
    assert "0 memories of this run were stored before this batch" in stderr


def test_the_error_counts_the_memories_this_run_stored_before_the_failing_batch(tmp_path):
    import sqlite3

    from gaussvae_ros.apps.replay import _MemoryWriter, _Timer
    from gaussvae_ros.store import Memory, StoreError

    from support.memories import SECOND, T0

    writer = _MemoryWriter(tmp_path / "m.db", 3, _Timer(), busy_timeout_s=0.1, give_up_s=0.5)
    try:
        for k in range(6):  # two batches written
            writer.add(Memory(T0 + k * SECOND, "/cam", "f", b"x" * 8, 8, 8, "mono8"))
        lock = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        for k in range(6, 8):
            writer.add(Memory(T0 + k * SECOND, "/cam", "f", b"x" * 8, 8, 8, "mono8"))
        with pytest.raises(StoreError, match="6 memories of this run were stored before this batch of 3"):
            writer.add(Memory(T0 + 9 * SECOND, "/cam", "f", b"x" * 8, 8, 8, "mono8"))
        lock.execute("ROLLBACK")
        lock.close()
    finally:
        writer.close()
