"""Plain records going into and coming out of the memory store (no SQLite here).

Units and frames:

* Stamps are ROS times as integer nanoseconds (``stamp_ns``); ``stamp`` properties give float
  seconds for convenience (float seconds lose sub-microsecond precision around 1.7e9 s).
* A :class:`Pose` is the camera pose as received, in the pose message's frame
  (``pose_frame_id``): position in metres, orientation as a quaternion ``(x, y, z, w)``. The
  quaternion is stored as given; comparisons normalize it.
* :class:`CameraIntrinsics` follow ``sensor_msgs/CameraInfo``: ``k`` is the row-major 3x3 camera
  matrix in pixels, ``d`` the distortion coefficients of ``distortion_model``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

#: Codec id of quantized Gaussian payloads (the default until the VAE codec lands).
DEFAULT_CODEC = "gaussians-q"


class StoreError(RuntimeError):
    """The database cannot be used as asked: locked, damaged, not a store, or from a newer version.

    Nothing was written by the failing call (its transaction was rolled back); data committed
    before it stays in the file.
    """


class StoreBusyError(StoreError):
    """A write failed for a reason that may pass: the file is locked by another connection, or the
    disk is full (``reason``: ``"locked"`` or ``"full"``). Retrying later can succeed."""

    def __init__(self, message: str, reason: str = "locked") -> None:
        super().__init__(message)
        self.reason = reason


def _finite_floats(values, count: int | None, what: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a sequence of numbers, got {values!r}")
    try:
        floats = tuple(map(float, values))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a sequence of numbers, got {values!r}") from exc
    if count is not None and len(floats) != count:
        raise ValueError(f"{what} needs {count} numbers, got {len(floats)}")
    if not all(map(math.isfinite, floats)):
        raise ValueError(f"{what} must be finite, got {floats}")
    return floats


def check_position(position, what: str = "position") -> tuple[float, float, float]:
    """``position`` as three finite floats (metres), or a ValueError naming ``what``."""
    return _finite_floats(position, 3, what)


def check_quaternion(quaternion, what: str = "orientation") -> tuple[float, float, float, float]:
    """``quaternion (x, y, z, w)`` as four finite floats with a non-zero norm, or a ValueError."""
    q = _finite_floats(quaternion, 4, what)
    if q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3] < 1e-18:
        raise ValueError(f"{what} quaternion {q} has zero norm")
    return q


def check_stamp_ns(stamp_ns, what: str = "stamp_ns") -> int:
    """An integer nanosecond stamp (bools and floats are refused: pass seconds through ``*_s``)."""
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int):
        raise ValueError(f"{what} must be an int (nanoseconds), got {type(stamp_ns).__name__} {stamp_ns!r}")
    if not -(2**63) <= stamp_ns < 2**63:
        raise ValueError(f"{what} {stamp_ns} does not fit in 64 bits")
    return stamp_ns


def seconds_to_ns(seconds, what: str = "seconds") -> int:
    """Float seconds to integer nanoseconds (rounded to the nearest ns)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"{what} must be a number of seconds, got {type(seconds).__name__} {seconds!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be finite, got {seconds}")
    return check_stamp_ns(round(seconds * 1_000_000_000), what)


@dataclass(frozen=True, slots=True)
class Pose:
    """Camera pose in the pose frame: ``position`` (x, y, z) metres, ``orientation`` (x, y, z, w)."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", check_position(self.position, "pose position"))
        object.__setattr__(self, "orientation", check_quaternion(self.orientation, "pose orientation"))


@dataclass(frozen=True, slots=True)
class CameraIntrinsics:
    """Camera model from ``sensor_msgs/CameraInfo``: ``k`` row-major 3x3 (pixels), ``d`` coefficients."""

    k: tuple[float, ...]
    distortion_model: str = ""
    d: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _finite_floats(self.k, 9, "intrinsics K (3x3)"))
        if not isinstance(self.distortion_model, str):
            raise ValueError(f"distortion_model must be a str, got {self.distortion_model!r}")
        object.__setattr__(self, "d", _finite_floats(self.d, None, "intrinsics D"))

    def to_json(self) -> str:
        """Compact JSON ``{"K": [...9], "model": str, "D": [...]}`` (the stored form)."""
        return json.dumps({"K": list(self.k), "model": self.distortion_model, "D": list(self.d)},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "CameraIntrinsics":
        try:
            data = json.loads(text)
            return cls(tuple(data["K"]), data["model"], tuple(data["D"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"malformed stored intrinsics {text[:80]!r}: {exc}") from exc


def _check_text(value, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    return value


def _check_optional_float(value, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number or None, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{what} is NaN")
    return value  # +inf is a legitimate PSNR (identical images)


@dataclass(frozen=True, slots=True)
class Memory:
    """One memory to store: an encoded camera frame with its time, camera, pose and fit quality.

    ``(topic, camera_frame_id, stamp_ns)`` identifies the frame: storing it again is a no-op.
    ``width``/``height``/``encoding`` describe the original image (pixels, ROS encoding name);
    ``payload`` holds the encoded bytes, interpreted through ``codec`` and ``model_id``.
    """

    stamp_ns: int
    topic: str
    camera_frame_id: str
    payload: bytes
    width: int
    height: int
    encoding: str
    codec: str = DEFAULT_CODEC
    model_id: str = ""
    pose: Pose | None = None
    pose_frame_id: str = ""
    intrinsics: CameraIntrinsics | None = None
    psnr: float | None = None
    ssim: float | None = None

    def __post_init__(self) -> None:
        check_stamp_ns(self.stamp_ns)
        for name in ("topic", "camera_frame_id", "encoding", "codec", "model_id", "pose_frame_id"):
            _check_text(getattr(self, name), name)
        if not self.topic:
            raise ValueError("topic must not be empty")
        if not self.codec:
            raise ValueError("codec must not be empty")
        if isinstance(self.payload, (bytearray, memoryview)):
            object.__setattr__(self, "payload", bytes(self.payload))
        if not isinstance(self.payload, bytes):
            raise ValueError(f"payload must be bytes, got {type(self.payload).__name__}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
                raise ValueError(f"{name} must be a positive int (pixels), got {value!r}")
        if self.pose is not None and not isinstance(self.pose, Pose):
            raise ValueError(f"pose must be a Pose or None, got {type(self.pose).__name__}")
        if self.intrinsics is not None and not isinstance(self.intrinsics, CameraIntrinsics):
            raise ValueError(f"intrinsics must be CameraIntrinsics or None, got {type(self.intrinsics).__name__}")
        object.__setattr__(self, "psnr", _check_optional_float(self.psnr, "psnr"))
        object.__setattr__(self, "ssim", _check_optional_float(self.ssim, "ssim"))

    @property
    def stamp(self) -> float:
        """Stamp in float seconds."""
        return self.stamp_ns * 1e-9


@dataclass(frozen=True, slots=True)
class Stream:
    """A source of memories: one camera frame on one topic (the idempotency key's prefix)."""

    id: int
    topic: str
    camera_frame_id: str


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-memory metadata that rarely changes, stored once and shared by many memories."""

    id: int
    pose_frame_id: str
    width: int
    height: int
    encoding: str
    intrinsics: CameraIntrinsics | None
    codec: str
    model_id: str


@dataclass(slots=True)
class StoredMemory:
    """A stored memory as returned by queries.

    ``payload`` is ``None`` unless the query asked for it (``with_payload=True``) or it was loaded
    with :meth:`Store.load_payload`; ``payload_size`` is always known (bytes). ``distance_m`` is
    the distance from the query point for spatial queries, ``None`` otherwise.
    """

    id: int
    stamp_ns: int
    stream: Stream
    profile: Profile
    pose: Pose | None
    psnr: float | None
    ssim: float | None
    payload_size: int
    payload: bytes | None = None
    distance_m: float | None = None

    @property
    def stamp(self) -> float:
        return self.stamp_ns * 1e-9

    @property
    def topic(self) -> str:
        return self.stream.topic

    @property
    def camera_frame_id(self) -> str:
        return self.stream.camera_frame_id

    @property
    def pose_frame_id(self) -> str:
        return self.profile.pose_frame_id

    @property
    def width(self) -> int:
        return self.profile.width

    @property
    def height(self) -> int:
        return self.profile.height

    @property
    def encoding(self) -> str:
        return self.profile.encoding

    @property
    def intrinsics(self) -> CameraIntrinsics | None:
        return self.profile.intrinsics

    @property
    def codec(self) -> str:
        return self.profile.codec

    @property
    def model_id(self) -> str:
        return self.profile.model_id


@dataclass(frozen=True, slots=True)
class StreamStats:
    topic: str
    camera_frame_id: str
    count: int
    payload_bytes: int
    first_stamp_ns: int | None
    last_stamp_ns: int | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Summary of a store. ``pose_bounds`` is ``((min x, y, z), (max x, y, z))`` in metres over the
    memories that have a pose (mixing pose frames if several were stored), or ``None``.
    ``file_bytes``: the database's pages (the WAL not included), ``page_size`` bytes each."""

    count: int
    payload_bytes: int
    first_stamp_ns: int | None
    last_stamp_ns: int | None
    pose_count: int
    pose_bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None
    streams: tuple[StreamStats, ...]
    file_bytes: int
    page_size: int = 0

    @property
    def time_span_s(self) -> float:
        if self.first_stamp_ns is None:
            return 0.0
        return (self.last_stamp_ns - self.first_stamp_ns) * 1e-9


@dataclass(frozen=True, slots=True)
class ProfileTotals:
    """What the memories of one profile add up to (:meth:`Store.profile_totals`): their count, the
    count and sum of their finite PSNR (dB) and SSIM values, and the first bytes of one of their
    payloads (a payload header: its codec knows how to read it)."""

    profile: Profile
    count: int
    psnr_count: int
    psnr_sum: float
    ssim_count: int
    ssim_sum: float
    payload_head: bytes


@dataclass(frozen=True, slots=True)
class InsertResult:
    """Outcome of an insert: new memory ids in input order, and how many were already stored."""

    ids: tuple[int, ...]
    skipped: int

    @property
    def inserted(self) -> int:
        return len(self.ids)
