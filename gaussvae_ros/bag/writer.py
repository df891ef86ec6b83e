"""Writing small rosbag2 recordings from numpy frames and poses (``rosbags``, no ROS runtime).

For demos and tests: build standard messages with :func:`image_message`,
:func:`compressed_image_message`, :func:`odometry_message`, :func:`pose_stamped_message` and
:func:`camera_info_message`, then :func:`write_bag`. Messages use the ROS 2 Humble definitions.
Stamps are integer nanoseconds; poses are metres and unit quaternions ``(x, y, z, w)``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

__all__ = [
    "BagMessage",
    "camera_info_message",
    "compressed_image_message",
    "image_message",
    "odometry_message",
    "pose_stamped_message",
    "write_bag",
]


@lru_cache(maxsize=1)
def _typestore():
    return get_typestore(Stores.ROS2_HUMBLE)


def _t(name: str):
    return _typestore().types[name]


def _header(stamp_ns: int, frame_id: str):
    stamp = _t("builtin_interfaces/msg/Time")(sec=int(stamp_ns) // 1_000_000_000, nanosec=int(stamp_ns) % 1_000_000_000)
    return _t("std_msgs/msg/Header")(stamp=stamp, frame_id=frame_id)


def image_message(stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str | None = None):
    """A ``sensor_msgs/Image`` of ``pixels`` (uint8/uint16 ``[H, W]`` or uint8 ``[H, W, 3]`` RGB).

    ``encoding`` defaults to ``mono8`` / ``mono16`` / ``rgb8`` by shape and dtype; ``bgr8`` swaps the
    channels into the message. Little-endian, no row padding.
    """
    pixels = np.asarray(pixels)
    if encoding is None:
        encoding = "rgb8" if pixels.ndim == 3 else ("mono16" if pixels.dtype == np.uint16 else "mono8")
    if encoding == "bgr8":
        pixels = pixels[:, :, ::-1]
    data = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder("<"))).view(np.uint8).reshape(-1)
    h, w = pixels.shape[:2]
    return _t("sensor_msgs/msg/Image")(header=_header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                                       is_bigendian=0, step=data.size // h, data=data)


def compressed_image_message(stamp_ns: int, frame_id: str, pixels: np.ndarray, fmt: str = "png"):
    """A ``sensor_msgs/CompressedImage`` of ``pixels`` encoded as ``png`` or ``jpeg`` with Pillow."""
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(out, format={"png": "PNG", "jpeg": "JPEG"}[fmt])
    return _t("sensor_msgs/msg/CompressedImage")(header=_header(stamp_ns, frame_id), format=fmt,
                                                 data=np.frombuffer(out.getvalue(), dtype=np.uint8))


def _pose(position, orientation):
    p = [float(v) for v in position]
    q = [float(v) for v in orientation]
    return _t("geometry_msgs/msg/Pose")(position=_t("geometry_msgs/msg/Point")(x=p[0], y=p[1], z=p[2]),
                                        orientation=_t("geometry_msgs/msg/Quaternion")(x=q[0], y=q[1], z=q[2], w=q[3]))


def pose_stamped_message(stamp_ns: int, frame_id: str, position, orientation=(0.0, 0.0, 0.0, 1.0)):
    """A ``geometry_msgs/PoseStamped``."""
    return _t("geometry_msgs/msg/PoseStamped")(header=_header(stamp_ns, frame_id), pose=_pose(position, orientation))


def odometry_message(stamp_ns: int, frame_id: str, child_frame_id: str, position, orientation=(0.0, 0.0, 0.0, 1.0)):
    """A ``nav_msgs/Odometry`` with zero twist and covariances."""
    zero = _t("geometry_msgs/msg/Vector3")(x=0.0, y=0.0, z=0.0)
    twist = _t("geometry_msgs/msg/TwistWithCovariance")(
        twist=_t("geometry_msgs/msg/Twist")(linear=zero, angular=zero), covariance=np.zeros(36))
    pose = _t("geometry_msgs/msg/PoseWithCovariance")(pose=_pose(position, orientation), covariance=np.zeros(36))
    return _t("nav_msgs/msg/Odometry")(header=_header(stamp_ns, frame_id), child_frame_id=child_frame_id,
                                       pose=pose, twist=twist)


def camera_info_message(stamp_ns: int, frame_id: str, width: int, height: int, fx: float, fy: float,
                        cx: float, cy: float):
    """A ``sensor_msgs/CameraInfo`` of an undistorted pinhole camera (focal lengths and centre in pixels)."""
    k = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64)
    p = np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], dtype=np.float64)
    roi = _t("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _t("sensor_msgs/msg/CameraInfo")(
        header=_header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0, roi=roi)


@dataclass
class BagMessage:
    """One message to write: ``msg`` is a message object, or raw CDR ``bytes`` (e.g. a corrupt payload)."""

    topic: str
    msgtype: str
    bag_time_ns: int
    msg: object


def write_bag(path: str | Path, messages: Iterable[BagMessage], storage: str = "sqlite3") -> Path:
    """Write ``messages`` to a new rosbag2 folder ``path`` (must not exist) with ``sqlite3`` or ``mcap`` storage."""
    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f"unknown storage {storage!r} (use sqlite3 or mcap)")
    path = Path(path)
    store = _typestore()
    with Writer(path, version=8, storage_plugin=plugins[storage]) as writer:
        connections = {}
        for m in messages:
            key = (m.topic, m.msgtype)
            if key not in connections:
                connections[key] = writer.add_connection(m.topic, m.msgtype, typestore=store)
            raw = m.msg if isinstance(m.msg, (bytes, bytearray)) else store.serialize_cdr(m.msg, m.msgtype)
            writer.write(connections[key], int(m.bag_time_ns), bytes(raw))
    return path
