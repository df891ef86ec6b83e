"""``gaussvae_encoder``: camera frames in, fitted-Gaussian memories out.

A thin ROS shell over the memory pipeline (:mod:`gaussvae_ros.pipeline`), which offline replay
runs too: each frame is decoded (:func:`gaussvae_ros.bag.images.message_to_numpy`), its pose looked
up at the header stamp (:class:`gaussvae_ros.bag.poses.PoseTrack`, same interpolation and
tolerances as replay), shrunk to the working resolution (:func:`gaussvae_ros.pipeline.prepare_frame`),
judged by the keyframe policy per camera (:class:`gaussvae_ros.bag.keyframes.KeyframePolicy`,
camera = topic + frame id) and, when kept, fitted and encoded (:func:`gaussvae_ros.pipeline.fit_memory`
with the node's :class:`~gaussvae_ros.pipeline.MemorySettings`; warm-started from that camera's
previous keyframe when the two look alike, :func:`gaussvae_ros.pipeline.warm_start`) and published
as a record. Fit quality in the record is
measured at the working resolution, as replay stores it.

Threading: subscription callbacks only put the message on a bounded queue and return; one worker
thread decodes, decides and fits, so the executor never waits for a fit. When the queue is full,
the OLDEST waiting frame is dropped and counted: the encoder stays on the newest frames (a live
memory wants the current scene, and the keyframe policy then judges what is fresh). The queue
never holds more than ``queue_size`` messages, so memory stays bounded whatever the input rate.
Poses are looked up by the worker: when a pose source's newest sample is older than the image
(odometry often lags the camera), it waits up to ``pose_wait_s`` for the sample after it, then
interpolates or takes the nearest sample as replay does. (Replay waits for samples up to
``pose_max_gap_s`` past the frame because a recording may hold them out of order; a live topic
delivers them in order, so the first sample after the stamp settles the lookup.)

Subscriptions (best effort, matching reliable and best-effort publishers; sensor-data QoS for
images and camera info, depth 100 for poses):
    ``image_topics``                sensor_msgs/Image (mono8, mono16, rgb8, bgr8, rgba8, bgra8, ...)
    ``compressed_image_topics``     sensor_msgs/CompressedImage (PNG, JPEG)
    ``odometry_topics``             nav_msgs/Odometry      } pose sources, first with a pose at the
    ``pose_topics``                 geometry_msgs/PoseStamped } image stamp wins, in this order
    ``camera_info_topics``          sensor_msgs/CameraInfo: matched to an image by header frame id,
                                    else by namespace (``/cam/camera_info`` for ``/cam/image_raw``),
                                    else the only one when there is one image and one info topic
    /tf, /tf_static                 only with ``tf_fixed_frame`` set and tf2_ros installed: the
                                    camera frame's pose in that frame, when no pose topic has one

Publications:
    ``memories``     gaussvae_ros_interfaces/MemoryRecord, reliable, transient local, depth 50
    ``/diagnostics`` diagnostic_msgs/DiagnosticArray every ``diagnostics_period_s``: frames received,
                     dropped, processed, keyframes, skipped by reason, errors, queue depth and high
                     water, encode latency (receipt to publish) and fit time in ms

Parameters: see :data:`PARAMETERS` (and ``config/gaussvae.yaml``). Topic lists, ``tf_fixed_frame``,
``queue_size``, ``device`` and ``diagnostics_period_s`` are read-only; the rest can change at run
time (the next keyframe uses them; a new ``n_gaussians`` or ``long_side`` restarts warm starts).

Throughput: a fit at the defaults (512 Gaussians, long side 256, 100 iterations, one thread) takes
about half a second on a CPU core, more on a loaded machine; when keyframes come faster than
that, frames are dropped (counted) and the memories thin out. Lower ``max_iters`` /
``n_gaussians``, or raise ``queue_size`` to trade latency for completeness.
"""

from __future__ import annotations

import array
import collections
import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from gaussvae_ros_interfaces.msg import MemoryRecord

from gaussvae_ros.bag.images import ImageDecodeError, message_to_numpy
from gaussvae_ros.bag.keyframes import KeyframeConfig, KeyframePolicy
from gaussvae_ros.bag.poses import PoseTrack, StampedPose, pose_from_message
from gaussvae_ros.bag.reader import camera_namespace, header_stamp_ns
from gaussvae_ros.codecs import ENCODABLE_CODECS, LATENT_TILE_SETTINGS
from gaussvae_ros.codecs import gaussians_rd as rd
from gaussvae_ros.pipeline import (DEFAULT_GAUSSIANS, DEFAULT_LONG_SIDE, DEFAULT_MAX_ITERS, DEFAULT_MEMORY_BYTES,
                                   DEFAULT_MEMORY_CODEC, DEFAULT_THREADS,
                                   DEFAULT_WARM_START_MAX_CHANGE, FittedMemory, MemorySettings, fit_memory,
                                   prepare_frame, warm_start)

from .convert import MEMORY_QOS, device_for, diagnostic_status, guarded_callback
from .params import ParamSpec, check_choice, check_range, declare_parameters, install_validator, real_list
from .runner import run_node

try:  # optional: TF poses (tf2_ros is not a pip package; present on a real ROS 2 install)
    from tf2_ros import Buffer as _TfBuffer
    from tf2_ros import TransformListener as _TfListener
except ImportError:  # pragma: no cover - depends on the installation
    _TfBuffer = _TfListener = None

_KEYFRAME = KeyframeConfig()

PARAMETERS = (
    ParamSpec("image_topics", ["image_raw"], "sensor_msgs/Image topics to encode ([\"\"] = none)", True),
    ParamSpec("compressed_image_topics", [""],
              "sensor_msgs/CompressedImage (PNG / JPEG) topics to encode ([\"\"] = none)", True),
    ParamSpec("odometry_topics", ["odom"], "nav_msgs/Odometry pose sources, in priority order ([\"\"] = none)", True),
    ParamSpec("pose_topics", [""], "geometry_msgs/PoseStamped pose sources, after odometry_topics ([\"\"] = none)",
              True),
    ParamSpec("camera_info_topics", ["camera_info"], "sensor_msgs/CameraInfo topics ([\"\"] = none)", True),
    ParamSpec("tf_fixed_frame", "", "fixed frame of TF camera poses, used when no pose topic has a pose at the "
              "image stamp and tf2_ros is installed; empty = no TF", True),
    ParamSpec("image_reliability", "best_effort", "QoS of the image subscriptions: best_effort (sensor data, "
              "what camera drivers publish) | reliable (recorded data replayed on loopback: lose nothing)", True),
    ParamSpec("queue_size", 2, "frames waiting for the encoder (>= 1); when full the oldest is dropped and counted",
              True),
    ParamSpec("exit_ack_timeout_s", 10.0, "at exit, wait this long for the memory node to acknowledge the records "
              "not yet acknowledged (one restarting is waited for), s (0..3600)", True),
    ParamSpec("long_side", DEFAULT_LONG_SIDE, "working resolution: long side of the fitted image in px "
              "(>= 8; never enlarged)"),
    ParamSpec("n_gaussians", DEFAULT_GAUSSIANS, "Gaussians per memory (>= 1)"),
    ParamSpec("max_iters", DEFAULT_MAX_ITERS, "fitting iterations per keyframe (0 = the fitter's own budget)"),
    ParamSpec("warm_start_max_change", DEFAULT_WARM_START_MAX_CHANGE,
              "warm-start a fit from the camera's previous keyframe only when their thumbnails differ by less "
              "than this (0..1; 0 = never)"),
    ParamSpec("threads", DEFAULT_THREADS, "CPU threads of the fitter's kernels and of torch in this process "
              "(0 = torch default)"),
    ParamSpec("device", "auto", "auto | cpu | cuda; cuda falls back to cpu with a warning when unavailable "
              "(the fitter runs on the CPU today)", True),
    ParamSpec("seed", 0, "fitting seed"),
    ParamSpec("no_pose", "store", "frames without a pose: store (time-queryable only) | skip"),
    ParamSpec("pose_tolerance_s", 0.05, "nearest-pose tolerance around the image stamp, s"),
    ParamSpec("pose_max_gap_s", 0.25, "largest gap between two pose samples bridged by interpolation, s"),
    ParamSpec("pose_wait_s", 0.2, "how long the worker waits for a pose sample newer than the image stamp, s"),
    ParamSpec("keyframe.max_interval_s", _KEYFRAME.max_interval_s, "store a frame at least this often, s"),
    ParamSpec("keyframe.min_interval_s", _KEYFRAME.min_interval_s, "never store frames closer than this, s"),
    ParamSpec("keyframe.min_translation_m", _KEYFRAME.min_translation_m, "store after moving this far, m"),
    ParamSpec("keyframe.min_rotation_rad", _KEYFRAME.min_rotation_rad, "store after turning this much, rad"),
    ParamSpec("keyframe.min_image_change", _KEYFRAME.min_image_change,
              "store when the 32x32 thumbnail changed this much (mean abs difference, 0..1)"),
    ParamSpec("keyframe.duplicate_image_change", _KEYFRAME.duplicate_image_change,
              "never store a frame that changed less than this (0..1, <= min_image_change)"),
    ParamSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status, s (> 0)", True),
    ParamSpec("codec", DEFAULT_MEMORY_CODEC, "payload codec: gaussians-rd (entropy-coded Gaussians fitted to "
              "memory_bytes; n_gaussians does not apply) | gaussians-q (quantized Gaussians, 72 bits each) | "
              "vae-latent (entropy-coded VAE latent, needs n_gaussians = the model's count, 512)", True),
    ParamSpec("memory_bytes", DEFAULT_MEMORY_BYTES, "byte budget of one memory (64..1048576; 0 = the codec's own "
              "size: gaussians-q n_gaussians Gaussians, vae-latent latent_step). gaussians-rd fits each frame to it, "
              "gaussians-q stores as many Gaussians as fit, vae-latent the finest step that fits", True),
    ParamSpec("latent_model", "", "vae-latent model file; empty = the model shipped with the package", True),
    ParamSpec("latent_step", 0.0, "vae-latent quantization step (0 = the codec's default, 1.0; else 1/1024..1024; "
              "larger = fewer bytes)", True),
    ParamSpec("latent_max_bytes", 0, "vae-latent: finest step whose payload fits this many bytes (0 = off, use "
              "latent_step)", True),
    ParamSpec("latent_refine_iters", 0, "vae-latent: refine each latent against its frame for this many steps "
              "(~10 ms each on one core; 0 = off)", True),
    ParamSpec("latent_tiles", 1, "vae-latent: one latent per tile of a grid of this many tiles (1, 2, 4, 8, 16; each "
              "tile fitted again with max_iters / threads / seed, ~0.5 s each), 0 = choose 1, 2, 4 or 8 per frame "
              "(closest decoding within latent_max_bytes, which must be set; every grid is tried)", True),
)

#: Pose inputs: best effort like sensor data (matches every publisher) but a deep history, so a
#: burst of high-rate odometry is not cut down to the last 5 samples before the executor takes them.
POSE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)

#: Image inputs with image_reliability = reliable: nothing lost on loopback replay.
RELIABLE_IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30, reliability=ReliabilityPolicy.RELIABLE)

#: Time jump (ns) backwards in a camera's or pose source's stamps that restarts its state (a bag
#: played again, a simulator reset): keyframe policy, warm start or pose track start over.
TIME_JUMP_NS = 1_000_000_000


def check_parameters(values: dict) -> list[str]:
    problems: list[str] = []
    if not real_list(values["image_topics"]) and not real_list(values["compressed_image_topics"]):
        problems.append("no image topic: set image_topics and/or compressed_image_topics")
    check_range(problems, values, "queue_size", 1, 10_000)
    check_range(problems, values, "exit_ack_timeout_s", 0.0, 3600.0)
    if values.get("image_reliability", "best_effort") not in ("best_effort", "reliable"):
        problems.append(f"image_reliability must be best_effort or reliable, got {values['image_reliability']!r}")
    check_range(problems, values, "long_side", 8, 1 << 15)
    check_range(problems, values, "n_gaussians", 1, 65_535)
    check_range(problems, values, "max_iters", 0)
    check_range(problems, values, "warm_start_max_change", 0.0, 1.0)
    check_range(problems, values, "threads", 0, 1024)
    check_choice(problems, values, "device", ("auto", "cpu", "cuda"))
    check_choice(problems, values, "no_pose", ("store", "skip"))
    check_choice(problems, values, "codec", ENCODABLE_CODECS)
    check_range(problems, values, "memory_bytes", 0, rd.MAX_BUDGET)
    if values["codec"] == rd.CODEC_ID and not rd.MIN_BUDGET <= int(values["memory_bytes"]) <= rd.MAX_BUDGET:
        problems.append(f"codec {rd.CODEC_ID} needs memory_bytes in {rd.MIN_BUDGET}..{rd.MAX_BUDGET}, "
                        f"got {values['memory_bytes']}")
    check_range(problems, values, "latent_step", 0.0, 1024.0)
    check_range(problems, values, "latent_max_bytes", 0, 1 << 30)
    check_range(problems, values, "latent_refine_iters", 0, 100_000)
    check_choice(problems, values, "latent_tiles", LATENT_TILE_SETTINGS)
    for name in ("pose_tolerance_s", "pose_max_gap_s", "pose_wait_s"):
        check_range(problems, values, name, 0.0, 3600.0)
    check_range(problems, values, "diagnostics_period_s", 1e-3, 3600.0)
    if values["diagnostics_period_s"] <= 0:
        problems.append("diagnostics_period_s must be > 0")
    try:
        _keyframe_config(values)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def _keyframe_config(values: dict) -> KeyframeConfig:
    return KeyframeConfig(**{name: float(values[f"keyframe.{name}"]) for name in (
        "max_interval_s", "min_interval_s", "min_translation_m", "min_rotation_rad", "min_image_change",
        "duplicate_image_change")})


def memory_settings(values: dict) -> MemorySettings:
    """The memory pipeline's settings of the node's parameter values (0 = the fitter's budget /
    torch's threads, as :meth:`MemorySettings.make` reads them)."""
    return MemorySettings.make(
        long_side=int(values["long_side"]), n_gaussians=int(values["n_gaussians"]), max_iters=int(values["max_iters"]),
        threads=int(values["threads"]), seed=int(values["seed"]),
        warm_start_max_change=float(values["warm_start_max_change"]), codec=values["codec"],
        memory_bytes=int(values["memory_bytes"]), latent_model=values["latent_model"], latent_step=float(values["latent_step"]),
        latent_max_bytes=int(values["latent_max_bytes"]), latent_refine_iters=int(values["latent_refine_iters"]),
        latent_tiles=int(values["latent_tiles"]))


@dataclass(frozen=True)
class _Settings:
    """The run-time-changeable settings, replaced as a whole on a parameter change: the memory
    pipeline's (``memory``) and the node's own (poses, keyframe policy)."""

    memory: MemorySettings
    no_pose: str
    tolerance_ns: int
    max_gap_ns: int
    pose_wait_s: float
    keyframes: KeyframeConfig


@dataclass
class _Item:
    msg: object
    topic: str
    received: float  # time.monotonic() at receipt, s


@dataclass
class _Camera:
    policy: KeyframePolicy
    warm: object = None  # Gaussians of the latest keyframe
    last_stamp_ns: int | None = None


@dataclass
class _Stats:
    received: int = 0
    dropped: int = 0
    processed: int = 0
    keyframes: int = 0
    decode_errors: int = 0
    fit_errors: int = 0
    pose_errors: int = 0
    no_camera_info: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)
    high_water: int = 0
    latencies_ms: list = field(default_factory=list)  # receipt -> publish, this period
    fit_ms: list = field(default_factory=list)


class EncoderNode(Node):
    """Encodes keyframes of live camera topics into ``MemoryRecord`` messages (see module docstring)."""

    #: The worker waits while ``_paused`` (the managed node starts paused: :mod:`.managed_encoder_node`).
    _start_paused = False

    def __init__(self, **kwargs) -> None:
        super().__init__("gaussvae_encoder", **kwargs)
        self._values = declare_parameters(self, PARAMETERS, check_parameters)
        self._payload = memory_settings(self._values).payload_encoder()  # codec parameters are read-only
        self._apply(self._values)
        self._queue_size = int(self._values["queue_size"])
        requested = self._values["device"]
        self._device = device_for(requested, self.get_logger())
        if self._device != "cpu":
            self.get_logger().warning(f"device {self._device!r}: the core fitter has no GPU path yet, "
                                      "fitting on the CPU")

        self._queue: collections.deque = collections.deque()
        self._queue_cond = threading.Condition()
        self._stopping = False
        self._paused = self._start_paused
        self._busy = False
        self._stats = _Stats()
        self._last_report = _Stats()
        self._cameras: dict = {}
        self._pose_cond = threading.Condition()
        self._infos: dict[str, CameraInfo] = {}
        self._info_lock = threading.Lock()
        self._info_for_camera: dict = {}

        inputs = ReentrantCallbackGroup()  # callbacks only enqueue / store: safe to run in parallel
        image_qos = RELIABLE_IMAGE_QOS if self._values["image_reliability"] == "reliable" else qos_profile_sensor_data
        self._memories = self.create_publisher(MemoryRecord, "memories", MEMORY_QOS.get())
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._image_subs = []
        for topic in real_list(self._values["image_topics"]):
            self._image_subs.append(self._subscribe_resolved(Image, topic, self._enqueue, inputs, image_qos))
        for topic in real_list(self._values["compressed_image_topics"]):
            self._image_subs.append(self._subscribe_resolved(CompressedImage, topic, self._enqueue, inputs,
                                                             image_qos))
        self._pose_sources: list[list] = []  # [resolved topic, PoseTrack]
        pose_kinds = [(Odometry, t) for t in real_list(self._values["odometry_topics"])]
        pose_kinds += [(PoseStamped, t) for t in real_list(self._values["pose_topics"])]
        self._pose_subs = []
        for index, (msg_type, topic) in enumerate(pose_kinds):
            sub = self.create_subscription(msg_type, topic, lambda msg, i=index: self._on_pose(msg, i), POSE_QOS,
                                           callback_group=inputs)
            self._pose_subs.append(sub)
            self._pose_sources.append([sub.topic_name, PoseTrack()])
        self._info_subs = []
        for topic in real_list(self._values["camera_info_topics"]):
            self._info_subs.append(self._subscribe_resolved(CameraInfo, topic, self._on_camera_info, inputs))
        self._tf_buffer = self._tf_listener = None
        fixed = self._values["tf_fixed_frame"]
        if fixed:
            if _TfBuffer is None:
                self.get_logger().warning(f"tf_fixed_frame is {fixed!r} but tf2_ros is not installed: no TF poses")
            else:
                self._tf_buffer = _TfBuffer()
                self._tf_listener = _TfListener(self._tf_buffer, self, spin_thread=False)
        self._timer = self.create_timer(float(self._values["diagnostics_period_s"]), self._publish_diagnostics,
                                        callback_group=MutuallyExclusiveCallbackGroup())
        install_validator(self, PARAMETERS, self._values, self._check_parameters, self._apply)
        self._worker = threading.Thread(target=self._work, name="gaussvae_encoder_worker", daemon=True)
        self._worker.start()
        topics = [s.topic_name for s in self._image_subs]
        self.get_logger().info(
            f"encoding {', '.join(topics)} -> {self._memories.topic_name} ({self._settings.memory.n_gaussians} "
            f"Gaussians, long side {self._settings.memory.long_side} px, {self._payload.description}, queue {self._queue_size}, "
            f"device {self._device}); poses from "
            f"{', '.join(s[0] for s in self._pose_sources) or 'nowhere'}{' + TF' if self._tf_buffer else ''}")

    # --- parameters ---------------------------------------------------------------------------

    def _check_parameters(self, values: dict) -> list[str]:
        """:func:`check_parameters` plus what the payload codec needs (a latent model's Gaussian count)."""
        problems = check_parameters(values)
        try:
            self._payload.check_count(int(values["n_gaussians"]))
        except ValueError as exc:
            problems.append(str(exc))
        return problems

    def _apply(self, values: dict) -> None:
        settings = _Settings(
            memory=memory_settings(values), no_pose=values["no_pose"],
            tolerance_ns=round(values["pose_tolerance_s"] * 1e9), max_gap_ns=round(values["pose_max_gap_s"] * 1e9),
            pose_wait_s=float(values["pose_wait_s"]), keyframes=_keyframe_config(values))
        old = getattr(self, "_settings", None)
        self._settings = settings
        threads = settings.memory.fit.threads
        if threads and (old is None or old.memory.fit.threads != threads):
            torch.set_num_threads(threads)  # the fitter's torch ops; its kernels get `threads` directly
        if old is not None:
            for camera in list(self._cameras.values()):
                camera.policy.config = settings.keyframes
                if (old.memory.n_gaussians, old.memory.long_side) != (settings.memory.n_gaussians,
                                                                      settings.memory.long_side):
                    camera.warm = None  # a warm start of another size would pin the old budget

    # --- callbacks (executor threads: never block) -------------------------------------------

    def _subscribe_resolved(self, msg_type, topic: str, handler, group, qos=qos_profile_sensor_data):
        """A subscription (sensor-data QoS by default) whose callback is ``handler(msg, resolved topic name)``."""
        holder = {}

        def callback(msg) -> None:
            handler(msg, holder["topic"])

        sub = self.create_subscription(msg_type, topic, callback, qos, callback_group=group)
        holder["topic"] = sub.topic_name  # after remapping and namespacing
        return sub

    @guarded_callback
    def _enqueue(self, msg, topic: str) -> None:
        item = _Item(msg, topic, time.monotonic())
        with self._queue_cond:
            self._stats.received += 1
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()  # drop the oldest waiting frame
                self._stats.dropped += 1
            self._queue.append(item)
            self._stats.high_water = max(self._stats.high_water, len(self._queue))
            self._queue_cond.notify()

    @guarded_callback
    def _on_pose(self, msg, index: int) -> None:
        with self._pose_cond:
            source = self._pose_sources[index]
            try:
                stamp, position, orientation, frame_id = pose_from_message(msg)
                track = source[1]
                span = track.span_ns
                if span is not None and stamp < span[1] - TIME_JUMP_NS:
                    self.get_logger().info(f"{source[0]}: time jumped back by {(span[1] - stamp) * 1e-9:.3f} s, "
                                           "pose history cleared")
                    track = source[1] = PoseTrack()
                if not track.frame_id:
                    track.frame_id = frame_id
                elif frame_id and frame_id != track.frame_id:
                    raise ValueError(f"pose in frame {frame_id!r}, the track is in {track.frame_id!r}")
                track.insert(stamp, position, orientation)  # as replay: slightly out-of-order samples are fine
            except ValueError as exc:
                self._stats.pose_errors += 1
                self.get_logger().debug(f"{source[0]}: pose ignored: {exc}")
            self._pose_cond.notify_all()

    @guarded_callback
    def _on_camera_info(self, msg: CameraInfo, topic: str) -> None:
        with self._info_lock:
            if topic not in self._infos:
                self._info_for_camera.clear()  # a new source: match again
            self._infos[topic] = msg

    # --- worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._queue_cond:
                while (not self._queue or self._paused) and not self._stopping:
                    self._queue_cond.wait()
                if self._stopping:
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._process(item)
            except Exception as exc:  # one bad frame must not stop the encoder
                self._stats.fit_errors += 1
                self.get_logger().error(f"{item.topic}: frame failed: {type(exc).__name__}: {exc}")
            finally:
                self._busy = False

    def _process(self, item: _Item) -> None:
        msg, settings = item.msg, self._settings
        try:
            image = message_to_numpy(msg)
        except ImageDecodeError as exc:
            self._stats.decode_errors += 1
            self.get_logger().warning(f"{item.topic}: cannot decode frame: {exc}", throttle_duration_sec=5.0)
            return
        self._stats.processed += 1
        stamp_ns, frame_id = header_stamp_ns(msg), str(msg.header.frame_id)
        key = (item.topic, frame_id)
        camera = self._cameras.get(key)
        if camera is None or (camera.last_stamp_ns is not None and stamp_ns < camera.last_stamp_ns - TIME_JUMP_NS):
            if camera is not None:
                self.get_logger().info(f"{item.topic} [{frame_id}]: time jumped back, keyframe state restarted")
            camera = self._cameras[key] = _Camera(KeyframePolicy(settings.keyframes))
        camera.last_stamp_ns = stamp_ns
        pose = self._pose_at(stamp_ns, frame_id, settings)
        if pose is None and settings.no_pose == "skip":
            self._stats.skipped["no_pose"] += 1
            return
        work, thumbnail = prepare_frame(image, settings.memory)
        decision = camera.policy.decide(key, stamp_ns, thumbnail, pose)
        if not decision.store:
            self._stats.skipped[decision.reason] += 1
            return
        init = warm_start(camera.warm, decision.image_change, settings.memory)  # as replay
        started = time.perf_counter()
        try:
            fitted = fit_memory(work, settings.memory, init, self._payload)  # a codec that fits again uses them too
        except (ValueError, RuntimeError) as exc:
            self._stats.fit_errors += 1
            self.get_logger().warning(f"{item.topic}: cannot fit frame at {stamp_ns} ns: {exc}")
            return
        fit_ms = (time.perf_counter() - started) * 1e3
        result, payload = fitted.result, fitted.payload
        record = self._record(msg, item.topic, image, pose, fitted)
        if self._stopping:
            return
        self._memories.publish(record)
        camera.policy.mark_stored(key, stamp_ns, thumbnail, pose)
        camera.warm = result.gaussians
        with self._queue_cond:
            self._stats.keyframes += 1
            self._stats.fit_ms.append(fit_ms)
            self._stats.latencies_ms.append((time.monotonic() - item.received) * 1e3)
        self.get_logger().debug(f"{item.topic}: keyframe ({decision.reason}) at {stamp_ns} ns, "
                                f"{len(payload)} B, {fitted.psnr:.1f} dB, {fit_ms:.0f} ms")

    def _pose_at(self, stamp_ns: int, frame_id: str, settings: _Settings) -> StampedPose | None:
        """The camera pose at ``stamp_ns``: pose topics in order (waiting up to ``pose_wait_s`` for a
        sample after the stamp), then TF; None when none has one."""
        deadline = time.monotonic() + settings.pose_wait_s
        with self._pose_cond:
            while not self._stopping:
                pending = [t for _, t in self._pose_sources
                           if len(t) and stamp_ns - settings.max_gap_ns <= t.span_ns[1] < stamp_ns]
                remaining = deadline - time.monotonic()
                if not pending or remaining <= 0:
                    break
                self._pose_cond.wait(remaining)
            for _, track in self._pose_sources:
                if len(track):
                    pose = track.lookup(stamp_ns, tolerance_ns=settings.tolerance_ns, max_gap_ns=settings.max_gap_ns)
                    if pose is not None:
                        return pose
        if self._tf_buffer is not None and frame_id:
            return self._tf_pose(stamp_ns, frame_id, settings)
        return None

    def _tf_pose(self, stamp_ns: int, frame_id: str, settings: _Settings) -> StampedPose | None:
        fixed = self._values["tf_fixed_frame"]
        try:
            t = self._tf_buffer.lookup_transform(fixed, frame_id, Time(nanoseconds=stamp_ns),
                                                 timeout=Duration(seconds=settings.pose_wait_s))
        except Exception as exc:  # tf2 raises several lookup exception types
            self.get_logger().debug(f"no TF pose of {frame_id} in {fixed} at {stamp_ns} ns: {exc}")
            return None
        p, q = t.transform.translation, t.transform.rotation
        orientation = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
        norm = float(np.linalg.norm(orientation))
        if not math.isfinite(norm) or norm < 1e-9:
            return None
        return StampedPose(stamp_ns, np.array([p.x, p.y, p.z], dtype=np.float64), orientation / norm, fixed)

    def _camera_info_for(self, topic: str, frame_id: str) -> CameraInfo | None:
        with self._info_lock:
            if not self._infos:
                return None
            key = (topic, frame_id)
            source = self._info_for_camera.get(key)
            if source is None:
                same_frame = [t for t, m in self._infos.items() if frame_id and m.header.frame_id == frame_id]
                same_ns = [t for t in self._infos if camera_namespace(t) == camera_namespace(topic)]
                if len(same_frame) == 1:
                    source = same_frame[0]
                elif len(same_ns) == 1:
                    source = same_ns[0]
                elif len(self._infos) == 1 and len(self._image_subs) == 1:
                    source = next(iter(self._infos))
                if source is None:
                    return None
                self._info_for_camera[key] = source
            return self._infos[source]

    def _record(self, msg, topic: str, image, pose: StampedPose | None, fitted: FittedMemory) -> MemoryRecord:
        record = MemoryRecord()
        record.header = msg.header
        record.source_topic = topic
        if pose is not None:
            record.has_pose = True
            (x, y, z), (qx, qy, qz, qw) = pose.position.tolist(), pose.orientation.tolist()
            record.pose.position.x, record.pose.position.y, record.pose.position.z = x, y, z
            record.pose.orientation.x, record.pose.orientation.y = qx, qy
            record.pose.orientation.z, record.pose.orientation.w = qz, qw
            record.pose_frame_id = pose.frame_id
        info = self._camera_info_for(topic, str(msg.header.frame_id))
        if info is not None:
            record.has_camera_info = True
            record.camera_info = info
        elif self._infos:
            self._stats.no_camera_info += 1
        record.height, record.width = int(image.shape[0]), int(image.shape[1])
        record.encoding = str(getattr(msg, "encoding", None) or getattr(msg, "format", ""))
        record.codec_id = self._payload.codec_id
        record.model_id = self._payload.model_id
        if math.isfinite(fitted.psnr) or math.isinf(fitted.psnr):  # the decoded payload's, at the working size
            record.has_fit_quality = True
            record.psnr_db = float(fitted.psnr)
            record.ssim = float(fitted.ssim) if math.isfinite(fitted.ssim) else float("nan")
        record.payload_size = len(fitted.payload)
        record.payload = array.array("B", fitted.payload)
        return record

    # --- diagnostics ----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        with self._queue_cond:
            s, last = self._stats, self._last_report
            depth = len(self._queue)
            latencies, fits = s.latencies_ms, s.fit_ms
            s.latencies_ms, s.fit_ms = [], []
            snapshot = _Stats(s.received, s.dropped, s.processed, s.keyframes, s.decode_errors, s.fit_errors,
                              s.pose_errors, s.no_camera_info, collections.Counter(s.skipped), s.high_water)
            self._last_report = snapshot
        level, message = "ok", "encoding"
        if snapshot.decode_errors + snapshot.fit_errors > last.decode_errors + last.fit_errors:
            level, message = "error", "frames failed to decode or fit"
        elif snapshot.dropped > last.dropped:
            level, message = "warn", "dropping frames: input faster than encoding"
        elif not self._image_subs or snapshot.received == last.received:
            message = "waiting for frames"
        values = {
            "frames_received": snapshot.received, "frames_dropped": snapshot.dropped,
            "frames_processed": snapshot.processed, "keyframes": snapshot.keyframes,
            "decode_errors": snapshot.decode_errors, "fit_errors": snapshot.fit_errors,
            "pose_errors": snapshot.pose_errors, "frames_without_camera_info": snapshot.no_camera_info,
            "queue_depth": depth, "queue_size": self._queue_size, "queue_high_water": snapshot.high_water,
            "encoding_now": self._busy,
            "encode_latency_ms_mean": sum(latencies) / len(latencies) if latencies else float("nan"),
            "encode_latency_ms_max": max(latencies) if latencies else float("nan"),
            "fit_ms_mean": sum(fits) / len(fits) if fits else float("nan"),
            "device": self._device, "threads": self._settings.memory.fit.threads or 0,
        }
        for reason, count in sorted(snapshot.skipped.items()):
            values[f"skipped_{reason}"] = count
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status.append(diagnostic_status(f"{self.get_fully_qualified_name()}: encoder",
                                            self.get_fully_qualified_name(), level, message, values))
        self._diagnostics.publish(out)

    # --- state for tests and tools ---------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        with self._queue_cond:
            return len(self._queue)

    def counters(self) -> dict:
        """Counters since start: received, dropped, processed, keyframes, errors, queue high water."""
        with self._queue_cond:
            s = self._stats
            return {"received": s.received, "dropped": s.dropped, "processed": s.processed,
                    "keyframes": s.keyframes, "decode_errors": s.decode_errors, "fit_errors": s.fit_errors,
                    "high_water": s.high_water, "skipped": dict(s.skipped)}

    def destroy_node(self) -> None:
        with self._queue_cond:
            self._stopping = True
            self._queue.clear()
            self._queue_cond.notify_all()
        with self._pose_cond:
            self._pose_cond.notify_all()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=30.0)  # a fit in progress finishes first
        self._wait_for_acks()
        super().destroy_node()

    def _wait_for_acks(self) -> None:
        """Keep the process (and the records its reliable, transient-local publisher holds) until the
        memory node acknowledged them, waiting up to ``exit_ack_timeout_s`` (for a restarting one too)."""
        from rclpy.duration import Duration

        timeout = float(self._values.get("exit_ack_timeout_s", 0.0))
        published = self._stats.keyframes
        if not published or timeout <= 0 or not self.context.ok():  # after a signal's shutdown DDS is gone
            return
        deadline = time.monotonic() + timeout
        try:
            while self._memories.get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            left = max(0.0, deadline - time.monotonic())
            acked = self._memories.get_subscription_count() > 0 and self._memories.wait_for_all_acked(
                Duration(nanoseconds=round(left * 1e9)))
        except Exception:  # the context was shut down meanwhile: nothing can be waited for
            return
        if not acked:
            self.get_logger().warning(f"exiting with records not acknowledged by a memory node after {timeout:g} s "
                                      "(exit_ack_timeout_s): the last ones may not be stored")


def main(args=None) -> int:
    """Console script ``gaussvae_encoder``."""
    return run_node(EncoderNode, args)


if __name__ == "__main__":
    sys.exit(main())
