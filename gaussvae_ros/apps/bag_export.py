"""A memory store as a ROS 2 recording (MCAP): ``gaussvae db export FILE --bag OUT.mcap``.

Topics, each message stamped (and recorded at) its memory's capture time:

    ``/memories``                  gaussvae_ros_interfaces/MemoryRecord: the memory itself (payload,
                                   pose, intrinsics, fit quality), offered reliable + transient local
                                   like the encoder's, so ``gaussvae play`` / ``ros2 bag play`` into a
                                   memory node stores the same memories again
    ``/recalled/image/compressed`` sensor_msgs/CompressedImage: the memory recalled (PNG or JPEG)
    ``/recalled/camera_info``      sensor_msgs/CameraInfo of that image
    ``/memory_pose``               geometry_msgs/PoseStamped: the memory's pose (memories with one)
    ``/memory_poses``              visualization_msgs/MarkerArray: every memory's marker, as the memory
                                   node publishes it, once at the start (transient local)
    ``/memory_pose_array``         geometry_msgs/PoseArray of the same poses, once at the start

``OUT.mcap`` is one MCAP file (what Foxglove opens; ``ros2 bag play OUT.mcap``; rosbags and the
``mcap`` library read it); any other ``OUT`` is a rosbag2 folder (``metadata.yaml`` + MCAP file).
Messages are serialized by rclpy (the running ROS 2's definitions), their schemas written from
the same distribution's definitions (rosbags' Kilted type store plus this package's interfaces
from their installed ``.msg`` files).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gaussvae_ros.codecs import render_memory
from gaussvae_ros.nodes.convert import camera_info_from_intrinsics, image_message, ns_to_time, output_size
from gaussvae_ros.nodes.markers import marker_array, pose_array, pose_frame
from gaussvae_ros.nodes.recall_outputs import compressed_image_message
from gaussvae_ros.store.markers import memory_marker

__all__ = ["ExportReport", "export_bag", "record_message"]

#: (topic, type) of what is written, in this order per memory.
TOPICS = {
    "memories": ("/memories", "gaussvae_ros_interfaces/msg/MemoryRecord"),
    "image": ("/recalled/image/compressed", "sensor_msgs/msg/CompressedImage"),
    "info": ("/recalled/camera_info", "sensor_msgs/msg/CameraInfo"),
    "pose": ("/memory_pose", "geometry_msgs/msg/PoseStamped"),
    "markers": ("/memory_poses", "visualization_msgs/msg/MarkerArray"),
    "poses": ("/memory_pose_array", "geometry_msgs/msg/PoseArray"),
}
_LATCHED = {"memories", "markers", "poses"}


@dataclass
class ExportReport:
    path: str
    memories: int = 0
    images: int = 0
    markers: int = 0
    errors: list = field(default_factory=list)  # {"id", "error"} of memories that could not be recalled

    def to_dict(self) -> dict:
        return {"bag": self.path, "memories": self.memories, "images": self.images, "markers": self.markers,
                "errors": self.errors}


def record_message(record, payload: bytes):
    """A stored memory as the ``MemoryRecord`` the encoder would have published."""
    import array

    from std_msgs.msg import Header
    from gaussvae_ros_interfaces.msg import MemoryRecord

    msg = MemoryRecord(source_topic=record.topic, width=int(record.width), height=int(record.height),
                       encoding=record.encoding, codec_id=record.codec, model_id=record.model_id)
    msg.header = Header(stamp=ns_to_time(record.stamp_ns), frame_id=record.camera_frame_id)
    if record.pose is not None:
        (x, y, z), (qx, qy, qz, qw) = record.pose.position, record.pose.orientation
        msg.has_pose = True
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(x), float(y), float(z)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = float(qx), float(qy), float(qz), float(qw)
        msg.pose_frame_id = record.pose_frame_id
    if record.intrinsics is not None:
        msg.has_camera_info = True
        msg.camera_info = camera_info_from_intrinsics(record.intrinsics, record.width, record.height, msg.header)
    if record.psnr is not None or record.ssim is not None:
        msg.has_fit_quality = True
        msg.psnr_db = float("nan") if record.psnr is None else float(record.psnr)
        msg.ssim = float("nan") if record.ssim is None else float(record.ssim)
    msg.payload_size = len(payload)
    msg.payload = array.array("B", payload)
    return msg


def _typestore():
    """rosbags' Kilted type store plus gaussvae_ros_interfaces from its installed .msg files."""
    from ament_index_python.packages import get_package_share_directory
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    share = Path(get_package_share_directory("gaussvae_ros_interfaces")) / "msg"
    types = {}
    for path in sorted(share.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"gaussvae_ros_interfaces/msg/{path.stem}"))
    store.register(types)
    return store


def _latched_qos():
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=0, nsec=0)
    return [Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                durability=QosDurability.TRANSIENT_LOCAL, deadline=never, lifespan=never,
                liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=never,
                avoid_ros_namespace_conventions=False)]


def export_bag(store, records, out, size=None, image_format: str = "jpeg", jpeg_quality: int = 90,
               marker_shape: str = "frustum", marker_scale: float = 0.5, marker_color: str = "age",
               forward_axis: str = "x", progress=None) -> ExportReport:
    """Write ``records`` (StoredMemory of ``store``, oldest first) to the recording ``out``.

    ``size`` = (width, height) of the recalled images (None = each memory's own size).
    """
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import Header

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; give a new path")
    out.parent.mkdir(parents=True, exist_ok=True)
    single_file = out.suffix == ".mcap"
    # One MCAP file: written as a rosbag2 folder beside it, the file moved out, the folder removed.
    folder = Path(tempfile.mkdtemp(prefix=".gaussvae_export_", dir=out.parent)) / out.stem if single_file else out
    report = ExportReport(str(out))
    typestore = _typestore()
    records = sorted(records, key=lambda r: (r.stamp_ns, r.id))
    try:
        with Writer(folder, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            connections = {key: writer.add_connection(topic, msgtype, typestore=typestore,
                                                      offered_qos_profiles=_latched_qos() if key in _LATCHED else ())
                           for key, (topic, msgtype) in TOPICS.items()}

            def write(key, msg, stamp_ns):
                writer.write(connections[key], int(stamp_ns), serialize_message(msg))

            markers = [m for m in (memory_marker(r, marker_shape, marker_scale, forward_axis) for r in records) if m]
            if records:
                start = records[0].stamp_ns
                stamp = ns_to_time(start)
                write("markers", marker_array(markers, marker_color, marker_scale), start)
                write("poses", pose_array(markers, pose_frame(markers), stamp), start)
                report.markers = len(markers)
            for n, record in enumerate(records):
                payload = store.load_payload(record.id)
                write("memories", record_message(record, payload), record.stamp_ns)
                report.memories += 1
                header = Header(stamp=ns_to_time(record.stamp_ns), frame_id=record.camera_frame_id)
                if record.pose is not None:
                    pose = PoseStamped(header=Header(stamp=header.stamp, frame_id=record.pose_frame_id))
                    (pose.pose.position.x, pose.pose.position.y, pose.pose.position.z) = record.pose.position
                    o = record.pose.orientation
                    pose.pose.orientation.x, pose.pose.orientation.y = float(o[0]), float(o[1])
                    pose.pose.orientation.z, pose.pose.orientation.w = float(o[2]), float(o[3])
                    write("pose", pose, record.stamp_ns)
                w, h = output_size(record.width, record.height, *(size or (0, 0)))
                try:
                    pixels = render_memory(payload, record.codec, record.model_id, w, h)
                except ValueError as exc:  # one undecodable memory costs no other
                    report.errors.append({"id": record.id, "error": str(exc)})
                    continue
                image = image_message(np.ascontiguousarray(pixels), header)
                write("image", compressed_image_message(image, image_format, jpeg_quality), record.stamp_ns)
                write("info", camera_info_from_intrinsics(record.intrinsics, record.width, record.height, header, w, h),
                      record.stamp_ns)
                report.images += 1
                if progress is not None:
                    progress(n + 1, len(records))
        if single_file:
            (mcap,) = folder.glob("*.mcap")
            shutil.move(str(mcap), out)
    finally:
        if single_file:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return report
