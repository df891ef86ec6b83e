"""`gaussvae db export FILE --bag OUT.mcap`: the recording reads back with the `mcap` reader and
with rosbags (records, recalled images, poses, markers), and `gaussvae play` of it into a new
memory node stores the same memories."""

import io
import json
import math

import numpy as np
import pytest
from PIL import Image as PILImage

from support.ros_graph import RosGraph, payload, wait_until

from gaussvae_ros.apps.player import PlayOptions, Player  # noqa: E402
from gaussvae_ros.cli.main import main as gaussvae  # noqa: E402
from gaussvae_ros.codecs import render_memory  # noqa: E402
from gaussvae_ros.nodes.memory_node import MemoryNode  # noqa: E402
from gaussvae_ros.store import CameraIntrinsics, Memory, Pose, Store  # noqa: E402

pytestmark = pytest.mark.flaky(reruns=2, reruns_delay=1)  # the replay goes over DDS

S = 1_000_000_000
T0 = 1_700_000_000 * S
K = CameraIntrinsics((50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0), "plumb_bob", (0.1, 0.0, 0.0, 0.0, 0.0))
TOPICS = {"/memories", "/recalled/image/compressed", "/recalled/camera_info", "/memory_pose", "/memory_poses",
          "/memory_pose_array"}


def _memories():
    out = []
    for i in range(6):
        gray = i == 2
        out.append(Memory(stamp_ns=T0 + i * S // 2, topic="/cam/image_raw", camera_frame_id="cam",
                          payload=payload(1 if gray else 3), width=64, height=48, encoding="mono8" if gray else "rgb8",
                          pose=None if i == 4 else Pose((float(i), 1.0, 0.0),
                                                        (0.0, 0.0, math.sin(i / 4), math.cos(i / 4))),
                          pose_frame_id="" if i == 4 else "map", intrinsics=K if i % 2 else None,
                          psnr=25.0 + i, ssim=0.5))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    database = folder / "m.db"
    with Store(database) as store:
        store.insert_many(_memories())
    out = folder / "memories.mcap"
    assert gaussvae(["db", "export", str(database), "--bag", str(out), "--size", "40x30", "--bag-format", "png",
                     "--json"]) == 0
    return database, out


def _stored(database) -> list:
    with Store(database, create=False) as store:
        return [(r.stamp_ns, r.topic, r.camera_frame_id, store.load_payload(r.id), r.width, r.height, r.encoding,
                 r.codec, None if r.pose is None else (r.pose.position, r.pose.orientation), r.pose_frame_id,
                 r.intrinsics, r.psnr) for r in store.by_time()]


def test_mcap_reader(exported):
    from mcap.reader import make_reader

    _, out = exported
    with open(out, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        topics = {c.topic: c for c in summary.channels.values()}
        assert set(topics) == TOPICS
        counts = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
        assert counts["/memories"] == 6 and counts["/recalled/image/compressed"] == 6
        assert counts["/memory_pose"] == 5 and counts["/memory_poses"] == 1 and counts["/memory_pose_array"] == 1
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        names = {s.name for s in summary.schemas.values()}
        assert "gaussvae_ros_interfaces/msg/MemoryRecord" in names and "visualization_msgs/msg/MarkerArray" in names
        assert all(c.message_encoding == "cdr" for c in topics.values())
        assert "transient_local" in topics["/memories"].metadata.get("offered_qos_profiles", "").lower() or \
            "durability: 1" in topics["/memories"].metadata.get("offered_qos_profiles", "")
        times = [m.log_time for _, _, m in reader.iter_messages(topics=["/memories"])]
    assert times == [T0 + i * S // 2 for i in range(6)]


def test_rosbags_reads_records_images_poses_markers(exported):
    from rosbags.highlevel import AnyReader

    database, out = exported
    stored = _stored(database)
    by_topic = {}
    with AnyReader([out]) as reader:
        for connection, _, raw in reader.messages():
            by_topic.setdefault(connection.topic, []).append(reader.deserialize(raw, connection.msgtype))
    records = by_topic["/memories"]
    assert [bytes(r.payload) for r in records] == [s[3] for s in stored]
    assert [r.header.stamp.sec * S + r.header.stamp.nanosec for r in records] == [s[0] for s in stored]
    assert records[1].has_camera_info and list(records[1].camera_info.k) == list(K.k)
    for image, s in zip(by_topic["/recalled/image/compressed"], stored):
        pixels = np.asarray(PILImage.open(io.BytesIO(bytes(image.data))))
        np.testing.assert_array_equal(pixels, render_memory(s[3], s[7], "", 40, 30))  # PNG: lossless
        assert image.header.frame_id == "cam"
    assert [i.width for i in by_topic["/recalled/camera_info"]] == [40] * 6
    assert [p.pose.position.x for p in by_topic["/memory_pose"]] == [0.0, 1.0, 2.0, 3.0, 5.0]
    markers = by_topic["/memory_poses"][0].markers
    assert markers[0].action == 3  # DELETEALL
    assert len([m for m in markers if m.ns == "memories"]) == 5 and len(by_topic["/memory_pose_array"][0].poses) == 5


def test_play_into_a_new_store_gives_the_same_memories(exported, tmp_path, monkeypatch):
    database, out = exported
    with RosGraph() as graph:
        graph.add(MemoryNode, {"database": str(tmp_path / "replayed.db")})
        monkeypatch.setenv("ROS_DOMAIN_ID", str(graph.domain_id))
        player = Player(out, PlayOptions(rate=20.0, topics=["/memories"], remap={"/memories": f"{graph.ns}/memories"},
                                         wait_for=[f"{graph.ns}/memories"], wait_timeout_s=30.0))
        report = player.run()
        assert report.messages_published == 6
        wait_until(lambda: len(_stored(tmp_path / "replayed.db")) == 6, 30.0, "6 memories replayed")
    replayed, original = _stored(tmp_path / "replayed.db"), _stored(database)
    for a, b in zip(replayed, original):
        assert a[:11] == b[:11]  # stamp, stream, payload, size, encoding, codec, pose, frames, intrinsics
        assert a[11] == pytest.approx(b[11], rel=1e-6)  # PSNR travels as float32


def test_export_errors(exported, tmp_path, capsys):
    database, out = exported
    assert gaussvae(["db", "export", str(database), "--bag", str(out)]) == 2  # exists
    assert "exists" in capsys.readouterr().err
    assert gaussvae(["db", "export", str(database)]) == 2
    folder = tmp_path / "as_folder"
    assert gaussvae(["db", "export", str(database), "--bag", str(folder), "--json", "--start", str((T0 + S) / S)]) == 0
    assert json.loads(capsys.readouterr().out)["memories"] == 4 and (folder / "metadata.yaml").exists()
    nested = tmp_path / "new" / "folder" / "m.mcap"
    assert gaussvae(["db", "export", str(database), "--bag", str(nested), "--limit", "2"]) == 0
    assert nested.is_file() and [p.name for p in nested.parent.iterdir()] == ["m.mcap"]  # no leftovers
