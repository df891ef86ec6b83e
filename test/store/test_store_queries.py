"""Every query kind against a brute-force numpy reference on random data (several streams, clusters,
duplicate positions, memories without pose, non-unit quaternions), for coarse and fine pose
index granularity, before and after deletions; plus poses from a real recording."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gaussvae_ros.store import Memory, Pose, Store
from support.memories import SECOND, T0, Reference, random_memories

GRANULARITIES = {"default": {}, "fine": {"segment_extent_m": 0.5, "segment_max_ids": 3},
                 "coarse": {"segment_extent_m": 50.0, "segment_max_ids": 200}}


@pytest.fixture(scope="module", params=sorted(GRANULARITIES))
def filled(request, tmp_path_factory):
    """A store with 1500 random memories and its brute-force reference; some memories deleted."""
    memories = random_memories(7, 1500)
    path = tmp_path_factory.mktemp("queries") / "m.db"
    store = Store(path, **GRANULARITIES[request.param])
    ids = store.insert_many(memories, batch_size=97).ids
    doomed = set(np.random.default_rng(0).choice(np.array(ids), 200, replace=False).tolist())
    store.delete(doomed)
    kept = [(i, m) for i, m in zip(ids, memories) if i not in doomed]
    stream_ids = {(r.topic, r.camera_frame_id): r.stream.id for r in store.get([i for i, _ in kept])}
    reference = Reference([m for _, m in kept], [i for i, _ in kept], stream_ids)
    yield store, reference
    store.close()


def query_points(reference: Reference, rng: np.random.Generator, count: int):
    """Stored positions, points near them, and points far outside the data."""
    stored = reference.xyz[reference.has_pose]
    picks = stored[rng.integers(len(stored), size=count)]
    near = picks + rng.normal(0, 2.0, picks.shape)
    far = rng.uniform(-500, 500, (max(2, count // 5), 3))
    return [tuple(p) for p in np.concatenate([picks, near, far]).tolist()]


def test_time_ranges_match_reference(filled):
    store, ref = filled
    rng = np.random.default_rng(1)
    lo, hi = int(ref.stamp.min()), int(ref.stamp.max())
    cases = [(None, None), (lo, hi), (lo - SECOND, lo), (hi, hi + SECOND), (hi + 1, hi + 2)]
    cases += [tuple(sorted(map(int, rng.integers(lo - SECOND, hi + SECOND, 2)))) for _ in range(25)]
    cases += [(s, s) for s in rng.choice(ref.stamp, 5).tolist()]  # single-stamp ranges, several streams
    for start, end in cases:
        for order in ("asc", "desc"):
            for limit in (None, 1, 7, 100):
                for topic, frame in ((None, None), ("/cam", None), (None, "front"), ("/cam", "rear"), ("/none", None)):
                    got = [r.id for r in store.by_time(start, end, order=order, limit=limit, topic=topic,
                                                       camera_frame_id=frame)]
                    want = ref.by_time(-(2**63) if start is None else start, 2**63 - 1 if end is None else end,
                                       order, limit, topic, frame)
                    assert got == want, (start, end, order, limit, topic, frame)


def test_time_range_in_seconds_equals_nanoseconds(filled):
    store, ref = filled
    start, end = int(ref.stamp.min()) + 10 * SECOND, int(ref.stamp.min()) + 30 * SECOND
    assert [r.id for r in store.by_time(start_s=start / 1e9, end_s=end / 1e9)] == \
        [r.id for r in store.by_time(start_ns=start, end_ns=end)]


def test_radius_queries_match_reference(filled):
    store, ref = filled
    rng = np.random.default_rng(2)
    for point in query_points(ref, rng, 15):
        for radius in (0.0, 0.3, 2.0, 7.5, 40.0):
            got = store.within_radius(point, radius)
            assert [r.id for r in got] == ref.within_radius(point, radius)
            for r in got:
                assert r.distance_m == pytest.approx(math.dist(r.pose.position, point), rel=1e-12, abs=1e-12)
                assert r.distance_m <= radius
        limited = store.within_radius(point, 10.0, limit=3)
        assert [r.id for r in limited] == ref.within_radius(point, 10.0)[:3]


def test_radius_of_zero_finds_exact_positions(filled):
    store, ref = filled
    posed = np.flatnonzero(ref.has_pose)
    for i in posed[:20]:
        point = tuple(ref.xyz[i])
        got = [r.id for r in store.within_radius(point, 0.0)]
        assert int(ref.ids[i]) in got
        assert got == ref.within_radius(point, 0.0)


def test_nearest_matches_reference(filled):
    store, ref = filled
    rng = np.random.default_rng(3)
    posed = int(ref.has_pose.sum())
    for point in query_points(ref, rng, 20):
        for k in (1, 3, 10, 64):
            got = store.nearest(point, k)
            assert [r.id for r in got] == ref.nearest(point, k), (point, k)
            assert [r.distance_m for r in got] == sorted(r.distance_m for r in got)
    everything = store.nearest((0.0, 0.0, 0.0), 10**12)  # huge k is clamped to the stored poses
    assert len(everything) == posed
    assert [r.id for r in everything] == ref.nearest((0.0, 0.0, 0.0), posed)


@pytest.mark.parametrize("topic, frame", [(None, "rear"), ("/other", None), ("/cam", "front"), ("/nope", None)])
def test_spatial_queries_filter_by_stream(filled, topic, frame):
    store, ref = filled
    rng = np.random.default_rng(4)
    for point in query_points(ref, rng, 10):
        assert [r.id for r in store.nearest(point, 5, topic=topic, camera_frame_id=frame)] == \
            ref.nearest(point, 5, topic=topic, camera_frame_id=frame)
        assert [r.id for r in store.within_radius(point, 6.0, topic=topic, camera_frame_id=frame)] == \
            ref.within_radius(point, 6.0, topic=topic, camera_frame_id=frame)
        for r in store.nearest(point, 5, topic=topic, camera_frame_id=frame):
            assert topic in (None, r.topic) and frame in (None, r.camera_frame_id)


def test_orientation_tolerance_matches_reference(filled):
    store, ref = filled
    rng = np.random.default_rng(5)
    for point in query_points(ref, rng, 5):
        for angle in (0.0, 0.3, 1.0, 2.5, math.pi):
            q = rng.normal(size=4) * rng.uniform(0.2, 3.0)  # any norm: normalized by the store
            filters = dict(orientation=tuple(q.tolist()), max_angle=angle)
            got = store.nearest(point, 8, orientation=tuple(q.tolist()), max_angle_rad=angle)
            assert [r.id for r in got] == ref.nearest(point, 8, **filters)
            got = store.within_radius(point, 12.0, orientation=tuple(q.tolist()), max_angle_rad=angle,
                                      camera_frame_id="front")
            assert [r.id for r in got] == ref.within_radius(point, 12.0, camera_frame_id="front", **filters)
    # the quaternion sign does not matter: q and -q are the same rotation
    q = tuple(ref.quat[np.flatnonzero(ref.has_pose)[0]])
    point = tuple(ref.xyz[np.flatnonzero(ref.has_pose)[0]])
    plus = store.nearest(point, 5, orientation=q, max_angle_rad=0.2)
    minus = store.nearest(point, 5, orientation=tuple(-v for v in q), max_angle_rad=0.2)
    assert [r.id for r in plus] == [r.id for r in minus] and plus


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=st.floats(-100, 100), y=st.floats(-100, 100), z=st.floats(-20, 20), k=st.integers(1, 40),
       radius=st.floats(0, 60))
def test_random_spatial_queries(filled, x, y, z, k, radius):
    store, ref = filled
    assert [r.id for r in store.nearest((x, y, z), k)] == ref.nearest((x, y, z), k)
    assert [r.id for r in store.within_radius((x, y, z), radius)] == ref.within_radius((x, y, z), radius)


def test_get_returns_what_queries_return(filled):
    store, ref = filled
    some = store.by_time(limit=50)
    again = store.get([r.id for r in some], with_payload=True)
    for a, b in zip(some, again):
        assert (a.id, a.stamp_ns, a.pose, a.stream, a.profile, a.payload_size) == \
            (b.id, b.stamp_ns, b.pose, b.stream, b.profile, b.payload_size)
        assert len(b.payload) == b.payload_size == len(ref.memories[b.id].payload)
        assert b.payload == ref.memories[b.id].payload


def test_queries_on_an_empty_store(tmp_path):
    with Store(tmp_path / "empty.db") as store:
        assert store.by_time() == []
        assert store.within_radius((0, 0, 0), 100.0) == []
        assert store.nearest((0, 0, 0), 5) == []
        assert store.get([]) == []
        assert store.latest_stamps() == {}


def test_memories_without_pose_only_answer_time_queries(tmp_path):
    with Store(tmp_path / "m.db") as store:
        ids = store.insert_many([Memory(T0 + k, "/cam", "c", b"x", 4, 4, "mono8") for k in range(5)]).ids
        assert [r.id for r in store.by_time()] == list(ids)
        assert store.nearest((0, 0, 0), 3) == [] and store.within_radius((0, 0, 0), 1e9) == []
        assert store.stats().pose_count == 0 and store.stats().pose_bounds is None




def test_poses_of_a_real_drive(tmp_path):
    """KITTI 07 ground-truth odometry: nearest / radius / time queries agree with brute force."""
    from support.shared import shared_bag

    kitti = shared_bag("kitti07_mono8_mcap")
    from rosbags.highlevel import AnyReader

    memories = []
    with AnyReader([kitti]) as reader:
        connections = [c for c in reader.connections if c.topic == "/odom"]
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            stamp = msg.header.stamp.sec * SECOND + msg.header.stamp.nanosec
            memories.append(Memory(stamp, "/camera/image_raw", msg.child_frame_id or "camera", b"\0" * 64, 1226, 370,
                                   "mono8", pose=Pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w)),
                                   pose_frame_id=msg.header.frame_id))
    assert len(memories) > 100
    with Store(tmp_path / "kitti.db") as store:
        ids = store.insert_many(memories, batch_size=32).ids
        stream_ids = {(r.topic, r.camera_frame_id): r.stream.id for r in store.get(ids[:1])}
        ref = Reference(memories, ids, stream_ids)
        extent = np.ptp(ref.xyz, axis=0)
        assert extent.max() > 20  # the car drives tens of metres
        rng = np.random.default_rng(6)
        for point in query_points(ref, rng, 20):
            assert [r.id for r in store.nearest(point, 5)] == ref.nearest(point, 5)
            assert [r.id for r in store.within_radius(point, 5.0)] == ref.within_radius(point, 5.0)
        stats = store.stats()
        assert stats.pose_bounds == (tuple(ref.xyz.min(axis=0)), tuple(ref.xyz.max(axis=0)))
        assert stats.time_span_s == pytest.approx((ref.stamp.max() - ref.stamp.min()) * 1e-9)
        mid = int(np.median(ref.stamp))
        assert [r.id for r in store.by_time(mid, mid + 2 * SECOND)] == ref.by_time(mid, mid + 2 * SECOND)
