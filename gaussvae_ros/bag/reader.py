"""Reading rosbag2 recordings (sqlite3 or mcap, compressed or not) with ``rosbags``, no ROS runtime.

Messages without embedded definitions are deserialized with the ROS 2 Humble type store (the
standard message types are identical in Humble, Jazzy and Kilted). Stamps are header stamps in
integer nanoseconds unless said otherwise; ``bag_time_ns`` is the recorder's receive time.

A broken message never aborts a whole recording: image messages that cannot be deserialized or
decoded are yielded as :class:`FrameError` records and reading goes on. A damaged file neither:
when ``rosbags`` cannot open it (a truncated MCAP) or fails in the middle (a damaged MCAP chunk or
SQLite page), the recording is read on by :mod:`.salvage`, record by record, and what was skipped
is in :attr:`BagReader.damage` / :meth:`BagReader.damage_report` (where, time range, messages lost
per topic).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from .images import message_to_numpy
from .poses import PoseTrack, pose_from_message
from .salvage import Damage, open_salvage

__all__ = [
    "BagReader",
    "CAMERA_INFO_TYPES",
    "CameraInfoSample",
    "Damage",
    "Frame",
    "FrameError",
    "IMAGE_TYPES",
    "POSE_TYPES",
    "PoseSample",
    "TopicInfo",
    "camera_info_to_dict",
    "header_stamp_ns",
]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped",
              "geometry_msgs/msg/PoseWithCovarianceStamped")
CAMERA_INFO_TYPES = ("sensor_msgs/msg/CameraInfo",)


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a recording: ``name``, ``msgtype`` (e.g. ``sensor_msgs/msg/Image``), message ``count``."""

    name: str
    msgtype: str
    count: int

    @property
    def kind(self) -> str:
        """``image``, ``pose``, ``camera_info`` or ``other``."""
        if self.msgtype in IMAGE_TYPES:
            return "image"
        if self.msgtype in POSE_TYPES:
            return "pose"
        if self.msgtype in CAMERA_INFO_TYPES:
            return "camera_info"
        return "other"


@dataclass
class Frame:
    """A decoded camera frame.

    Attributes:
        topic: image topic.
        stamp_ns: header stamp, int ns.
        frame_id: header frame id (the camera's optical frame).
        image: ``uint8`` / ``uint16`` ``[H, W]`` or ``[H, W, 3]`` RGB (see :mod:`.images`).
        encoding: the message's ``encoding`` (Image) or ``format`` (CompressedImage).
        bag_time_ns: recorder receive time, int ns.
    """

    topic: str
    stamp_ns: int
    frame_id: str
    image: np.ndarray
    encoding: str
    bag_time_ns: int

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class FrameError:
    """A message that could not be read (an image, or a pose / calibration in :meth:`BagReader.stream`).

    ``stamp_ns`` is the header stamp when known, else the bag time.
    """

    topic: str
    stamp_ns: int
    bag_time_ns: int
    error: str
    frame_id: str = ""


@dataclass
class PoseSample:
    """A pose message: ``position`` [3] m and ``orientation`` [4] (x, y, z, w) in ``frame_id`` at ``stamp_ns``."""

    topic: str
    stamp_ns: int
    position: np.ndarray
    orientation: np.ndarray
    frame_id: str
    bag_time_ns: int


@dataclass
class CameraInfoSample:
    """A CameraInfo message as :func:`camera_info_to_dict`."""

    topic: str
    stamp_ns: int
    info: dict
    bag_time_ns: int


def header_stamp_ns(msg) -> int:
    """Header stamp of a message in int ns."""
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def camera_info_to_dict(msg) -> dict:
    """The calibration of a ``sensor_msgs/CameraInfo``-like message as plain JSON-able values.

    Keys: ``width``, ``height`` (pixels), ``distortion_model``, ``d``, ``k`` (3x3 row-major), ``r``,
    ``p`` (3x4 row-major), ``binning_x``, ``binning_y``, ``frame_id``.
    """
    def floats(values) -> list[float]:
        return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]

    return {
        "width": int(msg.width), "height": int(msg.height),
        "distortion_model": str(msg.distortion_model),
        "d": floats(msg.d), "k": floats(msg.k), "r": floats(msg.r), "p": floats(msg.p),
        "binning_x": int(getattr(msg, "binning_x", 0)), "binning_y": int(getattr(msg, "binning_y", 0)),
        "frame_id": str(msg.header.frame_id),
    }


def camera_namespace(topic: str) -> str:
    """``/cam/image_raw`` and ``/cam/image_raw/compressed`` -> ``/cam``; ``/cam/camera_info`` -> ``/cam``."""
    for suffix in ("/compressed", "/theora", "/compressedDepth"):
        if topic.endswith(suffix):
            topic = topic[: -len(suffix)]
    return posixpath.dirname(topic.rstrip("/"))


@dataclass
class BagReader:
    """A rosbag2 recording opened for reading; use as a context manager.

    Args:
        path: the recording's folder (holding ``metadata.yaml``), or a file inside it.
    """

    path: Path
    _reader: object = field(default=None, init=False, repr=False)
    #: What could not be read (filled as the recording is read; see :meth:`damage_report`).
    damage: list = field(default_factory=list, init=False, repr=False)
    _salvage: object = field(default=None, init=False, repr=False)
    _read: dict = field(default_factory=dict, init=False, repr=False)  # topic -> messages read (best pass)

    def __post_init__(self) -> None:
        path = Path(self.path)
        if not path.exists():
            raise FileNotFoundError(f"no recording at {path}")
        if path.is_file() and path.suffix not in (".bag", ".mcap"):
            path = path.parent
        elif path.is_file() and path.suffix == ".mcap" and (path.parent / "metadata.yaml").exists():
            path = path.parent  # a file of a rosbag2 folder: the folder (a lone MCAP file is read as it is)
        if path.is_dir() and not (path / "metadata.yaml").exists():
            raise ValueError(f"{path} is not a rosbag2 folder (no metadata.yaml)")
        self.path = path

    def __enter__(self) -> "BagReader":
        try:
            reader = AnyReader([self.path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
            reader.open()
        except FileNotFoundError:
            raise
        except Exception as exc:  # rosbags raises several types for unreadable folders
            self.damage.append(Damage(self.path.name, f"cannot be opened normally ({type(exc).__name__}: {exc}); "
                                      "read record by record"))
            try:  # a truncated or damaged file: read what is left
                reader = open_salvage(self.path, str(exc), self.damage)
            except (OSError, ValueError) as salvage_exc:
                self.damage.clear()
                raise ValueError(f"cannot open recording {self.path}: {exc} ({salvage_exc})") from exc
            self._salvage = reader
        self._reader = reader
        return self

    def __exit__(self, *exc) -> None:
        for reader in {id(r): r for r in (self._reader, self._salvage) if r is not None}.values():
            reader.close()
        self._reader = self._salvage = None

    def _messages(self, connections, start: int | None = None):
        """``(connection, bag time, raw)`` of ``connections`` in recording order, read past damage.

        When ``rosbags`` fails in the middle of the recording, the rest is read by the salvaging
        reader (messages already yielded are not yielded again) and the failure is in :attr:`damage`.
        """
        reader = self._open
        counts: dict[str, int] = {}

        def seen(topic: str) -> None:
            counts[topic] = counts.get(topic, 0) + 1
            if counts[topic] > self._read.get(topic, 0):
                self._read[topic] = counts[topic]

        if reader is self._salvage:
            for item in reader.messages(connections=connections, start=start):
                seen(item[0].topic)
                yield item
            return
        done: set = set()
        iterator = iter(reader.messages(connections=connections, start=start))
        while True:
            try:
                connection, bag_time, raw = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # ZstdError, apsw.CorruptError, ReaderError...: read on past it
                error = f"{type(exc).__name__}: {exc}"
                break
            done.add((connection.topic, int(bag_time), len(raw)))
            seen(connection.topic)
            yield connection, bag_time, raw
        if self._salvage is None:
            try:
                self._salvage = open_salvage(self.path, error, self.damage)
            except (OSError, ValueError) as exc:
                self.damage.append(Damage(self.path.name, f"{error}; nothing after it readable ({exc})"))
                return
        before = len(self.damage)
        originals = {(c.topic, c.msgtype): c for c in connections}
        for c, bag_time, raw in self._salvage.messages(connections=connections, start=start):
            key = (c.topic, int(bag_time), len(raw))
            if key in done:
                done.discard(key)
                continue
            seen(c.topic)
            yield originals.get((c.topic, c.msgtype), c), bag_time, raw
        if len(self.damage) == before:  # the salvaging reader found nothing more precise to say
            self.damage.append(Damage(self.path.name, f"{error}; read on record by record"))

    @property
    def connections(self) -> list:
        """The recording's connections (``id``, ``topic``, ``msgtype``, ``msgcount``)."""
        return list(self._open.connections)

    def raw_messages(self, connections=None, start: int | None = None):
        """``(connection, bag time ns, raw CDR bytes)`` of ``connections`` (default: all), read past damage."""
        return self._messages(self.connections if connections is None else connections, start)

    def damage_report(self, topics=None) -> dict | None:
        """What could not be read, or None when nothing was damaged.

        ``{"damaged": [Damage.to_dict()...], "lost": {topic: messages}}``: ``lost`` compares the
        messages read of each topic (of ``topics``, default all) with its count in the recording's
        index or metadata; where neither knows, the counts of the damaged parts themselves.
        """
        if not self.damage:
            return None
        expected: dict[str, int] = {}
        for c in self._open.connections:
            expected[c.topic] = expected.get(c.topic, 0) + int(c.msgcount)
        wanted = set(expected) if topics is None else set(topics)
        lost = {}
        for topic in sorted(wanted):
            missing = expected.get(topic, 0) - self._read.get(topic, 0)
            if missing > 0:
                lost[topic] = missing
        if not lost:
            for d in self.damage:
                for topic, n in d.lost.items():
                    if topics is None or topic in wanted:
                        lost[topic] = lost.get(topic, 0) + n
        return {"damaged": [d.to_dict() for d in self.damage], "lost": lost}

    @property
    def _open(self):
        if self._reader is None:
            raise RuntimeError("BagReader is not open (use it in a with statement)")
        return self._reader

    # --- topics -------------------------------------------------------------------------------

    @property
    def topics(self) -> list[TopicInfo]:
        """All topics, sorted by name; counts summed over connections of the same topic."""
        counts: dict[tuple[str, str], int] = {}
        for c in self._open.connections:
            counts[(c.topic, c.msgtype)] = counts.get((c.topic, c.msgtype), 0) + int(c.msgcount)
        return [TopicInfo(t, m, n) for (t, m), n in sorted(counts.items())]

    def topics_of_kind(self, kind: str) -> list[str]:
        """Names of the topics of one :attr:`TopicInfo.kind`."""
        return [t.name for t in self.topics if t.kind == kind]

    @property
    def image_topics(self) -> list[str]:
        return self.topics_of_kind("image")

    @property
    def pose_topics(self) -> list[str]:
        return self.topics_of_kind("pose")

    @property
    def camera_info_topics(self) -> list[str]:
        return self.topics_of_kind("camera_info")

    @property
    def start_ns(self) -> int:
        return int(self._open.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._open.end_time)

    def message_count(self, topics) -> int:
        """Messages on the given topics."""
        wanted = set(topics)
        return sum(t.count for t in self.topics if t.name in wanted)

    def camera_info_topic_for(self, image_topic: str) -> str | None:
        """The CameraInfo topic in the image topic's namespace (``/cam/image_raw`` -> ``/cam/camera_info``).

        Falls back to the only CameraInfo topic when the recording has exactly one image topic and one
        CameraInfo topic; None otherwise.
        """
        infos = self.camera_info_topics
        namespace = camera_namespace(image_topic)
        same = [t for t in infos if camera_namespace(t) == namespace]
        if len(same) == 1:
            return same[0]
        if len(infos) == 1 and len(self.image_topics) == 1:
            return infos[0]
        return None

    def _connections(self, topics) -> list:
        wanted = set(topics)
        unknown = wanted - {c.topic for c in self._open.connections}
        if unknown:
            raise ValueError(f"topics not in {self.path.name}: {', '.join(sorted(unknown))}")
        return [c for c in self._open.connections if c.topic in wanted]

    # --- reading ------------------------------------------------------------------------------

    def read_pose_track(self, topic: str, errors: list | None = None) -> PoseTrack:
        """All poses of an Odometry / PoseStamped topic as a :class:`PoseTrack` (sorted by header stamp).

        Messages that cannot be read are skipped and described in ``errors`` (when given).
        """
        info = {t.name: t for t in self.topics}.get(topic)
        if info is None or info.kind != "pose":
            kind = "missing" if info is None else info.msgtype
            raise ValueError(f"{topic} is not a pose topic ({kind}); pose topics: {self.pose_topics}")
        samples, frame_ids = [], []
        for connection, bag_time, raw in self._messages(self._connections([topic])):
            try:
                stamp, position, orientation, frame_id = pose_from_message(
                    self._open.deserialize(raw, connection.msgtype))
            except Exception as exc:  # one bad message must not lose the track
                if errors is not None:
                    errors.append(f"{topic} at bag time {bag_time}: {exc}")
                continue
            samples.append((stamp, position, orientation))
            frame_ids.append(frame_id)
        frame_id = max(set(frame_ids), key=frame_ids.count) if frame_ids else ""
        return PoseTrack.from_samples(samples, frame_id=frame_id, max_samples=None)

    def read_camera_info(self, topic: str) -> dict | None:
        """The first readable CameraInfo of ``topic`` as :func:`camera_info_to_dict`, or None."""
        for connection, _, raw in self._messages(self._connections([topic])):
            try:
                return camera_info_to_dict(self._open.deserialize(raw, connection.msgtype))
            except Exception:  # try the next one
                continue
        return None

    def frames(self, topics=None) -> Iterator[Frame | FrameError]:
        """Decoded frames of the image ``topics`` (default: all image topics) in recording order.

        Yields a :class:`FrameError` instead of a frame for a message that cannot be deserialized or
        decoded, then goes on with the next message.
        """
        yield from self.stream(topics)

    def stream(self, image_topics=None, pose_topics=(), camera_info_topics=()
               ) -> Iterator[Frame | PoseSample | CameraInfoSample | FrameError]:
        """Frames, poses and camera calibrations of the given topics in one pass, in recording order.

        ``image_topics`` defaults to every image topic. A message that cannot be read or decoded
        is yielded as a :class:`FrameError` (whatever its topic), and reading goes on.
        """
        image_topics = self.image_topics if image_topics is None else list(image_topics)
        kinds = {t.name: t.kind for t in self.topics}
        for wanted, kind in ((image_topics, "image"), (pose_topics, "pose"), (camera_info_topics, "camera_info")):
            wrong = [t for t in wanted if kinds.get(t) != kind]
            if wrong:
                raise ValueError(f"not {kind.replace('_', ' ')} topics: {', '.join(wrong)}; "
                                 f"{kind.replace('_', ' ')} topics: {self.topics_of_kind(kind)}")
        topics = [*image_topics, *pose_topics, *camera_info_topics]
        for connection, bag_time, raw in self._messages(self._connections(topics)):
            kind = kinds[connection.topic]
            try:
                msg = self._open.deserialize(raw, connection.msgtype)
                stamp, frame_id = header_stamp_ns(msg), str(msg.header.frame_id)
            except Exception as exc:  # rosbags raises several types for malformed payloads
                yield FrameError(connection.topic, int(bag_time), int(bag_time),
                                 f"cannot deserialize {connection.msgtype}: {type(exc).__name__}: {exc}")
                continue
            try:
                if kind == "image":
                    image = message_to_numpy(msg)
                    encoding = str(getattr(msg, "encoding", None) or getattr(msg, "format", ""))
                    item = Frame(connection.topic, stamp, frame_id, image, encoding, int(bag_time))
                elif kind == "pose":
                    _, position, orientation, _ = pose_from_message(msg)
                    item = PoseSample(connection.topic, stamp, position, orientation, frame_id, int(bag_time))
                else:
                    item = CameraInfoSample(connection.topic, stamp, camera_info_to_dict(msg), int(bag_time))
            except (ValueError, TypeError) as exc:  # ImageDecodeError included: bad content, clear message
                yield FrameError(connection.topic, stamp, int(bag_time), str(exc), frame_id)
                continue
            yield item
