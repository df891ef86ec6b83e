"""``gaussvae play`` publishes each topic with its recorded durability: a topic recorded transient
local (and ``/tf_static`` always, REP 105) is played transient local with a depth holding all of
its messages, so a subscriber that comes late still gets them; other topics stay volatile."""

from __future__ import annotations

import os
import random
import threading
import time
from types import SimpleNamespace

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from gaussvae_ros.apps.player import PlayOptions, Player, played_qos, recorded_durability  # noqa: E402

T0 = 1_700_000_000_000_000_000


def _qos(durability: QosDurability) -> Qos:
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, durability, never, never, QosLiveliness.AUTOMATIC,
               never, False)


def test_durability_read_from_the_recorded_profiles():
    latched = SimpleNamespace(ext=SimpleNamespace(offered_qos_profiles=[_qos(QosDurability.TRANSIENT_LOCAL)]),
                              msgcount=3)
    volatile = SimpleNamespace(ext=SimpleNamespace(offered_qos_profiles=[_qos(QosDurability.VOLATILE)]), msgcount=7)
    bare = SimpleNamespace(ext=SimpleNamespace(offered_qos_profiles=[]), msgcount=2)
    assert recorded_durability([latched]) == "transient_local"
    assert recorded_durability([volatile, latched]) == "transient_local"  # any publisher latched
    assert recorded_durability([volatile]) == recorded_durability([bare]) == "volatile"
    assert played_qos("/map_meta", [latched]) == ("transient_local", 3)
    assert played_qos("/tf_static", [bare, bare]) == ("transient_local", 4)  # REP 105, even without QoS
    assert played_qos("/camera/image_raw", [volatile]) == ("volatile", None)


def _bag(path):
    store = get_typestore(Stores.ROS2_HUMBLE)
    string = store.types["std_msgs/msg/String"]
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        latched = writer.add_connection("/latched", "std_msgs/msg/String", typestore=store,
                                        offered_qos_profiles=[_qos(QosDurability.TRANSIENT_LOCAL)])
        plain = writer.add_connection("/plain", "std_msgs/msg/String", typestore=store,
                                      offered_qos_profiles=[_qos(QosDurability.VOLATILE)])
        for i in range(3):
            writer.write(latched, T0 + i * 1000, store.serialize_cdr(string(data=f"latched {i}"), "std_msgs/msg/String"))
            writer.write(plain, T0 + i * 1000 + 1, store.serialize_cdr(string(data=f"plain {i}"), "std_msgs/msg/String"))
        # 4 s later: keeps the player up while a subscriber joins late
        writer.write(plain, T0 + 4_000_000_000, store.serialize_cdr(string(data="plain last"), "std_msgs/msg/String"))
    return path


def test_a_late_subscriber_gets_the_latched_topic(tmp_path, monkeypatch):
    from std_msgs.msg import String

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    domain = int(os.environ.get("ROS_DOMAIN_ID") or random.randint(1, 100))
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    bag = _bag(tmp_path / "bag")
    player = Player(bag, PlayOptions(rate=1.0, node_name="qos_player_under_test", ack_timeout_s=0.0))
    done = {}
    thread = threading.Thread(target=lambda: done.setdefault("report", player.run()))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("late_listener", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        thread.start()
        assert player.started.wait(30.0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (node.get_publishers_info_by_topic("/latched")
                                                   and node.get_publishers_info_by_topic("/plain")):
            time.sleep(0.05)
        info = {t: node.get_publishers_info_by_topic(t)[0].qos_profile for t in ("/latched", "/plain")}
        assert info["/latched"].durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert info["/latched"].reliability == ReliabilityPolicy.RELIABLE  # (depth is not discovered)
        assert info["/plain"].durability == DurabilityPolicy.VOLATILE
        time.sleep(0.5)  # the first messages are out: this subscriber comes late
        received = {"/latched": [], "/plain": []}
        late = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for topic in received:
            node.create_subscription(String, topic, lambda msg, t=topic: received[t].append(msg.data), late)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(received["/latched"]) < 3:
            executor.spin_once(timeout_sec=0.05)
        assert received["/latched"] == ["latched 0", "latched 1", "latched 2"]
        assert [m for m in received["/plain"] if m != "plain last"] == []  # volatile: gone before we came
        thread.join(timeout=30)  # everything published
        report = done["report"]
        assert report.topics["/latched"]["qos"] == "transient_local" and report.topics["/plain"]["qos"] == "volatile"
    finally:
        player.stop()
        thread.join(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
