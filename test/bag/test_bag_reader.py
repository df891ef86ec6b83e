"""Reading rosbag2 recordings: topics, frames, poses, camera info, broken messages (real and written bags)."""

from __future__ import annotations

import numpy as np
import pytest

from gaussvae_ros.bag.reader import BagReader, Frame, FrameError
from gaussvae_ros.bag.writer import (
    BagMessage,
    camera_info_message,
    compressed_image_message,
    image_message,
    odometry_message,
    write_bag,
)

from support.shared import shared_bag as shared

MS = 1_000_000


def test_kitti_topics_and_camera_info():
    with BagReader(shared("kitti07_mono8_mcap")) as bag:
        assert bag.image_topics == ["/camera/image_raw"]
        assert bag.pose_topics == ["/odom"]
        assert bag.camera_info_topic_for("/camera/image_raw") == "/camera/camera_info"
        assert bag.message_count(["/camera/image_raw"]) == 160
        info = bag.read_camera_info("/camera/camera_info")
        first = next(iter(bag.frames()))
    assert (info["width"], info["height"]) == (first.width, first.height)
    assert len(info["k"]) == 9 and info["k"][0] > 0 and info["k"][8] == 1.0
    assert info["frame_id"] == first.frame_id
    assert first.image.dtype == np.uint8 and first.image.ndim == 2


def test_compressed_png_frames_equal_the_raw_frames():
    """The compressed KITTI recording holds lossless PNGs of the same frames as the raw one."""
    raw_path, png_path = shared("kitti07_mono8_mcap"), shared("kitti07_compressed_sqlite3")
    with BagReader(png_path) as bag:
        compressed = {f.stamp_ns: f.image for f in bag.frames()}
    with BagReader(raw_path) as bag:
        raw = {f.stamp_ns: f.image for f in bag.frames() if f.stamp_ns in compressed}
    assert len(compressed) == 40 and raw.keys() == compressed.keys()
    for stamp, image in compressed.items():
        np.testing.assert_array_equal(image, raw[stamp])


def test_t265_two_cameras_and_faster_odometry():
    with BagReader(shared("t265_fisheye_sqlite3")) as bag:
        topics = bag.image_topics
        track = bag.read_pose_track(bag.pose_topics[0])
        frames = list(bag.frames())
    assert len(topics) == 2
    assert all(isinstance(f, Frame) for f in frames)
    by_topic = {t: [f for f in frames if f.topic == t] for t in topics}
    assert {len(v) for v in by_topic.values()} == {3}
    assert len({by_topic[t][0].frame_id for t in topics}) == 2, "each camera has its own optical frame"
    image_period = np.diff([f.stamp_ns for f in by_topic[topics[0]]]).mean()
    odom_period = np.diff(track.stamps).mean()
    assert odom_period < image_period / 3
    first, last = track.span_ns
    for f in frames:
        pose = track.lookup(f.stamp_ns)
        assert pose is not None
        if first < f.stamp_ns < last:  # odometry on both sides: interpolated from neighbours
            assert pose.interpolated and abs(pose.offset_ns) <= np.diff(track.stamps).max() / 2
        else:  # before the first odometry message: the nearest sample
            assert not pose.interpolated and pose.offset_ns == f.stamp_ns - first


@pytest.mark.parametrize("storage", ["test_bag_mcap", "test_bag_sqlite3"])
def test_synthetic_fixtures_report_truncated_images_without_crashing(storage):
    with BagReader(shared("format_fixtures_synthetic") / storage) as bag:
        items = list(bag.frames())
        assert len(items) == bag.message_count(bag.image_topics) == 4
    assert all(isinstance(item, FrameError) for item in items)
    raw = [i for i in items if i.topic.endswith("/image")]
    compressed = [i for i in items if i.topic.endswith("/compressed_image")]
    assert all("truncated image data" in i.error for i in raw)
    assert all("cannot decode compressed image" in i.error for i in compressed)
    assert all(i.frame_id and i.stamp_ns > 0 for i in items)


def scene(k: int) -> np.ndarray:
    yy, xx = np.mgrid[0:24, 0:32]
    return ((xx * 8 + yy * 3 + 40 * k) % 256).astype(np.uint8)


def test_written_bag_with_broken_messages_keeps_the_rest(tmp_path):
    good = [image_message(k * 100 * MS, "cam", scene(k)) for k in range(5)]
    truncated = image_message(250 * MS, "cam", scene(9))
    truncated.data = truncated.data[:100]
    messages = [BagMessage("/cam/image_raw", "sensor_msgs/msg/Image", m.header.stamp.nanosec, m) for m in good]
    messages.insert(3, BagMessage("/cam/image_raw", "sensor_msgs/msg/Image", 250 * MS, truncated))
    messages.insert(1, BagMessage("/cam/image_raw", "sensor_msgs/msg/Image", 50 * MS, b"\x00\x01\x00\x00\x05"))
    messages.append(BagMessage("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 0,
                               camera_info_message(0, "cam", 32, 24, 30.0, 30.0, 16.0, 12.0)))
    path = write_bag(tmp_path / "bag", sorted(messages, key=lambda m: m.bag_time_ns), storage="mcap")
    with BagReader(path) as bag:
        items = list(bag.frames())
        assert bag.camera_info_topic_for("/cam/image_raw") == "/cam/camera_info"
    assert [type(i).__name__ for i in items] == ["Frame", "FrameError", "Frame", "Frame", "FrameError", "Frame",
                                                 "Frame"]
    assert "cannot deserialize" in items[1].error and items[1].stamp_ns == 50 * MS  # bag time: no header
    assert "truncated image data" in items[4].error and items[4].frame_id == "cam"
    frames = [i for i in items if isinstance(i, Frame)]
    for k, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, scene(k))


def test_pose_track_from_written_odometry_sorted_by_header_stamp(tmp_path):
    stamps = [0, 200, 100, 300]  # header stamps out of receive order
    messages = [BagMessage("/odom", "nav_msgs/msg/Odometry", i * MS,
                           odometry_message(s * MS, "odom", "base", (s / 100.0, 0.0, 0.0)))
                for i, s in enumerate(stamps)]
    messages.append(BagMessage("/odom", "nav_msgs/msg/Odometry", 10 * MS, b"\x00\x01"))
    errors: list[str] = []
    with BagReader(write_bag(tmp_path / "odom", sorted(messages, key=lambda m: m.bag_time_ns))) as bag:
        track = bag.read_pose_track("/odom", errors)
    assert track.stamps.tolist() == [0, 100 * MS, 200 * MS, 300 * MS]
    assert track.frame_id == "odom" and len(errors) == 1 and "/odom" in errors[0]
    np.testing.assert_allclose(track.lookup(150 * MS).position, [1.5, 0, 0])


def test_compressed_frames_in_written_bag(tmp_path):
    rgb = np.dstack([scene(1), scene(2), scene(3)])
    messages = [BagMessage("/cam/image_raw/compressed", "sensor_msgs/msg/CompressedImage", 1,
                           compressed_image_message(1, "cam", rgb, "png"))]
    with BagReader(write_bag(tmp_path / "png", messages)) as bag:
        (frame,) = bag.frames()
    np.testing.assert_array_equal(frame.image, rgb)
    assert frame.encoding == "png"


def test_bad_paths_and_topics(tmp_path):
    with pytest.raises(FileNotFoundError):
        BagReader(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a rosbag2 folder"):
        BagReader(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: [a, rosbag")
    with pytest.raises(ValueError, match="cannot open recording"):
        with BagReader(tmp_path / "junk"):
            pass
    path = write_bag(tmp_path / "bag", [BagMessage("/odom", "nav_msgs/msg/Odometry", 0,
                                                   odometry_message(0, "odom", "base", (0, 0, 0)))])
    with BagReader(path) as bag:
        with pytest.raises(ValueError, match="not image topics"):
            list(bag.frames(["/odom"]))
        with pytest.raises(ValueError, match="not a pose topic"):
            bag.read_pose_track("/nope")


def test_stream_yields_frames_poses_and_calibration_in_recording_order(tmp_path):
    from gaussvae_ros.bag.reader import CameraInfoSample, PoseSample

    messages = [
        BagMessage("/cam/camera_info", "sensor_msgs/msg/CameraInfo", 1 * MS,
                   camera_info_message(1 * MS, "cam", 32, 24, 30.0, 31.0, 16.0, 12.0)),
        BagMessage("/odom", "nav_msgs/msg/Odometry", 2 * MS, odometry_message(2 * MS, "odom", "base", (1, 2, 3))),
        BagMessage("/cam/image_raw", "sensor_msgs/msg/Image", 3 * MS, image_message(3 * MS, "cam", scene(0))),
        BagMessage("/odom", "nav_msgs/msg/Odometry", 4 * MS, b"\x00\x01\x00\x00"),
        BagMessage("/odom", "nav_msgs/msg/Odometry", 5 * MS,
                   odometry_message(5 * MS, "odom", "base", (1, 2, 3), (0.0, 0.0, 0.0, 0.0))),
    ]
    with BagReader(write_bag(tmp_path / "bag", messages)) as bag:
        items = list(bag.stream(["/cam/image_raw"], ["/odom"], ["/cam/camera_info"]))
        with pytest.raises(ValueError, match="not pose topics"):
            list(bag.stream(["/cam/image_raw"], ["/cam/camera_info"]))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["CameraInfoSample", "PoseSample", "Frame", "FrameError", "FrameError"]
    info, pose = items[0], items[1]
    assert isinstance(info, CameraInfoSample) and info.info["k"][:3] == [30.0, 0.0, 16.0]
    assert isinstance(pose, PoseSample) and pose.frame_id == "odom" and pose.stamp_ns == 2 * MS
    np.testing.assert_allclose(pose.position, [1, 2, 3])
    assert "cannot deserialize" in items[3].error and items[3].topic == "/odom"
    assert "quaternion" in items[4].error and items[4].stamp_ns == 5 * MS
