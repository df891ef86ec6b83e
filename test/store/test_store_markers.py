"""Memory markers as plain data: frustum geometry, colours, and a tracker following a real store."""

import math

import pytest

from gaussvae_ros.store import Memory, Pose, RetentionPolicy, Store
from gaussvae_ros.store.markers import MarkerTracker, frustum_points, marker_colours, memory_marker

from support.memories import KITTI_K

S = 1_000_000_000


def _memory(i, pose=True, codec="gaussians-q"):
    return Memory(stamp_ns=i * S, topic="/cam", camera_frame_id="cam", payload=b"x" * 10, width=64, height=48,
                  encoding="rgb8", codec=codec, pose=Pose((float(i), 0.0, 0.0), (0.0, 0.0, 0.0, 2.0)) if pose else None,
                  pose_frame_id="map" if pose else "", intrinsics=KITTI_K if i % 2 else None)


def test_frustum_points_x_forward():
    points = frustum_points(64, 48, fx=32.0, scale=2.0, forward_axis="x")
    assert len(points) == 16  # 4 apex lines + 4 rectangle edges
    corners = {p for p in points if p != (0.0, 0.0, 0.0)}
    assert len(corners) == 4
    for x, y, z in corners:
        assert x == pytest.approx(2.0)  # ahead along x
        assert abs(y) == pytest.approx(2.0 * 32 / 32)  # half width = depth * (W / 2) / fx
        assert abs(z) == pytest.approx(2.0 * 24 / 32)
    optical = frustum_points(64, 48, fx=None, scale=1.0, forward_axis="z")
    assert {p[2] for p in optical if p != (0.0, 0.0, 0.0)} == {1.0}
    assert max(p[0] for p in optical) == pytest.approx(math.tan(math.radians(30)))
    with pytest.raises(ValueError):
        frustum_points(64, 48, forward_axis="y")


def test_colours_by_age_and_codec():
    markers = [memory_marker(r) for r in _stored([_memory(1), _memory(2), _memory(3, codec="vae-latent")])]
    age = marker_colours(markers, "age")
    assert age[0] != age[-1] and all(len(c) == 4 for c in age)
    codec = marker_colours(markers, "codec")
    assert codec[0] == codec[1] != codec[2]
    with pytest.raises(ValueError):
        marker_colours(markers, "size")


def _stored(memories):
    import tempfile
    from pathlib import Path

    with Store(Path(tempfile.mkdtemp()) / "m.db") as store:
        ids = store.insert_many(memories).ids
        return store.get(ids)


def test_marker_of_memory():
    record = _stored([_memory(3)])[0]
    marker = memory_marker(record, "arrow")
    assert marker.frame_id == "map" and marker.position == (3.0, 0.0, 0.0)
    assert marker.orientation == (0.0, 0.0, 0.0, 1.0)  # normalized
    assert marker.points == () and marker.label.startswith(f"#{record.id} ")
    assert len(memory_marker(record).points) == 16
    assert memory_marker(_stored([_memory(4, pose=False)])[0]) is None


def test_tracker_follows_inserts_deletes_and_retention(tmp_path):
    with Store(tmp_path / "m.db") as store:
        tracker = MarkerTracker(max_markers=5)
        assert not tracker.sync(store) and tracker.markers() == []
        ids = store.insert_many([_memory(i, pose=i != 2) for i in range(1, 5)]).ids
        assert tracker.sync(store)
        assert [m.id for m in tracker.markers()] == [ids[0], ids[2], ids[3]]  # no pose, no marker
        assert not tracker.sync(store)  # nothing new
        store.delete([ids[2]])
        assert tracker.sync(store) and [m.id for m in tracker.markers()] == [ids[0], ids[3]]
        more = store.insert_many([_memory(i) for i in range(5, 10)]).ids
        assert tracker.sync(store)
        assert [m.id for m in tracker.markers()] == list(more)  # the newest five
        store.apply_retention(RetentionPolicy(max_records=2))
        assert tracker.sync(store)
        kept = [r.id for r in store.by_time() if r.pose is not None]
        shown = [i for i in kept if i in more]  # the older ones were out of the newest five already
        assert len(kept) < 5 and [m.id for m in tracker.markers()] == shown
        tracker.reset()
        assert tracker.sync(store) and [m.id for m in tracker.markers()] == shown
