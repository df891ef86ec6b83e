"""Conversions between ROS messages and the ROS-free store/core types, and shared node helpers.

* stamps: ``builtin_interfaces/Time`` <-> integer nanoseconds;
* ``gaussvae_ros_interfaces/MemoryRecord`` -> :class:`gaussvae_ros.store.Memory` (what the memory
  node stores) and stored :class:`~gaussvae_ros.store.StoredMemory` -> ``MemoryInfo`` (what
  queries return);
* camera intrinsics -> ``sensor_msgs/CameraInfo`` scaled to any image size;
* numpy images -> ``sensor_msgs/Image`` (``mono8`` / ``rgb8``);
* the QoS profiles of the node graph, device selection and a diagnostics status builder.

Store limits the message contract has to live with: the store keeps K, the distortion model and
D of a camera, not R, P, binning or ROI. Camera infos rebuilt from it therefore have R = identity,
P = [K | 0] (a monocular camera) and zero binning / ROI; the size is the memory's original size.
"""

from __future__ import annotations

import array
import functools
import math

import numpy as np

from gaussvae_ros.store import CameraIntrinsics, Memory
from gaussvae_ros.store import Pose as StoredPose

# The ROS message types are imported inside the functions that build them, and torch inside
# device_for: the demo and the tests use the time conversions here without a ROS message build, and
# the memory node never needs torch (~0.9 s).

__all__ = [
    "MEMORY_QOS", "NS_PER_S", "camera_info_from_intrinsics", "device_for", "diagnostic_status",
    "image_message", "info_from_record", "memory_from_record_msg", "ns_to_time", "output_size",
    "time_to_ns",
]

NS_PER_S = 1_000_000_000


def _memory_qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    # Reliable: a record is the only copy of a fitted frame. Transient-local with depth 50: a memory
    # node that starts (or restarts) after the encoder still gets the last 50 records; the store's
    # key (topic, camera frame, stamp) makes a second delivery a no-op. Volatile subscribers
    # (ros2 topic echo) match too.
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class _LazyQos:
    def __init__(self, factory):
        self._factory, self._value = factory, None

    def get(self):
        if self._value is None:
            self._value = self._factory()
        return self._value


MEMORY_QOS = _LazyQos(_memory_qos)


# --- time -------------------------------------------------------------------------------------

def time_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (or anything with ``sec``/``nanosec``) -> int ns."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_time(ns: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


# --- records ------------------------------------------------------------------------------------

def _finite_or_none(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def memory_from_record_msg(msg):
    """A ``MemoryRecord`` message as a :class:`gaussvae_ros.store.Memory` to insert.

    Raises:
        ValueError: the record is malformed (empty topic or codec, zero size, payload_size not the
            payload length, non-finite pose or intrinsics...).
    """
    payload = msg.payload.tobytes() if hasattr(msg.payload, "tobytes") else bytes(msg.payload)
    if int(msg.payload_size) != len(payload):
        raise ValueError(f"payload_size {msg.payload_size} is not the payload length {len(payload)}")
    if not payload:
        raise ValueError("empty payload")
    if not msg.codec_id:
        raise ValueError("codec_id is empty")
    pose = None
    if msg.has_pose:
        p, o = msg.pose.position, msg.pose.orientation
        pose = StoredPose((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))
    intrinsics = None
    if msg.has_camera_info:
        info = msg.camera_info
        intrinsics = CameraIntrinsics(tuple(float(v) for v in info.k), str(info.distortion_model),
                                      tuple(float(v) for v in info.d))
    psnr = ssim = None
    if msg.has_fit_quality:
        psnr, ssim = _finite_or_none(msg.psnr_db), _finite_or_none(msg.ssim)
    return Memory(
        stamp_ns=time_to_ns(msg.header.stamp), topic=str(msg.source_topic), camera_frame_id=str(msg.header.frame_id),
        payload=payload, width=int(msg.width), height=int(msg.height), encoding=str(msg.encoding),
        codec=str(msg.codec_id), model_id=str(msg.model_id), pose=pose,
        pose_frame_id=str(msg.pose_frame_id) if pose is not None else "", intrinsics=intrinsics, psnr=psnr, ssim=ssim)


def _header(stamp_ns: int, frame_id: str):
    from std_msgs.msg import Header

    return Header(stamp=ns_to_time(stamp_ns), frame_id=frame_id)


def camera_info_from_intrinsics(intrinsics, width: int, height: int, header, out_width: int | None = None,
                                out_height: int | None = None):
    """A ``sensor_msgs/CameraInfo`` for an image of ``out_width x out_height`` taken by a camera
    calibrated at ``width x height``: K and P scaled by the size ratio per axis (fx, cx by the
    width ratio, fy, cy by the height ratio, the usual resize rule of image_proc), D unchanged,
    R identity, P = [K | 0]. Without intrinsics, only header and size are set (matrices zero)."""
    from sensor_msgs.msg import CameraInfo

    out_width = width if out_width is None else out_width
    out_height = height if out_height is None else out_height
    info = CameraInfo(header=header, width=int(out_width), height=int(out_height))
    if intrinsics is None:
        return info
    sx, sy = out_width / width, out_height / height
    k = np.asarray(intrinsics.k, dtype=np.float64).reshape(3, 3).copy()
    k[0, :] *= sx
    k[1, :] *= sy
    info.k = k.reshape(-1).tolist()
    info.distortion_model = intrinsics.distortion_model
    info.d = [float(v) for v in intrinsics.d]
    info.r = np.eye(3).reshape(-1).tolist()
    info.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
    return info


def info_from_record(record):
    """A stored :class:`~gaussvae_ros.store.StoredMemory` as a ``MemoryInfo`` message (no payload)."""
    from geometry_msgs.msg import Point, Pose, Quaternion
    from gaussvae_ros_interfaces.msg import MemoryInfo

    header = _header(record.stamp_ns, record.camera_frame_id)
    info = MemoryInfo(header=header, id=int(record.id), source_topic=record.topic, width=int(record.width),
                      height=int(record.height), encoding=record.encoding, codec_id=record.codec,
                      model_id=record.model_id, payload_size=int(record.payload_size))
    if record.pose is not None:
        (x, y, z), (qx, qy, qz, qw) = record.pose.position, record.pose.orientation
        info.has_pose = True
        info.pose = Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
        info.pose_frame_id = record.pose_frame_id
    if record.intrinsics is not None:
        info.has_camera_info = True
        info.camera_info = camera_info_from_intrinsics(record.intrinsics, record.width, record.height, header)
    if record.psnr is not None or record.ssim is not None:
        info.has_fit_quality = True
        info.psnr_db = float("nan") if record.psnr is None else float(record.psnr)
        info.ssim = float("nan") if record.ssim is None else float(record.ssim)
    return info


# --- images -------------------------------------------------------------------------------------

def image_message(pixels: np.ndarray, header):
    """uint8 ``[H, W]`` (mono8) or ``[H, W, 3]`` (rgb8) pixels as a ``sensor_msgs/Image``."""
    from sensor_msgs.msg import Image

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        encoding, channels = "mono8", 1
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        encoding, channels = "rgb8", 3
    else:
        raise ValueError(f"expected [H, W] or [H, W, 3] pixels, got shape {pixels.shape}")
    h, w = pixels.shape[:2]
    msg = Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=w * channels)
    msg.data = array.array("B", pixels.tobytes())  # an array.array skips rclpy's per-element checks
    return msg


def output_size(width: int, height: int, requested_width: int, requested_height: int) -> tuple[int, int]:
    """Recall size: 0 x 0 = original; one side 0 = from the original aspect ratio; both = exact."""
    if requested_width and requested_height:
        return int(requested_width), int(requested_height)
    if requested_width:
        return int(requested_width), max(1, round(requested_width * height / width))
    if requested_height:
        return max(1, round(requested_height * width / height)), int(requested_height)
    return int(width), int(height)


# --- devices and diagnostics --------------------------------------------------------------------

def device_for(requested: str, logger=None) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without CUDA falls back to ``cpu``
    with a warning on ``logger``."""
    import torch

    available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if requested == "cuda" and not available:
        if logger is not None:
            logger.warning("device 'cuda' requested but CUDA is not available: falling back to cpu")
        return "cpu"
    return requested


def diagnostic_status(name: str, hardware_id: str, level: str, message: str, values: dict):
    """A ``diagnostic_msgs/DiagnosticStatus``; ``level`` is ``ok``, ``warn`` or ``error``."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    levels = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR}
    return DiagnosticStatus(level=levels[level], name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=str(k), value=_format_value(v)) for k, v in values.items()])


def _format_value(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def guarded_service(method):
    """Wrap a service callback ``method(self, request, response)`` so that an unexpected exception
    becomes ``success = false`` with the error in ``message`` (logged) instead of ending the
    executor's spin: a bad request or a bug in one answer must never take the node down."""
    @functools.wraps(method)
    def wrapper(self, request, response):
        try:
            return method(self, request, response)
        except Exception as exc:  # last line of defence; expected errors are handled inside
            self.get_logger().error(f"{method.__name__}: {type(exc).__name__}: {exc}")
            response.success, response.message = False, f"internal error: {type(exc).__name__}: {exc}"
            return response

    return wrapper


def guarded_callback(method):
    """Wrap a subscription callback so that an unexpected exception is logged, not raised into the
    executor (which would stop the node)."""
    @functools.wraps(method)
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except Exception as exc:
            self.get_logger().error(f"{method.__name__}: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)
            return None

    return wrapper
