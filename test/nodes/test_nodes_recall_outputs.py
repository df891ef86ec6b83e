"""gaussvae_recall's recalled/image/compressed over DDS: PNG decodes to exactly the raw image, JPEG
to a close one; the format follows the compressed_format parameter."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from support.ros_graph import RosGraph, image_pixels, record_msg, wait_until

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import GetStats, Recall  # noqa: E402

from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402
from gaussvae_ros.nodes.recall_node import RecallNode  # noqa: E402
from gaussvae_ros.nodes.recall_outputs import compressed_image_message, encode_pixels  # noqa: E402

S = 1_000_000_000


def _decode(msg) -> np.ndarray:
    with PILImage.open(io.BytesIO(bytes(msg.data))) as image:
        return np.asarray(image)


def test_compressed_beside_raw(tmp_path):
    with RosGraph() as graph:
        graph.add(MemoryNode, {"database": str(tmp_path / "m.db")})
        recall = graph.add(RecallNode, {"database": str(tmp_path / "m.db"), "compressed_format": "png"})
        pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        graph.wait_for_subscribers(pub)
        pub.publish(record_msg(1 * S, (0.0, 0.0, 0.0)))
        pub.publish(record_msg(2 * S, (1.0, 0.0, 0.0), channels=1, encoding="mono8"))
        stats = graph.client(GetStats, "get_stats")
        wait_until(lambda: graph.call(stats, GetStats.Request()).count == 2, 20.0, "2 memories stored")
        raw = graph.collect(Image, "recalled/image")
        compressed = graph.collect(CompressedImage, "recalled/image/compressed")
        wait_until(lambda: recall._outputs.compressed.get_subscription_count() >= 1, 20.0, "compressed matched")
        wait_until(lambda: recall._outputs.image.get_subscription_count() >= 1, 20.0, "raw matched")
        client = graph.client(Recall, "recall")
        response = graph.call(client, Recall.Request(select=Recall.Request.SELECT_IDS, ids=[1, 2], width=96,
                                                     height=72, publish=True))
        assert response.success, response.message
        wait_until(lambda: len(raw) == 2 and len(compressed) == 2, 20.0, "raw and compressed images")
        for r, c, served in zip(raw, compressed, response.images):
            assert c.header == r.header == served.header
            assert c.format == f"{r.encoding}; png compressed {r.encoding}"
            np.testing.assert_array_equal(_decode(c), image_pixels(r))  # lossless
            np.testing.assert_array_equal(image_pixels(r), image_pixels(served))

        recall.set_parameters([Parameter("compressed_format", value="jpeg"), Parameter("jpeg_quality", value=95)])
        response = graph.call(client, Recall.Request(select=Recall.Request.SELECT_IDS, ids=[1], width=96, height=72,
                                                     publish=True))
        assert response.success, response.message
        wait_until(lambda: len(compressed) == 3, 20.0, "jpeg image")
        jpeg = compressed[-1]
        assert jpeg.format == "rgb8; jpeg compressed rgb8" and bytes(jpeg.data)[:2] == b"\xff\xd8"
        error = _decode(jpeg).astype(float) - image_pixels(raw[-1]).astype(float)
        psnr = 10 * np.log10(255.0 ** 2 / max(np.mean(error ** 2), 1e-12))
        assert psnr > 30.0, psnr


def test_compressed_message_without_graph():
    pixels = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    from gaussvae_ros.nodes.convert import image_message
    from std_msgs.msg import Header

    image = image_message(pixels, Header(frame_id="cam"))
    msg = compressed_image_message(image, "png")
    assert msg.header.frame_id == "cam"
    np.testing.assert_array_equal(_decode(msg), pixels)
    with pytest.raises(ValueError):
        encode_pixels(pixels, "webp")
