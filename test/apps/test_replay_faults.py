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
