"""gaussvae_memory's memory_poses (MarkerArray) and memory_pose_array over DDS: a subscriber that
joins late receives every memory marker; markers follow inserts, deletes and retention."""

import pytest

from support.ros_graph import RosGraph, record_msg, wait_until

from geometry_msgs.msg import PoseArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import DeleteMemories, GetStats, QueryByTime  # noqa: E402

from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.markers import MARKERS_QOS  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402

S = 1_000_000_000


def _memory_ids(array: MarkerArray, ns: str = "memories") -> list[int]:
    return sorted(m.id for m in array.markers if m.ns == ns and m.action == Marker.ADD)


@pytest.fixture
def graph():
    with RosGraph() as g:
        yield g


def _stored_ids(graph, by_time) -> list[int]:
    response = graph.call(by_time, QueryByTime.Request())
    assert response.success, response.message
    return [m.id for m in response.memories]


def test_late_subscriber_gets_every_marker_and_markers_follow_changes(graph, tmp_path):
    graph.add(MemoryNode, {"database": str(tmp_path / "m.db"), "markers_period_s": 0.1, "max_records": 6,
                           "allow_delete": True})
    pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
    graph.wait_for_subscribers(pub)
    stats = graph.client(GetStats, "get_stats")
    by_time = graph.client(QueryByTime, "query_by_time")
    for i in range(1, 5):
        pub.publish(record_msg(i * S, (float(i), 0.5, 0.0)))
    pub.publish(record_msg(5 * S, None))  # no pose: no marker
    wait_until(lambda: graph.call(stats, GetStats.Request()).count == 5, 20.0, "5 memories stored")
    ids = _stored_ids(graph, by_time)
    posed = ids[:4]

    # Joins after everything was stored and published: the latched set arrives all the same.
    markers = graph.collect(MarkerArray, "memory_poses", MARKERS_QOS)
    poses = graph.collect(PoseArray, "memory_pose_array", MARKERS_QOS)
    wait_until(lambda: markers and _memory_ids(markers[-1]) == posed, 20.0, "late subscriber: all markers")
    latest = markers[-1]
    assert latest.markers[0].action == Marker.DELETEALL  # each message is the whole set
    assert _memory_ids(latest, "memory_labels") == posed
    body = next(m for m in latest.markers if m.ns == "memories" and m.id == posed[2])
    assert body.header.frame_id == "map" and body.type == Marker.LINE_LIST and len(body.points) == 16
    assert (body.pose.position.x, body.pose.position.y) == (3.0, 0.5)
    label = next(m for m in latest.markers if m.ns == "memory_labels" and m.id == posed[2])
    assert label.text.startswith(f"#{posed[2]} ") and label.type == Marker.TEXT_VIEW_FACING
    colours = [(m.color.r, m.color.g, m.color.b) for m in latest.markers if m.ns == "memories"]
    assert colours[0] != colours[-1]  # coloured by age
    wait_until(lambda: poses and len(poses[-1].poses) == 4, 20.0, "pose array")
    assert poses[-1].header.frame_id == "map" and [p.position.x for p in poses[-1].poses] == [1.0, 2.0, 3.0, 4.0]

    # A delete removes its marker.
    deleted = graph.call(graph.client(DeleteMemories, "delete_memories"), DeleteMemories.Request(ids=[posed[1]]))
    assert deleted.success, deleted.message
    wait_until(lambda: _memory_ids(markers[-1]) == [posed[0], posed[2], posed[3]], 20.0,
               "marker of the deleted memory gone")
    # An insert adds one; retention (max_records 6) then drops memories and their markers go too.
    for i in range(6, 9):
        pub.publish(record_msg(i * S, (float(i), 0.5, 0.0)))
    wait_until(lambda: graph.call(stats, GetStats.Request()).count == 6, 20.0, "retention down to 6")
    kept = _posed(graph, by_time)
    wait_until(lambda: _memory_ids(markers[-1]) == kept, 20.0, "markers after retention")
    assert max(kept) in _memory_ids(markers[-1])  # the newest insert is shown


def _posed(graph, by_time) -> list[int]:
    response = graph.call(by_time, QueryByTime.Request())
    return sorted(m.id for m in response.memories if m.has_pose)


def test_arrows_coloured_by_codec(graph, tmp_path):
    graph.add(MemoryNode, {"database": str(tmp_path / "m.db"), "markers_period_s": 0.1, "marker_shape": "arrow",
                           "marker_color": "codec", "marker_scale": 2.0})
    pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
    graph.wait_for_subscribers(pub)
    markers = graph.collect(MarkerArray, "memory_poses", MARKERS_QOS)
    for i in range(1, 3):
        pub.publish(record_msg(i * S, (float(i), 0.0, 0.0), pose_frame="odom"))
    wait_until(lambda: markers and len(_memory_ids(markers[-1])) == 2, 20.0, "two markers")
    bodies = [m for m in markers[-1].markers if m.ns == "memories"]
    assert all(m.type == Marker.ARROW and m.scale.x == 2.0 and m.header.frame_id == "odom" for m in bodies)
    assert bodies[0].color == bodies[1].color  # same codec, same colour
