"""The recall node's image outputs: ``recalled/image``, ``recalled/image/compressed``, ``recalled/camera_info``.

The compressed topic follows image_transport's naming (``<base>/compressed`` beside the raw
``<base>``) and compressed_image_transport's ``format`` field (``"rgb8; jpeg compressed rgb8"``,
``"mono8; png compressed mono8"``: the raw encoding, the codec, the encoding it decodes to), so
``image_transport`` republishers, RViz and Foxglove read it. JPEG or PNG by the
``compressed_format`` parameter, JPEG quality by ``jpeg_quality``. An image is compressed only
when the compressed topic has a subscriber.
"""

from __future__ import annotations

import array
import io

import numpy as np
from PIL import Image as PILImage

from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .params import ParamSpec, check_choice, check_range

__all__ = ["COMPRESSED_FORMATS", "COMPRESSED_PARAMETERS", "RecallOutputs", "check_compressed_parameters",
           "compressed_image_message", "encode_pixels", "image_pixels"]

COMPRESSED_FORMATS = ("jpeg", "png")

COMPRESSED_PARAMETERS = (
    ParamSpec("compressed_format", "jpeg", "recalled/image/compressed format: jpeg | png (lossless)"),
    ParamSpec("jpeg_quality", 90, "JPEG quality of recalled/image/compressed, 1..100"),
)


def check_compressed_parameters(problems: list, values: dict) -> None:
    check_choice(problems, values, "compressed_format", COMPRESSED_FORMATS)
    check_range(problems, values, "jpeg_quality", 1, 100)


def encode_pixels(pixels: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """uint8 ``[H, W]`` / ``[H, W, 3]`` pixels as JPEG or PNG bytes."""
    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"format must be one of {COMPRESSED_FORMATS}, got {fmt!r}")
    out = io.BytesIO()
    image = PILImage.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    if fmt == "jpeg":
        image.save(out, format="JPEG", quality=int(quality))
    else:
        image.save(out, format="PNG", compress_level=1)  # fast: a live topic, not an archive
    return out.getvalue()


def image_pixels(msg) -> np.ndarray:
    """uint8 ``[H, W]`` (mono8) or ``[H, W, 3]`` (rgb8) pixels of a ``sensor_msgs/Image`` (no copy)."""
    channels = {"mono8": 1, "rgb8": 3}.get(msg.encoding)
    if channels is None:
        raise ValueError(f"expected a mono8 or rgb8 image, got {msg.encoding!r}")
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    return rows.reshape(msg.height, msg.width) if channels == 1 else rows.reshape(msg.height, msg.width, 3)


def compressed_image_message(image: Image, fmt: str = "jpeg", quality: int = 90) -> CompressedImage:
    """``sensor_msgs/CompressedImage`` of an rgb8 / mono8 ``Image`` (same header)."""
    msg = CompressedImage(header=image.header, format=f"{image.encoding}; {fmt} compressed {image.encoding}")
    msg.data = array.array("B", encode_pixels(image_pixels(image), fmt, quality))
    return msg


class RecallOutputs:
    """The three recall topics of ``node`` with QoS ``qos``; ``values`` are the node's parameters
    (read at each publish, so ``compressed_format`` / ``jpeg_quality`` can change at run time)."""

    def __init__(self, node, qos, values: dict) -> None:
        self._values = values
        self.image = node.create_publisher(Image, "recalled/image", qos)
        self.compressed = node.create_publisher(CompressedImage, "recalled/image/compressed", qos)
        self.info = node.create_publisher(CameraInfo, "recalled/camera_info", qos)

    def publish(self, image: Image, info: CameraInfo) -> None:
        self.image.publish(image)
        if self.compressed.get_subscription_count():
            self.compressed.publish(compressed_image_message(image, self._values["compressed_format"],
                                                             int(self._values["jpeg_quality"])))
        self.info.publish(info)
