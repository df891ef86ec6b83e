"""gaussvae_recall's recall_memories action over DDS: N memories stream as N feedback images (the
same pixels as the recall service), the byte limit truncates, a cancel stops the stream."""

import threading

import numpy as np
import pytest

from support.ros_graph import RosGraph, image_pixels, record_msg, wait_until

from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from gaussvae_ros_interfaces.action import RecallMemories  # noqa: E402
from gaussvae_ros_interfaces.msg import MemoryRecord  # noqa: E402
from gaussvae_ros_interfaces.srv import GetStats, Recall  # noqa: E402

from gaussvae_ros.nodes.convert import MEMORY_QOS  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402
from gaussvae_ros.nodes.recall_node import RecallNode  # noqa: E402

S = 1_000_000_000
N = 12


def _wait(future, timeout: float = 60.0):
    done = threading.Event()
    future.add_done_callback(lambda f: done.set())
    assert done.wait(timeout), "no answer from the action server"
    return future.result()


class Setup:
    def __init__(self, graph, database):
        self.graph = graph
        graph.add(MemoryNode, {"database": str(database)})
        self.recall_node = graph.add(RecallNode, {"database": str(database), "action_feedback_depth": 100})
        pub = graph.publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        graph.wait_for_subscribers(pub)
        for i in range(1, N + 1):
            pub.publish(record_msg(i * S, (float(i), 0.0, 0.0)))
        stats = graph.client(GetStats, "get_stats")
        wait_until(lambda: graph.call(stats, GetStats.Request()).count == N, 30.0, f"{N} memories stored")
        self.recall = graph.client(Recall, "recall")
        self.action = ActionClient(graph.client_node, RecallMemories, "recall_memories")
        assert self.action.wait_for_server(timeout_sec=20.0), "recall_memories not available"
        # The feedback topic itself, deep: rclpy's ActionClient drops feedback that comes after the
        # result, and the result may overtake the last feedback messages.
        self.feedback = {}
        graph.client_node.create_subscription(
            RecallMemories.Impl.FeedbackMessage, "recall_memories/_action/feedback",
            lambda m: self.feedback.setdefault(bytes(m.goal_id.uuid), []).append(m.feedback),
            QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))

    def goal(self, goal):
        handle = _wait(self.action.send_goal_async(goal))
        assert handle.accepted
        return handle, self.feedback.setdefault(bytes(handle.goal_id.uuid), [])

    def send(self, goal):
        handle, feedback = self.goal(goal)
        response = _wait(handle.get_result_async(), 120.0)
        return response.status, response.result, feedback


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with RosGraph() as graph:
        yield Setup(graph, tmp_path_factory.mktemp("action") / "m.db")


def _time_goal(**fields):
    goal = RecallMemories.Goal(select=RecallMemories.Goal.SELECT_TIME, **fields)
    return goal


def test_streams_n_images_matching_the_service(setup):
    images = setup.graph.collect(Image, "recalled/image", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    wait_until(lambda: setup.recall_node._outputs.image.get_subscription_count() >= 1, 20.0, "recalled/image matched")
    status, result, feedback = setup.send(_time_goal(width=40, height=30, publish=True))
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
    wait_until(lambda: len(feedback) == N, 20.0, "N feedback images")  # the result may overtake the last ones
    assert [f.index for f in feedback] == list(range(1, N + 1))
    assert all(f.total == N for f in feedback) and list(result.ids) == [f.id for f in feedback]
    assert result.total_bytes == N * 40 * 30 * 3 == feedback[-1].total_bytes and not result.truncated
    served = setup.graph.call(setup.recall, Recall.Request(select=Recall.Request.SELECT_IDS, ids=list(result.ids[:5]),
                                                           width=40, height=30))
    assert served.success, served.message
    for f, image in zip(feedback, served.images):
        assert f.image.header == image.header and f.camera_info.width == 40
        np.testing.assert_array_equal(image_pixels(f.image), image_pixels(image))
    wait_until(lambda: len(images) == N, 20.0, "published on recalled/image too")


def test_by_ids_and_byte_limit(setup):
    goal = RecallMemories.Goal(select=RecallMemories.Goal.SELECT_IDS, ids=[3, 1, 2], width=20, height=10)
    status, result, feedback = setup.send(goal)
    assert result.success and list(result.ids) == [3, 1, 2]
    wait_until(lambda: [f.id for f in feedback] == [3, 1, 2], 20.0, "feedback in the requested order")
    goal.max_total_bytes = 2 * 20 * 10 * 3 + 1
    status, result, feedback = setup.send(goal)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success and result.truncated
    assert list(result.ids) == [3, 1]
    wait_until(lambda: len(feedback) == 2, 20.0, "2 feedback images")
    goal.max_total_bytes = 10
    status, result, _ = setup.send(goal)
    assert status == GoalStatus.STATUS_ABORTED and not result.success and "alone exceeds" in result.message
    status, result, _ = setup.send(RecallMemories.Goal(select=RecallMemories.Goal.SELECT_IDS, ids=[999]))
    assert status == GoalStatus.STATUS_ABORTED and "999" in result.message


def test_cancel_stops_the_stream(setup):
    # Large images: each takes a while to render, so the cancel arrives long before the last one.
    handle, feedback = setup.goal(_time_goal(width=2048, height=1536))
    wait_until(lambda: feedback, 60.0, "the first image")
    _wait(handle.cancel_goal_async())
    response = _wait(handle.get_result_async(), 120.0)
    assert response.status == GoalStatus.STATUS_CANCELED and not response.result.success, response.result.message
    assert 1 <= len(response.result.ids) < N and "canceled" in response.result.message
    wait_until(lambda: len(feedback) >= len(response.result.ids), 10.0, "feedback of every sent image")
