"""Offline replay: turn a rosbag2 recording into a visual memory database.

For every image topic (each camera kept apart by topic and frame id), in recording order:

1. decode the frame (:mod:`gaussvae_ros.bag.images`) and shrink it to the working resolution
   (long side :data:`DEFAULT_LONG_SIDE` pixels, never enlarged; the original size is recorded);
2. look its pose up on the pose topic at the frame's header stamp (:class:`~gaussvae_ros.bag.poses.PoseTrack`:
   interpolated, 50 ms tolerance); frames without a pose are stored without one or skipped
   (``no_pose``);
3. ask the keyframe policy (:mod:`gaussvae_ros.bag.keyframes`) whether to keep it;
4. fit it with 2D Gaussians and encode them; the fit is warm-started from the camera's previous
   keyframe when the two frames look alike (:data:`DEFAULT_WARM_START_MAX_CHANGE`);
5. write the memories to the store in batches of ``batch_size``, one transaction per batch.

Re-running on the same database stores nothing twice (the store's key is topic + camera frame id
+ stamp); a run that was interrupted resumes: frames already stored are recognised, prime the
keyframe policy and the warm start, and are not fitted again. A message that cannot be read is
counted and described in the report, never fatal.

Steps 1, 3 and 4 are the memory pipeline (:mod:`gaussvae_ros.pipeline`), which the live encoder
node runs on live messages too, with the same :class:`~gaussvae_ros.pipeline.MemorySettings`
(:meth:`ReplayOptions.settings`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import torch
from tqdm import tqdm

from gaussvae_ros.bag.keyframes import KeyframeConfig, KeyframePolicy
from gaussvae_ros.bag.poses import DEFAULT_MAX_GAP_NS, DEFAULT_MAX_SAMPLES, DEFAULT_TOLERANCE_NS, PoseTrack, StampedPose
from gaussvae_ros.bag.reader import BagReader, CameraInfoSample, Frame, FrameError, PoseSample
from gaussvae_ros.codecs import decode_payload
from gaussvae_ros.pipeline import (DEFAULT_GAUSSIANS, DEFAULT_LONG_SIDE, DEFAULT_MAX_ITERS, DEFAULT_MEMORY_BYTES,
                                   DEFAULT_MEMORY_CODEC, DEFAULT_THREADS, DEFAULT_WARM_START_MAX_CHANGE, MemorySettings, fit_memory, prepare_frame,
                                   stored_memory, warm_start)
from gaussvae_ros.store import CameraIntrinsics, Pose, Store, StoreBusyError, StoreError, page_size_for_payload

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_GAUSSIANS",
    "DEFAULT_LONG_SIDE",
    "DEFAULT_MAX_ITERS",
    "DEFAULT_THREADS",
    "DEFAULT_WARM_START_MAX_CHANGE",
    "ReplayOptions",
    "ReplayReport",
    "replay_bag",
]

#: Memories written per transaction. A run killed mid-way loses at most this many fitted frames.
DEFAULT_BATCH_SIZE = 8

@dataclass
class ReplayOptions:
    """What to replay and how.

    Attributes:
        image_topics: topics to replay (default: every Image / CompressedImage topic).
        pose_topic: Odometry / PoseStamped topic (default: the only one, if there is exactly one;
            ``""`` disables poses).
        long_side: working resolution, pixels of the long side (frames are never enlarged).
        n_gaussians: Gaussians per memory.
        no_pose: ``"store"`` frames without a pose anyway (time-queryable only) or ``"skip"`` them.
        keyframes: keyframe policy thresholds.
        batch_size: memories per transaction.
        max_iters: fitting iterations per frame (None: the fitter's own budget and plateau rule).
        warm_start_max_change: warm-start a fit from the camera's previous keyframe only when the
            frames' thumbnails differ by less than this (0 never warm-starts).
        threads: CPU threads for fitting, torch's and the rasterizer's, for the duration of the
            replay (None: leave torch's setting alone).
        pose_tolerance_ns, pose_max_gap_ns: pose lookup rules (see :mod:`gaussvae_ros.bag.poses`).
        fit_overrides: extra keyword arguments for :func:`gaussvae_ros.core.fit_image`.
        progress: show a progress bar on stderr.
        dry_run: decide keyframes only; no fitting, nothing written.
        seed: fitting seed.
        codec: payload codec of the memories (``gaussians-rd``, ``gaussians-q`` or ``vae-latent``, see
            :func:`gaussvae_ros.codecs.registry.payload_encoder`).
        memory_bytes: byte budget of one memory (0: the codec's own size; see
            :class:`~gaussvae_ros.pipeline.MemorySettings`).
        latent_model, latent_step, latent_max_bytes, latent_refine_iters, latent_tiles: ``vae-latent``
            model file (``""``: the shipped model), quantization step (0: the codec's default) or byte
            budget per memory (0: off), refinement iterations of each latent against its frame (0:
            off), tiles per frame (1; 0: chosen per frame, see ``payload_encoder``).
        busy_timeout_s: how long one write waits for another program's lock on the store, seconds.
        lock_give_up_s: a batch that cannot be written because the store stays locked (or the disk
            full) is retried with backoff for this long before the replay stops (seconds); a fitted
            batch is never dropped for a lock before that.
    """

    image_topics: list[str] | None = None
    pose_topic: str | None = None
    long_side: int = DEFAULT_LONG_SIDE
    n_gaussians: int = DEFAULT_GAUSSIANS
    no_pose: str = "store"
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_iters: int | None = DEFAULT_MAX_ITERS
    warm_start_max_change: float = DEFAULT_WARM_START_MAX_CHANGE
    threads: int | None = DEFAULT_THREADS
    pose_tolerance_ns: int = DEFAULT_TOLERANCE_NS
    pose_max_gap_ns: int = DEFAULT_MAX_GAP_NS
    fit_overrides: dict = field(default_factory=dict)
    progress: bool = False
    dry_run: bool = False
    seed: int = 0
    codec: str = DEFAULT_MEMORY_CODEC
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    latent_model: str = ""
    latent_step: float = 0.0
    latent_max_bytes: int = 0
    latent_refine_iters: int = 0
    latent_tiles: int = 1
    busy_timeout_s: float = 5.0
    lock_give_up_s: float = 600.0

    def __post_init__(self) -> None:
        if self.no_pose not in ("store", "skip"):
            raise ValueError(f"no_pose must be 'store' or 'skip', got {self.no_pose!r}")
        if int(self.long_side) < 8:
            raise ValueError(f"working size (long side) must be at least 8 pixels, got {self.long_side}")
        if int(self.n_gaussians) < 1:
            raise ValueError(f"n_gaussians must be at least 1, got {self.n_gaussians}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.max_iters is not None and int(self.max_iters) < 1:
            raise ValueError(f"max_iters must be at least 1, got {self.max_iters}")
        if not 0.0 <= float(self.warm_start_max_change) <= 1.0:
            raise ValueError(f"warm_start_max_change must be in [0, 1], got {self.warm_start_max_change}")
        if self.threads is not None and int(self.threads) < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        for name in ("busy_timeout_s", "lock_give_up_s"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and 0.0 <= value < 1e6):
                raise ValueError(f"{name} must be a number of seconds in [0, 1e6), got {value}")

    def settings(self) -> MemorySettings:
        """The memory pipeline's settings of this replay (the fit, the warm-start rule, the codec)."""
        return MemorySettings.make(
            long_side=self.long_side, n_gaussians=self.n_gaussians, max_iters=self.max_iters, threads=self.threads,
            seed=self.seed, warm_start_max_change=self.warm_start_max_change, fit_overrides=self.fit_overrides,
            codec=self.codec, memory_bytes=self.memory_bytes, latent_model=self.latent_model, latent_step=self.latent_step,
            latent_max_bytes=self.latent_max_bytes, latent_refine_iters=self.latent_refine_iters,
            latent_tiles=self.latent_tiles)


@dataclass
class TopicCounts:
    frames: int = 0
    keyframes: int = 0
    stored: int = 0
    already_stored: int = 0
    errors: int = 0


@dataclass
class ReplayReport:
    """What a replay did.

    Counts: ``frames_read`` image messages (unreadable ones included), ``keyframes`` frames the
    keyframe policy kept, ``memories_stored`` memories this run wrote, ``already_stored`` frames found
    in the database (an earlier or interrupted run), ``skipped`` frames not kept by reason
    (``no_pose``, ``too_soon``, ``duplicate``, ``no_change``), ``error_count`` unreadable or unfittable
    messages (``errors`` describes the first :data:`MAX_REPORTED_ERRORS`). ``per_topic`` splits the
    counts per image topic. ``warm_starts`` counts fits warm-started from the previous keyframe,
    ``cold_restarts`` warm-started fits that failed and were redone from scratch. Quality: mean
    PSNR (dB) / SSIM of the fits at the working size (``working_size`` per topic). ``seconds`` is the wall time from ``started`` (the CLI passes the
    process start); ``seconds_by_stage`` splits the work: ``open`` (topics, poses, camera info),
    ``read`` (read + decode), ``prepare`` (resize, thumbnail, pose lookup), ``keyframe``, ``fit``
    (fit + encode; the first fit also loads the optimizer's modules), ``store`` (transactions),
    ``import`` (torch). ``damaged`` describes each part of the recording that could not be read (a
    damaged MCAP chunk or SQLite page, a truncated file: where, bag time range, messages lost; see
    :meth:`~gaussvae_ros.bag.reader.BagReader.damage_report`), ``frames_lost`` the image messages
    lost there per topic; ``frames_in_recording`` the image messages the recording says it holds.
    """

    bag: str
    database: str | None
    image_topics: list[str]
    pose_topic: str | None
    frames_read: int = 0
    keyframes: int = 0
    memories_stored: int = 0
    already_stored: int = 0
    skipped: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    error_count: int = 0
    per_topic: dict = field(default_factory=dict)
    keyframe_reasons: dict = field(default_factory=dict)
    mean_psnr: float | None = None
    mean_ssim: float | None = None
    bytes_per_memory: float | None = None
    fit_iterations_mean: float | None = None
    warm_starts: int = 0
    cold_restarts: int = 0
    working_size: dict = field(default_factory=dict)
    seconds: float = 0.0
    seconds_by_stage: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    damaged: list = field(default_factory=list)
    frames_lost: dict = field(default_factory=dict)
    frames_in_recording: int = 0

    @property
    def nothing_stored(self) -> bool:
        """A non-empty recording from which no memory is stored, by this run or an earlier one."""
        return (self.frames_in_recording > 0 or self.frames_read > 0) and not self.memories_stored \
            and not self.already_stored

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("mean_psnr", "mean_ssim"):  # JSON has no inf / nan
            if out[key] is not None and not math.isfinite(out[key]):
                out[key] = None
        return out


#: Error descriptions kept in the report (all errors are counted).
MAX_REPORTED_ERRORS = 50


def _store_pose(pose: StampedPose | None) -> Pose | None:
    if pose is None:
        return None
    return Pose(tuple(float(v) for v in pose.position), tuple(float(v) for v in pose.orientation))


def _intrinsics(info: dict | None):
    if info is None:
        return None
    try:
        return CameraIntrinsics(tuple(info["k"]), info["distortion_model"], tuple(info["d"]))
    except ValueError:
        return None


class _Timer:
    def __init__(self) -> None:
        self.seconds: Counter = Counter()

    def add(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - start
        return now


def _select_topics(bag: BagReader, options: ReplayOptions, report: ReplayReport) -> tuple[list[str], str | None]:
    topics = bag.image_topics if options.image_topics is None else list(dict.fromkeys(options.image_topics))
    missing = [t for t in topics if t not in bag.image_topics]
    if missing:
        raise ValueError(f"not image topics in {bag.path.name}: {', '.join(missing)}; "
                         f"image topics: {', '.join(bag.image_topics) or 'none'}")
    if not topics:
        raise ValueError(f"{bag.path.name} has no Image or CompressedImage topic")
    pose_topic = options.pose_topic
    if pose_topic is None:
        candidates = bag.pose_topics
        if len(candidates) == 1:
            pose_topic = candidates[0]
        elif candidates:
            report.warnings.append(f"{len(candidates)} pose topics ({', '.join(candidates)}): none used; "
                                   "choose one with --pose-topic")
    elif pose_topic and pose_topic not in bag.pose_topics:
        raise ValueError(f"{pose_topic} is not a pose topic of {bag.path.name}; "
                         f"pose topics: {', '.join(bag.pose_topics) or 'none'}")
    return topics, pose_topic or None


def replay_bag(bag_path: str | Path, database: str | Path | None, options: ReplayOptions | None = None,
               started: float | None = None) -> ReplayReport:
    """Replay ``bag_path`` into the store at ``database`` (created if missing) and report what happened.

    ``started``: ``time.perf_counter()`` value the report's ``seconds`` counts from (default: now).
    ``database`` may be None only with ``options.dry_run``.

    Raises:
        ValueError: unknown topics, bad options, an unreadable recording (nothing is written then).
        FileNotFoundError: no recording at ``bag_path``.
    """
    started = time.perf_counter() if started is None else started
    options = options or ReplayOptions()
    if database is None and not options.dry_run:
        raise ValueError("a database path is needed unless dry_run is set")
    timer = _Timer()
    t = time.perf_counter()
    with BagReader(bag_path) as bag:
        report = ReplayReport(str(bag.path), None if database is None else str(database), [], None)
        topics, pose_topic = _select_topics(bag, options, report)
        report.image_topics, report.pose_topic = topics, pose_topic
        report.frames_in_recording = bag.message_count(topics)
        encoder = None if options.dry_run else options.settings().payload_encoder()
        timer.add("open", t)
        writer = None if options.dry_run else _MemoryWriter(
            database, options.batch_size, timer, encoder.payload_bytes(options.n_gaussians),
            busy_timeout_s=options.busy_timeout_s, give_up_s=options.lock_give_up_s, warnings=report.warnings)
        try:
            _Replay(bag, topics, pose_topic, options, report, writer, timer, encoder).run()
            if writer is not None:
                writer.flush()
                report.memories_stored = writer.inserted  # what the store took (its key skips duplicates)
                report.already_stored += writer.skipped
        finally:
            if writer is not None:
                writer.close()
            damage = bag.damage_report(topics)
            if damage is not None:
                report.damaged, report.frames_lost = damage["damaged"], damage["lost"]
    report.seconds_by_stage = {k: round(v, 3) for k, v in sorted(timer.seconds.items())}
    report.seconds = time.perf_counter() - started
    return report


class _MemoryWriter:
    """Batches memories into the store, one transaction per batch, and knows what is already stored."""

    def __init__(self, database, batch_size: int, timer: _Timer, payload_bytes: int | None = None, *,
                 busy_timeout_s: float = 5.0, give_up_s: float = 600.0, warnings: list | None = None) -> None:
        self.store = Store(database, page_size=page_size_for_payload(payload_bytes), timeout_s=float(busy_timeout_s))
        self.give_up_s = float(give_up_s)
        self.lock_retries = 0
        self.warnings = warnings if warnings is not None else []
        self.batch_size = int(batch_size)
        self.pending: list = []
        self.timer = timer
        self.inserted = 0
        self.skipped = 0
        self._known: dict[str, dict[tuple[str, int], int]] = {}

    def existing(self, topic: str) -> dict[tuple[str, int], int]:
        """``{(camera_frame_id, stamp_ns): memory id}`` of the memories already stored for ``topic``."""
        if topic not in self._known:
            self._known[topic] = {(r.camera_frame_id, r.stamp_ns): r.id for r in self.store.by_time(topic=topic)}
        return self._known[topic]

    def load_gaussians(self, memory_id: int):
        """The Gaussians of a stored memory to warm-start from, through its codec, or None when the
        memory holds a VAE's reconstruction (``vae-latent``): a fit started from a decoded latent
        ends 2-4 dB below a cold start of as many iterations (measured on astronaut at 60 steps),
        quantized Gaussians are the fit itself. ValueError if it cannot be decoded."""
        records = self.store.get([memory_id], with_payload=True)
        if not records:
            raise ValueError(f"memory {memory_id} is gone")
        r = records[0]
        if r.codec == "vae-latent":
            return None
        return decode_payload(r.payload, r.codec, r.model_id)

    def add(self, memory) -> None:
        self.pending.append(memory)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        t = time.perf_counter()
        started, delay = time.monotonic(), 1.0
        while True:
            try:
                result = self.store.insert_many(self.pending, batch_size=len(self.pending))
                break
            except StoreBusyError as exc:  # locked by another program, or the disk full: wait, never drop
                waited = time.monotonic() - started
                if waited >= self.give_up_s:
                    raise StoreError(f"{exc}; still not writable after {waited:.0f} s of retries (lock_give_up_s): "
                                     f"{self.inserted} memories of this run were stored before this batch of "
                                     f"{len(self.pending)}; run again to resume") from exc
                self.lock_retries += 1
                print(f"gaussvae replay: store not writable ({exc.reason}), batch of {len(self.pending)} memories "
                      f"kept, retrying in {delay:.0f} s", file=sys.stderr, flush=True)
                time.sleep(min(delay, max(0.0, self.give_up_s - waited)))
                delay = min(delay * 2.0, 30.0)
            except StoreError as exc:
                raise StoreError(f"{exc}; {self.inserted} memories of this run were stored before this batch") from exc
        if self.lock_retries and not any("retried" in w for w in self.warnings):
            self.warnings.append("the store was locked or full: batches retried until written")
        self.inserted += result.inserted
        self.skipped += result.skipped
        self.pending = []
        self.timer.add("store", t)

    def close(self) -> None:
        self.store.close()
        self.warnings.extend(self.store.close_problems)  # a WAL that could not be written back


#: A frame waits for poses stamped up to ``max_gap_ns`` after it (so that it is interpolated as
#: well as it can be) and for its camera's calibration, but no longer than this much recording time.
RELEASE_LAG_NS = 1_000_000_000


@dataclass
class _Pending:
    """A decoded frame waiting for its pose: the working image and what to record of the original."""

    topic: str
    stamp_ns: int
    frame_id: str
    encoding: str
    width: int
    height: int
    bag_time_ns: int
    image: np.ndarray
    thumbnail: np.ndarray


class _Replay:
    """One pass over the recording: frames, poses and calibrations in recording order.

    Frames wait in a short queue until the pose track covers them (see :data:`RELEASE_LAG_NS`), so
    memory stays bounded however long the recording is; then each goes through pose lookup,
    keyframe policy, fit and the batched writer.
    """

    def __init__(self, bag: BagReader, topics: list[str], pose_topic: str | None, options: ReplayOptions,
                 report: ReplayReport, writer: _MemoryWriter | None, timer: _Timer, encoder=None) -> None:
        self.bag, self.topics, self.pose_topic = bag, topics, pose_topic
        self.options, self.report, self.writer, self.timer = options, report, writer, timer
        self.encoder = encoder  # PayloadEncoder (None in a dry run)
        self.settings = options.settings()
        self.track = PoseTrack(max_samples=DEFAULT_MAX_SAMPLES)
        self.info_topic = {t: bag.camera_info_topic_for(t) for t in topics}
        self.intrinsics: dict[str, object] = {}  # camera_info topic -> latest CameraIntrinsics
        self.policy = KeyframePolicy(options.keyframes)
        self.warm: dict = {}  # camera -> Gaussians of its latest keyframe, or the id of a stored memory
        self.pending: deque[_Pending] = deque()
        self.per_topic = {topic: TopicCounts() for topic in topics}
        self.skipped: Counter = Counter()
        self.reasons: Counter = Counter()
        self.psnrs: list[float] = []
        self.ssims: list[float] = []
        self.sizes: list[int] = []
        self.iterations: list[int] = []

    def error(self, text: str) -> None:
        self.report.error_count += 1
        if len(self.report.errors) < MAX_REPORTED_ERRORS:
            self.report.errors.append(text)

    def run(self) -> None:
        info_topics = sorted({t for t in self.info_topic.values() if t})
        pose_topics = [self.pose_topic] if self.pose_topic else []
        bar = tqdm(total=self.bag.message_count(self.topics), desc="replay", unit="frame", file=sys.stderr,
                   disable=not self.options.progress, dynamic_ncols=True, leave=False)
        restore_threads = None
        if self.options.threads is not None and not self.options.dry_run:
            t = time.perf_counter()
            restore_threads = torch.get_num_threads()
            torch.set_num_threads(int(self.options.threads))
            self.timer.add("import", t)
        t = time.perf_counter()
        try:
            for item in self.bag.stream(self.topics, pose_topics, info_topics):
                t = self.timer.add("read", t)
                if isinstance(item, PoseSample):
                    self.add_pose(item)
                elif isinstance(item, CameraInfoSample):
                    self.intrinsics[item.topic] = _intrinsics(item.info)
                elif isinstance(item, FrameError):
                    if item.topic in self.per_topic:
                        bar.update(1)
                        self.report.frames_read += 1
                        self.per_topic[item.topic].frames += 1
                        self.per_topic[item.topic].errors += 1
                    self.error(f"{item.topic} at {item.stamp_ns}: {item.error}")
                else:
                    bar.update(1)
                    self.add_frame(item)
                t = time.perf_counter()
                while self.pending and self.ready(self.pending[0], item.bag_time_ns):
                    self.process(self.pending.popleft())
                t = time.perf_counter()
            while self.pending:
                self.process(self.pending.popleft())
        finally:
            bar.close()
            if restore_threads is not None:
                torch.set_num_threads(restore_threads)
        self.summarize()

    def add_pose(self, sample: PoseSample) -> None:
        if not self.track.frame_id:
            self.track.frame_id = sample.frame_id
        try:
            self.track.insert(sample.stamp_ns, sample.position, sample.orientation)
        except ValueError as exc:
            self.error(f"{sample.topic} at {sample.stamp_ns}: {exc}")

    def add_frame(self, frame: Frame) -> None:
        t = time.perf_counter()
        self.report.frames_read += 1
        self.per_topic[frame.topic].frames += 1
        try:
            image, thumbnail = prepare_frame(frame.image, self.settings)
        except ValueError as exc:  # a frame too thin to fit: counted, the replay goes on
            self.per_topic[frame.topic].errors += 1
            self.error(f"{frame.topic} at {frame.stamp_ns}: {exc}")
            self.timer.add("prepare", t)
            return
        self.report.working_size.setdefault(frame.topic, {"width": image.shape[1], "height": image.shape[0]})
        self.pending.append(_Pending(frame.topic, frame.stamp_ns, frame.frame_id, frame.encoding, frame.width,
                                     frame.height, frame.bag_time_ns, image, thumbnail))
        self.timer.add("prepare", t)

    def ready(self, p: _Pending, bag_time_ns: int) -> bool:
        if bag_time_ns - p.bag_time_ns >= RELEASE_LAG_NS:
            return True
        info_topic = self.info_topic.get(p.topic)
        if info_topic and info_topic not in self.intrinsics:
            return False
        if not self.pose_topic:
            return True
        span = self.track.span_ns
        return span is not None and span[1] >= p.stamp_ns + self.options.pose_max_gap_ns

    def process(self, p: _Pending) -> None:
        t = time.perf_counter()
        counts = self.per_topic[p.topic]
        camera = (p.topic, p.frame_id)
        pose = self.track.lookup(p.stamp_ns, tolerance_ns=self.options.pose_tolerance_ns,
                                 max_gap_ns=self.options.pose_max_gap_ns)
        if pose is None and self.options.no_pose == "skip":
            self.skipped["no_pose"] += 1
            return
        stored_id = None if self.writer is None else self.writer.existing(p.topic).get((p.frame_id, p.stamp_ns))
        if stored_id is not None:  # an earlier run stored it: keep it and continue from it
            self.policy.mark_stored(camera, p.stamp_ns, p.thumbnail, pose)
            self.warm[camera] = stored_id
            counts.already_stored += 1
            self.report.already_stored += 1
            return
        decision = self.policy.decide(camera, p.stamp_ns, p.thumbnail, pose)
        t = self.timer.add("keyframe", t)
        if not decision.store:
            self.skipped[decision.reason] += 1
            return
        self.reasons[decision.reason] += 1
        counts.keyframes += 1
        if self.writer is None:  # dry run
            self.policy.mark_stored(camera, p.stamp_ns, p.thumbnail, pose)
            return
        init = warm_start(self.warm.get(camera), decision.image_change, self.settings)
        if isinstance(init, int):
            try:
                init = self.writer.load_gaussians(init)
            except ValueError:  # an undecodable stored memory: start cold
                init = None
        try:
            fitted = fit_memory(p.image, self.settings, init, self.encoder)
        except (ValueError, RuntimeError) as exc:  # one frame's failure must not stop the replay
            counts.errors += 1
            self.error(f"{p.topic} at {p.stamp_ns}: cannot fit: {exc}")
            self.timer.add("fit", t)
            return
        self.timer.add("fit", t)
        if init is not None and not fitted.warm:
            self.report.cold_restarts += 1
        self.report.warm_starts += int(fitted.warm)
        self.writer.add(stored_memory(
            stamp_ns=p.stamp_ns, topic=p.topic, camera_frame_id=p.frame_id, width=p.width, height=p.height,
            encoding=p.encoding, fitted=fitted, encoder=self.encoder, pose=_store_pose(pose),
            pose_frame_id=self.track.frame_id, intrinsics=self.intrinsics.get(self.info_topic[p.topic])))
        result, payload = fitted.result, fitted.payload
        self.policy.mark_stored(camera, p.stamp_ns, p.thumbnail, pose)
        self.warm[camera] = result.gaussians
        counts.stored += 1
        self.psnrs.append(fitted.psnr)  # the decoded payload's, as stored
        self.ssims.append(fitted.ssim)
        self.sizes.append(len(payload))
        self.iterations.append(result.iterations)

    def summarize(self) -> None:
        report = self.report
        report.memories_stored = sum(c.stored for c in self.per_topic.values())
        report.keyframes = sum(c.keyframes for c in self.per_topic.values())
        report.skipped = dict(self.skipped)
        report.keyframe_reasons = dict(self.reasons)
        report.per_topic = {topic: asdict(c) for topic, c in self.per_topic.items()}
        finite = [p for p in self.psnrs if math.isfinite(p)]
        report.mean_psnr = float(np.mean(finite)) if finite else None
        finite = [s for s in self.ssims if math.isfinite(s)]
        report.mean_ssim = float(np.mean(finite)) if finite else None
        report.bytes_per_memory = float(np.mean(self.sizes)) if self.sizes else None
        report.fit_iterations_mean = float(np.mean(self.iterations)) if self.iterations else None
        if self.pose_topic and not len(self.track):
            report.warnings.append(f"pose topic {self.pose_topic} has no readable pose")


def process_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None where that is unknown."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
