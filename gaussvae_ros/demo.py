"""``make demo``: the main job on real photographs, live over ROS 2.

1. **Recording.** A virtual camera walks along a gallery wall hung with the real colour photographs
   scikit-image ships (astronaut, coffee, chelsea, rocket), panning across each one, turning
   slightly and moving in close to it and back. Its frames (``sensor_msgs/Image`` rgb8), its
   ground-truth poses (``geometry_msgs/PoseStamped`` in ``map``) and its calibration
   (``sensor_msgs/CameraInfo``) are written as a rosbag2 recording into the output folder.
2. **Graph.** The node graph (``gaussvae graph``: encoder, memory store, recall) is started as
   processes on a DDS domain of its own, on loopback.
3. **Live replay.** The recording is played into the graph with ``gaussvae play`` (the player in
   :mod:`gaussvae_ros.player`); the encoder picks keyframes, fits them with 2D Gaussians and the
   memory node stores them.
4. **Queries.** Memories are looked up through the ROS services by time and by pose, and recalled
   as images through the recall service at the original camera size.
5. **Outputs.** The recalled images, a contact sheet (original above, recalled below), a map of the
   stored poses, ``summary.json``; bytes per memory and PSNR of each recalled image against the
   original frame.

Any failing stage ends the demo with a non-zero exit status; the graph is always shut down.
Needs no GPU and no ROS install (rclpy and the message packages come from PyPI).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The photographs on the wall, left to right (all ship with scikit-image).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")

IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
POSE_TOPIC = "/camera/pose"
CAMERA_FRAME = "camera_optical"
MAP_FRAME = "map"
#: First stamp of the recording (ns): 2024-01-01 00:00:00 UTC.
START_NS = 1_704_067_200_000_000_000


# --- the gallery and the camera path ------------------------------------------------------------

@dataclass
class Gallery:
    """A wall in the plane ``y = wall_y`` of the ``map`` frame (x forward, y left, z up) with
    photographs hung side by side along x, centred at ``height`` metres, each ``photo_width`` wide.

    ``canvas`` is the wall's texture, ``pixels_per_m`` pixels per metre, its column 0 at
    ``x = x0`` and row 0 at ``z = z_top``.
    """

    photos: tuple | list = PHOTOS
    photo_width: float = 2.0
    gap: float = 0.6
    height: float = 1.5
    wall_y: float = 3.0
    pixels_per_m: float = 250.0
    margin: float = 3.5
    z_top: float = 4.0
    z_bottom: float = -1.0

    def __post_init__(self) -> None:
        from PIL import Image
        from skimage import data

        ppm = self.pixels_per_m
        self.pitch = self.photo_width + self.gap
        self.centres = [i * self.pitch for i in range(len(self.photos))]
        self.x0 = -self.photo_width / 2 - self.margin
        x1 = self.centres[-1] + self.photo_width / 2 + self.margin
        w, h = round((x1 - self.x0) * ppm), round((self.z_top - self.z_bottom) * ppm)
        rows = (self.z_top - (np.arange(h) + 0.5) / ppm)[:, None]
        # Painted wall: warm off-white, slightly darker towards the floor, a skirting board, a floor.
        wall = np.array([226, 219, 204], np.float32) * (0.93 + 0.07 * np.clip((rows - 0.1) / 2.5, 0, 1))[..., None]
        canvas = np.broadcast_to(wall, (h, w, 3)).copy()
        rng = np.random.default_rng(7)
        canvas += rng.normal(0, 2.0, canvas.shape).astype(np.float32)  # plaster texture
        canvas[(rows[:, 0] < 0.12) & (rows[:, 0] >= 0.0)] = (92, 84, 76)  # skirting board
        canvas[rows[:, 0] < 0.0] = (134, 104, 78)  # wooden floor
        frame_px = round(0.05 * ppm)  # dark picture frames, 5 cm
        for name, cx in zip(self.photos, self.centres):
            photo = getattr(data, name)()
            if photo.ndim == 2:
                photo = np.stack([photo] * 3, axis=2)
            photo = photo[:, :, :3]
            pw = round(self.photo_width * ppm)
            ph = round(pw * photo.shape[0] / photo.shape[1])
            photo = np.asarray(Image.fromarray(photo).resize((pw, ph), Image.LANCZOS), np.float32)
            left = round((cx - self.photo_width / 2 - self.x0) * ppm)
            top = round((self.z_top - self.height) * ppm - ph / 2)
            canvas[top - frame_px: top + ph + frame_px, left - frame_px: left + pw + frame_px] = (38, 32, 28)
            canvas[top: top + ph, left: left + pw] = photo
        self.canvas = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        self._planes = np.moveaxis(self.canvas.astype(np.float32), 2, 0)

    def sample(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Wall colours (float32 ``[..., 3]``) at wall points ``(x, z)`` (m), bilinear."""
        from scipy.ndimage import map_coordinates

        cols = (x - self.x0) * self.pixels_per_m - 0.5
        rows = (self.z_top - z) * self.pixels_per_m - 0.5
        return np.stack([map_coordinates(p, [rows, cols], order=1, mode="nearest") for p in self._planes], axis=-1)


@dataclass
class CameraFrame:
    """One frame of the path: ``image`` uint8 ``[H, W, 3]`` RGB, camera ``position`` (m) and
    ``orientation`` (quaternion ``x, y, z, w`` of the optical frame in ``map``), ``stamp_ns``."""

    stamp_ns: int
    image: np.ndarray
    position: tuple
    orientation: tuple


def camera_intrinsics(width: int, height: int) -> tuple[float, float, float, float]:
    """``fx, fy, cx, cy`` (px) of the virtual camera: about 58 degrees horizontal field of view."""
    f = 0.9 * width
    return f, f, width / 2.0, height / 2.0


def _optical_rotation(yaw: float) -> np.ndarray:
    """Camera optical frame (x right, y down, z forward) in ``map`` when facing +y turned by ``yaw``."""
    forward = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    right = np.cross(down, forward)  # = forward x up
    return np.stack([right, down, forward], axis=1)


def render_view(gallery: Gallery, position, rotation: np.ndarray, width: int, height: int,
                supersample: int = 2) -> np.ndarray:
    """What a pinhole camera at ``position`` with optical-frame ``rotation`` sees of the wall (uint8 RGB)."""
    fx, fy, cx, cy = camera_intrinsics(width, height)
    s = supersample
    u = (np.arange(width * s) + 0.5) / s
    v = (np.arange(height * s) + 0.5) / s
    uu, vv = np.meshgrid(u, v)
    rays = np.stack([(uu - cx) / fx, (vv - cy) / fy, np.ones_like(uu)], axis=-1) @ rotation.T
    c = np.asarray(position, dtype=np.float64)
    t = (gallery.wall_y - c[1]) / rays[..., 1]
    colours = gallery.sample(c[0] + t * rays[..., 0], c[2] + t * rays[..., 2])
    colours = colours.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    return np.clip(np.rint(colours), 0, 255).astype(np.uint8)


def camera_path(gallery: Gallery, frames_per_photo: int, width: int, height: int, fps: float = 4.0,
                start_ns: int = START_NS) -> list[CameraFrame]:
    """The camera walking along the wall at a steady pace, ``frames_per_photo`` frames per photo.

    In front of each photo the camera stands close (it fills the view: a zoom in), between photos
    it stands back (two photos in view) and turns a little towards where it goes next and came from.
    """
    from scipy.spatial.transform import Rotation

    n = frames_per_photo * len(gallery.centres)
    first, last = gallery.centres[0] - 0.35 * gallery.pitch, gallery.centres[-1] + 0.35 * gallery.pitch
    out = []
    for i in range(n):
        x = first + (last - first) * i / max(1, n - 1)
        phase = 2 * math.pi * (x - gallery.centres[0]) / gallery.pitch
        distance = 2.2 - 0.75 * math.cos(phase)  # 1.45 m in front of a photo, 2.95 m between two
        yaw = 0.14 * math.sin(phase)  # turns up to 8 degrees
        z = gallery.height + 0.12 * math.sin(0.5 * phase)  # the camera bobs a little
        position = (x, gallery.wall_y - distance, z)
        rotation = _optical_rotation(yaw)
        image = render_view(gallery, position, rotation, width, height)
        q = Rotation.from_matrix(rotation).as_quat()  # x, y, z, w
        out.append(CameraFrame(start_ns + round(i * 1e9 / fps), image, tuple(float(v) for v in position),
                               tuple(float(v) for v in q)))
    return out


def write_recording(path: Path, frames: list[CameraFrame], storage: str = "sqlite3") -> Path:
    """The frames as a rosbag2 recording: images, camera info and poses, bag time = header stamp."""
    from .bag.writer import BagMessage, camera_info_message, image_message, pose_stamped_message, write_bag

    h, w = frames[0].image.shape[:2]
    fx, fy, cx, cy = camera_intrinsics(w, h)
    messages = []
    for f in frames:
        s = f.stamp_ns
        messages.append(BagMessage(POSE_TOPIC, "geometry_msgs/msg/PoseStamped", s,
                                   pose_stamped_message(s, MAP_FRAME, f.position, f.orientation)))
        messages.append(BagMessage(CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", s + 1,
                                   camera_info_message(s, CAMERA_FRAME, w, h, fx, fy, cx, cy)))
        messages.append(BagMessage(IMAGE_TOPIC, "sensor_msgs/msg/Image", s + 2,
                                   image_message(s, CAMERA_FRAME, f.image, "rgb8")))
    return write_bag(path, messages, storage=storage)
