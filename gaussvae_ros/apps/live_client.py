"""A client of the running memory graph over DDS: ``gaussvae recall`` and ``gaussvae query``.

What ``ros2 service call`` / ``ros2 action send_goal`` would do, readable: :class:`LiveClient`
opens its own rclpy context (``ROS_DOMAIN_ID`` and discovery settings from the environment, as
every ROS 2 tool), finds the services in ``namespace`` (the graph's, ``gaussvae graph -n``), calls
them and waits at most ``timeout_s`` for a server and for each answer; a server that does not
answer raises :class:`NoServer` (a ``TimeoutError``) naming the service and what to check.

Requests are built by :func:`time_query`, :func:`pose_query`, :func:`recall_request` and
:func:`recall_goal` from plain numbers (seconds, metres); answers come back as the ROS messages.
"""

from __future__ import annotations

import threading
import time
import uuid

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from gaussvae_ros_interfaces.action import RecallMemories
from gaussvae_ros_interfaces.msg import PoseQuery, TimeQuery
from gaussvae_ros_interfaces.srv import GetStats, QueryByIds, QueryByPose, QueryByTime, Recall

from gaussvae_ros.nodes.convert import ns_to_time

__all__ = ["LiveClient", "NoServer", "Selection", "pose_query", "recall_goal", "recall_request", "time_query"]


class NoServer(TimeoutError):
    """No server answered in time."""


class Selection:
    """Which memories: ``ids``, or a pose query (``near`` + ``radius`` and/or ``k``), or a time range
    (``start`` / ``end`` seconds, None = open; the default selects every memory)."""

    def __init__(self, ids=None, near=None, radius=None, k=None, frame_id="map", start=None, end=None, limit=0,
                 descending=False) -> None:
        self.ids = [int(i) for i in ids] if ids else []
        self.near, self.radius, self.k, self.frame_id = near, radius, k, frame_id
        self.start, self.end, self.limit, self.descending = start, end, int(limit or 0), descending
        if self.ids and near is not None:
            raise ValueError("select by ids or by --near, not both")
        if near is None and (radius is not None or k is not None):
            raise ValueError("--radius and --k need --near X Y Z")
        if near is not None and radius is None and k is None:
            self.k = 5

    @property
    def kind(self) -> str:
        return "ids" if self.ids else "pose" if self.near is not None else "time"


def _stamp(seconds):
    return ns_to_time(0 if seconds is None else round(float(seconds) * 1e9))


def time_query(selection: Selection) -> TimeQuery:
    return TimeQuery(start=_stamp(selection.start), end=_stamp(selection.end), limit=selection.limit,
                     descending=bool(selection.descending))


def pose_query(selection: Selection) -> PoseQuery:
    q = PoseQuery(frame_id=selection.frame_id, radius=float(selection.radius or 0.0), k=int(selection.k or 0),
                  limit=selection.limit)
    q.position.x, q.position.y, q.position.z = (float(v) for v in selection.near)
    return q


def _fill(request, selection: Selection, width: int, height: int, publish: bool):
    request.select = {"ids": Recall.Request.SELECT_IDS, "time": Recall.Request.SELECT_TIME,
                      "pose": Recall.Request.SELECT_POSE}[selection.kind]
    request.ids = selection.ids
    request.time_query = time_query(selection)
    if selection.kind == "pose":
        request.pose_query = pose_query(selection)
    request.width, request.height, request.publish = int(width), int(height), bool(publish)
    return request


def recall_request(selection: Selection, width: int = 0, height: int = 0, publish: bool = False) -> Recall.Request:
    return _fill(Recall.Request(), selection, width, height, publish)


def recall_goal(selection: Selection, width: int = 0, height: int = 0, publish: bool = False,
                max_total_bytes: int = 0) -> RecallMemories.Goal:
    goal = _fill(RecallMemories.Goal(), selection, width, height, publish)
    goal.max_total_bytes = int(max_total_bytes)
    return goal


class LiveClient:
    """Service and action calls to a running graph in ``namespace``; use as a context manager."""

    def __init__(self, namespace: str = "", timeout_s: float = 5.0) -> None:
        self.timeout_s = float(timeout_s)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node(f"gaussvae_cli_{uuid.uuid4().hex[:8]}", namespace=namespace or "/", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown races
            pass

    def _wait(self, future, what: str, timeout_s: float | None = None):
        done = threading.Event()
        future.add_done_callback(lambda f: done.set())
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if not done.wait(timeout_s):
            raise NoServer(f"{what}: no answer within {timeout_s:g} s")
        return future.result()

    def call(self, srv_type, name: str, request, answer_timeout_s: float = 120.0):
        """The response of service ``name``; NoServer when it is not there within ``timeout_s``."""
        client = self.node.create_client(srv_type, name)
        resolved = self.node.resolve_service_name(name)
        try:
            if not client.wait_for_service(timeout_sec=self.timeout_s):
                raise NoServer(f"no {resolved} service answered within {self.timeout_s:g} s (is the "
                               f"node running, in this namespace and ROS_DOMAIN_ID?)")
            return self._wait(client.call_async(request), resolved, answer_timeout_s)
        finally:
            self.node.destroy_client(client)

    def query(self, selection: Selection):
        """``QueryByIds`` / ``QueryByPose`` / ``QueryByTime`` response of the memory node."""
        if selection.kind == "ids":
            return self.call(QueryByIds, "query_by_ids", QueryByIds.Request(ids=selection.ids))
        if selection.kind == "pose":
            return self.call(QueryByPose, "query_by_pose", QueryByPose.Request(query=pose_query(selection)))
        return self.call(QueryByTime, "query_by_time", QueryByTime.Request(query=time_query(selection)))

    def stats(self):
        return self.call(GetStats, "get_stats", GetStats.Request())

    def recall(self, selection: Selection, width: int = 0, height: int = 0, publish: bool = False):
        """The ``recall`` service's response."""
        return self.call(Recall, "recall", recall_request(selection, width, height, publish))

    def recall_stream(self, goal: RecallMemories.Goal, on_image, answer_timeout_s: float = 3600.0,
                      feedback_wait_s: float = 10.0):
        """Run a ``recall_memories`` goal; ``on_image(id, image)`` once per image the result lists, in
        order; returns ``(status, result)``.

        The feedback is read from the action's feedback topic directly (rclpy's ActionClient drops
        feedback that arrives after the result, and the result may overtake the last images), with
        a deep history; images the result lists but no feedback brought within ``feedback_wait_s``
        are fetched again through the ``recall`` service.
        """
        client = ActionClient(self.node, RecallMemories, "recall_memories")
        received: dict[bytes, dict] = {}
        lock = threading.Lock()

        def on_feedback(msg) -> None:
            with lock:
                received.setdefault(bytes(msg.goal_id.uuid), {})[int(msg.feedback.id)] = msg.feedback

        feedback_sub = self.node.create_subscription(RecallMemories.Impl.FeedbackMessage,
                                                     "recall_memories/_action/feedback", on_feedback,
                                                     QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        try:
            if not client.wait_for_server(timeout_sec=self.timeout_s):
                name = self.node.resolve_service_name("recall_memories")
                raise NoServer(f"no {name} action server answered within {self.timeout_s:g} s (is "
                               "gaussvae_recall running, in this namespace and ROS_DOMAIN_ID?)")
            handle = self._wait(client.send_goal_async(goal), "recall_memories goal")
            if not handle.accepted:
                raise RuntimeError("recall_memories goal rejected")
            response = self._wait(handle.get_result_async(), "recall_memories result", answer_timeout_s)
            result, key = response.result, bytes(handle.goal_id.uuid)
            wanted = [int(i) for i in result.ids]
            deadline = time.monotonic() + feedback_wait_s
            while time.monotonic() < deadline:
                with lock:
                    if all(i in received.get(key, {}) for i in wanted):
                        break
                time.sleep(0.02)
            with lock:
                got = dict(received.get(key, {}))
            missing = [i for i in wanted if i not in got]
            fetched = {}
            for start in range(0, len(missing), 50):  # the service's default max_images is 100
                r = self.recall(Selection(ids=missing[start:start + 50]), goal.width, goal.height)
                if not r.success:
                    raise RuntimeError(f"cannot fetch {len(missing)} images the feedback lost: {r.message}")
                fetched.update(zip((int(i) for i in r.ids), r.images))
            for i in wanted:
                on_image(i, got[i].image if i in got else fetched[i])
            return response.status, result
        finally:
            self.node.destroy_subscription(feedback_sub)
            client.destroy()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "LiveClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
