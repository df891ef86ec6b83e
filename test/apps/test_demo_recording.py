"""The demo's recording builder: a camera walking along a wall of scikit-image photographs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaussvae_ros.apps import demo
from gaussvae_ros.bag.reader import BagReader


@pytest.fixture(scope="module")
def gallery():
    return demo.Gallery(("astronaut", "coffee"), pixels_per_m=60.0)


def test_gallery_canvas_holds_the_photos(gallery):
    from skimage import data

    # the wall's centre column of each photo shows that photo (compare mean colours)
    for name, cx in zip(gallery.photos, gallery.centres):
        col = getattr(data, name)()
        half_height = 0.49 * gallery.photo_width * col.shape[0] / col.shape[1]
        seen = gallery.sample(np.full(200, cx), np.linspace(gallery.height - half_height, gallery.height + half_height, 200))
        strip = col[:, col.shape[1] // 2 - 2: col.shape[1] // 2 + 3].reshape(-1, 3).mean(axis=0)
        assert np.abs(seen.mean(axis=0) - strip).max() < 10, name
    assert gallery.canvas.dtype == np.uint8 and gallery.canvas.ndim == 3


def test_view_facing_a_photo_is_the_photo(gallery):
    # straight in front of the first photo, close enough that it fills the view
    rotation = demo._optical_rotation(0.0)
    assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.isclose(np.linalg.det(rotation), 1.0)
    image = demo.render_view(gallery, (gallery.centres[0], gallery.wall_y - 1.0, gallery.height), rotation, 64, 48)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    from PIL import Image
    from skimage import data

    photo = data.astronaut()
    # the view spans 64 / (0.9 * 64) * 1.0 m = 1.11 m of the 2 m wide photo around its centre
    half = 1.0 / 0.9 / 2 / gallery.photo_width * photo.shape[1]
    c = photo.shape[1] / 2
    crop = photo[round(c - half * 0.75): round(c + half * 0.75), round(c - half): round(c + half)]
    expected = np.asarray(Image.fromarray(crop).resize((64, 48), Image.BOX), np.float32)
    assert np.abs(image.astype(np.float32) - expected).mean() < 25


def test_camera_path_and_recording(gallery, tmp_path):
    frames = demo.camera_path(gallery, 3, 48, 36, fps=5.0)
    assert len(frames) == 6
    stamps = [f.stamp_ns for f in frames]
    assert stamps[0] == demo.START_NS and np.allclose(np.diff(stamps), 2e8)
    xs = [f.position[0] for f in frames]
    assert xs == sorted(xs) and all(f.position[1] < gallery.wall_y for f in frames)
    for f in frames:
        assert math.isclose(np.linalg.norm(f.orientation), 1.0, rel_tol=1e-9)

    bag = demo.write_recording(tmp_path / "rec", frames, storage="mcap")
    with BagReader(bag) as reader:
        assert reader.image_topics == [demo.IMAGE_TOPIC]
        assert reader.pose_topics == [demo.POSE_TOPIC]
        assert reader.camera_info_topic_for(demo.IMAGE_TOPIC) == demo.CAMERA_INFO_TOPIC
        info = reader.read_camera_info(demo.CAMERA_INFO_TOPIC)
        assert (info["width"], info["height"]) == (48, 36) and info["k"][0] == pytest.approx(0.9 * 48)
        read = list(reader.frames())
        track = reader.read_pose_track(demo.POSE_TOPIC)
    assert [r.stamp_ns for r in read] == stamps
    assert all(np.array_equal(r.image, f.image) for r, f in zip(read, frames))
    assert read[0].encoding == "rgb8" and read[0].frame_id == demo.CAMERA_FRAME
    assert np.allclose(track.positions, [f.position for f in frames])
    assert track.frame_id == demo.MAP_FRAME
