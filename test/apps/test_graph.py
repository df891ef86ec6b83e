"""``gaussvae graph``: the three nodes as separate processes from a parameter file, in a namespace,
driven over DDS from the test, stopped cleanly by SIGINT; a failing node stops the graph."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support.ros_graph import FAST_ENCODER, RosGraph, image_msg, pattern_image, wait_until

from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from gaussvae_ros_interfaces.srv import GetStats, Recall  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def _params(tmp_path, **encoder) -> Path:
    data = yaml.safe_load((REPO / "config" / "gaussvae.yaml").read_text())
    section = data["/**/gaussvae_encoder"]["ros__parameters"]
    for name, value in {**FAST_ENCODER, **encoder}.items():
        if name.startswith("keyframe."):
            section["keyframe"][name.split(".", 1)[1]] = value
        else:
            section[name] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(params: Path, domain_id: int, *args) -> subprocess.Popen:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    return subprocess.Popen([sys.executable, "-m", "gaussvae_ros.cli.main", "graph", "--params", str(params), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:  # no ps: skip the check
        return []
    return [int(p) for p in out.split()]


def test_graph_runs_and_stops_cleanly(tmp_path):
    database = tmp_path / "store" / "memories.db"
    with RosGraph() as graph:
        ns = graph.ns + "/robot"  # a private namespace: no other graph on this domain id answers
        proc = _start(_params(tmp_path), graph.domain_id, "--namespace", ns, "--database", str(database),
                      "--image-topic", f"{ns}/cam/image_raw")
        try:
            pub = graph.publisher(Image, f"{ns}/cam/image_raw", qos_profile_sensor_data)
            stats = graph.client(GetStats, f"{ns}/get_stats", timeout=60.0)
            recall = graph.client(Recall, f"{ns}/recall", timeout=60.0)
            graph.wait_for_subscribers(pub, timeout=60.0)
            children = _children(proc.pid)
            for i in range(3):
                pub.publish(image_msg(pattern_image(seed=i), "rgb8", (i + 1) * S, "cam"))
                time.sleep(0.3)
            wait_until(lambda: graph.call(stats, GetStats.Request()).count == 3, 60.0, "3 memories in the graph")
            response = graph.call(recall, Recall.Request(select=Recall.Request.SELECT_IDS, ids=[1, 3], width=32))
            assert response.success and [i.width for i in response.images] == [32, 32]
            assert database.exists()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                output, _ = proc.communicate(timeout=30.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
        assert proc.returncode == 0, output
        assert "started gaussvae_encoder" in output and "stopping (SIGINT)" in output
        for pid in children:  # every node process is gone
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_failing_node_stops_the_graph(tmp_path):
    params = _params(tmp_path, n_gaussians=0)  # the encoder refuses to start
    proc = _start(params, random.randint(1, 100), "--database", str(tmp_path / "m.db"), "--grace", "5")
    try:
        output, _ = proc.communicate(timeout=60.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the graph did not stop after its encoder failed")
    assert proc.returncode == 2, output
    assert "n_gaussians must be" in output and "gaussvae_encoder exited on its own with status 2" in output


def test_live_graph_on_a_recording_matches_offline_replay(tmp_path, bag_path):
    """Play a real recording (PNG CompressedImage + PoseStamped) into the graph with /clock: the live
    encoder keeps the same keyframes, with the same poses, as offline replay of the same bag."""
    from gaussvae_ros.apps.graph import GraphOptions, graph_commands
    from gaussvae_ros.apps.replay import ReplayOptions, replay_bag
    from gaussvae_ros.store import Store

    bag = bag_path("kitti07_compressed_sqlite3")
    fast = dict(n_gaussians=16, max_iters=5)
    params = _params(tmp_path, image_topics=[""], compressed_image_topics=["/camera/image_raw/compressed"],
                     pose_topics=["/pose"], odometry_topics=[""], queue_size=64, long_side=256,
                     pose_wait_s=0.5, **fast, **{f"keyframe.{k}": v for k, v in (
                         ("min_interval_s", 0.2), ("duplicate_image_change", 0.02), ("min_image_change", 0.25))})
    live_db = tmp_path / "live.db"
    proc = _start(params, random.randint(1, 100), "--database", str(live_db), "--use-sim-time", "--bag", str(bag),
                  "--rate", "2", "--stop-after-play", "3", "--nodes", "encoder", "memory")
    try:
        output, _ = proc.communicate(timeout=120.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"the graph did not stop after playback:\n{output}")
    assert proc.returncode == 0, output
    player = dict(graph_commands(GraphOptions(params_file=params, bag=str(bag), use_sim_time=True)))["player"]
    assert player[player.index("--wait-for") + 1] == "/camera/image_raw/compressed"  # waits for the encoder

    offline_db = tmp_path / "offline.db"
    replay_bag(bag, offline_db, ReplayOptions(max_iters=fast["max_iters"], n_gaussians=fast["n_gaussians"]))
    with Store(live_db) as live, Store(offline_db) as offline:
        live_records, offline_records = live.by_time(), offline.by_time()
        assert [r.stamp_ns for r in live_records] == [r.stamp_ns for r in offline_records]
        assert len(live_records) == 5
        for a, b in zip(live_records, offline_records):
            assert (a.topic, a.camera_frame_id, a.width, a.height, a.encoding, a.pose_frame_id) == \
                (b.topic, b.camera_frame_id, b.width, b.height, b.encoding, b.pose_frame_id)
            assert a.pose is not None and a.pose.position == pytest.approx(b.pose.position)
