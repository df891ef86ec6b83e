"""Live replay (gaussvae_ros.apps.player, ``gaussvae play``): a subscriber receives every message of a
recording over DDS with its stamps intact, paced at the rate factor, with /clock."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from gaussvae_ros.bag.writer import (BagMessage, camera_info_message, image_message, odometry_message,  # noqa: E402
                                     pose_stamped_message, write_bag)
from gaussvae_ros.apps.player import PlayOptions, Player, message_class  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000
N = 12
PERIOD_NS = 100_000_000  # 10 Hz: 1.1 s of bag time


@pytest.fixture(autouse=True, scope="module")
def dds_env():
    """DDS on loopback, in a domain of this run's own (kept when the caller chose one)."""
    saved = {k: os.environ.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")}
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _stamp(i: int) -> int:
    return T0 + i * PERIOD_NS + 1234  # odd nanoseconds: must survive the trip


def _messages(corrupt: bool = False) -> list[BagMessage]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(N):
        s = _stamp(i)
        pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        out.append(BagMessage("/cam/image_raw", "sensor_msgs/msg/Image", s, image_message(s, "cam_optical", pixels)))
        out.append(BagMessage("/cam/camera_info", "sensor_msgs/msg/CameraInfo", s,
                              camera_info_message(s, "cam_optical", 8, 6, 5.0, 5.0, 4.0, 3.0)))
        out.append(BagMessage("/pose", "geometry_msgs/msg/PoseStamped", s + 1,
                              pose_stamped_message(s, "map", (i * 0.5, 1.0, 2.0))))
        out.append(BagMessage("/odom", "nav_msgs/msg/Odometry", s + 2,
                              odometry_message(s, "odom", "base_link", (i, 0.0, 0.0))))
    if corrupt:  # a truncated CDR payload: must be skipped, not published
        out.append(BagMessage("/pose", "geometry_msgs/msg/PoseStamped", _stamp(3) + 5, b"\x00\x01\x00\x00\x01"))
    out.sort(key=lambda m: m.bag_time_ns)
    return out


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def recording(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp(f"rec_{request.param}") / "bag"
    return write_bag(path, _messages(corrupt=True), storage=request.param)


class Listener:
    """Subscribes to the test topics (sensor-data QoS on images, like an image pipeline) in its own context."""

    def __init__(self, topics=("/cam/image_raw", "/cam/camera_info", "/pose", "/odom"), clock=False):
        from rclpy.qos import qos_profile_sensor_data

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"listener_{random.randint(0, 10**6)}", context=self.context)
        self.received: dict[str, list] = {t: [] for t in topics}
        self.clock: list[int] = []
        for topic in topics:
            cls = {"/cam/image_raw": "sensor_msgs/msg/Image", "/cam/camera_info": "sensor_msgs/msg/CameraInfo",
                   "/pose": "geometry_msgs/msg/PoseStamped", "/odom": "nav_msgs/msg/Odometry"}[topic]
            qos = qos_profile_sensor_data if topic.endswith("image_raw") else 100
            self.node.create_subscription(message_class(cls), topic, self._callback(topic), qos)
        if clock:
            from rosgraph_msgs.msg import Clock

            self.node.create_subscription(Clock, "/clock", lambda m: self.clock.append(
                m.clock.sec * 1_000_000_000 + m.clock.nanosec), 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _callback(self, topic):
        def cb(msg):
            self.received[topic].append((msg, time.perf_counter()))
        return cb

    def _spin(self):
        from rclpy.executors import SingleThreadedExecutor

        ex = SingleThreadedExecutor(context=self.context)
        ex.add_node(self.node)
        while not self._stop.is_set():
            ex.spin_once(timeout_sec=0.05)
        ex.shutdown()

    def wait_for(self, counts: dict, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(len(self.received[t]) >= n for t, n in counts.items()):
                return
            time.sleep(0.02)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_message_class():
    from sensor_msgs.msg import Image

    assert message_class("sensor_msgs/msg/Image") is Image
    assert message_class("sensor_msgs/Image") is Image
    with pytest.raises(ImportError):
        message_class("no_such_pkg_msgs/msg/Thing")
    with pytest.raises(ValueError):
        message_class("Image")


def test_options_validated():
    for bad in (dict(rate=0), dict(rate=float("nan")), dict(qos="fast"), dict(depth=0), dict(clock_hz=-1),
                dict(delay_s=-1), dict(max_loops=0)):
        with pytest.raises(ValueError):
            PlayOptions(**bad)


def test_every_message_arrives_with_stamps_and_contents(recording):
    listener = Listener()
    try:
        options = PlayOptions(rate=4.0, wait_for=list(listener.received), wait_timeout_s=10)
        report = Player(recording, options).run()
        listener.wait_for({t: N for t in listener.received})
    finally:
        listener.close()
    assert report.messages_published == 4 * N
    assert report.malformed == 1 and report.topics["/pose"]["malformed"] == 1
    assert not report.interrupted and report.loops == 1 and report.acked is True
    expected = [_stamp(i) for i in range(N)]
    for topic, got in listener.received.items():
        assert [_stamp_ns(m) for m, _ in got] == expected, topic
    images = [m for m, _ in listener.received["/cam/image_raw"]]
    assert images[0].encoding == "rgb8" and (images[0].width, images[0].height) == (8, 6)
    assert images[0].header.frame_id == "cam_optical"
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    assert np.array_equal(np.frombuffer(bytes(images[0].data), np.uint8).reshape(6, 8, 3), first)
    poses = [m for m, _ in listener.received["/pose"]]
    assert [p.pose.position.x for p in poses] == [i * 0.5 for i in range(N)]
    assert poses[0].header.frame_id == "map"
    assert listener.received["/cam/camera_info"][0][0].k[0] == 5.0
    assert listener.received["/odom"][0][0].child_frame_id == "base_link"


def test_rate_factor_and_clock(tmp_path):
    bag = write_bag(tmp_path / "bag", _messages())
    span = (N - 1) * PERIOD_NS * 1e-9 + 2e-9
    for rate in (1.0, 2.5):
        listener = Listener(topics=("/odom",), clock=True)
        try:
            report = Player(bag, PlayOptions(rate=rate, clock=True, clock_hz=50, topics=["/odom"],
                                             wait_for=["/odom"])).run()
            listener.wait_for({"/odom": N})
            time.sleep(0.1)
        finally:
            listener.close()
        times = [t for _, t in listener.received["/odom"]]
        assert len(times) == N
        wall = times[-1] - times[0]
        expected = (N - 1) * PERIOD_NS * 1e-9 / rate
        assert abs(wall - expected) < 0.15 + 0.1 * expected, (rate, wall, expected)
        assert abs(report.achieved_rate - rate) < 0.1 * rate
        assert report.max_lag_ms < 100
        # /clock: bag time, monotonic, within the recording, about clock_hz per wall second
        clock = listener.clock
        assert report.clock_published >= 0.7 * 50 * span / rate
        assert len(clock) >= 0.7 * report.clock_published
        assert clock == sorted(clock)
        assert _stamp(0) <= clock[0] and clock[-1] <= _stamp(N - 1) + 2  # first .. last bag time
        assert clock[-1] - clock[0] > 0.6 * span * 1e9


def test_pause_resume_and_loop(tmp_path):
    from std_srvs.srv import Trigger

    bag = write_bag(tmp_path / "bag", _messages())
    listener = Listener(topics=("/pose",))
    player = Player(bag, PlayOptions(rate=20.0, topics=["/pose"], start_paused=True, loop=True, max_loops=2,
                                     node_name="player_under_test"))
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("report", player.run()))
    thread.start()
    try:
        client = listener.node.create_client(Trigger, "/player_under_test/resume")
        assert client.wait_for_service(timeout_sec=10)
        time.sleep(0.3)
        assert listener.received["/pose"] == []  # paused: nothing yet
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + 10
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.result().success
        thread.join(timeout=20)
        listener.wait_for({"/pose": 2 * N})
    finally:
        player.stop()
        thread.join(timeout=5)
        listener.close()
    report = result["report"]
    assert report.loops == 2 and report.messages_published == 2 * N and not report.interrupted
    stamps = [_stamp_ns(m) for m, _ in listener.received["/pose"]]
    assert stamps == [_stamp(i) for i in range(N)] * 2
    assert report.paused_seconds >= 0.3


def test_unknown_type_skipped_with_warning(tmp_path):
    from gaussvae_ros.bag.writer import _t

    messages = _messages()
    messages.append(BagMessage("/tf", "tf2_msgs/msg/TFMessage", T0, _t("tf2_msgs/msg/TFMessage")(transforms=[])))
    bag = write_bag(tmp_path / "bag", messages)
    report = Player(bag, PlayOptions(rate=50.0, topics=None)).run()
    try:
        import tf2_msgs.msg  # noqa: F401
        assert "/tf" in report.topics
    except ImportError:
        assert "/tf" in report.skipped_topics and any("/tf" in w for w in report.warnings)
    assert report.messages_published >= 4 * N
    with pytest.raises(ValueError, match="not in"):
        Player(bag, PlayOptions(topics=["/nope"])).run()


def test_cli_json(tmp_path):
    bag = write_bag(tmp_path / "bag", _messages(), storage="mcap")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "gaussvae_ros.cli.main", "play", str(bag), "--rate", "10",
                          "--clock", "--topics", "/pose", "/odom", "--json"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["messages_published"] == 2 * N
    assert set(summary["topics"]) == {"/pose", "/odom"}
    assert summary["clock_published"] > 0
    missing = subprocess.run([sys.executable, "-m", "gaussvae_ros.cli.main", "play", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode == 2 and "no recording" in missing.stderr


def test_kitti_odometry_replayed_exactly(bag_path):
    from gaussvae_ros.bag.reader import BagReader

    bag = bag_path("kitti07_mono8_mcap")
    with BagReader(bag) as reader:
        track = reader.read_pose_track("/odom")
    listener = Listener(topics=("/odom",))
    try:
        report = Player(bag, PlayOptions(rate=40.0, topics=["/odom"], wait_for=["/odom"])).run()
        listener.wait_for({"/odom": len(track)})
    finally:
        listener.close()
    got = listener.received["/odom"]
    assert report.messages_published == len(track) == len(got) == 160
    assert [_stamp_ns(m) for m, _ in got] == [int(s) for s in track.stamps]
    positions = np.array([[m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z] for m, _ in got])
    assert np.allclose(positions, track.positions)
