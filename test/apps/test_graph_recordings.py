"""``gaussvae graph`` on recordings as a ROS user runs it: the README's command line on a
CompressedImage + PoseStamped recording (types read from the bag, no hand-edited parameter file),
stored poses equal to the recording's ground truth; a mismatched topic fails loudly before anything
starts; a failing player stops the graph with its status; ``graph`` and ``play`` started apart
(``play --wait-for``) lose no frame."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from gaussvae_ros.apps.graph import GraphOptions, RecordingMismatch, check_recording, graph_commands, run_graph
from gaussvae_ros.cli.main import main

from support.ros_graph import FAST_ENCODER

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "gaussvae.yaml"
COMPRESSED, POSE = "/camera/image_raw/compressed", "/pose"
#: Enough Gaussians and iterations to be quick; keyframes by time only, as offline replay's default.
FAST = dict(n_gaussians=16, max_iters=5)


def _params(tmp_path) -> Path:
    """config/gaussvae.yaml with quick fitting only: the topics stay the shipped defaults."""
    data = yaml.safe_load(CONFIG.read_text())
    section = data["/**/gaussvae_encoder"]["ros__parameters"]
    for name, value in {**FAST_ENCODER, **FAST, "long_side": 256, "queue_size": 64, "pose_wait_s": 0.5,
                        "keyframe.min_interval_s": 0.2, "keyframe.duplicate_image_change": 0.02,
                        "keyframe.min_image_change": 0.25}.items():
        if name.startswith("keyframe."):
            section["keyframe"][name.split(".", 1)[1]] = value
        else:
            section[name] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _env(domain_id: int) -> dict:
    return dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")


def _gaussvae(*args, domain_id: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gaussvae_ros.cli.main", *args], env=_env(domain_id),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"did not finish in {timeout} s:\n{output}")
    return output


def _check_against_offline_replay_and_ground_truth(bag: Path, live_db: Path, tmp_path: Path) -> None:
    from gaussvae_ros.apps.replay import ReplayOptions, replay_bag
    from gaussvae_ros.bag.reader import BagReader
    from gaussvae_ros.store import Store

    offline_db = tmp_path / "offline.db"
    replay_bag(bag, offline_db, ReplayOptions(**FAST))
    with BagReader(bag) as reader:
        truth = reader.read_pose_track(POSE)
    with Store(live_db) as live, Store(offline_db) as offline:
        live_records, offline_records = live.by_time(), offline.by_time()
        assert [r.stamp_ns for r in live_records] == [r.stamp_ns for r in offline_records]  # no frame lost
        assert len(live_records) == 5
        for record in live_records:
            assert record.topic == COMPRESSED and record.pose is not None
            expected = truth.lookup(record.stamp_ns)
            assert record.pose_frame_id == truth.frame_id
            np.testing.assert_allclose(record.pose.position, expected.position, atol=1e-6)
            np.testing.assert_allclose(np.abs(np.dot(record.pose.orientation, expected.orientation)), 1.0, atol=1e-6)


def test_topic_types_come_from_the_recording(bag_path):
    bag = bag_path("kitti07_compressed_sqlite3")
    options, notes = check_recording(GraphOptions(params_file=CONFIG, bag=str(bag), use_sim_time=True,
                                                  image_topic=COMPRESSED, odom_topic=POSE))
    assert (options.image_topic, options.compressed_image_topic) == (None, COMPRESSED)
    assert (options.odom_topic, options.pose_topic) == (None, POSE)
    assert len(notes) == 2 and all("subscribed as such" in n for n in notes)
    assert check_recording(options)[0] == options  # settled
    commands = dict(graph_commands(options))
    encoder = commands["gaussvae_encoder"]
    assert f"compressed_image_topics:=[{COMPRESSED}]" in encoder and f"pose_topics:=[{POSE}]" in encoder
    assert "image_reliability:=reliable" in encoder
    player = commands["player"]
    assert player[player.index("--wait-for") + 1] == COMPRESSED
    # the mono8 recording: Image and Odometry stay remaps of the encoder's default topics
    options, notes = check_recording(GraphOptions(params_file=CONFIG, bag=str(bag_path("kitti07_mono8_mcap")),
                                                  image_topic="/camera/image_raw", odom_topic="/odom"))
    assert (options.image_topic, options.odom_topic, options.compressed_image_topic) == (
        "/camera/image_raw", "/odom", None) and notes == []


@pytest.mark.parametrize("bag, args, expected", [
    ("kitti07_mono8_mcap", ["--image-topic", COMPRESSED], "--image-topic /camera/image_raw/compressed: no such topic"),
    ("kitti07_compressed_sqlite3", [], "the encoder subscribes to none of the recording's image topics"),
    ("kitti07_compressed_sqlite3", ["--compressed-image-topic", POSE], "is geometry_msgs/msg/PoseStamped"),
    ("kitti07_compressed_sqlite3", ["--image-topic", COMPRESSED, "--odom-topic", COMPRESSED],
     "the encoder takes nav_msgs/msg/Odometry or geometry_msgs/msg/PoseStamped there"),
    ("euroc_v101_static_sqlite3", ["--pose-topic", "/cam0/image_raw"], "--pose-topic /cam0/image_raw is"),
])
def test_a_mismatched_recording_fails_before_anything_starts(bag_path, capsys, bag, args, expected):
    code = main(["graph", "--bag", str(bag_path(bag)), "--use-sim-time", *args])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "the recording holds" in err, err


def test_mismatch_is_a_value_error_with_what_the_recording_holds(bag_path):
    with pytest.raises(RecordingMismatch, match=r"/camera/image_raw/compressed \(sensor_msgs/msg/CompressedImage\)"):
        check_recording(GraphOptions(params_file=CONFIG, bag=str(bag_path("kitti07_compressed_sqlite3"))))


def test_a_failing_player_stops_the_graph(tmp_path, bag_path, capsys):
    """The nodes are stand-ins (a Python that sleeps for node modules and fails ``play`` with exit 3,
    as ``gaussvae play`` does when no subscriber comes): the graph stops and exits 3."""
    fake = tmp_path / "python"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, time
        if "play" in sys.argv:
            print("gaussvae play: error: no subscriber on /camera/image_raw/compressed after 1 s", file=sys.stderr)
            sys.exit(3)
        time.sleep(60)
        """))
    fake.chmod(0o755)
    options = GraphOptions(params_file=CONFIG, bag=str(bag_path("kitti07_compressed_sqlite3")),
                           compressed_image_topic=COMPRESSED, pose_topic=POSE, python=str(fake), grace_s=2.0)
    assert run_graph(options) == 3
    err = capsys.readouterr().err
    assert "player failed with status 3; stopping the graph" in err


def test_readme_command_on_a_compressed_recording_stores_ground_truth_poses(tmp_path, bag_path):
    """The README's line: ``gaussvae graph --use-sim-time --bag BAG --image-topic .../compressed
    --odom-topic /pose``, with the shipped topic defaults (only the fitting made quick)."""
    bag = bag_path("kitti07_compressed_sqlite3")
    live_db = tmp_path / "live.db"
    proc = _gaussvae("graph", "--params", str(_params(tmp_path)), "--database", str(live_db), "--use-sim-time",
                     "--bag", str(bag), "--image-topic", COMPRESSED, "--odom-topic", POSE, "--rate", "2",
                     "--stop-after-play", "3", "--nodes", "encoder", "memory", domain_id=random.randint(1, 100))
    output = _finish(proc, 180.0)
    assert proc.returncode == 0, output
    assert "is sensor_msgs/msg/CompressedImage in the recording: subscribed as such" in output
    _check_against_offline_replay_and_ground_truth(bag, live_db, tmp_path)


def test_graph_and_play_started_apart_lose_no_frame(tmp_path, bag_path):
    """``gaussvae graph`` first, ``gaussvae play --clock --wait-for`` later from another shell."""
    bag = bag_path("kitti07_compressed_sqlite3")
    live_db = tmp_path / "live.db"
    domain = random.randint(1, 100)
    graph = _gaussvae("graph", "--params", str(_params(tmp_path)), "--database", str(live_db), "--use-sim-time",
                      "--compressed-image-topic", COMPRESSED, "--pose-topic", POSE, "--image-reliability", "reliable",
                      "--nodes", "encoder", "memory", domain_id=domain)
    try:
        play = _gaussvae("play", str(bag), "--clock", "--rate", "2", "--wait-for", COMPRESSED, "--wait-timeout", "120",
                         "--quiet", domain_id=domain)
        play_output = _finish(play, 180.0)
        assert play.returncode == 0, play_output
        time.sleep(3.0)  # the encoder drains its queue
    finally:
        graph.send_signal(signal.SIGINT)
    output = _finish(graph, 60.0)
    assert graph.returncode == 0, output
    _check_against_offline_replay_and_ground_truth(bag, live_db, tmp_path)
