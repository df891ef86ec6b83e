"""``make demo``: the main job on real photographs, live over ROS 2.

1. **Recording.** A virtual camera walks along a gallery wall hung with the real colour photographs
   scikit-image ships (astronaut, coffee, chelsea, rocket), panning across each one, turning
   slightly and moving in close to it and back. Its frames (``sensor_msgs/Image`` rgb8), its
   ground-truth poses (``geometry_msgs/PoseStamped`` in ``map``) and its calibration
   (``sensor_msgs/CameraInfo``) are written as a rosbag2 recording into the output folder.
2. **Graph.** The node graph (``gaussvae graph``: encoder, memory store, recall) is started as
   processes on a DDS domain of its own, on loopback.
3. **Live replay.** The recording is played into the graph with ``gaussvae play`` (the player in
   :mod:`gaussvae_ros.apps.player`) at its real pace; the encoder picks keyframes, fits them with 2D
   Gaussians and the memory node stores them. The demo gives the encoder a queue as long as the
   recording, so on a busy machine it catches up after the replay instead of dropping frames, and
   the memories are the same whatever the load (``--queue-size 2``: the graph's default, which
   drops the oldest waiting frame while fitting; ``benchmarks/bench_live.py`` measures that).
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
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
from PIL import Image, ImageDraw
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation
from skimage import data

from gaussvae_ros.apps.player import PlayOptions, Player
from gaussvae_ros.bag.images import image_message_to_numpy
from gaussvae_ros.bag.writer import BagMessage, camera_info_message, image_message, pose_stamped_message, write_bag
from gaussvae_ros.codecs import decode_payload
from gaussvae_ros.codecs import latent as lc
from gaussvae_ros.core import render, to_uint8
from gaussvae_ros.eval import ImageContext, pillow_codecs
from gaussvae_ros.nodes.convert import ns_to_time
from gaussvae_ros.pipeline import DEFAULT_MEMORY_BYTES, DEFAULT_MEMORY_CODEC
from gaussvae_ros.store.export import contact_sheet, pose_map
from gaussvae_ros.store.store import Store

# rclpy, the message packages and ament_index are imported where the demo talks ROS: the recording
# half (Gallery, camera_path, write_recording) works without a ROS install; matplotlib (~0.4 s to
# import) where a map is drawn.

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


# --- the node graph and a client of its services ------------------------------------------------

class DemoError(RuntimeError):
    """A stage of the demo failed; the message says which and why."""


def dds_environment(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with DDS on loopback and a domain id (a random one unless set)."""
    env = dict(os.environ if env is None else env)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if not env.get("ROS_DOMAIN_ID"):
        env["ROS_DOMAIN_ID"] = str(random.randint(1, 100))
    return env


class GraphProcess:
    """``gaussvae graph --params FILE`` as a child process (its own process group), output to ``log``.

    :meth:`stop` interrupts it like Ctrl-C and waits; it escalates to SIGTERM, then SIGKILL, so the
    graph never outlives the caller.
    """

    def __init__(self, params: Path, log: Path, env: dict, extra_args: tuple = (), command: tuple | None = None) -> None:
        self.params, self.log_path, self.env, self.extra_args = Path(params), Path(log), env, tuple(extra_args)
        self.command = command  # instead of gaussvae graph (``{params}`` is replaced by the parameter file)
        self.process = None
        self._log = None

    def start(self) -> "GraphProcess":
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "gaussvae_ros.cli.main", "graph", "--params", str(self.params), *self.extra_args]
        if self.command:
            cmd = [part.replace("{params}", str(self.params)) for part in self.command]
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=self.env, start_new_session=True)
        return self

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DemoError(f"the node graph exited with status {self.process.returncode}; "
                            f"its log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        try:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                if self.process.poll() is not None:
                    break
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            # children left in the group (a node whose parent went first)
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            return self.process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> "GraphProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class GraphClient:
    """An rclpy node of its own (own context) that calls the memory and recall services by their
    name's last part (whatever namespace the graph runs in) and follows the encoder's diagnostics."""

    def __init__(self, name: str = "gaussvae_demo") -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.encoder: dict = {}
        self.encoder_history: list[dict] = []  # every encoder status received, oldest first
        self.encoder_updates = 0
        self._clients: dict = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True, name="demo-client")
        self._thread.start()

    def _spin(self) -> None:
        try:
            while not self._stop.is_set():
                self._executor.spin_once(timeout_sec=0.05)
        except Exception:  # context shut down
            pass

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(": encoder"):
                self.encoder = {kv.key: kv.value for kv in status.values}
                self.encoder["_level"] = int.from_bytes(status.level, "little") if isinstance(status.level, bytes) \
                    else int(status.level)
                self.encoder["_message"] = status.message
                self.encoder["_t"] = time.perf_counter()
                self.encoder_history.append(dict(self.encoder))
                self.encoder_updates += 1

    def encoder_count(self, key: str) -> int:
        try:
            return int(float(self.encoder.get(key, "0")))
        except ValueError:
            return 0

    def service_name(self, suffix: str, timeout: float = 60.0, check=None) -> str:
        """The full name of the one service whose name ends with ``/suffix`` (waits for it to appear)."""
        deadline = time.monotonic() + timeout
        while True:
            names = [n for n, _ in self.node.get_service_names_and_types() if n.rsplit("/", 1)[-1] == suffix]
            if len(names) == 1:
                return names[0]
            if len(names) > 1:
                raise DemoError(f"several {suffix} services: {', '.join(sorted(names))}")
            if check is not None:
                check()
            if time.monotonic() > deadline:
                raise DemoError(f"no {suffix} service appeared within {timeout:g} s")
            time.sleep(0.2)

    def call(self, suffix: str, srv_type, request, timeout: float = 60.0):
        """Call the service ``.../suffix`` and return its response; raises DemoError on timeout."""
        client = self._clients.get(suffix)
        if client is None:
            client = self.node.create_client(srv_type, self.service_name(suffix))
            if not client.wait_for_service(timeout_sec=30.0):
                raise DemoError(f"service {suffix} is not answering")
            self._clients[suffix] = client
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                client.remove_pending_request(future)
                raise DemoError(f"service {suffix} did not answer within {timeout:g} s")
            time.sleep(0.002)
        if future.exception() is not None:
            raise DemoError(f"service {suffix} failed: {future.exception()}")
        return future.result()

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._executor.shutdown(timeout_sec=1)
            self.node.destroy_node()
            rclpy.shutdown(context=self.context)
        except Exception:  # already down
            pass

    def __enter__(self) -> "GraphClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the demo -----------------------------------------------------------------------------------

@dataclass
class DemoConfig:
    """Sizes and pace of a demo run (defaults: ``make demo``)."""

    photos: tuple = PHOTOS
    frames_per_photo: int = 10
    width: int = 320
    height: int = 240
    fps: float = 2.0
    rate: float = 1.0
    long_side: int = 256
    codec: str = DEFAULT_MEMORY_CODEC
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    n_gaussians: int = 512  # with memory_bytes 0
    max_iters: int = 0
    threads: int = 2
    min_translation_m: float = 1.0
    queue_size: int = 0  # encoder queue; 0 = one slot per frame of the recording (nothing dropped)
    pixels_per_m: float = 250.0
    min_psnr: float = 18.0
    storage: str = "sqlite3"
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 600.0
    recall_latency_repeats: int = 20
    graph_command: tuple | None = None  # instead of gaussvae graph (see GraphProcess)


class _Stages:
    """Runs named stages, timing each; a failure names its stage."""

    def __init__(self, quiet: bool) -> None:
        self.seconds: dict[str, float] = {}
        self.quiet = quiet

    def __call__(self, name: str):
        @contextlib.contextmanager
        def stage():
            if not self.quiet:
                print(f"[demo] {name}...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                yield
            except DemoError as exc:
                raise DemoError(f"{name}: {exc}") from exc
            except Exception as exc:
                raise DemoError(f"{name}: {type(exc).__name__}: {exc}") from exc
            self.seconds[name] = round(time.perf_counter() - start, 2)

        return stage()


def _find_default_params() -> Path | None:
    candidates = [Path(__file__).resolve().parents[1] / "config" / "gaussvae.yaml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("gaussvae_ros")) / "config" / "gaussvae.yaml")
    except Exception:  # not installed through ament
        pass
    return next((p for p in candidates if p.exists()), None)


def write_params(path: Path, base: Path | None, overrides: dict) -> Path:
    """A ROS 2 parameter file: ``base`` (the graph's default configuration) with ``overrides``.

    ``overrides`` maps a part of a node name (``encoder``, ``memory``, ``recall``) to parameters;
    they are set in every section of ``base`` whose node name contains that part (a section is
    added, as ``gaussvae_<part>``, when none does).
    """
    data = {}
    if base is not None:
        data = yaml.safe_load(Path(base).read_text()) or {}

    def sections(tree: dict, prefix: str = ""):
        for key, value in tree.items():
            if not isinstance(value, dict):
                continue
            if "ros__parameters" in value:
                yield f"{prefix}/{key}", value["ros__parameters"]
            else:
                yield from sections(value, f"{prefix}/{key}")

    for part, params in overrides.items():
        found = [p for name, p in sections(data) if part in name.rsplit("/", 1)[-1]]
        if not found:
            data[f"gaussvae_{part}"] = {"ros__parameters": {}}
            found = [data[f"gaussvae_{part}"]["ros__parameters"]]
        for p in found:
            for key, value in params.items():  # dotted names go into nested maps, as in the base file
                *parents, leaf = key.split(".")
                target = p
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _image_from_msg(msg) -> np.ndarray:
    return image_message_to_numpy(msg)


def _stamp_of(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


class _RecordView:
    """What :func:`gaussvae_ros.store.export.pose_map` reads of a stored record, from a MemoryInfo."""

    def __init__(self, info) -> None:
        p = info.pose.position
        self.stamp_ns = _stamp_of(info.header)
        self.pose = SimpleNamespace(position=(p.x, p.y, p.z)) if info.has_pose else None
        self.pose_frame_id = info.pose_frame_id


def gallery_map(gallery: Gallery, frames: list[CameraFrame], infos: list, path: Path) -> None:
    """Top view (map x-y) of the wall and its photographs, the camera's whole path, and where each
    stored memory was seen from (dot coloured by time, a short line along its viewing direction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.6), dpi=110)
    try:
        x_lo = gallery.centres[0] - gallery.pitch * 0.75
        x_hi = gallery.centres[-1] + gallery.pitch * 0.75
        ax.plot([x_lo, x_hi], [gallery.wall_y, gallery.wall_y], color="0.55", linewidth=6, solid_capstyle="butt",
                zorder=1)
        for name, cx in zip(gallery.photos, gallery.centres):
            half = gallery.photo_width / 2
            ax.plot([cx - half, cx + half], [gallery.wall_y, gallery.wall_y], color="tab:red", linewidth=6,
                    solid_capstyle="butt", zorder=2)
            ax.text(cx, gallery.wall_y + 0.18, name, ha="center", va="bottom", fontsize=10)
        path_xy = np.array([f.position[:2] for f in frames])
        ax.plot(path_xy[:, 0], path_xy[:, 1], color="0.6", linestyle="--", linewidth=1, zorder=1,
                label=f"camera path ({len(frames)} frames)")
        ax.scatter(path_xy[:, 0], path_xy[:, 1], color="0.6", s=6, zorder=1)
        posed = [i for i in infos if i.has_pose]
        if posed:
            xy = np.array([[i.pose.position.x, i.pose.position.y] for i in posed])
            t = np.array([(_stamp_of(i.header) - frames[0].stamp_ns) * 1e-9 for i in posed])
            for i, (x, y) in zip(posed, xy):
                q = i.pose.orientation
                forward = Rotation.from_quat([q.x, q.y, q.z, q.w]).apply([0.0, 0.0, 1.0])  # optical z
                ax.plot([x, x + 0.6 * forward[0]], [y, y + 0.6 * forward[1]], color="0.25", linewidth=1, zorder=2)
                ax.annotate(f"#{i.id}", (x, y), textcoords="offset points", xytext=(0, -13), ha="center",
                            fontsize=8)
            points = ax.scatter(xy[:, 0], xy[:, 1], c=t, cmap="viridis", s=60, zorder=3, edgecolors="black",
                                linewidths=0.5, label=f"stored memories ({len(posed)})")
            fig.colorbar(points, ax=ax, label="time (s)", fraction=0.03, pad=0.02, shrink=0.75)
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_aspect("equal")
        ax.set_ylim(min(path_xy[:, 1].min(), gallery.wall_y - 3.2) - 0.4, gallery.wall_y + 0.8)
        ax.set_xlim(x_lo - 0.2, x_hi + 0.2)
        ax.set_title("Where the memories were seen from: gallery wall, camera path, stored poses (map frame)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, format="png", bbox_inches="tight", pad_inches=0.15)
    finally:
        plt.close(fig)


def _with_header(sheet, text: str):
    """``sheet`` (a Pillow image) with a line of ``text`` above it."""
    out = Image.new("RGB", (sheet.width, sheet.height + 22), "white")
    out.paste(sheet, (0, 22))
    ImageDraw.Draw(out).text((6, 5), text, fill="black")
    return out


def wait_until_encoded(client: GraphClient, graph: GraphProcess, images_published: int, timeout: float,
                       quiet: bool = True) -> dict:
    """Wait until the encoder has taken every published image off its queue and the memory node
    holds every keyframe; returns the encoder's last diagnostics values."""
    from gaussvae_ros_interfaces.srv import GetStats

    deadline = time.monotonic() + timeout
    last_seen, stable, shown = None, 0, None
    while True:
        graph.check_alive()
        updates = client.encoder_updates
        time.sleep(0.5)
        if client.encoder_updates == updates:
            if time.monotonic() > deadline:
                raise DemoError(f"no encoder diagnostics for a while (timeout {timeout:g} s)")
            continue
        enc = client.encoder
        received = client.encoder_count("frames_received")
        busy = enc.get("encoding_now", "False") == "True" or client.encoder_count("queue_depth") > 0
        state = (received, client.encoder_count("frames_processed"), client.encoder_count("frames_dropped"),
                 client.encoder_count("keyframes"))
        stable = stable + 1 if state == last_seen and not busy else 0
        last_seen = state
        done_frames = received >= images_published or stable >= 3  # best-effort input may lose a frame
        if done_frames and not busy and stable >= 1:
            stats = client.call("get_stats", GetStats, GetStats.Request())
            if stats.success and int(stats.count) >= client.encoder_count("keyframes") - client.encoder_count(
                    "fit_errors"):
                return dict(enc)
        if time.monotonic() > deadline:
            raise DemoError(f"the graph did not finish encoding within {timeout:g} s (encoder: {enc})")
        if not quiet and state != shown:
            shown = state
            print(f"[demo]   encoder: {received}/{images_published} frames received, {state[1]} processed, "
                  f"{state[2]} dropped, {state[3]} keyframes", file=sys.stderr, flush=True)


def run_demo(out: Path, config: DemoConfig | None = None, quiet: bool = False) -> dict:
    """The whole demo into ``out``; returns the summary. Raises :class:`DemoError` when a stage fails."""
    c = config or DemoConfig()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stage = _Stages(quiet)
    summary: dict = {"out": str(out)}
    started = time.perf_counter()

    with stage("recording"):
        gallery, frames, bag = _make_recording(c, out)
        summary["recording"] = {"path": str(bag), "frames": len(frames), "size": f"{c.width}x{c.height}",
                                "seconds": round((frames[-1].stamp_ns - frames[0].stamp_ns) * 1e-9, 2),
                                "photos": list(c.photos)}
    originals = {f.stamp_ns: f for f in frames}
    database = out / "memories.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    env = dds_environment()
    graph = GraphProcess(_graph_params(c, out, database, len(frames)), out / "graph.log", env, command=c.graph_command)
    client = None
    saved_env = {k: os.environ.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")}
    os.environ.update({k: env[k] for k in saved_env})
    try:
        with stage("graph start"):
            graph.start()
            client = GraphClient()
            for name in ("query_by_time", "query_by_pose", "get_stats", "recall"):
                client.service_name(name, timeout=c.startup_timeout_s, check=graph.check_alive)
        summary["ros_domain_id"] = int(env["ROS_DOMAIN_ID"])
        with stage("live replay"):
            summary["replay"] = _play_live(c, bag, len(frames), quiet)
        with stage("encoding"):
            summary["encoder"] = _encoded(c, client, graph, summary["replay"]["images"], quiet)
        with stage("queries"):
            stats, infos, summary["queries"] = _check_queries(client, gallery, frames, originals)
        with stage("recall"):
            recalled = _recall_and_draw(c, client, out, gallery, frames, infos, originals, summary["queries"])
            summary["memories"] = recalled.pop("memories")
            summary["store"] = _store_figures(stats, database)
            summary.update(recalled)  # psnr_db, recall_ms_256x256_median
            summary["webp_same_bytes"] = webp_comparison(summary["memories"], originals)
            summary["vae_latent"] = latent_comparison(database, originals)
            if summary["psnr_db"]["mean"] < c.min_psnr:
                raise DemoError(f"mean PSNR {summary['psnr_db']['mean']} dB is below {c.min_psnr} dB")
            summary["outputs"] = {"recalled": str(out / "recalled"), "contact_sheet": str(out / "contact_sheet.png"),
                                  "pose_map": str(out / "pose_map.png"), "gallery_map": str(out / "gallery_map.png"),
                                  "summary": str(out / "summary.json"),
                                  "graph_log": str(graph.log_path)}
    finally:
        if client is not None:
            client.close()
        status = graph.stop()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    summary["graph_exit_status"] = status
    summary["seconds"] = dict(stage.seconds, total=round(time.perf_counter() - started, 1))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _make_recording(c: DemoConfig, out: Path) -> tuple[Gallery, list[CameraFrame], Path]:
    """Stage 1: the gallery, the camera's frames along it, and their recording in ``out/recording``."""
    gallery = Gallery(tuple(c.photos), pixels_per_m=c.pixels_per_m)
    frames = camera_path(gallery, c.frames_per_photo, c.width, c.height, fps=c.fps)
    bag = out / "recording"
    if bag.exists():
        shutil.rmtree(bag)
    write_recording(bag, frames, storage=c.storage)
    return gallery, frames, bag


def _graph_params(c: DemoConfig, out: Path, database: Path, frames: int) -> Path:
    """Stage 2's parameter file: the shipped parameters with the demo's topics, sizes and store."""
    return write_params(out / "params.yaml", _find_default_params(), {
        "encoder": {"image_topics": [IMAGE_TOPIC], "compressed_image_topics": [""], "odometry_topics": [""],
                    "pose_topics": [POSE_TOPIC], "camera_info_topics": [CAMERA_INFO_TOPIC],
                    "long_side": int(c.long_side), "n_gaussians": int(c.n_gaussians), "max_iters": int(c.max_iters),
                    "codec": c.codec, "memory_bytes": int(c.memory_bytes),
                    "threads": int(c.threads), "keyframe.min_translation_m": float(c.min_translation_m),
                    "queue_size": int(c.queue_size) or frames, "image_reliability": "reliable"},
        "memory": {"database": str(database)},
        "recall": {"database": str(database)},
    })


def _play_live(c: DemoConfig, bag: Path, frames: int, quiet: bool) -> dict:
    """Stage 3: the recording played into the graph at its pace; what the player reports."""
    options = PlayOptions(rate=c.rate, wait_for=[IMAGE_TOPIC, POSE_TOPIC, CAMERA_INFO_TOPIC],
                          wait_timeout_s=c.startup_timeout_s, settle_s=2.0, progress=not quiet)
    report = Player(bag, options).run()
    images_published = report.topics[IMAGE_TOPIC]["published"]
    if images_published != frames:
        raise DemoError(f"published {images_published} of {frames} images")
    return {"messages": report.messages_published, "images": images_published, "rate": c.rate,
            "achieved_rate": report.achieved_rate, "max_lag_ms": report.max_lag_ms,
            "wall_seconds": report.wall_seconds}


def _encoded(c: DemoConfig, client: GraphClient, graph: GraphProcess, images_published: int, quiet: bool) -> dict:
    """The encoder's counters once it has taken every published image."""
    enc = wait_until_encoded(client, graph, images_published, c.drain_timeout_s, quiet)
    counts = {k: client.encoder_count(k) for k in (
        "frames_received", "frames_processed", "frames_dropped", "keyframes", "decode_errors", "fit_errors")}
    counts["fit_ms_mean"] = enc.get("fit_ms_mean")
    return counts


def _pose_query(x: float, y: float, z: float, **fields):
    from gaussvae_ros_interfaces.msg import PoseQuery

    q = PoseQuery(frame_id=MAP_FRAME, **fields)
    q.position.x, q.position.y, q.position.z = float(x), float(y), float(z)
    return q


def _check_queries(client: GraphClient, gallery: Gallery, frames: list[CameraFrame], originals: dict):
    """Stage 4: the memories looked up by time and by pose through the services, each answer checked
    against the recording; returns ``(stats, infos, summary)``."""
    from gaussvae_ros_interfaces.msg import TimeQuery
    from gaussvae_ros_interfaces.srv import GetStats, QueryByPose, QueryByTime

    stats = client.call("get_stats", GetStats, GetStats.Request())
    if not stats.success:
        raise DemoError(f"get_stats: {stats.message}")
    if stats.count < 1:
        raise DemoError("the memory store is empty after the replay")
    every = client.call("query_by_time", QueryByTime, QueryByTime.Request(query=TimeQuery()))
    if not every.success:
        raise DemoError(f"query_by_time: {every.message}")
    infos = list(every.memories)
    if len(infos) != stats.count:
        raise DemoError(f"query_by_time returned {len(infos)} memories, get_stats says {stats.count}")
    stamps = [_stamp_of(i.header) for i in infos]
    if stamps != sorted(stamps) or not set(stamps) <= set(originals):
        raise DemoError("query_by_time: memories out of order or with stamps not in the recording")
    # time window: while the camera was in front of the second photo (or the first)
    target = min(1, len(gallery.centres) - 1)
    window = [f.stamp_ns for f in frames if abs(f.position[0] - gallery.centres[target]) <= gallery.pitch / 2]
    in_window = client.call("query_by_time", QueryByTime, QueryByTime.Request(
        query=TimeQuery(start=ns_to_time(window[0]), end=ns_to_time(window[-1]))))
    expected = [s for s in stamps if window[0] <= s <= window[-1]]
    got = [_stamp_of(i.header) for i in in_window.memories]
    if not in_window.success or got != expected:
        raise DemoError(f"query_by_time window: expected {len(expected)} memories, got {len(got)} "
                        f"({in_window.message})")
    posed = {int(i.id): np.array([i.pose.position.x, i.pose.position.y, i.pose.position.z])
             for i in infos if i.has_pose}
    # by pose: the memory nearest to a spot in front of each photo
    by_pose = []
    for name, cx in zip(gallery.photos, gallery.centres):
        spot = (cx, gallery.wall_y - 1.45, gallery.height)
        answer = client.call("query_by_pose", QueryByPose, QueryByPose.Request(query=_pose_query(*spot, k=1)))
        if not answer.success or not answer.memories:
            raise DemoError(f"query_by_pose near {name}: {answer.message or 'no memory'}")
        m = answer.memories[0]
        by_pose.append({"photo": name, "query_position": [round(cx, 3), round(gallery.wall_y - 1.45, 3),
                                                            gallery.height],
                        "id": int(m.id), "distance_m": round(float(answer.distances[0]), 3),
                        "memory_position": [round(m.pose.position.x, 3), round(m.pose.position.y, 3),
                                            round(m.pose.position.z, 3)]})
        # must be the nearest of all memories (brute force over the time query's answer)
        here = np.array(by_pose[-1]["query_position"])
        dists = {i: float(np.linalg.norm(p - here)) for i, p in posed.items()}
        best = min(dists.values())
        if abs(dists.get(int(m.id), math.inf) - best) > 1e-6 or abs(answer.distances[0] - best) > 1e-6:
            raise DemoError(f"query_by_pose near {name}: memory #{m.id} at {answer.distances[0]:.3f} m is "
                            f"not the nearest ({best:.3f} m)")
    spot = (gallery.centres[0], gallery.wall_y - 1.45, gallery.height)
    near_first = client.call("query_by_pose", QueryByPose, QueryByPose.Request(query=_pose_query(*spot, radius=1.0)))
    if not near_first.success:
        raise DemoError(f"query_by_pose radius: {near_first.message}")
    here = np.array(spot)
    expected_ids = sorted(i for i, p in posed.items() if np.linalg.norm(p - here) <= 1.0)
    if sorted(int(m.id) for m in near_first.memories) != expected_ids:
        raise DemoError(f"query_by_pose radius 1 m: got {len(near_first.memories)} memories, "
                        f"expected {len(expected_ids)}")
    return stats, infos, {
        "all_by_time": len(infos),
        "time_window": {"photo": gallery.photos[target], "start_s": round((window[0] - START_NS) * 1e-9, 2),
                        "end_s": round((window[-1] - START_NS) * 1e-9, 2), "memories": len(got)},
        "nearest_by_pose": by_pose,
        "within_1m_of_first_photo": len(near_first.memories),
    }


def _recall_and_draw(c: DemoConfig, client: GraphClient, out: Path, gallery: Gallery, frames: list[CameraFrame],
                     infos: list, originals: dict, queries: dict) -> dict:
    """Stage 5: every memory recalled at the camera's size and compared with its frame, the contact
    sheet and maps drawn, a recall by pose at twice the size, recall latency; returns the summary's
    ``memories``, ``psnr_db`` and ``recall_ms_256x256_median``."""
    from gaussvae_ros_interfaces.srv import Recall

    recalled_dir = out / "recalled"
    if recalled_dir.exists():
        shutil.rmtree(recalled_dir)
    recalled_dir.mkdir()
    ids = [int(i.id) for i in infos]
    answer = client.call("recall", Recall, Recall.Request(select=Recall.Request.SELECT_IDS, ids=ids), timeout=300)
    if not answer.success or list(answer.ids) != ids:
        raise DemoError(f"recall by ids: {answer.message or 'wrong ids'}")
    rows, tiles, labels = [], [], []
    for info, msg in zip(infos, answer.images):
        image = _image_from_msg(msg)
        stamp = _stamp_of(msg.header)
        original = originals.get(stamp)
        if original is None or image.shape != original.image.shape:
            raise DemoError(f"recalled memory {info.id}: size {image.shape} or stamp {stamp} does not match "
                            f"its original frame")
        t = (stamp - START_NS) * 1e-9
        Image.fromarray(image).save(recalled_dir / f"{int(info.id):04d}_t{t:05.2f}s.png")
        value = _psnr_u8(original.image, image)
        rows.append({"id": int(info.id), "t_s": round(t, 2), "stamp_ns": int(stamp), "psnr_db": round(value, 2),
                     "payload_bytes": int(info.payload_size),
                     "fit_psnr_db": round(float(info.psnr_db), 2) if info.has_fit_quality else None,
                     "position": [round(info.pose.position.x, 3), round(info.pose.position.y, 3),
                                  round(info.pose.position.z, 3)] if info.has_pose else None})
        tiles.append(np.concatenate([original.image, np.full((4, c.width, 3), 255, np.uint8), image], axis=0))
        labels.append(f"#{info.id} t={t:.1f}s {value:.1f} dB, {info.payload_size} B")
    sheet = _with_header(
        contact_sheet(tiles, labels, columns=min(6, len(tiles)), tile_width=min(c.width, 240)),
        f"Each pair: the camera frame (top) and its memory recalled through the recall service at "
        f"{c.width}x{c.height} (bottom); label: memory id, capture time, PSNR, payload size")
    sheet.save(out / "contact_sheet.png")
    pose_map([_RecordView(i) for i in infos], out / "pose_map.png",
             title=f"{len(infos)} stored poses coloured by time (map frame)")
    gallery_map(gallery, frames, infos, out / "gallery_map.png")
    # recall by pose: the memory seen nearest to the spot in front of each photo, at twice the size
    for entry in queries["nearest_by_pose"]:
        q = _pose_query(*entry["query_position"], k=1)
        by_pose = client.call("recall", Recall, Recall.Request(select=Recall.Request.SELECT_POSE, pose_query=q,
                                                               width=2 * c.width, height=0))
        if not by_pose.success or len(by_pose.images) != 1:
            raise DemoError(f"recall by pose near {entry['photo']}: {by_pose.message or 'no image'}")
        big = _image_from_msg(by_pose.images[0])
        if big.shape[:2] != (2 * c.height, 2 * c.width):
            raise DemoError(f"recall at {2 * c.width}x0 returned {big.shape[1]}x{big.shape[0]}")
        Image.fromarray(big).save(out / f"recalled_near_{entry['photo']}_{2 * c.width}x{2 * c.height}.png")
    # latency of one recall at 256x256
    times = []
    for _ in range(c.recall_latency_repeats):
        t0 = time.perf_counter()
        one = client.call("recall", Recall, Recall.Request(select=Recall.Request.SELECT_IDS, ids=ids[:1],
                                                           width=256, height=256))
        times.append(time.perf_counter() - t0)
        if not one.success:
            raise DemoError(f"recall latency: {one.message}")
    psnrs = [r["psnr_db"] for r in rows]
    return {"memories": rows,
            "psnr_db": {"mean": round(statistics.fmean(psnrs), 2), "min": round(min(psnrs), 2),
                        "max": round(max(psnrs), 2), "at": f"{c.width}x{c.height} (original size)"},
            "recall_ms_256x256_median": round(statistics.median(times) * 1e3, 1)}


def _store_figures(stats, database: Path) -> dict:
    """The summary's ``store``: memories, bytes and compression from ``GetStats``."""
    return {"memories": int(stats.count), "payload_bytes": int(stats.payload_bytes),
            "bytes_per_memory": round(stats.payload_bytes / stats.count, 1), "raw_bytes": int(stats.raw_bytes),
            "compression_ratio": round(stats.raw_bytes / stats.payload_bytes, 1) if stats.payload_bytes else None,
            "database": str(database), "database_bytes": int(stats.storage_bytes)}


def webp_comparison(rows: list[dict], originals: dict) -> dict:
    """What a user would store instead: each memory's camera frame as a WebP file of at most the
    memory's payload bytes, resolution chosen per frame (the best of the downscale factors of
    :class:`gaussvae_ros.eval.ScaledPillowCodec`), decoded back to the frame's size: PSNR against
    the frame beside the recalled memory's (both at the original size)."""
    codecs, notes = pillow_codecs(["webp-scaled"])
    if not codecs:
        return {"skipped": notes["webp-scaled"]}
    psnrs, sizes = [], []
    for row in rows:
        ctx = ImageContext(str(row["id"]), originals[row["stamp_ns"]].image)
        encoded = codecs[0].compress(ctx, row["payload_bytes"])
        sizes.append(encoded.nbytes)
        psnrs.append(_psnr_u8(ctx.reference, encoded.image))
        row["webp_psnr_db"] = round(psnrs[-1], 2)
    mean = statistics.fmean
    return {"bytes_per_memory": round(mean(sizes), 1), "psnr_db_mean": round(mean(psnrs), 2),
            "memories_psnr_db_mean": round(mean(r["psnr_db"] for r in rows), 2),
            "method": "webp-scaled: best of downscale factors 1..0.25, best quality within the memory's bytes"}


#: Refinement steps of the demo's re-encoded latents (~1 s per memory on one core).
REFINE_ITERS = 100


def latent_comparison(database: Path, originals: dict) -> dict | None:
    """The stored memories re-encoded with the shipped VAE latent model (``vae-latent`` at its
    default step), as the encoder's latent and refined against the camera frame within the same
    bytes (:mod:`gaussvae_ros.codecs.latent.refine`): bytes and PSNR against the frames, beside the stored
    payloads'. None when this build ships no model; ``skipped`` says why when the memories hold
    another Gaussian count."""
    if not lc.default_model_path().exists():
        return None
    bundle = lc.load_default_bundle()
    sizes, psnrs, refined_sizes, refined_psnrs = [], [], [], []
    with Store(database, create=False) as store:
        for record in store.by_time(with_payload=True):
            original = originals[record.stamp_ns].image
            gaussians = decode_payload(record.payload, record.codec, record.model_id)
            if len(gaussians) != bundle.seq_len:
                return {"model_id": bundle.model_id, "skipped": f"memories hold {len(gaussians)} Gaussians, "
                                                               f"the model encodes {bundle.seq_len}"}
            plain = lc.encode_latent(bundle, gaussians)
            refined, _ = lc.encode_to_budget(bundle, gaussians, len(plain), image=original,
                                             refine_iters=REFINE_ITERS)  # at most the plain payload's bytes
            for payload, sizes_, psnrs_ in ((plain, sizes, psnrs), (refined, refined_sizes, refined_psnrs)):
                image = to_uint8(render(lc.decode_latent(bundle, payload), *original.shape[:2]))
                sizes_.append(len(payload))
                psnrs_.append(_psnr_u8(original, image))
    mean = statistics.fmean
    return {"model_id": bundle.model_id, "bytes_per_memory": round(mean(sizes), 1),
            "psnr_db_mean": round(mean(psnrs), 2), "refine_iters": REFINE_ITERS,
            "refined_bytes_per_memory": round(mean(refined_sizes), 1),
            "refined_psnr_db_mean": round(mean(refined_psnrs), 2)}


def print_summary(s: dict) -> None:
    rec, st, q = s["recording"], s["store"], s["queries"]
    enc = s["encoder"]
    print(f"gaussvae_ros demo -> {s['out']}")
    print(f"  recording: {rec['frames']} frames {rec['size']} rgb8 over {rec['seconds']} s, camera walking past "
          f"{', '.join(rec['photos'])}")
    print(f"  live replay at rate {s['replay']['rate']:g}: {s['replay']['messages']} messages, achieved rate "
          f"{s['replay']['achieved_rate']}, max lag {s['replay']['max_lag_ms']:.0f} ms")
    print(f"  encoder: {enc['frames_received']}/{s['replay']['images']} frames received, {enc['frames_processed']} processed, "
          f"{enc['frames_dropped']} dropped (busy), {enc['keyframes']} keyframes")
    print(f"  store: {st['memories']} memories, {st['bytes_per_memory']:.0f} bytes per memory "
          f"({st['compression_ratio']}x smaller than the raw frames)")
    print(f"  query_by_time: {q['all_by_time']} memories; {q['time_window']['memories']} while facing "
          f"{q['time_window']['photo']} ({q['time_window']['start_s']}-{q['time_window']['end_s']} s)")
    for e in q["nearest_by_pose"]:
        print(f"  query_by_pose: nearest to the spot in front of {e['photo']}: memory #{e['id']}, "
              f"{e['distance_m']:.2f} m away")
    p = s["psnr_db"]
    print(f"  recall at {p['at']}: PSNR mean {p['mean']:.2f} dB (min {p['min']:.2f}, max {p['max']:.2f}); "
          f"one memory at 256x256 in {s['recall_ms_256x256_median']:.1f} ms (median)")
    w = s.get("webp_same_bytes") or {}
    if "skipped" not in w:
        print(f"  what a user would store instead: WebP thumbnails of the frames in as many bytes (resolution "
              f"chosen per frame), {w['bytes_per_memory']:.0f} bytes: PSNR mean {w['psnr_db_mean']:.2f} dB against "
              f"the memories' {w['memories_psnr_db_mean']:.2f} dB")
    if s.get("vae_latent") and "skipped" not in s["vae_latent"]:
        v = s["vae_latent"]
        print(f"  the same memories as VAE latents (codec vae-latent, model {v['model_id']}): "
              f"{v['bytes_per_memory']:.0f} bytes per memory, PSNR mean {v['psnr_db_mean']:.2f} dB; refined "
              f"against the frames in as many bytes: {v['refined_bytes_per_memory']:.0f} bytes, "
              f"{v['refined_psnr_db_mean']:.2f} dB")
    o = s["outputs"]
    print(f"  wrote {o['recalled']}/*.png, {o['contact_sheet']}, {o['pose_map']}, {o['gallery_map']}, "
          f"{o['summary']}")
    print(f"  stages (s): {', '.join(f'{k} {v}' for k, v in s['seconds'].items())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), help="scikit-image photographs on the wall")
    parser.add_argument("--frames-per-photo", type=int, default=DemoConfig.frames_per_photo)
    parser.add_argument("--size", default=f"{DemoConfig.width}x{DemoConfig.height}", help="frame size WxH")
    parser.add_argument("--fps", type=float, default=DemoConfig.fps, help="camera frame rate of the recording")
    parser.add_argument("--rate", type=float, default=DemoConfig.rate, help="replay speed factor")
    parser.add_argument("--long-side", type=int, default=DemoConfig.long_side, help="encoder working size, px")
    parser.add_argument("--codec", default=DemoConfig.codec, help=f"payload codec (default {DemoConfig.codec})")
    parser.add_argument("--memory-bytes", type=int, default=DemoConfig.memory_bytes,
                        help=f"bytes per memory (default {DemoConfig.memory_bytes}; 0: the codec's own size)")
    parser.add_argument("--gaussians", type=int, default=DemoConfig.n_gaussians,
                        help="Gaussians per memory with --memory-bytes 0")
    parser.add_argument("--max-iters", type=int, default=DemoConfig.max_iters, help="fit iteration cap (0 = default)")
    parser.add_argument("--min-translation", type=float, default=DemoConfig.min_translation_m,
                        help="encoder keyframe distance, m")
    parser.add_argument("--queue-size", type=int, default=DemoConfig.queue_size,
                        help="encoder queue (default 0: one slot per frame, so the encoder sees every frame "
                             "however busy the machine; 2 = the graph's default, dropping frames while fitting)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must look like 320x240, got {args.size!r}")
    config = DemoConfig(photos=tuple(args.photos), frames_per_photo=args.frames_per_photo, width=width, height=height,
                        fps=args.fps, rate=args.rate, long_side=args.long_side, n_gaussians=args.gaussians,
                        codec=args.codec, memory_bytes=args.memory_bytes,
                        max_iters=args.max_iters, min_translation_m=args.min_translation, queue_size=args.queue_size)
    try:
        summary = run_demo(Path(args.out), config, quiet=args.quiet)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
