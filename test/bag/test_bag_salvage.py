"""Damaged recordings are read past the damage: a damaged MCAP chunk, a truncated MCAP, a damaged SQLite page."""

from __future__ import annotations

from collections import Counter

import pytest

from gaussvae_ros.bag.reader import BagReader, Frame, FrameError
from gaussvae_ros.bag.salvage import open_salvage

from support.damage import copy_recording, overwrite, storage_file, truncate
from support.recordings import shared


def read_all(path):
    with BagReader(path) as bag:
        topics = (bag.image_topics, bag.pose_topics, bag.camera_info_topics)
        items = list(bag.stream(*topics))
        return items, bag.damage_report(), {t.name: t.count for t in bag.topics}


def frames(items):
    return [f for f in items if isinstance(f, Frame)]


def test_an_intact_recording_reads_the_same_with_the_salvaging_reader():
    path = shared("kitti07_mono8_mcap")
    with BagReader(path) as bag:
        normal = [(c.topic, t, len(raw)) for c, t, raw in bag.raw_messages()]
        assert bag.damage_report() is None
    recording = open_salvage(path)
    try:
        salvaged = [(c.topic, t, len(raw)) for c, t, raw in recording.messages()]
    finally:
        recording.close()
    assert salvaged == normal and len(normal) == 480


def test_a_damaged_mcap_chunk_is_reported_and_the_chunks_after_it_are_read(tmp_path):
    bag = copy_recording(shared("kitti07_mono8_mcap"), tmp_path / "bag")
    overwrite(storage_file(bag), 0.5)
    items, damage, counts = read_all(bag)
    images = frames(items)
    assert not [i for i in items if isinstance(i, FrameError)]
    assert damage is not None
    lost = damage["lost"]["/camera/image_raw"]
    assert 1 <= lost <= 6 and len(images) == 160 - lost
    chunk = [d for d in damage["damaged"] if "chunk at byte" in d["where"]]
    assert len(chunk) == 1 and chunk[0]["lost"]["/camera/image_raw"] == lost
    start, end = chunk[0]["start_ns"], chunk[0]["end_ns"]
    assert start <= end
    after = [f for f in images if f.bag_time_ns > end]
    assert len(after) >= 70  # the intact frames after the damage are read
    assert not [f for f in images if start <= f.bag_time_ns <= end]


@pytest.mark.parametrize("fraction,at_least", [(0.5, 75), (0.9, 138)])
def test_a_truncated_mcap_is_read_up_to_the_damage(tmp_path, fraction, at_least):
    bag = copy_recording(shared("kitti07_mono8_mcap"), tmp_path / "bag")
    truncate(storage_file(bag), fraction)
    items, damage, counts = read_all(bag)
    images = frames(items)
    assert at_least <= len(images) < 160
    assert damage["lost"]["/camera/image_raw"] == 160 - len(images)
    assert any("read up to here" in d["error"] for d in damage["damaged"])
    stamps = [f.stamp_ns for f in images]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_a_damaged_sqlite3_page_costs_its_rows_only(tmp_path):
    bag = copy_recording(shared("kitti07_compressed_sqlite3"), tmp_path / "bag")
    overwrite(storage_file(bag), 0.5, align=4096)
    items, damage, counts = read_all(bag)
    images = frames(items)
    topic = "/camera/image_raw/compressed"
    assert damage is not None and 1 <= damage["lost"][topic] <= 3
    assert len(images) == counts[topic] - damage["lost"][topic]
    assert all(d["start_ns"] is not None for d in damage["damaged"])


def test_a_file_with_nothing_readable_is_refused(tmp_path):
    bag = copy_recording(shared("kitti07_mono8_mcap"), tmp_path / "bag")
    truncate(storage_file(bag), 0.0001)
    with pytest.raises(ValueError, match="cannot open recording"):
        with BagReader(bag):
            pass
