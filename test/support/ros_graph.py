"""Helpers for the node tests (no tests here): a private ROS graph per test, messages, images.

Each :class:`RosGraph` has its own rclpy context on a random domain id (1..100) with discovery
limited to localhost, and spins its nodes on a MultiThreadedExecutor in a background thread, so
a test drives real nodes over DDS from the test thread (publishers, subscriptions, service calls).
Its nodes and its client live in a random namespace (``graph.ns``), so that another graph that
happens to use the same domain id (other test runs on this machine) cannot answer its requests.
The modules need ``build_ros/env.sh`` sourced before Python starts (``make test`` does it); without
the generated interfaces the node tests skip.
"""

from __future__ import annotations

import io
import os
import random
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("gaussvae_ros_interfaces.msg", reason="build_ros/env.sh not sourced (make build)")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

#: Encoder parameters that make fits take milliseconds (tiny budget, few iterations).
FAST_ENCODER = {
    "n_gaussians": 24, "max_iters": 12, "threads": 1, "long_side": 48, "pose_wait_s": 0.05,
    "keyframe.min_interval_s": 0.0, "keyframe.duplicate_image_change": 0.0, "keyframe.min_image_change": 0.0,
}


def overrides(values: dict) -> list:
    return [Parameter(name, value=value) for name, value in values.items()]


class RosGraph:
    """Nodes spinning in a background executor on a private domain; use as a context manager."""

    def __init__(self, domain_id: int | None = None, threads: int = 4) -> None:
        self.domain_id = domain_id or random.randint(1, 100)
        self.ns = f"/t{random.randrange(16**8):08x}"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain_id)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self.client_node = Node("test_client", namespace=self.ns, context=self.context)
        self.executor.add_node(self.client_node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self.nodes: list = []

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races
            pass

    def add(self, node_class, params: dict | None = None, **kwargs):
        kwargs.setdefault("namespace", self.ns)
        node = node_class(context=self.context, parameter_overrides=overrides(params or {}), **kwargs)
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def remove(self, node) -> None:
        self.executor.remove_node(node)
        self.nodes.remove(node)
        node.destroy_node()

    def client(self, srv_type, name: str, timeout: float = 10.0):
        client = self.client_node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        return client

    def call(self, client, request, timeout: float = 30.0):
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda f: done.set())
        assert done.wait(timeout), f"no response from {client.srv_name} within {timeout} s"
        return future.result()

    def publisher(self, msg_type, topic: str, qos=10):
        return self.client_node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type, topic: str, qos=10) -> list:
        """Messages received on ``topic`` from now on (a list filled in the background)."""
        received: list = []
        self.client_node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> None:
        wait_until(lambda: publisher.get_subscription_count() >= count, timeout,
                   f"{publisher.topic_name} has no subscriber")

    def close(self) -> None:
        for node in list(self.nodes):
            self.remove(node)
        self.executor.shutdown(timeout_sec=2.0)
        self.client_node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "RosGraph":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what}")


# --- images -----------------------------------------------------------------------------------

def pattern_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 RGB [H, W, 3]: red left half, blue right half, bright green bar at the bottom, some noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (230, 30, 30)
    image[:, width // 2:] = (30, 30, 200)
    image[height * 3 // 4:, :, :] = (100, 250, 100)
    image = np.clip(image.astype(int) + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
    return image


def image_msg(pixels_rgb: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "camera"):
    """A sensor_msgs/Image of ``pixels_rgb`` (uint8 RGB) in ``encoding`` (rgb8, bgr8, rgba8, bgra8,
    mono8, mono16)."""
    import array

    from sensor_msgs.msg import Image

    gray = pixels_rgb.mean(axis=2)
    data = {
        "rgb8": lambda: pixels_rgb,
        "bgr8": lambda: pixels_rgb[:, :, ::-1],
        "rgba8": lambda: np.dstack([pixels_rgb, np.full(pixels_rgb.shape[:2], 255, np.uint8)]),
        "bgra8": lambda: np.dstack([pixels_rgb[:, :, ::-1], np.full(pixels_rgb.shape[:2], 255, np.uint8)]),
        "mono8": lambda: gray.astype(np.uint8),
        "mono16": lambda: (gray * 257).astype("<u2"),
    }[encoding]()
    data = np.ascontiguousarray(data)
    h, w = pixels_rgb.shape[:2]
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=data.nbytes // h)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", data.tobytes())
    return msg


def compressed_msg(pixels_rgb: np.ndarray, fmt: str, stamp_ns: int, frame_id: str = "camera"):
    import array

    from PIL import Image as PILImage
    from sensor_msgs.msg import CompressedImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels_rgb).save(buffer, format={"png": "PNG", "jpeg": "JPEG"}[fmt])
    msg = CompressedImage(format=fmt)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", buffer.getvalue())
    return msg


def image_pixels(msg) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] of an rgb8 / mono8 sensor_msgs/Image."""
    channels = {"rgb8": 3, "mono8": 1}[msg.encoding]
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    return data.reshape(msg.height, msg.width, channels).squeeze(-1) if channels == 1 else \
        data.reshape(msg.height, msg.width, channels)


# --- records ----------------------------------------------------------------------------------

_PAYLOADS: dict = {}


def payload(channels: int = 3) -> bytes:
    """A real gaussians-q payload of a small fitted test pattern (cached per channel count)."""
    if channels not in _PAYLOADS:
        from gaussvae_ros.core import encode_gaussians, fit_image

        image = pattern_image(24, 32)
        if channels == 1:
            image = image.mean(axis=2).astype(np.uint8)
        _PAYLOADS[channels] = encode_gaussians(fit_image(image, n_gaussians=16, max_iters=10, threads=1).gaussians)
    return _PAYLOADS[channels]


def record_msg(stamp_ns: int, position=None, *, topic: str = "/camera/image_raw", frame_id: str = "camera",
               pose_frame: str = "map", width: int = 64, height: int = 48, encoding: str = "rgb8",
               channels: int = 3, k=None, codec: str = "gaussians-q", model_id: str = "", psnr: float | None = 30.0,
               orientation=(0.0, 0.0, 0.0, 1.0), data: bytes | None = None):
    """A MemoryRecord message with a real payload."""
    import array

    from gaussvae_ros_interfaces.msg import MemoryRecord

    msg = MemoryRecord()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.source_topic = topic
    if position is not None:
        msg.has_pose = True
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in orientation)
        msg.pose_frame_id = pose_frame
    if k is not None:
        msg.has_camera_info = True
        msg.camera_info.k = [float(v) for v in k]
        msg.camera_info.d = [0.1, 0.01, 0.0, 0.0, 0.0]
        msg.camera_info.distortion_model = "plumb_bob"
    msg.width, msg.height, msg.encoding = width, height, encoding
    msg.codec_id, msg.model_id = codec, model_id
    if psnr is not None:
        msg.has_fit_quality, msg.psnr_db, msg.ssim = True, psnr, 0.8
    data = payload(channels) if data is None else data
    msg.payload_size = len(data)
    msg.payload = array.array("B", data)
    return msg
