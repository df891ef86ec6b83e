"""Retention: budgets hold, old memories go first, thinning keeps coverage in space and time better
than forgetting at random, the pose index stays exact, and a live store stays within budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaussvae_ros.store import Memory, Pose, RetentionPolicy, Store
from support.memories import SECOND, T0, Reference, yaw_quaternion

HZ = 5


def drive(camera: str, seed: int, topic: str = "/cam") -> list[Memory]:
    """A robot at 5 Hz: 200 s driving at 1 m/s, 200 s standing still, 100 s driving again."""
    rng = np.random.default_rng(seed)
    memories, x, y, heading = [], 0.0, 0.0, 0.0
    for i in range(500 * HZ):
        t = i / HZ
        moving = t < 200 or t >= 400
        if moving:
            heading += rng.normal(0, 0.05)
            x, y = x + math.cos(heading) / HZ, y + math.sin(heading) / HZ
        position = (x + rng.normal(0, 1e-3), y + rng.normal(0, 1e-3), rng.normal(0, 1e-3))
        memories.append(Memory(T0 + i * SECOND // HZ + (7 if camera == "rear" else 0), topic, camera,
                               bytes(int(rng.integers(200, 400))), 640, 480, "mono8",
                               pose=Pose(position, yaw_quaternion(heading)), pose_frame_id="odom"))
    return memories


def phase(m: Memory) -> str:
    t = (m.stamp_ns - T0) / SECOND
    return "still" if 200 <= t < 400 else "moving"


def coverage_distances(kept: list[Memory], everything: list[Memory], metres_per_second: float) -> np.ndarray:
    """For every memory, the (time, position) distance to the nearest kept memory of its camera."""
    out = []
    for camera in {m.camera_frame_id for m in everything}:
        def features(ms):
            return np.array([[*m.pose.position, (m.stamp_ns - T0) * 1e-9 * metres_per_second] for m in ms
                             if m.camera_frame_id == camera])
        a, k = features(everything), features(kept)
        for chunk in np.array_split(a, max(1, len(a) // 500)):
            out.append(np.sqrt(((chunk[:, None, :] - k[None, :, :]) ** 2).sum(-1)).min(axis=1))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def drives():
    return drive("front", 1) + drive("rear", 2)


def fill(path, memories, **options) -> tuple[Store, list[int]]:
    store = Store(path, **options)
    ids = store.insert_many(memories, batch_size=500).ids
    store._recent_ids.clear()  # as if reopened: no memory of recent inserts
    return store, list(ids)


def test_record_budget_keeps_coverage(tmp_path, drives):
    store, ids = fill(tmp_path / "m.db", drives)
    by_id = dict(zip(ids, drives))
    policy = RetentionPolicy(max_records=1500)
    with store:
        report = store.apply_retention(policy)
        stats = store.stats()
        kept = [by_id[r.id] for r in store.by_time()]
        assert report.records == stats.count == 1500
        assert report.dropped_for_budget == len(drives) - 1500 and report.dropped_oldest == 0
        # every camera keeps its time span
        for s in stats.streams:
            mine = [m.stamp_ns for m in drives if m.camera_frame_id == s.camera_frame_id]
            assert (s.first_stamp_ns, s.last_stamp_ns) == (min(mine), max(mine))
        # and (nearly) its spatial extent
        everything = np.array([m.pose.position for m in drives])
        kept_xyz = np.array([m.pose.position for m in kept])
        assert np.all(np.ptp(kept_xyz[:, :2], axis=0) >= 0.98 * np.ptp(everything[:, :2], axis=0))
        # the robot standing still is thinned much harder than the robot moving
        fraction = {p: sum(phase(m) == p for m in kept) / sum(phase(m) == p for m in drives) for p in ("still", "moving")}
        assert fraction["still"] < 0.25 * fraction["moving"]
        # better coverage than forgetting at random
        ours = coverage_distances(kept, drives, policy.metres_per_second)
        rng = np.random.default_rng(0)
        for _ in range(3):
            chance = [drives[i] for i in rng.choice(len(drives), 1500, replace=False)]
            theirs = coverage_distances(chance, drives, policy.metres_per_second)
            assert ours.max() < theirs.max() and ours.mean() < theirs.mean()
        assert store.integrity_check() == []


def test_payload_budget(tmp_path, drives):
    store, ids = fill(tmp_path / "m.db", drives)
    budget = sum(len(m.payload) for m in drives) // 3
    with store:
        report = store.apply_retention(RetentionPolicy(max_payload_bytes=budget))
        stats = store.stats()
        assert report.payload_bytes == stats.payload_bytes <= budget
        assert stats.payload_bytes > budget - 400 * 8  # it did not drop far more than needed
        assert report.records == stats.count
        assert stats.payload_bytes == sum(len(m.payload) for m in store.get([r.id for r in store.by_time()],
                                                                            with_payload=True) for m in [m])


def test_age_limit_counts_from_the_newest_memory(tmp_path, drives):
    store, ids = fill(tmp_path / "m.db", drives)
    newest = max(m.stamp_ns for m in drives)  # years before today: the wall clock plays no part
    with store:
        report = store.apply_retention(RetentionPolicy(max_age_s=120.0))
        cutoff = newest - 120 * SECOND
        want = sorted(i for i, m in zip(ids, drives) if m.stamp_ns >= cutoff)
        assert sorted(r.id for r in store.by_time()) == want
        assert report.dropped_for_age == len(drives) - len(want) and report.dropped_for_budget == 0
        again = store.apply_retention(RetentionPolicy(max_age_s=120.0))
        assert again.dropped == 0


def test_age_goes_before_thinning(tmp_path, drives):
    store, ids = fill(tmp_path / "m.db", drives)
    newest = max(m.stamp_ns for m in drives)
    with store:
        report = store.apply_retention(RetentionPolicy(max_records=600, max_age_s=250.0))
        kept = store.by_time()
        assert len(kept) == 600
        assert min(r.stamp_ns for r in kept) >= newest - 250 * SECOND
        assert report.dropped_for_age > 0 and report.dropped_for_budget > 0


def test_pose_index_stays_exact_after_thinning(tmp_path, drives):
    store, ids = fill(tmp_path / "m.db", drives, segment_extent_m=1.0, segment_max_ids=8)
    with store:
        store.apply_retention(RetentionPolicy(max_records=900, seed=3))
        kept_ids = [r.id for r in store.by_time()]
        by_id = dict(zip(ids, drives))
        kept = [by_id[i] for i in kept_ids]
        stream_ids = {(r.topic, r.camera_frame_id): r.stream.id for r in store.get(kept_ids)}
        ref = Reference(kept, kept_ids, stream_ids)
        rng = np.random.default_rng(9)
        for point in rng.uniform([-20, -60, -1], [200, 60, 1], (40, 3)).tolist():
            assert [r.id for r in store.nearest(point, 7)] == ref.nearest(point, 7)
            assert [r.id for r in store.within_radius(point, 4.0)] == ref.within_radius(point, 4.0)
        assert store.stats().pose_bounds == (tuple(ref.xyz.min(axis=0)), tuple(ref.xyz.max(axis=0)))
        assert store.integrity_check() == []


def test_live_store_stays_within_budget(tmp_path, drives):
    """A live node: insert a batch, apply retention, repeat. Cheap when within budget."""
    front = [m for m in drives if m.camera_frame_id == "front"]
    policy = RetentionPolicy(max_records=400)
    with Store(tmp_path / "m.db") as store:
        for start in range(0, len(front), 50):
            store.insert_many(front[start:start + 50])
            report = store.apply_retention(policy)
            assert report.records == min(400, start + 50)
            if start + 50 <= 400:
                assert report.dropped == 0 and report.rounds == 0
        kept = store.by_time()
        assert (kept[0].stamp_ns, kept[-1].stamp_ns) == (front[0].stamp_ns, front[-1].stamp_ns)
        kept_stamps = {r.stamp_ns for r in kept}
        fraction = {p: sum(phase(m) == p and m.stamp_ns in kept_stamps for m in front)
                    / sum(phase(m) == p for m in front) for p in ("still", "moving")}
        assert fraction["still"] < fraction["moving"]


def test_memories_without_pose_are_thinned_evenly_in_time(tmp_path):
    rng = np.random.default_rng(4)
    # bursts: 10 Hz for 20 s, then one memory every 5 s for 500 s
    stamps = sorted({T0 + int(t * SECOND) for t in np.concatenate([np.arange(0, 20, 0.1), np.arange(20, 520, 5.0)])})
    memories = [Memory(s, "/cam", "front", b"p" * 50, 8, 8, "mono8") for s in stamps]
    with Store(tmp_path / "m.db") as store:
        store.insert_many(memories)
        store.apply_retention(RetentionPolicy(max_records=120))
        kept = np.array([r.stamp_ns for r in store.by_time()])
    assert len(kept) == 120
    gaps = np.diff(kept) / SECOND
    assert gaps.max() <= 5.0 + 1e-9  # the sparse part is untouched: the burst paid for the budget
    assert (kept < T0 + 20 * SECOND).sum() == 120 - (len(stamps) - 200)
    chance = np.sort(rng.choice(np.array(stamps), 120, replace=False))
    assert gaps.max() < np.diff(chance).max() / SECOND


def test_budget_below_two_per_camera_drops_the_oldest(tmp_path):
    memories = [Memory(T0 + k * SECOND, "/cam", cam, b"x", 8, 8, "mono8") for k in range(3) for cam in ("a", "b")]
    with Store(tmp_path / "m.db") as store:
        store.insert_many(memories)
        report = store.apply_retention(RetentionPolicy(max_records=1))
        kept = store.by_time()
        assert len(kept) == 1 and report.dropped_oldest > 0
        assert kept[0].stamp_ns == max(m.stamp_ns for m in memories)


@pytest.mark.parametrize("kwargs", [
    dict(max_records=0), dict(max_records=2.5), dict(max_payload_bytes=-1), dict(max_age_s=-1.0),
    dict(max_age_s=math.nan), dict(metres_per_second=0.0), dict(metres_per_second=math.inf),
    dict(candidates=2), dict(max_records=True),
])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetentionPolicy(**kwargs)
