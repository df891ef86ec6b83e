"""Where the memories are, as plain data for a viewer: one marker per memory with a pose (ROS-free).

The memory node turns these into ``visualization_msgs/MarkerArray`` and ``geometry_msgs/PoseArray``
messages (:mod:`gaussvae_ros.nodes.markers`); ``gaussvae db export --bag`` writes the same markers
into a recording. Here only numbers: positions in metres in the memory's pose frame, orientations
as unit quaternions ``(x, y, z, w)``, colours as ``(r, g, b, a)`` in 0..1.

* :func:`memory_marker` -- a stored memory as a :class:`MemoryMarker`: its pose, label (``#id``
  and time) and, for a frustum, the 16 line-list points of a camera frustum in the marker's own
  frame (apex at the camera, the image rectangle ``scale`` metres ahead; field of view from the
  memory's intrinsics, 60 degrees across when it has none).
* :func:`marker_colours` -- colour by age (oldest dark blue .. newest yellow, a viridis-like
  ramp over the shown memories' stamps) or by codec (a fixed colour per codec id).
* :class:`MarkerTracker` -- the shown set, kept in step with a :class:`~.store.Store` through its
  API: :meth:`~MarkerTracker.sync` adds memories stored since the last call (ids above the
  highest seen) and forgets those no longer stored (deletes, retention), whoever wrote the file,
  at the cost of two small reads. It shows the newest ``max_markers`` memories (by id).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

__all__ = ["COLOUR_BY", "FORWARD_AXES", "SHAPES", "MarkerTracker", "MemoryMarker", "codec_colour", "frustum_points",
           "marker_colours", "memory_marker"]

SHAPES = ("frustum", "arrow")
COLOUR_BY = ("age", "codec")
#: The camera's viewing direction in its pose: ``x`` (REP 103 body frame: x forward, y left, z up)
#: or ``z`` (optical frame: z forward, x right, y down).
FORWARD_AXES = ("x", "z")
DEFAULT_FOV_RAD = math.radians(60.0)

# Viridis at five stops (dark blue -> green -> yellow), linearly interpolated.
_RAMP = ((0.267, 0.005, 0.329), (0.229, 0.322, 0.546), (0.128, 0.567, 0.551), (0.369, 0.789, 0.383),
         (0.993, 0.906, 0.144))
_PALETTE = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.4, 0.74),
            (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81))


@dataclass(frozen=True)
class MemoryMarker:
    """One memory for a viewer. ``points`` (frustum only) are in the marker's frame, metres."""

    id: int
    frame_id: str
    stamp_ns: int
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    codec: str
    label: str
    points: tuple[tuple[float, float, float], ...] = ()


def _unit(q) -> tuple[float, float, float, float]:
    norm = math.sqrt(sum(float(v) * float(v) for v in q))
    if not math.isfinite(norm) or norm < 1e-12:
        return (0.0, 0.0, 0.0, 1.0)
    return tuple(float(v) / norm for v in q)


def frustum_points(width: int, height: int, fx: float | None = None, scale: float = 0.5,
                   forward_axis: str = "x") -> tuple[tuple[float, float, float], ...]:
    """Line-list points (pairs) of a camera frustum ``scale`` metres deep for a ``width x height``
    image with focal length ``fx`` (px; None = 60 degrees across), in the camera's pose frame."""
    if forward_axis not in FORWARD_AXES:
        raise ValueError(f"forward_axis must be one of {FORWARD_AXES}, got {forward_axis!r}")
    half_fov = math.atan(width / (2.0 * fx)) if fx and fx > 0 else DEFAULT_FOV_RAD / 2
    half_w = scale * math.tan(half_fov)
    half_h = half_w * height / max(width, 1)
    # Optical corners (x right, y down, z forward), turned into the pose's axes.
    corners = [(-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (-half_w, half_h)]
    if forward_axis == "z":
        to_pose = [(x, y, scale) for x, y in corners]
    else:  # x forward, y left, z up
        to_pose = [(scale, -x, -y) for x, y in corners]
    apex = (0.0, 0.0, 0.0)
    points = []
    for i, corner in enumerate(to_pose):
        points += [apex, corner, corner, to_pose[(i + 1) % 4]]
    return tuple(tuple(float(v) for v in p) for p in points)


def memory_marker(record, shape: str = "frustum", scale: float = 0.5, forward_axis: str = "x") -> MemoryMarker | None:
    """A :class:`~.records.StoredMemory` as a marker; None when it has no pose."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if record.pose is None:
        return None
    points = ()
    if shape == "frustum":
        fx = float(record.intrinsics.k[0]) if record.intrinsics is not None else None
        points = frustum_points(record.width, record.height, fx, scale, forward_axis)
    return MemoryMarker(
        id=int(record.id), frame_id=record.pose_frame_id, stamp_ns=int(record.stamp_ns),
        position=tuple(float(v) for v in record.pose.position), orientation=_unit(record.pose.orientation),
        codec=record.codec, label=f"#{record.id}  {record.stamp_ns * 1e-9:.2f} s", points=points)


def _ramp(t: float) -> tuple[float, float, float]:
    t = min(max(t, 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(t), len(_RAMP) - 2)
    f = t - i
    return tuple(a + (b - a) * f for a, b in zip(_RAMP[i], _RAMP[i + 1]))


def codec_colour(codec: str) -> tuple[float, float, float]:
    """A fixed colour per codec id (the same in every run and every node)."""
    return _PALETTE[zlib.crc32(codec.encode()) % len(_PALETTE)]


def marker_colours(markers, by: str = "age", alpha: float = 1.0) -> list[tuple[float, float, float, float]]:
    """``(r, g, b, a)`` per marker: by ``age`` (relative to the shown memories' stamps) or ``codec``."""
    if by not in COLOUR_BY:
        raise ValueError(f"colour must be one of {COLOUR_BY}, got {by!r}")
    markers = list(markers)
    if by == "codec":
        return [(*codec_colour(m.codec), alpha) for m in markers]
    if not markers:
        return []
    lo = min(m.stamp_ns for m in markers)
    span = max(m.stamp_ns for m in markers) - lo
    return [(*_ramp((m.stamp_ns - lo) / span if span else 1.0), alpha) for m in markers]


class MarkerTracker:
    """The markers of the newest ``max_markers`` stored memories, synced through the store's API."""

    def __init__(self, max_markers: int = 1000, shape: str = "frustum", scale: float = 0.5,
                 forward_axis: str = "x") -> None:
        if max_markers < 1:
            raise ValueError(f"max_markers must be >= 1, got {max_markers}")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
        frustum_points(4, 3, None, scale, forward_axis)  # checks the axis once
        self.max_markers = int(max_markers)
        self._args = (shape, scale, forward_axis)
        self._markers: dict[int, MemoryMarker] = {}
        self._last_id = 0  # highest id looked at
        self.version = 0  # +1 on every change

    def reset(self) -> None:
        """Forget everything: the next :meth:`sync` reads the newest memories again."""
        if self._markers:
            self.version += 1
        self._markers.clear()
        self._last_id = 0

    def markers(self) -> list[MemoryMarker]:
        """The shown markers, oldest id first."""
        return [self._markers[i] for i in sorted(self._markers)]

    def sync(self, store) -> bool:
        """Bring the set in step with ``store``; True when something changed (raises StoreError)."""
        changed = False
        if self._markers:
            alive = store.existing_ids(self._markers)
            gone = [i for i in self._markers if i not in alive]
            for i in gone:
                del self._markers[i]
            changed = bool(gone)
        low, high = store.id_range()
        if high < self._last_id:  # ids went back: another file, or it was emptied and rebuilt
            self._markers.clear()
            self._last_id, changed = 0, True
        if high > self._last_id:
            first = max(self._last_id + 1, low, high - self.max_markers + 1)
            found = sorted(store.existing_ids(range(first, high + 1)))
            try:
                records = store.get(found) if found else []
            except ValueError:  # deleted between the two reads: the next sync looks again
                records, high = [], self._last_id
            for record in records:
                marker = memory_marker(record, *self._args)
                if marker is not None:
                    self._markers[marker.id] = marker
                    changed = True
            self._last_id = high
        for i in sorted(self._markers)[: max(0, len(self._markers) - self.max_markers)]:
            del self._markers[i]
        if changed:
            self.version += 1
        return changed
