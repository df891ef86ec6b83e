"""Which camera frames become memories: a keyframe policy per camera.

A frame is compared with the camera's last keyframe:

* ``dt``: time since it (s), from header stamps;
* ``translation`` (m) and ``rotation`` (rad) between the two poses, when both have one (in the
  same frame);
* ``image_change``: mean absolute difference of two 32 x 32 grayscale thumbnails with intensities
  in ``[0, 1]`` (0 = identical, 1 = black vs white). Sensor noise on a still camera gives about
  0.001-0.006 (EuRoC, T265); a car moving 3 m gives 0.1-0.3 (KITTI).

Rules, in order:

1. The first frame of a camera is stored.
2. Never store a frame less than ``min_interval_s`` after the last keyframe (a rate cap).
3. Never store a near-duplicate: ``image_change < duplicate_image_change``, whatever the time,
   motion or pose says (a robot standing still for an hour stores one frame, not 3600).
4. Store when ``dt >= max_interval_s``, or ``translation >= min_translation_m``, or
   ``rotation >= min_rotation_rad``, or ``image_change >= min_image_change``.

Defaults (:class:`KeyframeConfig`) and why:

* ``min_translation_m = 5.0``: about one memory per 5 m of travel; the KITTI drive (90 m) gives
  one every 0.6-3 s, enough to recall any stretch of road, few enough to fit in real time.
* ``min_rotation_rad = 0.35`` (20 deg): a camera with a ~60-90 deg field of view sees a largely
  new scene after turning by a quarter of it, even without moving (a turning car, a robot
  rotating in place).
* ``min_image_change = 0.25``: a change this large means the scene itself changed (a door, a
  person, lights, or motion without odometry); consecutive KITTI frames at speed differ by
  0.05-0.15, so pose-driven keyframes normally come first.
* ``duplicate_image_change = 0.02``: three times the largest noise-only difference measured on
  still cameras (EuRoC over 3 s: <= 0.006), far below any real change. With it the near-static
  EuRoC recording stores a single frame.
* ``max_interval_s = 30.0``: a still-but-not-identical scene (slow lighting drift) is refreshed
  twice a minute.
* ``min_interval_s = 0.2``: at most 5 memories per second per camera, which bounds fitting work
  at any frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .poses import StampedPose, quaternion_angle

__all__ = ["KeyframeConfig", "KeyframeDecision", "KeyframePolicy", "THUMBNAIL_SIZE", "image_thumbnail"]

#: Side of the square grayscale thumbnail used to measure image change.
THUMBNAIL_SIZE = 32


@dataclass(frozen=True)
class KeyframeConfig:
    """Thresholds of the keyframe policy (see the module docstring for the rules and defaults)."""

    max_interval_s: float = 30.0
    min_interval_s: float = 0.2
    min_translation_m: float = 5.0
    min_rotation_rad: float = 0.35
    min_image_change: float = 0.25
    duplicate_image_change: float = 0.02

    def __post_init__(self) -> None:
        for name in ("max_interval_s", "min_interval_s", "min_translation_m", "min_rotation_rad",
                     "min_image_change", "duplicate_image_change"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"keyframe {name} must be a finite number >= 0, got {value}")
        if self.duplicate_image_change > self.min_image_change:
            raise ValueError(
                f"duplicate_image_change ({self.duplicate_image_change}) must not exceed min_image_change "
                f"({self.min_image_change})")


def image_thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """``[size, size]`` float32 grayscale thumbnail in ``[0, 1]`` (area average) of an image.

    ``image``: ``[H, W]`` or ``[H, W, C]``, uint8 / uint16 (full range) or float in ``[0, 1]``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected an [H, W] or [H, W, C] image, got shape {image.shape}")
    scale = {np.dtype(np.uint8): 1 / 255.0, np.dtype(np.uint16): 1 / 65535.0}.get(image.dtype, 1.0)
    gray = image.astype(np.float32) * np.float32(scale)
    if gray.ndim == 3:
        gray = gray[:, :, :3].mean(axis=2) if gray.shape[2] >= 3 else gray[:, :, 0]
    return np.asarray(Image.fromarray(np.ascontiguousarray(gray), mode="F").resize((size, size), Image.BOX))


@dataclass(frozen=True)
class KeyframeDecision:
    """Outcome for one frame.

    Attributes:
        store: whether the frame becomes a keyframe.
        reason: ``first``, ``interval``, ``translation``, ``rotation``, ``image_change`` when stored;
            ``too_soon``, ``duplicate``, ``no_change`` when not.
        dt_s, translation_m, rotation_rad, image_change: the measures against the last keyframe
            (None when not available, e.g. no pose or first frame).
    """

    store: bool
    reason: str
    dt_s: float | None = None
    translation_m: float | None = None
    rotation_rad: float | None = None
    image_change: float | None = None


@dataclass
class _CameraState:
    stamp_ns: int
    thumbnail: np.ndarray
    pose: StampedPose | None


@dataclass
class KeyframePolicy:
    """Keyframe decisions for any number of cameras, each keyed by a hashable id (e.g. ``(topic, frame_id)``).

    Usage: ``decision = policy.decide(camera, stamp_ns, thumbnail, pose)``; when the frame is then
    stored, ``policy.mark_stored(camera, stamp_ns, thumbnail, pose)``. :meth:`decide` does not
    change state, so a frame whose storing fails is not counted as a keyframe. Memory: one
    thumbnail and pose per camera.
    """

    config: KeyframeConfig = field(default_factory=KeyframeConfig)
    _cameras: dict = field(default_factory=dict, repr=False)

    def decide(self, camera, stamp_ns: int, thumbnail: np.ndarray, pose: StampedPose | None = None) -> KeyframeDecision:
        """Whether the frame at ``stamp_ns`` (ns) with this :func:`image_thumbnail` and pose should be stored."""
        last: _CameraState | None = self._cameras.get(camera)
        if last is None:
            return KeyframeDecision(True, "first")
        cfg = self.config
        dt = (int(stamp_ns) - last.stamp_ns) * 1e-9
        change = float(np.mean(np.abs(np.asarray(thumbnail, np.float32) - last.thumbnail)))
        translation = rotation = None
        if pose is not None and last.pose is not None and pose.frame_id == last.pose.frame_id:
            translation = float(np.linalg.norm(pose.position - last.pose.position))
            rotation = quaternion_angle(pose.orientation, last.pose.orientation)
        measures = dict(dt_s=dt, translation_m=translation, rotation_rad=rotation, image_change=change)
        if dt < cfg.min_interval_s:
            return KeyframeDecision(False, "too_soon", **measures)
        if change < cfg.duplicate_image_change:
            return KeyframeDecision(False, "duplicate", **measures)
        if dt >= cfg.max_interval_s:
            return KeyframeDecision(True, "interval", **measures)
        if translation is not None and translation >= cfg.min_translation_m:
            return KeyframeDecision(True, "translation", **measures)
        if rotation is not None and rotation >= cfg.min_rotation_rad:
            return KeyframeDecision(True, "rotation", **measures)
        if change >= cfg.min_image_change:
            return KeyframeDecision(True, "image_change", **measures)
        return KeyframeDecision(False, "no_change", **measures)

    def mark_stored(self, camera, stamp_ns: int, thumbnail: np.ndarray, pose: StampedPose | None = None) -> None:
        """Record that the frame became the camera's latest keyframe."""
        self._cameras[camera] = _CameraState(int(stamp_ns), np.asarray(thumbnail, np.float32).copy(), pose)

    def last_keyframe_ns(self, camera) -> int | None:
        """Stamp (ns) of the camera's latest keyframe, or None."""
        state = self._cameras.get(camera)
        return None if state is None else state.stamp_ns
