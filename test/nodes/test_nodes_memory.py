"""gaussvae_memory over DDS: records in, every service round trip, malformed requests, retention,
persistence across a restart."""

import math
import time

import pytest

from support.ros_graph import RosGraph, record_msg, wait_until

from builtin_interfaces.msg import Time  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import DeleteMemories, GetStats, QueryByIds, QueryByPose, QueryByTime  # noqa: E402

from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402

S = 1_000_000_000
K = (100.0, 0.0, 32.0, 0.0, 100.0, 24.0, 0.0, 0.0, 1.0)
YAW90 = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))


def _time(seconds: float) -> Time:
    sec, nanosec = divmod(round(seconds * S), S)
    return Time(sec=sec, nanosec=nanosec)


class Memory:
    """A memory node on a fresh database with a record publisher and service clients."""

    def __init__(self, graph: RosGraph, database, **params) -> None:
        self.graph = graph
        self.node = graph.add(MemoryNode, {"database": str(database), **params})
        self.pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        graph.wait_for_subscribers(self.pub)
        self.time = graph.client(QueryByTime, "query_by_time")
        self.pose = graph.client(QueryByPose, "query_by_pose")
        self.ids = graph.client(QueryByIds, "query_by_ids")
        self.stats_client = graph.client(GetStats, "get_stats")
        self.delete_client = graph.client(DeleteMemories, "delete_memories")

    def publish(self, records, expect_count: int | None = None) -> None:
        for record in records:
            self.pub.publish(record)
        if expect_count is not None:
            wait_until(lambda: self.stats().count >= expect_count, 15.0, f"{expect_count} memories stored")

    def stats(self):
        response = self.graph.call(self.stats_client, GetStats.Request())
        assert response.success, response.message
        return response

    def by_time(self, start=0.0, end=0.0, limit=0, descending=False):
        request = QueryByTime.Request()
        request.query.start, request.query.end = _time(start), _time(end)
        request.query.limit, request.query.descending = limit, descending
        return self.graph.call(self.time, request)

    def by_pose(self, position=(0.0, 0.0, 0.0), radius=0.0, k=0, frame_id="map", limit=0, orientation=None,
                tolerance=0.0):
        request = QueryByPose.Request()
        q = request.query
        q.frame_id = frame_id
        q.position.x, q.position.y, q.position.z = (float(v) for v in position)
        q.radius, q.k, q.limit = float(radius), k, limit
        if orientation is not None:
            q.use_orientation = True
            q.orientation.x, q.orientation.y, q.orientation.z, q.orientation.w = (float(v) for v in orientation)
            q.orientation_tolerance = float(tolerance)
        return self.graph.call(self.pose, request)

    def by_ids(self, ids):
        return self.graph.call(self.ids, QueryByIds.Request(ids=list(ids)))

    def delete(self, ids=(), before=0.0, dry_run=False):
        return self.graph.call(self.delete_client,
                               DeleteMemories.Request(ids=list(ids), before=_time(before), dry_run=dry_run))


def _stamps(response) -> list[float]:
    return [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in response.memories]


@pytest.fixture
def graph():
    with RosGraph() as g:
        yield g


@pytest.fixture
def memory(graph, tmp_path):
    m = Memory(graph, tmp_path / "memories.db", allow_delete=True)
    # ids 1..10: stamps 1..10 s at x = 1..10 m in map; 11, 12 in odom; 13 without a pose
    records = [record_msg(i * S, (float(i), 0.0, 0.0), k=K if i % 2 else None, psnr=20.0 + i) for i in range(1, 11)]
    records += [record_msg((10 + i) * S, (5.0, 0.1 * i, 0.0), pose_frame="odom", frame_id="cam2",
                           topic="/cam2/image_raw") for i in (1, 2)]
    records += [record_msg(13 * S, None, psnr=None)]
    records[3] = record_msg(4 * S, (4.0, 0.0, 0.0), orientation=YAW90, psnr=24.0)
    m.publish(records, expect_count=13)
    return m


def test_query_by_time(memory):
    r = memory.by_time()
    assert r.success and _stamps(r) == [float(i) for i in range(1, 14)]
    assert [m.id for m in r.memories] == list(range(1, 14))
    first = r.memories[0]
    assert first.source_topic == "/camera/image_raw" and first.header.frame_id == "camera"
    assert (first.width, first.height, first.encoding, first.codec_id, first.model_id) == (64, 48, "rgb8",
                                                                                            "gaussians-q", "")
    assert first.has_pose and first.pose.position.x == 1.0 and first.pose_frame_id == "map"
    assert first.has_camera_info and list(first.camera_info.k) == list(K)
    assert first.has_fit_quality and first.psnr_db == pytest.approx(21.0) and first.payload_size > 0
    assert not r.memories[-1].has_pose and not r.memories[-1].has_fit_quality

    r = memory.by_time(limit=3, descending=True)
    assert r.success and _stamps(r) == [13.0, 12.0, 11.0]
    r = memory.by_time(start=3.0, end=5.0)
    assert r.success and _stamps(r) == [3.0, 4.0, 5.0]
    r = memory.by_time(start=12.0)
    assert _stamps(r) == [12.0, 13.0]
    r = memory.by_time(end=2.5)
    assert _stamps(r) == [1.0, 2.0]

    r = memory.by_time(start=5.0, end=3.0)
    assert not r.success and "inverted time range" in r.message and not r.memories
    assert memory.by_time(limit=1).success  # still alive


def test_query_by_pose(memory):
    r = memory.by_pose((5.0, 0.0, 0.0), radius=1.5)
    assert r.success, r.message
    assert [m.id for m in r.memories] == [5, 4, 6]  # nearest first, ties by id; odom memories left out
    assert list(r.distances) == [0.0, 1.0, 1.0]

    r = memory.by_pose((0.0, 0.0, 0.0), k=3)
    assert [m.id for m in r.memories] == [1, 2, 3] and list(r.distances) == [1.0, 2.0, 3.0]
    r = memory.by_pose((5.0, 0.0, 0.0), k=2, frame_id="odom")  # only the odom frame's memories
    assert [m.id for m in r.memories] == [11, 12]
    r = memory.by_pose((5.0, 0.05, 0.0), k=4)  # the two odom memories are nearest but in another frame
    assert [m.id for m in r.memories] == [5, 4, 6, 3]
    r = memory.by_pose((5.0, 0.0, 0.0), radius=3.0, k=2)
    assert [m.id for m in r.memories] == [5, 4]
    r = memory.by_pose((5.0, 0.0, 0.0), radius=3.0, limit=3)
    assert len(r.memories) == 3
    r = memory.by_pose((5.0, 0.0, 0.0), radius=10.0, orientation=YAW90, tolerance=0.1)
    assert [m.id for m in r.memories] == [4]
    r = memory.by_pose((5.0, 0.0, 0.0), radius=10.0, orientation=(0.0, 0.0, 0.0, 1.0), tolerance=0.1)
    assert 4 not in [m.id for m in r.memories] and len(r.memories) == 9
    r = memory.by_pose((50.0, 0.0, 0.0), radius=1.0)
    assert r.success and not r.memories


@pytest.mark.parametrize("query, expected", [
    (dict(frame_id="", radius=1.0), "frame_id must not be empty"),
    (dict(position=(math.nan, 0.0, 0.0), radius=1.0), "must be finite"),
    (dict(radius=-1.0), "radius must be a finite number >= 0"),
    (dict(radius=math.inf), "radius must be a finite number >= 0"),
    (dict(position=(1e308, 0.0, 0.0), radius=1.0), "out of range"),
    (dict(position=(0.0, -2e9, 0.0), k=1), "out of range"),
    (dict(radius=1e300), "radius 1e+300 m is out of range"),
    (dict(radius=1.0, orientation=(math.inf, 0.0, 0.0, 1.0), tolerance=0.1), "must be finite"),
    (dict(), "selects nothing"),
    (dict(k=4_000_000_000), "exceeds this server's max_results"),
    (dict(radius=1.0, orientation=(0.0, 0.0, 0.0, 2.0), tolerance=0.1), "unit quaternion"),
    (dict(radius=1.0, orientation=(0.0, 0.0, 0.0, 1.0), tolerance=4.0), "orientation_tolerance"),
])
def test_malformed_pose_queries(memory, query, expected):
    r = memory.by_pose(**query)
    assert not r.success and expected in r.message and not r.memories
    assert memory.by_pose(radius=100.0).success  # the node is alive


def test_query_by_ids(memory):
    r = memory.by_ids([3, 999, 1, 2**64 - 1, 3])
    assert r.success
    assert [m.id for m in r.memories] == [3, 1, 3]
    assert list(r.missing_ids) == [999, 2**64 - 1] and "2 ids not found" in r.message
    r = memory.by_ids([])
    assert not r.success and "must not be empty" in r.message
    assert memory.by_ids([13]).memories[0].id == 13


def test_get_stats(memory):
    s = memory.stats()
    assert (s.count, s.count_with_pose, s.count_with_camera_info) == (13, 12, 5)  # K on odd i
    assert (s.min_id, s.max_id) == (1, 13)
    assert (s.oldest_stamp.sec, s.newest_stamp.sec) == (1, 13)
    assert s.payload_bytes > 0 and s.storage_bytes > s.payload_bytes
    assert s.raw_bytes == 13 * 64 * 48 * 3
    psnrs = [21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 30.0, 30.0]
    assert s.mean_psnr_db == pytest.approx(sum(psnrs) / len(psnrs), abs=1e-4)
    assert s.mean_ssim == pytest.approx(0.8)
    assert list(s.codec_ids) == ["gaussians-q"] and list(s.model_ids) == [""]


def test_delete_memories(memory):
    r = memory.delete(ids=[2, 3, 999], dry_run=True)
    assert r.success and list(r.deleted_ids) == [2, 3] and list(r.missing_ids) == [999]
    assert "would delete 2" in r.message and memory.stats().count == 13
    r = memory.delete(ids=[3, 2, 999])
    assert r.success and list(r.deleted_ids) == [2, 3] and list(r.missing_ids) == [999]
    assert memory.stats().count == 11
    r = memory.delete(before=5.0)  # strictly before 5 s: 1 and 4 are left of those
    assert r.success and list(r.deleted_ids) == [1, 4]
    assert memory.by_time(end=5.0).memories[0].id == 5
    r = memory.delete(ids=[5], before=7.0)
    assert list(r.deleted_ids) == [5, 6]
    r = memory.delete()
    assert not r.success and "nothing selected" in r.message
    assert memory.stats().count == 7
    assert memory.by_pose((0.0, 0.0, 0.0), k=1).memories[0].id == 7  # the pose index follows deletes


def test_malformed_records_are_rejected(graph, tmp_path):
    memory = Memory(graph, tmp_path / "m.db")
    bad_size = record_msg(1 * S)
    bad_size.payload_size += 1
    no_codec = record_msg(2 * S, codec="")
    no_topic = record_msg(3 * S, topic="")
    zero_size = record_msg(4 * S, width=0)
    nan_pose = record_msg(5 * S, (math.nan, 0.0, 0.0))
    memory.publish([bad_size, no_codec, no_topic, zero_size, nan_pose, record_msg(6 * S)], expect_count=1)
    wait_until(lambda: memory.node.counters()["rejected"] == 5, 5.0, "5 rejected records")
    assert memory.stats().count == 1
    memory.publish([record_msg(6 * S)])  # the same frame again: a duplicate, not a second memory
    wait_until(lambda: memory.node.counters()["duplicates"] == 1, 5.0, "a duplicate")
    assert memory.stats().count == 1


def test_retention_keeps_the_budget(graph, tmp_path):
    memory = Memory(graph, tmp_path / "m.db", max_records=5)
    memory.publish([record_msg(i * S, (float(i), 0.0, 0.0)) for i in range(1, 13)])
    wait_until(lambda: memory.node.counters()["stored"] == 12, 15.0, "12 records stored")
    assert memory.stats().count == 5
    stamps = _stamps(memory.by_time())
    assert stamps[0] == 1.0 and stamps[-1] == 12.0  # thinning keeps the time span


def test_a_memory_node_started_after_the_records_were_published_still_stores_them(graph, tmp_path):
    """Records go out with MEMORY_QOS (the encoder's publisher): reliable, transient local, depth 50.
    A memory node that starts (or restarts) after the encoder published still receives the last 50."""
    early = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
    for i in range(1, 61):
        early.publish(record_msg(i * S, (float(i), 0.0, 0.0)))
    time.sleep(0.2)
    memory = Memory(graph, tmp_path / "m.db")  # subscribes only now
    wait_until(lambda: memory.stats().count >= 50, 15.0, "the 50 records published before the node started")
    time.sleep(0.3)
    assert memory.stats().count == 50
    assert _stamps(memory.by_time()) == [float(i) for i in range(11, 61)]  # the latest 50


def test_persistence_across_restart(graph, tmp_path):
    path = tmp_path / "m.db"
    memory = Memory(graph, path)
    memory.publish([record_msg(i * S, (float(i), 0.0, 0.0)) for i in range(1, 6)], expect_count=5)
    graph.client_node.destroy_publisher(memory.pub)  # no transient-local re-delivery to the new node
    graph.remove(memory.node)

    memory = Memory(graph, path)
    s = memory.stats()
    assert (s.count, s.max_id) == (5, 5)
    assert [m.id for m in memory.by_pose((5.0, 0.0, 0.0), k=2).memories] == [5, 4]
    memory.publish([record_msg(6 * S, (6.0, 0.0, 0.0))], expect_count=6)
    assert memory.stats().max_id == 6


def test_unexpected_errors_become_error_responses(graph, tmp_path, monkeypatch):
    memory = Memory(graph, tmp_path / "m.db")
    memory.publish([record_msg(1 * S)], expect_count=1)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(memory.node._store, "by_time", broken)
    r = memory.by_time()
    assert not r.success and "internal error: RuntimeError: disk on fire" in r.message
    monkeypatch.setattr(memory.node._store, "insert", broken)
    memory.publish([record_msg(2 * S)])
    time.sleep(0.5)
    monkeypatch.undo()
    assert memory.by_time().success and memory.stats().count == 1  # the node lived through both


#: name, accepted edge values, refused values (the node's documented ranges)
MEMORY_RANGES = [
    ("database", ["m.db"], [""]),
    ("expected_payload_bytes", [0, 1 << 30], [-1, (1 << 30) + 1]),
    ("max_records", [0, 10 ** 9], [-1]),
    ("max_bytes", [0, 1 << 40], [-1]),
    ("max_age_s", [0.0, 1e9], [-0.5, math.nan, math.inf]),
    ("retention_metres_per_second", [1e-12, 5.0], [0.0, -1.0, math.nan]),
    ("max_results", [1, 10_000_000], [0, -3, 10_000_001]),
    ("diagnostics_period_s", [1e-3, 3600.0], [0.0, 3600.5, math.nan]),
    ("write_queue_size", [0, 1_000_000], [-1, 1_000_001]),
    ("write_queue_max_age_s", [0.0, 86400.0], [-1.0, 86400.5, math.nan]),
    ("min_free_bytes", [0, 1 << 50], [-1, (1 << 50) + 1]),
    ("markers_period_s", [0.0, 3600.0], [-0.1, 3600.5, math.nan]),
    ("max_markers", [1, 100_000], [0, 100_001]),
    ("marker_shape", ["frustum", "arrow"], ["cube"]),
    ("marker_scale", [1e-6, 1e6], [0.0, 2e6]),
    ("marker_color", ["age", "codec"], ["red"]),
    ("marker_forward_axis", ["x", "z"], ["y"]),
    ("markers_frame_id", ["", "map"], []),
]


def test_parameter_ranges_are_checked_at_start_up_and_at_run_time(graph, tmp_path):
    from support.node_params import check_run_time, check_start_up, check_table

    from gaussvae_ros.nodes.memory_node import PARAMETERS, check_parameters

    check_table(PARAMETERS, check_parameters, MEMORY_RANGES)
    base = {"database": str(tmp_path / "m.db")}
    check_start_up(graph, MemoryNode, base, [(n, g, b) for n, g, b in MEMORY_RANGES if n != "database"])
    with pytest.raises(ValueError, match="database must not be empty"):
        graph.add(MemoryNode, {"database": ""})
    check_run_time(graph.add(MemoryNode, base), PARAMETERS, MEMORY_RANGES)


def test_a_max_results_change_caps_the_queries(memory):
    from rclpy.parameter import Parameter

    assert memory.node.set_parameters([Parameter("max_results", value=3)])[0].successful
    r = memory.by_time()
    assert r.success and len(r.memories) == 3 and "max_results=3" in r.message
    r = memory.by_time(limit=5)  # a limit above the cap is capped too
    assert r.success and len(r.memories) == 3 and "max_results=3" in r.message
    assert len(memory.by_time(limit=2).memories) == 2
    assert not memory.by_pose(k=4).success
    assert not memory.node.set_parameters([Parameter("max_results", value=0)])[0].successful
    assert len(memory.by_time().memories) == 3  # the refused change left the cap as it was
