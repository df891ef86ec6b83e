"""A pose track: time-stamped 6-DoF poses with nearest / interpolated lookup.

Built from ``nav_msgs/Odometry``, ``geometry_msgs/PoseStamped`` or
``geometry_msgs/PoseWithCovarianceStamped`` messages (plain attributes, so rosbags and rclpy
messages both work). Stamps are integer nanoseconds (header stamps). Positions are metres and
orientations unit quaternions ``(x, y, z, w)``, both in the messages' ``header.frame_id`` (the
track's ``frame_id``): the pose of the message's child frame (``child_frame_id`` for odometry) in
that frame.

Lookup rules (defaults stated in :data:`DEFAULT_TOLERANCE_NS` and :data:`DEFAULT_MAX_GAP_NS`):

* ``"nearest"``: the sample closest in time, if it is within ``tolerance_ns`` of the stamp.
* ``"interpolate"`` (default): when the stamp lies between two samples at most ``max_gap_ns``
  apart, position is linearly interpolated and orientation spherically (slerp); otherwise it
  falls back to ``"nearest"``. There is no extrapolation beyond either end of the track other
  than the nearest-sample rule.
* ``None`` when no rule applies (the stamp is too far from any sample, or the track is empty).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_MAX_GAP_NS",
    "DEFAULT_MAX_SAMPLES",
    "DEFAULT_TOLERANCE_NS",
    "StampedPose",
    "PoseTrack",
    "pose_from_message",
    "quaternion_angle",
    "slerp",
]

#: Nearest-sample tolerance: 50 ms. Odometry usually runs at 10 Hz or faster, so an image always
#: has a sample within 50 ms when the odometry is alive; a car at 15 m/s moves 0.75 m in that time.
DEFAULT_TOLERANCE_NS = 50_000_000

#: Largest gap between two samples that is bridged by interpolation: 250 ms, i.e. 10 Hz odometry
#: with a dropped message and some jitter. Over longer gaps motion is no longer safely linear.
DEFAULT_MAX_GAP_NS = 250_000_000

#: Samples kept by default (oldest dropped first): 100 s of 200 Hz odometry, a few MB.
DEFAULT_MAX_SAMPLES = 20_000


@dataclass(frozen=True)
class StampedPose:
    """A pose at a stamp.

    Attributes:
        stamp_ns: the stamp it was looked up for (or the sample's stamp), integer ns.
        position: ``[3]`` float64 metres in ``frame_id``.
        orientation: ``[4]`` float64 unit quaternion ``(x, y, z, w)`` in ``frame_id``.
        frame_id: reference frame of the pose.
        interpolated: True when built from two samples, False for a single (nearest) sample.
        offset_ns: ``stamp_ns`` minus the stamp of the nearest sample used (0 for an exact hit).
    """

    stamp_ns: int
    position: np.ndarray
    orientation: np.ndarray
    frame_id: str = ""
    interpolated: bool = False
    offset_ns: int = 0


def _normalized_quaternion(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64).reshape(4)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"invalid orientation quaternion {q.tolist()} (zero or non-finite norm)")
    return q / norm


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions ``(x, y, z, w)``, along the shorter arc."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # q and -q are the same rotation: take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: lerp is exact to float precision and avoids 0/0
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(min(dot, 1.0))
    s = np.sin(theta)
    return (np.sin((1.0 - t) * theta) * q0 + np.sin(t * theta) * q1) / s


def quaternion_angle(q0: np.ndarray, q1: np.ndarray) -> float:
    """Angle in radians (in ``[0, pi]``) of the rotation taking orientation ``q0`` to ``q1``."""
    dot = abs(float(np.dot(np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64))))
    return 2.0 * float(np.arccos(min(dot, 1.0)))


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def pose_from_message(msg) -> tuple[int, np.ndarray, np.ndarray, str]:
    """``(stamp_ns, position [3], orientation [4] xyzw, frame_id)`` of a pose-carrying message.

    Accepts ``nav_msgs/Odometry`` and ``geometry_msgs/PoseWithCovarianceStamped`` (``msg.pose.pose``)
    and ``geometry_msgs/PoseStamped`` (``msg.pose``). The stamp is the header stamp.

    Raises:
        ValueError: the message carries no pose, or its orientation is not a valid quaternion,
            or its position is not finite.
    """
    pose = getattr(msg, "pose", None)
    if pose is not None and hasattr(pose, "pose"):
        pose = pose.pose
    if pose is None or not hasattr(pose, "position") or not hasattr(msg, "header"):
        raise ValueError(f"{type(msg).__name__} is not a stamped pose message (Odometry / PoseStamped)")
    p, o = pose.position, pose.orientation
    position = np.array([p.x, p.y, p.z], dtype=np.float64)
    if not np.all(np.isfinite(position)):
        raise ValueError(f"non-finite position {position.tolist()}")
    orientation = _normalized_quaternion([o.x, o.y, o.z, o.w])
    return _stamp_ns(msg.header), position, orientation, str(msg.header.frame_id)


class PoseTrack:
    """Poses ordered by stamp, appended in order, with bounded memory.

    Args:
        frame_id: reference frame of all poses (taken from the first message when empty).
        max_samples: samples kept; the oldest are dropped beyond it (bounded memory for live use).
            ``None`` keeps everything (offline replay).
    """

    def __init__(self, frame_id: str = "", max_samples: int | None = DEFAULT_MAX_SAMPLES):
        if max_samples is not None and max_samples < 2:
            raise ValueError(f"max_samples must be at least 2, got {max_samples}")
        self.frame_id = frame_id
        self.max_samples = max_samples
        self._stamps: list[int] = []
        self._positions: list[np.ndarray] = []
        self._orientations: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def stamps(self) -> np.ndarray:
        """``[N]`` int64 stamps in ns, increasing."""
        return np.asarray(self._stamps, dtype=np.int64)

    @property
    def positions(self) -> np.ndarray:
        """``[N, 3]`` float64 metres."""
        return np.asarray(self._positions, dtype=np.float64).reshape(-1, 3)

    @property
    def orientations(self) -> np.ndarray:
        """``[N, 4]`` float64 unit quaternions ``(x, y, z, w)``."""
        return np.asarray(self._orientations, dtype=np.float64).reshape(-1, 4)

    @property
    def span_ns(self) -> tuple[int, int] | None:
        """``(first, last)`` stamp, or None when empty."""
        return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def append(self, stamp_ns: int, position, orientation) -> None:
        """Add a sample newer than every sample already held.

        A sample with the same stamp as the newest one replaces it (re-published poses).

        Raises:
            ValueError: the stamp is older than the newest sample, or the pose is invalid.
        """
        stamp_ns = int(stamp_ns)
        position = np.asarray(position, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(position)):
            raise ValueError(f"non-finite position {position.tolist()}")
        orientation = _normalized_quaternion(orientation)
        if self._stamps and stamp_ns <= self._stamps[-1]:
            if stamp_ns < self._stamps[-1]:
                raise ValueError(
                    f"pose stamp {stamp_ns} ns is older than the newest sample {self._stamps[-1]} ns "
                    "(append in time order)")
            self._positions[-1], self._orientations[-1] = position, orientation
            return
        self._stamps.append(stamp_ns)
        self._positions.append(position)
        self._orientations.append(orientation)
        if self.max_samples is not None and len(self._stamps) > self.max_samples:
            # drop in blocks so appends stay O(1) amortized
            drop = len(self._stamps) - self.max_samples + max(1, self.max_samples // 10)
            drop = min(drop, len(self._stamps) - 2)
            del self._stamps[:drop], self._positions[:drop], self._orientations[:drop]

    def insert(self, stamp_ns: int, position, orientation) -> None:
        """Add a sample at its place in time, for sources whose stamps arrive slightly out of order.

        Same as :meth:`append` for a sample newer than all others; an equal stamp replaces that sample.
        Samples older than everything held are dropped when the track is full (bounded memory).
        """
        stamp_ns = int(stamp_ns)
        if not self._stamps or stamp_ns >= self._stamps[-1]:
            self.append(stamp_ns, position, orientation)
            return
        position = np.asarray(position, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(position)):
            raise ValueError(f"non-finite position {position.tolist()}")
        orientation = _normalized_quaternion(orientation)
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if self._stamps[i] == stamp_ns:
            self._positions[i], self._orientations[i] = position, orientation
            return
        if i == 0 and self.max_samples is not None and len(self._stamps) >= self.max_samples:
            return
        self._stamps.insert(i, stamp_ns)
        self._positions.insert(i, position)
        self._orientations.insert(i, orientation)
        if self.max_samples is not None and len(self._stamps) > self.max_samples:
            del self._stamps[0], self._positions[0], self._orientations[0]

    def append_message(self, msg) -> None:
        """:meth:`append` the pose of an Odometry / PoseStamped message (see :func:`pose_from_message`)."""
        stamp, position, orientation, frame_id = pose_from_message(msg)
        if not self.frame_id:
            self.frame_id = frame_id
        elif frame_id and frame_id != self.frame_id:
            raise ValueError(f"pose in frame {frame_id!r} does not belong to a track in frame {self.frame_id!r}")
        self.append(stamp, position, orientation)

    @classmethod
    def from_samples(cls, samples, frame_id: str = "", max_samples: int | None = None) -> "PoseTrack":
        """A track from ``(stamp_ns, position, orientation)`` tuples in any order (sorted here)."""
        track = cls(frame_id, max_samples)
        for stamp, position, orientation in sorted(samples, key=lambda s: int(s[0])):
            track.append(stamp, position, orientation)
        return track

    def lookup(self, stamp_ns: int, mode: str = "interpolate", tolerance_ns: int = DEFAULT_TOLERANCE_NS,
               max_gap_ns: int = DEFAULT_MAX_GAP_NS) -> StampedPose | None:
        """The pose at ``stamp_ns`` (see the module docstring for the rules), or None."""
        if mode not in ("interpolate", "nearest"):
            raise ValueError(f"unknown pose lookup mode {mode!r} (use 'interpolate' or 'nearest')")
        if not self._stamps:
            return None
        stamp_ns = int(stamp_ns)
        i = bisect.bisect_left(self._stamps, stamp_ns)  # first sample with stamp >= stamp_ns
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            return self._sample(i, stamp_ns)
        if mode == "interpolate" and 0 < i < len(self._stamps):
            t0, t1 = self._stamps[i - 1], self._stamps[i]
            if t1 - t0 <= max_gap_ns:
                w = (stamp_ns - t0) / (t1 - t0)
                position = (1.0 - w) * self._positions[i - 1] + w * self._positions[i]
                orientation = slerp(self._orientations[i - 1], self._orientations[i], w)
                offset = stamp_ns - (t0 if w < 0.5 else t1)
                return StampedPose(stamp_ns, position, orientation, self.frame_id, True, offset)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        j = min(candidates, key=lambda k: abs(self._stamps[k] - stamp_ns))
        if abs(self._stamps[j] - stamp_ns) > tolerance_ns:
            return None
        return self._sample(j, stamp_ns)

    def _sample(self, j: int, stamp_ns: int) -> StampedPose:
        return StampedPose(stamp_ns, self._positions[j].copy(), self._orientations[j].copy(), self.frame_id, False,
                    stamp_ns - self._stamps[j])
