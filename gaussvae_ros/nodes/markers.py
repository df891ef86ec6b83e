"""The memory node's view for RViz / Foxglove: ``memory_poses`` (MarkerArray) and ``memory_pose_array``.

The markers themselves are plain data (:mod:`gaussvae_ros.store.markers`); here they become
messages. :class:`MemoryMarkerPublisher` keeps a :class:`~gaussvae_ros.store.markers.MarkerTracker`
in step with the node's store every ``markers_period_s`` (new memories added, deleted and
retention-dropped ones removed, whoever wrote the file) and publishes when the set changed.

Each ``memory_poses`` message is the whole set: a ``DELETEALL`` marker first, then per memory a
frustum (``LINE_LIST``) or ``ARROW`` in namespace ``memories`` and its ``#id  time`` text
(``TEXT_VIEW_FACING``) in ``memory_labels``, marker id = memory id, header frame = the memory's
pose frame. Both topics are reliable and transient local with depth 1, so a viewer that starts
late receives the latest set at once. ``memory_pose_array`` holds the poses of the memories in
one frame (``markers_frame_id``; empty = the frame most memories have).
"""

from __future__ import annotations

from collections import Counter

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from gaussvae_ros.store import StoreError
from gaussvae_ros.store.markers import COLOUR_BY, FORWARD_AXES, SHAPES, MarkerTracker, marker_colours

from .convert import ns_to_time
from .params import ParamSpec, check_choice, check_range

__all__ = ["MARKER_PARAMETERS", "MARKERS_QOS", "MemoryMarkerPublisher", "check_marker_parameters",
           "marker_array", "pose_array"]

MARKER_PARAMETERS = (
    ParamSpec("markers_period_s", 0.5, "how often memory_poses follows the store (inserts, deletes, retention), s; "
              "0 = no memory_poses / memory_pose_array", True),
    ParamSpec("max_markers", 1000, "memory_poses shows the newest this many memories (>= 1)", True),
    ParamSpec("marker_shape", "frustum", "memory_poses marker: frustum (camera frustum) | arrow", True),
    ParamSpec("marker_scale", 0.5, "frustum depth / arrow length of a memory marker, m", True),
    ParamSpec("marker_color", "age", "memory_poses colour: age (oldest dark blue .. newest yellow) | codec", True),
    ParamSpec("marker_forward_axis", "x", "camera viewing axis of the stored poses: x (REP 103 body) | z (optical)",
              True),
    ParamSpec("markers_frame_id", "", "frame of memory_pose_array (only memories in it); empty = the most common "
              "pose frame", True),
)

#: Latched state: a late RViz / Foxglove gets the last set.
MARKERS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

_TEXT_HEIGHT = 0.25  # of the label, in marker_scale units


def check_marker_parameters(problems: list, values: dict) -> None:
    check_range(problems, values, "markers_period_s", 0.0, 3600.0)
    check_range(problems, values, "max_markers", 1, 100_000)
    check_choice(problems, values, "marker_shape", SHAPES)
    check_range(problems, values, "marker_scale", 1e-6, 1e6)
    check_choice(problems, values, "marker_color", COLOUR_BY)
    check_choice(problems, values, "marker_forward_axis", FORWARD_AXES)


def _pose(marker, dz: float = 0.0) -> Pose:
    (x, y, z), (qx, qy, qz, qw) = marker.position, marker.orientation
    return Pose(position=Point(x=x, y=y, z=z + dz), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def marker_array(markers, colour_by: str = "age", scale: float = 0.5, stamp=None) -> MarkerArray:
    """``visualization_msgs/MarkerArray`` of plain markers: DELETEALL, then a body and a label each."""
    out = MarkerArray()
    out.markers.append(Marker(action=Marker.DELETEALL))
    for m, (r, g, b, a) in zip(markers, marker_colours(markers, colour_by)):
        colour = ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))
        header_stamp = ns_to_time(m.stamp_ns) if stamp is None else stamp
        body = Marker(ns="memories", id=int(m.id), action=Marker.ADD, pose=_pose(m), color=colour)
        body.header.frame_id, body.header.stamp = m.frame_id, header_stamp
        if m.points:
            body.type = Marker.LINE_LIST
            body.scale = Vector3(x=0.02 * scale, y=0.0, z=0.0)
            body.points = [Point(x=x, y=y, z=z) for x, y, z in m.points]
        else:
            body.type = Marker.ARROW
            body.scale = Vector3(x=scale, y=0.1 * scale, z=0.1 * scale)
        label = Marker(ns="memory_labels", id=int(m.id), type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
                       pose=_pose(m, 0.6 * scale), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), text=m.label)
        label.header.frame_id, label.header.stamp = m.frame_id, header_stamp
        label.scale = Vector3(x=0.0, y=0.0, z=_TEXT_HEIGHT * scale)
        out.markers += [body, label]
    return out


def pose_frame(markers, frame_id: str = "") -> str:
    """``frame_id``, or the pose frame most markers have ("" when there are none)."""
    if frame_id:
        return frame_id
    counts = Counter(m.frame_id for m in markers)
    return counts.most_common(1)[0][0] if counts else ""


def pose_array(markers, frame_id: str, stamp) -> PoseArray:
    """``geometry_msgs/PoseArray`` of the markers in ``frame_id``."""
    out = PoseArray(poses=[_pose(m) for m in markers if m.frame_id == frame_id])
    out.header.frame_id, out.header.stamp = frame_id, stamp
    return out


class MemoryMarkerPublisher:
    """``memory_poses`` and ``memory_pose_array`` of ``node``, following ``store()`` (a callable:
    the node's current store; a :class:`StoreError` from it skips that round)."""

    def __init__(self, node, store, values: dict) -> None:
        self._node, self._store, self._values = node, store, values
        self.tracker = self._new_tracker()
        self._published = -1
        self._markers_pub = node.create_publisher(MarkerArray, "memory_poses", MARKERS_QOS)
        self._poses_pub = node.create_publisher(PoseArray, "memory_pose_array", MARKERS_QOS)
        period = float(values["markers_period_s"])
        self._timer = None
        if period > 0:
            self._timer = node.create_timer(period, self.update, callback_group=MutuallyExclusiveCallbackGroup())

    def _new_tracker(self) -> MarkerTracker:
        v = self._values
        return MarkerTracker(int(v["max_markers"]), v["marker_shape"], float(v["marker_scale"]),
                             v["marker_forward_axis"])

    def reset(self) -> None:
        """Read the store again from scratch at the next update (a store reopened or replaced)."""
        self.tracker.reset()

    def update(self) -> bool:
        """Sync with the store and publish when the set changed (or was never published)."""
        try:
            self.tracker.sync(self._store())
        except StoreError as exc:
            self._node.get_logger().debug(f"memory_poses: store not readable: {exc}")
            return False
        except Exception as exc:  # never take the node down for a view
            self._node.get_logger().warning(f"memory_poses: {type(exc).__name__}: {exc}", throttle_duration_sec=10.0)
            return False
        if self.tracker.version == self._published:
            return False
        self._published = self.tracker.version
        self.publish()
        return True

    def publish(self) -> None:
        markers = self.tracker.markers()
        stamp = self._node.get_clock().now().to_msg()
        self._markers_pub.publish(marker_array(markers, self._values["marker_color"],
                                               float(self._values["marker_scale"])))
        self._poses_pub.publish(pose_array(markers, pose_frame(markers, self._values["markers_frame_id"]), stamp))
