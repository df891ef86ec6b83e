"""Keyframe policy: the rules on constructed frames, and the defaults on the real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from gaussvae_ros.bag.keyframes import KeyframeConfig, KeyframePolicy, image_thumbnail
from gaussvae_ros.bag.poses import StampedPose
from support.shared import shared_bag

S = 1_000_000_000
RNG = np.random.default_rng(3)
SCENE = RNG.integers(0, 256, size=(48, 64), dtype=np.uint8)


def pose_at(x: float, yaw: float = 0.0, frame: str = "odom") -> StampedPose:
    return StampedPose(0, np.array([x, 0.0, 0.0]), np.array([0, 0, np.sin(yaw / 2), np.cos(yaw / 2)]), frame)


def noisy(image: np.ndarray, amount: int = 2) -> np.ndarray:
    return np.clip(image.astype(int) + RNG.integers(-amount, amount + 1, image.shape), 0, 255).astype(np.uint8)


def policy_after_first(config=KeyframeConfig()) -> KeyframePolicy:
    policy = KeyframePolicy(config)
    first = policy.decide("cam", 0, image_thumbnail(SCENE), pose_at(0))
    assert first.store and first.reason == "first"
    policy.mark_stored("cam", 0, image_thumbnail(SCENE), pose_at(0))
    return policy


def test_thumbnail_measures_change_in_unit_intensity():
    assert image_thumbnail(SCENE).shape == (32, 32)
    black, white = np.zeros((40, 40), np.uint8), np.full((40, 40), 65535, np.uint16)
    assert np.abs(image_thumbnail(black) - image_thumbnail(white)).mean() == pytest.approx(1.0)
    rgb = np.dstack([SCENE] * 3)
    np.testing.assert_allclose(image_thumbnail(rgb), image_thumbnail(SCENE), atol=1e-6)


def test_motion_triggers():
    cfg = KeyframeConfig()
    policy = policy_after_first(cfg)
    slightly_different = image_thumbnail(noisy(SCENE, 20))
    d = policy.decide("cam", 1 * S, slightly_different, pose_at(cfg.min_translation_m + 0.1))
    assert d.store and d.reason == "translation" and d.translation_m == pytest.approx(cfg.min_translation_m + 0.1)
    d = policy.decide("cam", 1 * S, slightly_different, pose_at(0.1, yaw=cfg.min_rotation_rad + 0.05))
    assert d.store and d.reason == "rotation" and d.rotation_rad == pytest.approx(cfg.min_rotation_rad + 0.05)
    d = policy.decide("cam", 1 * S, slightly_different, pose_at(0.1))
    assert not d.store and d.reason == "no_change"
    # poses in different frames are not compared
    d = policy.decide("cam", 1 * S, slightly_different, pose_at(100.0, frame="map"))
    assert not d.store and d.translation_m is None


def test_image_change_and_interval_triggers_without_pose():
    cfg = KeyframeConfig()
    policy = policy_after_first(cfg)
    d = policy.decide("cam", 1 * S, image_thumbnail(255 - SCENE), None)
    assert d.store and d.reason == "image_change" and d.image_change >= cfg.min_image_change
    d = policy.decide("cam", int((cfg.max_interval_s + 1) * S), image_thumbnail(noisy(SCENE, 20)), None)
    assert d.store and d.reason == "interval"


@pytest.mark.parametrize("max_interval_s", [1.0, 2.5, 10.0, KeyframeConfig().max_interval_s])
def test_a_frame_exactly_max_interval_after_the_last_keyframe_is_stored(max_interval_s):
    """The interval rule is inclusive: ``dt >= max_interval_s`` stores with reason "interval"; one
    nanosecond earlier the same frame (changed, but not enough to count) is not stored."""
    cfg = KeyframeConfig(max_interval_s=max_interval_s)
    policy = policy_after_first(cfg)
    frame = image_thumbnail(noisy(SCENE, 20))
    at = round(max_interval_s * S)
    d = policy.decide("cam", at, frame, pose_at(0.0))
    assert d.store and d.reason == "interval" and d.dt_s == pytest.approx(max_interval_s, abs=1e-9)
    d = policy.decide("cam", at - 1, frame, pose_at(0.0))
    assert not d.store and d.reason == "no_change"


@pytest.mark.parametrize("min_interval_s", [0.25, 0.5, 2.0])
def test_a_frame_exactly_min_interval_after_the_last_keyframe_is_not_too_soon(min_interval_s):
    """The rate cap refuses frames *less* than ``min_interval_s`` after the last keyframe only."""
    policy = policy_after_first(KeyframeConfig(min_interval_s=min_interval_s))
    changed = image_thumbnail(255 - SCENE)
    at = round(min_interval_s * S)
    assert policy.decide("cam", at, changed).reason == "image_change"
    assert policy.decide("cam", at - 1, changed).reason == "too_soon"


def test_near_duplicates_are_never_stored():
    cfg = KeyframeConfig()
    policy = policy_after_first(cfg)
    duplicate = image_thumbnail(noisy(SCENE, 2))
    for stamp, pose in [(1 * S, pose_at(0)), (int(10 * cfg.max_interval_s * S), pose_at(100.0, yaw=2.0))]:
        d = policy.decide("cam", stamp, duplicate, pose)
        assert not d.store and d.reason == "duplicate" and d.image_change < cfg.duplicate_image_change


def test_rate_cap_and_decide_does_not_change_state():
    cfg = KeyframeConfig(min_interval_s=0.5)
    policy = policy_after_first(cfg)
    changed = image_thumbnail(255 - SCENE)
    assert policy.decide("cam", int(0.4 * S), changed).reason == "too_soon"
    assert policy.decide("cam", int(0.6 * S), changed).store
    assert policy.decide("cam", int(0.6 * S), changed).store  # still relative to the keyframe at 0
    policy.mark_stored("cam", int(0.6 * S), changed)
    assert policy.last_keyframe_ns("cam") == int(0.6 * S)
    assert policy.decide("cam", int(0.7 * S), image_thumbnail(SCENE)).reason == "too_soon"


def test_cameras_are_independent():
    policy = policy_after_first()
    assert policy.decide("other", 1, image_thumbnail(SCENE)).reason == "first"
    assert policy.last_keyframe_ns("other") is None


@pytest.mark.parametrize("field, value", [("min_translation_m", -1.0), ("max_interval_s", float("nan")),
                                          ("duplicate_image_change", 0.5)])
def test_bad_config_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        KeyframeConfig(**{field: value})


# --- defaults on the real recordings ------------------------------------------------------------

def keyframes_of(bag_name: str, config=KeyframeConfig(), require_pose=False):
    """Stamps, positions and reasons of the frames the policy keeps (thumbnails of full frames)."""
    from gaussvae_ros.bag.reader import BagReader, Frame

    path = shared_bag(bag_name)
    policy, kept, seen = KeyframePolicy(config), [], 0
    with BagReader(path) as bag:
        track = bag.read_pose_track(bag.pose_topics[0])
        for frame in bag.frames():
            assert isinstance(frame, Frame)
            seen += 1
            pose = track.lookup(frame.stamp_ns)
            if pose is None and require_pose:
                continue
            thumb = image_thumbnail(frame.image)
            camera = (frame.topic, frame.frame_id)
            decision = policy.decide(camera, frame.stamp_ns, thumb, pose)
            if decision.store:
                policy.mark_stored(camera, frame.stamp_ns, thumb, pose)
                kept.append((frame.stamp_ns, None if pose is None else pose.position, decision.reason))
    return kept, seen, track


@pytest.mark.parametrize("require_pose", [False, True])
def test_static_euroc_stores_at_most_six_frames(require_pose):
    kept, seen, track = keyframes_of("euroc_v101_static_sqlite3", require_pose=require_pose)
    assert seen == 60
    assert 1 <= len(kept) <= 6
    if require_pose:
        assert all(position is not None for _, position, _ in kept)
        assert kept[0][0] >= track.span_ns[0]


def test_kitti_drive_stores_frames_regularly_along_the_road():
    cfg = KeyframeConfig()
    kept, seen, track = keyframes_of("kitti07_mono8_mcap", cfg)
    assert seen == 160
    positions = np.array([p for _, p, _ in kept])
    travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(track.positions, axis=0), axis=1))])
    path_length = travelled[-1]
    # distance along the road at each keyframe
    along = np.array([travelled[np.argmin(np.abs(track.stamps - stamp))] for stamp, _, _ in kept])
    gaps = np.diff(np.concatenate([along, [path_length]]))
    largest_step = np.max(np.diff(travelled))
    assert len(kept) >= path_length / (cfg.min_translation_m + largest_step) - 1
    assert gaps.max() <= cfg.min_translation_m + largest_step + 1e-6, "a stretch of road without keyframes"
    assert len(kept) < seen / 2, "keyframes should be much rarer than frames"
    assert np.all(np.linalg.norm(np.diff(positions, axis=0), axis=1) > 0.5), "near-duplicate positions stored"
