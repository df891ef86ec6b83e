"""Synthetic recordings and the ``gaussvae`` subprocess helpers shared by the replay and db tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaussvae_ros.bag.keyframes import KeyframeConfig
from gaussvae_ros.bag.writer import (
    BagMessage,
    camera_info_message,
    compressed_image_message,
    image_message,
    odometry_message,
    write_bag,
)
from gaussvae_ros.store.store import Store

from .shared import shared_bag as shared  # noqa: F401  (the replay tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
#: Small single-threaded fits so that the tests stay fast: the fitter's quality is tested elsewhere.
#: Quick replays: small fits with the quick codec (quantized Gaussians, no rate control); these tests
#: are about replay, the default codec (gaussians-rd) has its own replay tests.
FAST = dict(long_side=32, n_gaussians=24, max_iters=15, threads=1, codec="gaussians-q", memory_bytes=0)
#: Written recordings change picture every frame; a lower image-change threshold makes every frame a keyframe.
EVERY_FRAME = KeyframeConfig(min_image_change=0.05, duplicate_image_change=0.01)




def open_store(path):
    return Store(path, create=False)


def blocks(seed: int, height: int = 48, width: int = 64, color: bool = False) -> np.ndarray:
    """A distinct low-frequency picture per seed (4 x 4 blocks of random levels, blurred edges)."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, size=(4, 4, 3) if color else (4, 4)).astype(np.float64)
    image = np.kron(grid, np.ones((height // 4, width // 4) + ((1,) if color else ())))
    return image.astype(np.uint8)


def drifting(k: int) -> np.ndarray:
    """One scene panning slowly: frame ``k`` is frame 0 shifted by ``3 k`` pixels (small changes)."""
    return np.roll(blocks(0, color=True), 3 * k, axis=1)


def synthetic_recording(path: Path, frames: int = 6, period_ms: int = 500, first_pose_ms: int = 0,
                        broken: tuple[int, ...] = (), storage: str = "mcap", front=None) -> Path:
    """Two cameras (RGB raw + mono PNG), 20 Hz odometry from ``first_pose_ms`` moving 1 m/s along x,
    camera info for the raw camera, and truncated payloads for the frame indices in ``broken``.
    ``front(k)`` draws the RGB camera's frames (default: a new picture every frame)."""
    messages = []
    front_picture = front or (lambda k: blocks(k, color=True))
    for k in range(frames):
        stamp = T0 + k * period_ms * MS
        front = image_message(stamp, "front_optical", front_picture(k))
        if k in broken:
            front.data = front.data[: len(front.data) // 3]
        messages.append(BagMessage("/front/image_raw", "sensor_msgs/msg/Image", stamp + 2 * MS, front))
        messages.append(BagMessage("/front/camera_info", "sensor_msgs/msg/CameraInfo", stamp + 2 * MS,
                                   camera_info_message(stamp, "front_optical", 64, 48, 50.0, 50.0, 32.0, 24.0)))
        down = compressed_image_message(stamp + 10 * MS, "down_optical", blocks(1000 + k), "png")
        messages.append(BagMessage("/down/image_raw/compressed", "sensor_msgs/msg/CompressedImage", stamp + 12 * MS,
                                   down))
    for j in range(first_pose_ms // 50, frames * period_ms // 50 + 2):
        stamp = T0 + j * 50 * MS
        messages.append(BagMessage("/odom", "nav_msgs/msg/Odometry", stamp + 1 * MS,
                                   odometry_message(stamp, "odom", "base_link", (j * 0.05, 0.0, 0.0))))
    return write_bag(path, sorted(messages, key=lambda m: m.bag_time_ns), storage=storage)


def cli_env() -> dict:
    """The environment for ``gaussvae`` subprocesses: this source tree first on the path."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = cli_env()
    return subprocess.run([sys.executable, "-m", "gaussvae_ros.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
