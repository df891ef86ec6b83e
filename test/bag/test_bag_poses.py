"""Pose track: lookup rules (exact, interpolated, nearest, none), slerp, bounded memory, messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gaussvae_ros.bag.poses import (
    DEFAULT_MAX_GAP_NS,
    DEFAULT_TOLERANCE_NS,
    PoseTrack,
    pose_from_message,
    quaternion_angle,
    slerp,
)

MS = 1_000_000


def yaw(angle: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation by ``angle`` rad about z."""
    return np.array([0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)])


def track_10hz() -> PoseTrack:
    """Samples every 100 ms from t=1 s: moving +1 m along x and turning 0.2 rad about z per sample."""
    return PoseTrack.from_samples(
        [(1000 * MS + k * 100 * MS, [float(k), 0.0, 0.0], yaw(0.2 * k)) for k in range(5)], frame_id="odom")


def test_exact_stamp_returns_the_sample():
    pose = track_10hz().lookup(1200 * MS)
    np.testing.assert_allclose(pose.position, [2, 0, 0])
    np.testing.assert_allclose(pose.orientation, yaw(0.4))
    assert not pose.interpolated and pose.offset_ns == 0 and pose.frame_id == "odom"


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_interpolation_between_samples_is_lerp_and_slerp(fraction):
    stamp = 1100 * MS + int(fraction * 100 * MS)
    pose = track_10hz().lookup(stamp)
    assert pose.interpolated and pose.stamp_ns == stamp
    np.testing.assert_allclose(pose.position, [1 + fraction, 0, 0], atol=1e-9)
    np.testing.assert_allclose(quaternion_angle(pose.orientation, yaw(0.2 + 0.2 * fraction)), 0, atol=1e-6)
    assert np.linalg.norm(pose.orientation) == pytest.approx(1.0)


def test_nearest_mode_picks_the_closest_sample():
    pose = track_10hz().lookup(1130 * MS, mode="nearest")
    assert not pose.interpolated and pose.offset_ns == 30 * MS
    np.testing.assert_allclose(pose.position, [1, 0, 0])
    pose = track_10hz().lookup(1170 * MS, mode="nearest")
    np.testing.assert_allclose(pose.position, [2, 0, 0])
    assert pose.offset_ns == -30 * MS


def test_no_pose_outside_the_tolerance():
    track = track_10hz()
    first, last = track.span_ns
    # just outside either end: nearest sample within tolerance, no extrapolation of the motion
    np.testing.assert_allclose(track.lookup(first - DEFAULT_TOLERANCE_NS).position, [0, 0, 0])
    np.testing.assert_allclose(track.lookup(last + 10 * MS).position, [4, 0, 0])
    assert track.lookup(first - DEFAULT_TOLERANCE_NS - 1) is None
    assert track.lookup(last + DEFAULT_TOLERANCE_NS + 1) is None
    assert PoseTrack().lookup(first) is None
    # a tighter tolerance in nearest mode
    assert track.lookup(1130 * MS, mode="nearest", tolerance_ns=20 * MS) is None


def test_no_interpolation_across_a_gap_longer_than_max_gap():
    gap = DEFAULT_MAX_GAP_NS + 100 * MS
    track = PoseTrack.from_samples([(0, [0, 0, 0], yaw(0)), (gap, [10, 0, 0], yaw(0))])
    assert track.lookup(gap // 2) is None  # middle of the gap: no sample near, no interpolation
    near_start = track.lookup(20 * MS)
    assert not near_start.interpolated
    np.testing.assert_allclose(near_start.position, [0, 0, 0])
    # within the gap limit the same geometry interpolates
    short = PoseTrack.from_samples([(0, [0, 0, 0], yaw(0)), (DEFAULT_MAX_GAP_NS, [10, 0, 0], yaw(0))])
    np.testing.assert_allclose(short.lookup(DEFAULT_MAX_GAP_NS // 2).position, [5, 0, 0])


def test_slerp_takes_the_short_arc_for_opposite_sign_quaternions():
    q0, q1 = yaw(0.0), -yaw(0.6)  # -q is the same rotation as q
    mid = slerp(q0, q1, 0.5)
    assert quaternion_angle(mid, yaw(0.3)) == pytest.approx(0.0, abs=1e-7)


@given(a=st.floats(-3.0, 3.0), b=st.floats(-3.0, 3.0), t=st.floats(0.0, 1.0))
@settings(max_examples=60, deadline=None)
def test_slerp_angle_splits_proportionally(a, b, t):
    q0, q1 = yaw(a), yaw(b)
    q = slerp(q0, q1, t)
    total = quaternion_angle(q0, q1)
    assert quaternion_angle(q0, q) == pytest.approx(t * total, abs=1e-6)
    assert quaternion_angle(q, q1) == pytest.approx((1 - t) * total, abs=1e-6)


def test_append_in_order_and_bounded_memory():
    track = PoseTrack(max_samples=100)
    for k in range(1000):
        track.append(k * 10 * MS, [k, 0, 0], [0, 0, 0, 1])
    assert len(track) <= 100
    assert track.span_ns[1] == 999 * 10 * MS
    np.testing.assert_allclose(track.lookup(999 * 10 * MS).position, [999, 0, 0])
    assert track.lookup(0) is None  # dropped
    with pytest.raises(ValueError, match="older than the newest sample"):
        track.append(5 * MS, [0, 0, 0], [0, 0, 0, 1])
    track.append(999 * 10 * MS, [7, 7, 7], [0, 0, 0, 1])  # same stamp: replaced, not duplicated
    assert len(track) == len(set(track.stamps.tolist()))
    np.testing.assert_allclose(track.lookup(999 * 10 * MS).position, [7, 7, 7])


@pytest.mark.parametrize("orientation", [[0, 0, 0, 0], [np.nan, 0, 0, 1]])
def test_invalid_orientation_is_rejected(orientation):
    with pytest.raises(ValueError, match="quaternion"):
        PoseTrack().append(0, [0, 0, 0], orientation)


def test_orientation_is_normalized():
    track = PoseTrack()
    track.append(0, [0, 0, 0], [0, 0, 0, 2.0])
    np.testing.assert_allclose(track.lookup(0).orientation, [0, 0, 0, 1])


def rosbags_types():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE).types


def make_pose_messages(stamp_ns: int, position, orientation, frame_id="map"):
    t = rosbags_types()
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)
    pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](*position),
                                        orientation=t["geometry_msgs/msg/Quaternion"](*orientation))
    stamped = t["geometry_msgs/msg/PoseStamped"](header=header, pose=pose)
    with_cov = t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36))
    odom = t["nav_msgs/msg/Odometry"](
        header=header, child_frame_id="base", pose=with_cov,
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](0, 0, 0),
                                               angular=t["geometry_msgs/msg/Vector3"](0, 0, 0)),
            covariance=np.zeros(36)))
    return stamped, odom


def test_pose_from_odometry_and_pose_stamped():
    for msg in make_pose_messages(3 * 10**9 + 5, (1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0)):
        stamp, position, orientation, frame_id = pose_from_message(msg)
        assert stamp == 3 * 10**9 + 5 and frame_id == "map"
        np.testing.assert_allclose(position, [1, 2, 3])
        np.testing.assert_allclose(orientation, [0, 0, 0, 1])


def test_track_from_messages_checks_frame():
    track = PoseTrack()
    stamped, odom = make_pose_messages(10, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    track.append_message(stamped)
    assert track.frame_id == "map"
    other, _ = make_pose_messages(20, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), frame_id="odom")
    with pytest.raises(ValueError, match="frame 'odom'"):
        track.append_message(other)
    with pytest.raises(ValueError, match="not a stamped pose"):
        pose_from_message(object())


def test_insert_places_late_samples_in_time_order():
    track = PoseTrack(max_samples=4)
    for stamp in (0, 200, 100, 300, 250):  # 100 and 250 arrive late
        track.insert(stamp * MS, [stamp / 100.0, 0, 0], [0, 0, 0, 1])
    assert track.stamps.tolist() == [100 * MS, 200 * MS, 250 * MS, 300 * MS]  # the oldest dropped: bounded
    np.testing.assert_allclose(track.lookup(225 * MS).position, [2.25, 0, 0])
    track.insert(50 * MS, [9, 9, 9], [0, 0, 0, 1])  # older than everything in a full track: dropped
    assert track.span_ns[0] == 100 * MS
    track.insert(200 * MS, [7, 0, 0], [0, 0, 0, 1])  # same stamp: replaced
    np.testing.assert_allclose(track.lookup(200 * MS).position, [7, 0, 0])
    assert len(track) == 4
