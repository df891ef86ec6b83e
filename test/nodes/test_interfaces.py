"""gaussvae_ros_interfaces (msg/): the generated types import, survive CDR serialization unchanged, and
carry real service calls between two DDS participants.

Needs the package built and its environment sourced:
    scripts/build_interfaces.sh && . build_ros/env.sh
and skips when it is not importable.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

interface_msgs = pytest.importorskip(
    "gaussvae_ros_interfaces.msg", reason="interfaces not built/sourced: scripts/build_interfaces.sh && . build_ros/env.sh"
)
interface_srvs = pytest.importorskip("gaussvae_ros_interfaces.srv")

import rclpy  # noqa: E402  (after the skip: without the interfaces there is nothing to test)
from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point, Pose, Quaternion  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from gaussvae_ros_interfaces.msg import MemoryInfo, MemoryRecord, PoseQuery, TimeQuery  # noqa: E402
from gaussvae_ros_interfaces.srv import (  # noqa: E402
    DeleteMemories,
    GetStats,
    QueryByIds,
    QueryByPose,
    QueryByTime,
    Recall,
)

REPO = Path(__file__).resolve().parents[2]
SERVICES = (DeleteMemories, GetStats, QueryByIds, QueryByPose, QueryByTime, Recall)


def round_trip(message):
    """``message`` serialized to CDR bytes and back, through the rmw typesupport."""
    return deserialize_message(serialize_message(message), type(message))


def camera_info(width: int, height: int) -> CameraInfo:
    """Pinhole intrinsics (px) of a width x height camera with a little radial distortion."""
    fx = fy = 0.9 * width
    cx, cy = width / 2.0, height / 2.0
    return CameraInfo(
        header=Header(stamp=Time(sec=1_700_000_000, nanosec=5), frame_id="cam0_optical"),
        width=width, height=height, distortion_model="plumb_bob",
        d=[-0.28, 0.07, 0.0002, 0.00002, 0.0],
        k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    )


def memory_record(record_id: int = 0, payload: bytes = bytes(range(256)) * 3) -> MemoryRecord:
    """A fully populated record: every field away from its default."""
    return MemoryRecord(
        header=Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id="cam0_optical"),
        id=record_id, source_topic="/cam0/image_raw",
        has_pose=True,
        pose=Pose(position=Point(x=1.5, y=-2.25, z=0.75), orientation=Quaternion(x=0.0, y=0.0, z=0.6, w=0.8)),
        pose_frame_id="map",
        has_camera_info=True, camera_info=camera_info(752, 480),
        width=752, height=480, encoding="mono8",
        codec_id="gaussvae-gauss2d-v1", model_id="vae-2025-11-25",
        has_fit_quality=True, psnr_db=31.25, ssim=0.875,
        payload_size=len(payload), payload=payload,
    )


def info_of(record: MemoryRecord) -> MemoryInfo:
    """The MemoryInfo of a record, copied field by field by name."""
    return MemoryInfo(**{name: getattr(record, name) for name in MemoryInfo.get_fields_and_field_types()})


def test_every_message_and_service_type_is_generated():
    for message_type in (MemoryInfo, MemoryRecord, PoseQuery, TimeQuery):
        assert message_type.__module__.startswith("gaussvae_ros_interfaces.msg.")
        assert round_trip(message_type()) == message_type()
    for service_type in SERVICES:
        assert round_trip(service_type.Request()) == service_type.Request()
        assert round_trip(service_type.Response()) == service_type.Response()


@pytest.mark.parametrize("service_type", SERVICES, ids=lambda s: s.__name__)
def test_every_response_reports_success_and_message(service_type):
    fields = service_type.Response.get_fields_and_field_types()
    assert fields["success"] == "boolean"
    assert fields["message"] == "string"


def test_memory_info_is_memory_record_without_payload():
    # Same names, types and order, so code can copy fields by name between the two.
    record_fields = dict(MemoryRecord.get_fields_and_field_types())
    assert record_fields.pop("payload") == "sequence<uint8>"
    assert list(MemoryInfo.get_fields_and_field_types().items()) == list(record_fields.items())


def test_memory_record_round_trips_unchanged():
    record = memory_record(record_id=2**64 - 1)  # ids are uint64 end to end
    decoded = round_trip(record)
    assert decoded == record
    assert bytes(decoded.payload) == bytes(range(256)) * 3
    assert decoded.camera_info.k[2] == pytest.approx(376.0)
    assert round_trip(info_of(record)) == info_of(record)


@settings(max_examples=40, deadline=None)
@given(
    record_id=st.integers(0, 2**64 - 1),
    payload=st.binary(max_size=4096),
    stamp=st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 999_999_999)),
    position=st.tuples(*[st.floats(-1e6, 1e6)] * 3),
    quality=st.tuples(st.floats(0.0, 100.0, width=32), st.floats(-1.0, 1.0, width=32)),
    source_topic=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
    .filter(lambda s: "\0" not in s),
)
def test_memory_record_round_trip_holds_for_any_field_values(record_id, payload, stamp, position, quality, source_topic):
    record = memory_record(record_id, payload)
    record.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
    record.pose.position = Point(x=position[0], y=position[1], z=position[2])
    record.psnr_db, record.ssim = quality
    record.source_topic = source_topic
    assert round_trip(record) == record


def test_not_measured_fit_quality_survives_as_nan():
    record = memory_record()
    record.has_fit_quality, record.psnr_db, record.ssim = False, math.nan, math.nan
    decoded = round_trip(record)
    assert not decoded.has_fit_quality and math.isnan(decoded.psnr_db) and math.isnan(decoded.ssim)


def test_recall_selectors_are_distinct_and_ids_is_the_default():
    selectors = {Recall.Request.SELECT_IDS, Recall.Request.SELECT_TIME, Recall.Request.SELECT_POSE}
    assert len(selectors) == 3
    assert Recall.Request().select == Recall.Request.SELECT_IDS


def test_queries_embedded_in_requests_round_trip():
    time_query = TimeQuery(start=Time(sec=10), end=Time(sec=20, nanosec=5), limit=7, descending=True)
    pose_query = PoseQuery(frame_id="map", position=Point(x=1.0, y=2.0, z=3.0), radius=2.5, k=4,
                           use_orientation=True, orientation=Quaternion(z=1.0, w=0.0),
                           orientation_tolerance=math.pi / 8, limit=3)
    requests = [
        QueryByTime.Request(query=time_query),
        QueryByPose.Request(query=pose_query),
        Recall.Request(select=Recall.Request.SELECT_POSE, pose_query=pose_query, time_query=time_query,
                       ids=[3, 1, 2], width=320, height=0, publish=True),
        DeleteMemories.Request(ids=[9, 8], before=Time(sec=99), dry_run=True),
    ]
    for request in requests:
        assert round_trip(request) == request
    assert PoseQuery().orientation == Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)  # identity by default


def test_env_file_makes_the_package_usable_from_a_fresh_shell():
    # the interface build of this venv (make test-compat / test-jazzy build their own)
    env_file = Path(os.environ.get("GAUSSVAE_ROS_ENV", REPO / "build_ros" / "env.sh"))
    if not env_file.is_file():
        pytest.skip("no build_ros/env.sh: run scripts/build_interfaces.sh")
    check = ("from gaussvae_ros_interfaces.msg import MemoryRecord; from rclpy.serialization import "
             "serialize_message; print(len(serialize_message(MemoryRecord())))")
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(["sh", "-c", f'. "{env_file}" && "{sys.executable}" -c "{check}"'],
                            env=clean_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 0


# --- a real service round trip over DDS: server and client in two participants (contexts) -------------


class DictMemoryStore:
    """A memory store over a dict: answers QueryByIds and Recall following the interface contract."""

    def __init__(self, records: dict[int, MemoryRecord]):
        self.records = records

    def query_by_ids(self, request, response):
        if not request.ids:
            response.success, response.message = False, "ids is empty"
            return response
        response.memories = [info_of(self.records[i]) for i in request.ids if i in self.records]
        response.missing_ids = [i for i in request.ids if i not in self.records]
        response.success, response.message = True, f"{len(response.memories)} found"
        return response

    def recall(self, request, response):
        if request.select != Recall.Request.SELECT_IDS or not request.ids:
            response.success, response.message = False, "only a non-empty SELECT_IDS is supported here"
            return response
        for record_id in request.ids:
            record = self.records[record_id]
            width = request.width or record.width
            height = request.height or record.height
            # A gray ramp stands in for the decoded image (mono8, rows of `width` bytes).
            pixels = bytes((x + y) % 256 for y in range(height) for x in range(width))
            response.images.append(Image(header=record.header, width=width, height=height,
                                         encoding="mono8", step=width, data=pixels))
            info = camera_info(width, height)
            info.header = record.header
            response.camera_infos.append(info)
            response.ids.append(record_id)
        response.success, response.message = True, f"recalled {len(response.ids)}"
        return response


@pytest.fixture
def dds_pair(monkeypatch):
    """(server_node, client_node, spin_until) in two contexts on a private, localhost-only domain."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain_id = random.randint(100, 200)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    contexts = [Context(), Context()]
    for context in contexts:
        rclpy.init(context=context, domain_id=domain_id)
    server_node = rclpy.create_node("dict_memory_store", context=contexts[0])
    client_node = rclpy.create_node("memory_client", context=contexts[1])
    server_executor = SingleThreadedExecutor(context=contexts[0])
    server_executor.add_node(server_node)
    server_thread = threading.Thread(target=server_executor.spin, daemon=True)
    server_thread.start()
    client_executor = SingleThreadedExecutor(context=contexts[1])
    client_executor.add_node(client_node)

    def spin_until(future, timeout_sec=15.0):
        client_executor.spin_until_future_complete(future, timeout_sec=timeout_sec)
        assert future.done(), "no response within %.0f s" % timeout_sec
        return future.result()

    yield server_node, client_node, spin_until

    server_executor.shutdown()
    client_executor.shutdown()
    for node in (server_node, client_node):
        node.destroy_node()
    for context in contexts:
        context.try_shutdown()
    server_thread.join(timeout=5)


def test_query_by_ids_service_round_trip_over_dds(dds_pair):
    server_node, client_node, spin_until = dds_pair
    store = DictMemoryStore({7: memory_record(7), 8: memory_record(8)})
    server_node.create_service(QueryByIds, "memory/query_by_ids", store.query_by_ids)
    client = client_node.create_client(QueryByIds, "memory/query_by_ids")
    assert client.wait_for_service(timeout_sec=15.0), "service not discovered"

    response = spin_until(client.call_async(QueryByIds.Request(ids=[8, 99, 7])))
    assert response.success, response.message
    assert [m.id for m in response.memories] == [8, 7]
    assert list(response.missing_ids) == [99]
    assert response.memories[1] == info_of(memory_record(7))

    malformed = spin_until(client.call_async(QueryByIds.Request(ids=[])))
    assert not malformed.success and malformed.message == "ids is empty"
    assert len(malformed.memories) == 0


def test_recall_returns_images_and_scaled_camera_infos_over_dds(dds_pair):
    server_node, client_node, spin_until = dds_pair
    store = DictMemoryStore({3: memory_record(3)})
    server_node.create_service(Recall, "memory/recall", store.recall)
    client = client_node.create_client(Recall, "memory/recall")
    assert client.wait_for_service(timeout_sec=15.0), "service not discovered"

    # 376 x 240 mono8: a ~90 kB response, larger than one UDP datagram.
    response = spin_until(client.call_async(Recall.Request(ids=[3], width=376, height=240)))
    assert response.success, response.message
    assert list(response.ids) == [3]
    (image,), (info,) = response.images, response.camera_infos
    assert (image.width, image.height, image.encoding) == (376, 240, "mono8")
    assert bytes(image.data) == bytes((x + y) % 256 for y in range(240) for x in range(376))
    assert image.header == memory_record(3).header
    assert (info.width, info.height) == (376, 240)
    assert info.k[2] == pytest.approx(188.0)
