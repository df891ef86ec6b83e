"""gaussvae_recall over DDS: by ids / time / pose, sizes, camera info scaling, publishing, refused
codecs and model ids, malformed requests; the codec registry; recall latency at 256 x 256."""

import statistics
import time

import numpy as np
import pytest

from support.ros_graph import RosGraph, pattern_image, record_msg, wait_until

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import GetStats, Recall  # noqa: E402

from gaussvae_ros.codecs import registry as codecs  # noqa: E402
from gaussvae_ros.nodes.convert import MEMORY_QOS, output_size  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402
from gaussvae_ros.nodes.recall_node import RecallNode  # noqa: E402

S = 1_000_000_000
K = (100.0, 0.0, 32.0, 0.0, 90.0, 24.0, 0.0, 0.0, 1.0)


class Setup:
    def __init__(self, graph, database, **recall_params):
        self.graph = graph
        graph.add(MemoryNode, {"database": str(database)})
        self.node = graph.add(RecallNode, {"database": str(database), "max_images": 5, "max_side": 4096,
                                           **recall_params})
        self.pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        graph.wait_for_subscribers(self.pub)
        self.recall = graph.client(Recall, "recall")
        self.stats = graph.client(GetStats, "get_stats")
        self.images = graph.collect(Image, "recalled/image")
        self.infos = graph.collect(CameraInfo, "recalled/camera_info")

    def store(self, records) -> None:
        count = self.graph.call(self.stats, GetStats.Request()).count
        for r in records:
            self.pub.publish(r)
        wait_until(lambda: self.graph.call(self.stats, GetStats.Request()).count >= count + len(records), 10.0,
                   "records stored")

    def call(self, **fields) -> Recall.Response:
        request = Recall.Request()
        for name, value in fields.items():
            setattr(request, name, value)
        return self.graph.call(self.recall, request)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with RosGraph() as graph:
        s = Setup(graph, tmp_path_factory.mktemp("recall") / "memories.db")
        # 1: colour with intrinsics, 2: gray, 3..6: colour along x, 7: unknown codec, 8: a model id the
        # codec does not take, 9: corrupt payload
        s.store([record_msg(1 * S, (0.0, 0.0, 0.0), k=K, frame_id="cam_a"),
                 record_msg(2 * S, (1.0, 0.0, 0.0), channels=1, encoding="mono8", frame_id="cam_b")]
                + [record_msg(i * S, (float(i), 0.0, 0.0)) for i in range(3, 7)]
                + [record_msg(7 * S, codec="mystery-codec"), record_msg(8 * S, model_id="vae-123"),
                   record_msg(9 * S, data=b"GS" + bytes(40))])
        yield s


@pytest.mark.parametrize("size, expected", [((0, 0), (64, 48)), ((32, 0), (32, 24)), ((0, 12), (16, 12)),
                                            ((20, 30), (20, 30)), ((640, 0), (640, 480))])
def test_recall_sizes_and_camera_info(setup, size, expected):
    r = setup.call(select=Recall.Request.SELECT_IDS, ids=[1], width=size[0], height=size[1])
    assert r.success, r.message
    image, info = r.images[0], r.camera_infos[0]
    assert (image.width, image.height, image.encoding, image.step) == (*expected, "rgb8", expected[0] * 3)
    assert len(image.data) == expected[0] * expected[1] * 3
    assert (image.header.stamp.sec, image.header.frame_id) == (1, "cam_a")
    assert info.header == image.header and (info.width, info.height) == expected
    sx, sy = expected[0] / 64, expected[1] / 48
    assert list(info.k) == pytest.approx([100 * sx, 0, 32 * sx, 0, 90 * sy, 24 * sy, 0, 0, 1])
    assert list(info.p) == pytest.approx([100 * sx, 0, 32 * sx, 0, 0, 90 * sy, 24 * sy, 0, 0, 0, 1, 0])
    assert list(info.r) == [1, 0, 0, 0, 1, 0, 0, 0, 1] and list(info.d) == [0.1, 0.01, 0.0, 0.0, 0.0]
    assert info.distortion_model == "plumb_bob"


def test_recall_colour_gray_and_order(setup):
    r = setup.call(select=Recall.Request.SELECT_IDS, ids=[2, 1, 2])
    assert r.success and list(r.ids) == [2, 1, 2]
    assert [i.encoding for i in r.images] == ["mono8", "rgb8", "mono8"]
    gray = r.camera_infos[0]
    assert (gray.width, gray.height) == (64, 48) and not any(gray.k)  # no intrinsics stored: zero matrices
    pixels = np.frombuffer(bytes(r.images[1].data), np.uint8).reshape(48, 64, 3)
    reference = pattern_image(24, 32)  # the payload is a fit of this pattern
    assert pixels[:, :24, 0].mean() > pixels[:, :24, 2].mean() + 60  # red left
    assert abs(float(pixels.mean()) - float(reference.mean())) < 20


def test_recall_by_time_and_pose(setup):
    r = setup.call(select=Recall.Request.SELECT_TIME, width=16)
    assert r.success and list(r.ids) == [1, 2, 3, 4, 5] and "capped at this server's max_results=5" in r.message
    request = Recall.Request(select=Recall.Request.SELECT_TIME, width=16)
    request.time_query.start.sec, request.time_query.end.sec, request.time_query.descending = 3, 5, True
    r = setup.graph.call(setup.recall, request)
    assert r.success and list(r.ids) == [5, 4, 3] and all(i.width == 16 and i.height == 12 for i in r.images)
    request = Recall.Request(select=Recall.Request.SELECT_POSE, width=16)
    request.pose_query.frame_id, request.pose_query.k = "map", 2
    request.pose_query.position.x = 4.2
    r = setup.graph.call(setup.recall, request)
    assert r.success and list(r.ids) == [4, 5]
    request.pose_query.frame_id = "elsewhere"
    r = setup.graph.call(setup.recall, request)
    assert r.success and list(r.ids) == [] and r.message.startswith("recalled 0 images")


def test_recall_publishes(setup):
    before = len(setup.images)
    r = setup.call(select=Recall.Request.SELECT_IDS, ids=[1, 2], width=32, publish=True)
    assert r.success and "published" in r.message
    wait_until(lambda: len(setup.images) >= before + 2 and len(setup.infos) >= before + 2, 5.0, "recalled images")
    images, infos = setup.images[before:before + 2], setup.infos[before:before + 2]
    assert [(i.header.stamp.sec, i.header.frame_id, i.encoding) for i in images] == [(1, "cam_a", "rgb8"),
                                                                                      (2, "cam_b", "mono8")]
    assert [(i.header.stamp.sec, i.header.frame_id, i.width, i.height) for i in infos] == [(1, "cam_a", 32, 24),
                                                                                          (2, "cam_b", 32, 24)]
    assert infos[0].k[0] == pytest.approx(50.0)


def test_undecodable_memories_cost_no_other_memory_of_the_request(setup):
    r = setup.call(select=Recall.Request.SELECT_IDS, ids=[1, 9, 2], width=16)
    assert r.success and list(r.ids) == [1, 2] and len(r.images) == len(r.camera_infos) == 2
    assert list(r.failed_ids) == [9] and "cannot decode memory 9" in r.failures[0]
    assert "1 could not be decoded" in r.message
    request = Recall.Request(select=Recall.Request.SELECT_TIME, width=16)  # a time range over damaged memories
    request.time_query.start.sec, request.time_query.end.sec = 6, 9
    r = setup.graph.call(setup.recall, request)
    assert r.success and list(r.ids) == [6] and list(r.failed_ids) == [7, 8, 9]
    assert [f.split(" (")[0] for f in r.failures] == [f"cannot decode memory {i}" for i in (7, 8, 9)]


def test_latent_models_named_in_the_parameters_decode_their_memories(tmp_path):
    from conftest import write_tiny_latent_model
    from gaussvae_ros.core import Gaussians
    from gaussvae_ros.codecs import latent as lc

    model = write_tiny_latent_model(tmp_path / "models" / "robot.pt", n=24)
    bundle = lc.load_bundle(model)
    rng = np.random.default_rng(0)
    gaussians = Gaussians(rng.uniform(0, 1, (24, 2)), np.full((24, 2), 0.1), np.zeros(24), rng.uniform(0, 1, (24, 3)))
    record = record_msg(1 * S, (0.0, 0.0, 0.0), codec="vae-latent", model_id=bundle.model_id,
                        data=lc.encode_latent(bundle, gaussians))
    with RosGraph() as graph:
        with pytest.raises(ValueError, match="latent_models: .*missing.pt"):
            graph.add(RecallNode, {"database": str(tmp_path / "m.db"), "latent_models": [str(tmp_path / "missing.pt")]})
        lc.unregister_latent_model(bundle.model_id)  # as in a fresh recall process
        s = Setup(graph, tmp_path / "m.db", latent_models=[str(tmp_path / "models")])
        s.store([record])
        r = s.call(select=Recall.Request.SELECT_IDS, ids=[1], width=32)
        assert r.success and list(r.ids) == [1] and r.images[0].width == 32, r.message
    lc.unregister_latent_model(bundle.model_id)


@pytest.mark.parametrize("fields, expected", [
    (dict(select=0, ids=[]), "ids must not be empty"),
    (dict(select=0, ids=[1, 424242]), "unknown memory ids [424242]"),
    (dict(select=0, ids=[1] * 6), "at most 5 per request"),
    (dict(select=7), "unknown select value 7"),
    (dict(select=0, ids=[1], width=5000), "exceeds max_side=4096"),
    (dict(select=0, ids=[1], height=4096), "over max_side=4096"),  # the kept aspect makes it 5461 wide
    (dict(select=0, ids=[7]), "unknown codec id 'mystery-codec'"),
    (dict(select=0, ids=[8]), "takes no model, but the memory names model 'vae-123'"),
    (dict(select=0, ids=[9]), "cannot decode memory 9"),
])
def test_malformed_recalls(setup, fields, expected):
    r = setup.call(**fields)
    assert not r.success and expected in r.message, r.message
    assert not r.images and not r.ids
    assert setup.call(select=0, ids=[1], width=8).success  # alive


def test_registered_codec_is_used(setup):
    from gaussvae_ros.core import decode_gaussians

    calls = []

    def decode(payload, model_id):
        calls.append(model_id)
        return decode_gaussians(payload)

    codecs.register_codec("mystery-codec", decode, model_ids=None)
    try:
        r = setup.call(select=0, ids=[7], width=8)
        assert r.success and calls == [""]
    finally:
        codecs.unregister_codec("mystery-codec")
    assert "gaussians-q" in codecs.known_codecs() and "mystery-codec" not in codecs.known_codecs()


def test_recall_without_a_database(tmp_path):
    with RosGraph() as graph:
        graph.add(RecallNode, {"database": str(tmp_path / "none.db")})
        r = graph.call(graph.client(Recall, "recall"), Recall.Request(select=0, ids=[1]))
        assert not r.success and "no memory store at" in r.message
        assert not (tmp_path / "none.db").exists()


def test_codec_registry_errors():
    with pytest.raises(codecs.UnknownCodecError, match="unknown codec id 'x'; this process decodes: gaussians-q"):
        codecs.decode_payload(b"", "x")
    with pytest.raises(codecs.ModelMismatchError, match="takes no model"):
        codecs.decode_payload(b"", "gaussians-q", "m1")
    with pytest.raises(ValueError, match="registered already"):
        codecs.register_codec("gaussians-q", lambda p, m: None)
    codecs.register_codec("needs-model", lambda p, m: None, model_ids=("m1", "m2"))
    try:
        with pytest.raises(codecs.ModelMismatchError, match="cannot decode with model 'm3'"):
            codecs.decode_payload(b"", "needs-model", "m3")
        with pytest.raises(codecs.ModelMismatchError):
            codecs.decode_payload(b"", "needs-model", "")
        assert codecs.decode_payload(b"", "needs-model", "m2") is None
    finally:
        codecs.unregister_codec("needs-model")


def test_output_size():
    assert output_size(1226, 370, 0, 0) == (1226, 370)
    assert output_size(1226, 370, 256, 0) == (256, 77)
    assert output_size(1226, 370, 0, 77) == (255, 77)
    assert output_size(10, 1000, 1, 0) == (1, 100)
    assert output_size(1000, 10, 1, 0) == (1, 1)


def test_recall_latency_256(setup):
    """One realistic memory (512 Gaussians of a 256-wide frame) recalled at 256 x 256, ~50 calls."""
    from gaussvae_ros.core import encode_gaussians, fit_image

    image = pattern_image(171, 256)
    payload = encode_gaussians(fit_image(image, n_gaussians=512, max_iters=5, threads=1).gaussians)
    setup.store([record_msg(50 * S, (50.0, 0.0, 0.0), width=1226, height=370, data=payload)])
    request = Recall.Request(select=Recall.Request.SELECT_TIME, width=256, height=256)
    request.time_query.start.sec = request.time_query.end.sec = 50
    seconds = []
    for _ in range(52):
        started = time.perf_counter()
        r = setup.graph.call(setup.recall, request)
        seconds.append(time.perf_counter() - started)
        assert r.success and r.images[0].width == 256 and r.images[0].height == 256
    median_ms = statistics.median(seconds[2:]) * 1e3
    print(f"\nrecall latency, 1 memory (512 Gaussians) at 256x256 through the service: median {median_ms:.1f} ms, "
          f"p90 {statistics.quantiles(seconds[2:], n=10)[-1] * 1e3:.1f} ms over {len(seconds) - 2} calls")
    assert median_ms < 500


#: name, accepted edge values, refused values (the node's documented ranges)
RECALL_RANGES = [
    ("database", ["m.db"], [""]),
    ("max_images", [1, 100_000], [0, 100_001]),
    ("max_side", [1, 1 << 16], [0, (1 << 16) + 1]),
    ("max_response_bytes", [1, 1 << 40], [0, -5]),
    ("render_threads", [0, 1024], [-1, 1025]),
    ("device", ["auto", "cpu", "cuda"], ["tpu", ""]),
    ("publish_depth", [1, 10_000], [0, 10_001]),
    ("compressed_format", ["jpeg", "png"], ["webp"]),
    ("jpeg_quality", [1, 100], [0, 101]),
    ("max_action_images", [1, 10_000_000], [0, 10_000_001]),
    ("max_action_bytes", [1, 1 << 40], [0]),
    ("action_feedback_depth", [1, 10_000], [0, 10_001]),
]


def test_parameter_ranges_are_checked_at_start_up_and_at_run_time(tmp_path):
    from support.node_params import check_run_time, check_start_up, check_table

    from gaussvae_ros.nodes.recall_node import PARAMETERS, check_parameters

    check_table(PARAMETERS, check_parameters, RECALL_RANGES)
    base = {"database": str(tmp_path / "m.db")}
    with RosGraph() as graph:
        check_start_up(graph, RecallNode, base, [(n, g, b) for n, g, b in RECALL_RANGES if n != "database"])
        with pytest.raises(ValueError, match="database must not be empty"):
            graph.add(RecallNode, {"database": ""})
        node = graph.add(RecallNode, base)
        check_run_time(node, PARAMETERS, RECALL_RANGES)
        from rclpy.parameter import Parameter

        assert node.set_parameters([Parameter("max_images", value=2)])[0].successful
        assert node._values["max_images"] == 2  # what _select caps with
