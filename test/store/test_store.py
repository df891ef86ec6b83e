"""Memory store: round trips, idempotent inserts, persistence, ids, delete, stats, replay support,
bad arguments, threads. Real SQLite files in tmp_path."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import threading

import numpy as np
import pytest

from gaussvae_ros.store import (SCHEMA_VERSION, CameraIntrinsics, Memory, Pose, RetentionPolicy, Store,
                                StoreError)
from support.memories import KITTI_K, SECOND, T0, random_memories, yaw_quaternion


def memory(stamp_ns: int, **overrides) -> Memory:
    fields = dict(stamp_ns=stamp_ns, topic="/camera/image_raw", camera_frame_id="camera", payload=b"\x01\x02\x03",
                  width=640, height=480, encoding="rgb8", pose=Pose((1.0, 2.0, 3.0), yaw_quaternion(0.3)),
                  pose_frame_id="map", intrinsics=KITTI_K, psnr=31.5, ssim=0.93)
    fields.update(overrides)
    return Memory(**fields)


def same_memory(record, m: Memory) -> bool:
    return (record.stamp_ns, record.topic, record.camera_frame_id, record.pose_frame_id, record.width, record.height,
            record.encoding, record.intrinsics, record.codec, record.model_id, record.pose, record.psnr,
            record.ssim, record.payload_size) == (
        m.stamp_ns, m.topic, m.camera_frame_id, m.pose_frame_id, m.width, m.height, m.encoding, m.intrinsics,
        m.codec, m.model_id, m.pose, m.psnr, m.ssim, len(m.payload))


def test_round_trip_of_every_field(tmp_path):
    memories = [
        memory(T0),
        memory(T0 + 1, pose=None, pose_frame_id="", intrinsics=None, psnr=None, ssim=None, payload=b""),
        memory(T0 + 2, codec="vae-latent", model_id="vae-2025-01-a", payload=bytes(range(256)) * 3),
        memory(T0 + 3, camera_frame_id="left", intrinsics=CameraIntrinsics(KITTI_K.k, "equidistant", (0.1, -0.2, 0, 0)),
               pose=Pose((-1e6, 4e6, -12.5), (0.1, 0.2, 0.3, 0.9)), psnr=math.inf),
    ]
    with Store(tmp_path / "m.db") as store:
        result = store.insert_many(memories, batch_size=2)
        assert result.inserted == 4 and result.skipped == 0 and len(set(result.ids)) == 4
        records = store.get(result.ids, with_payload=True)
        for record, m in zip(records, memories):
            assert same_memory(record, m)
            assert record.payload == m.payload
            assert record.stamp == pytest.approx(m.stamp_ns * 1e-9)
            assert store.load_payload(record.id) == m.payload
        lean = store.get(list(reversed(result.ids)))
        assert [r.id for r in lean] == list(reversed(result.ids))
        assert all(r.payload is None and r.distance_m is None for r in lean)


def test_reinserting_a_frame_is_a_no_op(tmp_path):
    with Store(tmp_path / "m.db") as store:
        first = store.insert(memory(T0))
        assert isinstance(first, int)
        assert store.insert(memory(T0, payload=b"different", pose=None)) is None
        again = store.insert_many([memory(T0), memory(T0 + SECOND), memory(T0 + SECOND)])
        assert again.inserted == 1 and again.skipped == 2
        assert store.insert(memory(T0, camera_frame_id="other")) is not None  # another camera, same stamp
        assert store.insert(memory(T0, topic="/other")) is not None  # another topic, same stamp
        stats = store.stats()
        assert stats.count == 4
        assert store.get([first], with_payload=True)[0].payload == b"\x01\x02\x03"


@pytest.mark.parametrize("change", [
    dict(codec="vae-latent", model_id="vae-2025-01-a"),
    dict(codec="gaussians-rd"),
    dict(width=320, height=240),
    dict(encoding="mono8"),
    dict(intrinsics=None),
    dict(pose_frame_id="odom"),
], ids=lambda c: "+".join(c))
def test_a_frame_reinserted_with_another_profile_is_skipped(tmp_path, change):
    """The key is (topic, camera frame, stamp) alone: the same frame encoded again with another codec,
    model, size, encoding, calibration or pose frame (a new profile row) is still a duplicate,
    in insert() and insert_many() alike, and the first memory stays as it was."""
    with Store(tmp_path / "m.db") as store:
        first = store.insert(memory(T0))
        assert store.insert(memory(T0, payload=b"re-encoded", **change)) is None
        again = store.insert_many([memory(T0, payload=b"again", **change), memory(T0 + SECOND, **change)])
        assert (again.inserted, again.skipped) == (1, 1)
        assert store.stats().count == 2
        kept = store.get([first], with_payload=True)[0]
        assert same_memory(kept, memory(T0)) and kept.payload == b"\x01\x02\x03"


def test_persists_across_reopen(tmp_path):
    path = tmp_path / "m.db"
    memories = random_memories(1, 300)
    with Store(path) as store:
        ids = store.insert_many(memories, batch_size=64).ids
        before = store.stats()
    with Store(path, create=False) as store:
        assert dataclasses.replace(store.stats(), file_bytes=0) == dataclasses.replace(before, file_bytes=0)
        for record, m in zip(store.get(ids, with_payload=True), memories):
            assert same_memory(record, m) and record.payload == m.payload
        assert store.integrity_check() == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    view = conn.execute("SELECT topic, camera_frame_id, codec, payload_size FROM memory_view WHERE id = ?",
                        (ids[0],)).fetchone()
    assert view == (memories[0].topic, memories[0].camera_frame_id, "gaussians-q", len(memories[0].payload))


def test_missing_file_without_create(tmp_path):
    with pytest.raises(FileNotFoundError):
        Store(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_stats_match_the_data(tmp_path):
    memories = random_memories(2, 500)
    with Store(tmp_path / "m.db") as store:
        assert store.stats().count == 0 and store.stats().pose_bounds is None
        store.insert_many(memories, batch_size=100)
        stats = store.stats()
    posed = np.array([m.pose.position for m in memories if m.pose])
    assert stats.count == len(memories)
    assert stats.payload_bytes == sum(len(m.payload) for m in memories)
    assert stats.pose_count == len(posed)
    assert stats.first_stamp_ns == min(m.stamp_ns for m in memories)
    assert stats.last_stamp_ns == max(m.stamp_ns for m in memories)
    assert stats.pose_bounds == (tuple(posed.min(axis=0)), tuple(posed.max(axis=0)))
    assert stats.time_span_s == pytest.approx((stats.last_stamp_ns - stats.first_stamp_ns) * 1e-9)
    assert stats.file_bytes > stats.payload_bytes
    for s in stats.streams:
        mine = [m for m in memories if (m.topic, m.camera_frame_id) == (s.topic, s.camera_frame_id)]
        assert (s.count, s.payload_bytes) == (len(mine), sum(len(m.payload) for m in mine))
        assert (s.first_stamp_ns, s.last_stamp_ns) == (min(m.stamp_ns for m in mine), max(m.stamp_ns for m in mine))


def test_delete_by_ids(tmp_path):
    memories = random_memories(3, 400)
    with Store(tmp_path / "m.db") as store:
        ids = list(store.insert_many(memories, batch_size=50).ids)
        doomed = ids[::3]
        with pytest.raises(ValueError, match="unknown memory ids"):
            store.delete(doomed + [max(ids) + 10])
        assert store.stats().count == len(ids)  # nothing was deleted
        assert store.delete(doomed) == len(doomed)
        kept = [i for i in ids if i not in set(doomed)]
        with pytest.raises(ValueError, match="unknown memory ids"):
            store.get(doomed[:1])
        assert [r.id for r in store.get(kept)] == kept
        everything = store.nearest((0.0, 0.0, 0.0), 10**9)
        assert {r.id for r in everything} == {i for i, m in zip(ids, memories) if m.pose and i not in set(doomed)}
        stats = store.stats()
        assert stats.count == len(kept)
        assert stats.payload_bytes == sum(len(m.payload) for i, m in zip(ids, memories) if i in set(kept))
        assert store.integrity_check() == []
        # New memories never reuse ids of deleted ones (the pose index relies on it).
        new_id = store.insert(memory(T0 - SECOND))
        assert new_id > max(ids)


def test_replay_support_stamps_and_latest(tmp_path):
    with Store(tmp_path / "m.db") as store:
        assert store.latest_stamps() == {}
        store.insert_many([memory(T0 + k * SECOND) for k in range(10)]
                          + [memory(T0 + k * SECOND, camera_frame_id="right") for k in range(0, 20, 2)])
        assert store.stamps("/camera/image_raw", "camera") == [T0 + k * SECOND for k in range(10)]
        assert store.stamps("/camera/image_raw", "right", start_ns=T0 + 3 * SECOND, end_ns=T0 + 8 * SECOND) == \
            [T0 + k * SECOND for k in (4, 6, 8)]
        both = store.stamps("/camera/image_raw")
        assert both == sorted([T0 + k * SECOND for k in range(10)] + [T0 + k * SECOND for k in range(0, 20, 2)])
        assert store.stamps("/nothing") == []
        assert store.latest_stamps() == {("/camera/image_raw", "camera"): T0 + 9 * SECOND,
                                         ("/camera/image_raw", "right"): T0 + 18 * SECOND}


BAD_CALLS = {
    "inverted time range": lambda s: s.by_time(start_ns=T0 + 10, end_ns=T0),
    "both ns and s": lambda s: s.by_time(start_ns=T0, start_s=1.0),
    "float ns": lambda s: s.by_time(start_ns=1.5),
    "nan seconds": lambda s: s.by_time(start_s=math.nan),
    "bad order": lambda s: s.by_time(order="up"),
    "zero limit": lambda s: s.by_time(limit=0),
    "bool limit": lambda s: s.by_time(limit=True),
    "nan position": lambda s: s.within_radius((math.nan, 0, 0), 1.0),
    "inf position": lambda s: s.nearest((0, math.inf, 0), 3),
    "short position": lambda s: s.nearest((0, 0), 3),
    "text position": lambda s: s.nearest("abc", 3),
    "negative radius": lambda s: s.within_radius((0, 0, 0), -1.0),
    "nan radius": lambda s: s.within_radius((0, 0, 0), math.nan),
    "inf radius": lambda s: s.within_radius((0, 0, 0), math.inf),
    "zero k": lambda s: s.nearest((0, 0, 0), 0),
    "negative k": lambda s: s.nearest((0, 0, 0), -5),
    "float k": lambda s: s.nearest((0, 0, 0), 2.0),
    "angle without orientation": lambda s: s.nearest((0, 0, 0), 3, max_angle_rad=0.5),
    "orientation without angle": lambda s: s.within_radius((0, 0, 0), 1, orientation=(0, 0, 0, 1)),
    "zero quaternion": lambda s: s.nearest((0, 0, 0), 3, orientation=(0, 0, 0, 0), max_angle_rad=0.5),
    "angle above pi": lambda s: s.nearest((0, 0, 0), 3, orientation=(0, 0, 0, 1), max_angle_rad=4.0),
    "topic not text": lambda s: s.by_time(topic=3),
    "unknown id": lambda s: s.get([10**6]),
    "id not int": lambda s: s.get(["1"]),
    "ids not iterable": lambda s: s.get(5),
    "unknown payload": lambda s: s.load_payload(10**6),
    "delete unknown": lambda s: s.delete([10**6]),
    "delete text": lambda s: s.delete("12"),
    "batch size zero": lambda s: s.insert_many([], batch_size=0),
    "single memory to insert_many": lambda s: s.insert_many(memory(T0)),
    "not a memory": lambda s: s.insert_many([{"stamp_ns": 1}]),
    "stamps inverted": lambda s: s.stamps("/camera/image_raw", start_ns=5, end_ns=1),
    "policy type": lambda s: s.apply_retention({"max_records": 3}),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_arguments_raise_value_error_and_change_nothing(tmp_path, name):
    with Store(tmp_path / "m.db") as store:
        ids = store.insert_many([memory(T0 + k) for k in range(5)]).ids
        before = store.stats()
        with pytest.raises(ValueError) as info:
            BAD_CALLS[name](store)
        assert str(info.value)  # a message that says what was wrong
        assert dataclasses.replace(store.stats(), file_bytes=0) == dataclasses.replace(before, file_bytes=0)
        assert [r.id for r in store.get(ids)] == list(ids)


@pytest.mark.parametrize("fields, message", [
    (dict(stamp=1.5), "stamp_ns must be an int"),
    (dict(stamp=2**64), "64 bits"),
    (dict(topic=""), "topic"),
    (dict(payload="text"), "payload must be bytes"),
    (dict(width=0), "width"),
    (dict(height=-3), "height"),
    (dict(psnr=math.nan), "psnr is NaN"),
    (dict(pose=((1, 2, 3), (0, 0, 0, 1))), "pose must be a Pose"),
    (dict(codec=""), "codec"),
])
def test_invalid_memories_are_refused(fields, message):
    stamp = fields.pop("stamp", T0)
    with pytest.raises(ValueError, match=message):
        memory(stamp, **fields)


@pytest.mark.parametrize("position, orientation, message", [
    ((0, 0, math.nan), (0, 0, 0, 1), "finite"),
    ((0, 0), (0, 0, 0, 1), "needs 3"),
    ((0, 0, 0), (0, 0, 0, 0), "zero norm"),
    ((0, 0, 0), (0, 0, math.inf, 1), "finite"),
])
def test_invalid_poses_are_refused(position, orientation, message):
    with pytest.raises(ValueError, match=message):
        Pose(position, orientation)


def test_a_bad_item_mid_stream_keeps_earlier_batches(tmp_path):
    items = [memory(T0 + k) for k in range(25)] + ["not a memory"] + [memory(T0 + 100 + k) for k in range(5)]
    with Store(tmp_path / "m.db") as store:
        with pytest.raises(ValueError, match="item #25 .* the 20 memories before its batch were stored"):
            store.insert_many(items, batch_size=10)
        assert store.stats().count == 20


def test_store_arguments_are_checked(tmp_path):
    for kwargs in (dict(timeout_s=-1), dict(page_size=3000), dict(segment_extent_m=0), dict(segment_max_ids=0)):
        with pytest.raises(ValueError):
            Store(tmp_path / "m.db", **kwargs)
    for path in (":memory:", ""):
        with pytest.raises(ValueError):
            Store(path)
    store = Store(tmp_path / "m.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.stats()


def test_threads_share_a_store(tmp_path):
    """A writer thread inserting while reader threads query: no errors, readers see growing snapshots."""
    memories = random_memories(4, 1200)
    errors: list[BaseException] = []
    seen: dict[int, list[int]] = {}
    with Store(tmp_path / "m.db") as store:
        done = threading.Event()

        def write():
            try:
                for start in range(0, len(memories), 40):
                    store.insert_many(memories[start:start + 40])
                    store.apply_retention(RetentionPolicy(max_records=1000))
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                errors.append(exc)
            finally:
                done.set()

        def read(n: int):
            counts = seen.setdefault(n, [])
            try:
                while not done.is_set():
                    counts.append(store.stats().count)
                    store.by_time(limit=20, order="desc")
                    store.nearest((0.0, 0.0, 0.0), 5)
                    store.within_radius((1.0, 1.0, 0.0), 3.0, camera_frame_id="front")
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=write)] + [threading.Thread(target=read, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert store.stats().count == 1000
        assert store.integrity_check() == []
    assert all(seen[n] for n in seen)
