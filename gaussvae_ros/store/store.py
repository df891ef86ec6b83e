"""SQLite memory store: insert, query by time, pose and id, stats, delete (schema in :mod:`.schema`).

Usage::

    with Store("memories.db") as store:
        store.insert(memory)                       # one transaction (live node)
        store.insert_many(memories, batch_size=1000)   # one transaction per batch (bag import)
        recent = store.by_time(start_s=t0, end_s=t1, order="desc", limit=100)
        around = store.within_radius((x, y, z), 5.0)
        best = store.nearest((x, y, z), k=10, orientation=q, max_angle_rad=0.5)

Durability and concurrency: the file is in WAL mode with ``synchronous=NORMAL`` (a power cut can
lose the last transactions, never corrupt the file). Writes go through one writer connection per
:class:`Store`, serialized by a lock, each in a ``BEGIN IMMEDIATE`` transaction; reads go through
one connection per thread (created on first use), each query reading one consistent snapshot (a
single statement, or several inside one read transaction), so readers never block the writer nor
see half a transaction, in this process or others. Several processes may open the same file;
writers wait up to ``timeout_s`` for each other and then raise :class:`StoreError`.

Thread safety: a :class:`Store` may be shared by threads (a ROS node's writer thread and its
service callbacks): every public method is safe to call concurrently. ``close()`` must be called
once no other thread uses the store any more.

Errors: bad arguments raise ``ValueError`` before anything is written; a locked, damaged or
foreign database raises :class:`StoreError`; either way the failing call rolls back and data
committed before it stays.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import schema
from .records import (CameraIntrinsics, InsertResult, Memory, StoredMemory, Pose, Profile, ProfileTotals,
                      StoreBusyError, StoreError, StoreStats, Stream, StreamStats, check_position, check_quaternion, check_stamp_ns,
                      seconds_to_ns)
from .pages import DEFAULT_PAGE_SIZE, check_page_size, page_size_for_payload
from .retention import RetentionReport, apply_retention
from .segments import Segment, extend_segments

_log = logging.getLogger(__name__)

_META_COLUMNS = "m.id, m.stream_id, m.stamp_ns, m.profile_id, m.x, m.y, m.z, m.qx, m.qy, m.qz, m.qw, " \
                "m.psnr, m.ssim, length(m.payload)"
_INSERT_SQL = f"INSERT OR IGNORE INTO memories ({', '.join(schema.MEMORY_COLUMNS)}) " \
              f"VALUES ({', '.join('?' * len(schema.MEMORY_COLUMNS))})"
_MAX_BATCH = 1_000_000
_MAX_IDS_PER_CALL = 10_000_000
_MAX_INT64 = 2**63 - 1


_NEW_POSE = object.__new__
_SET_POSITION = Pose.__dict__["position"].__set__  # slot descriptors: no frozen-dataclass __setattr__ detour
_SET_ORIENTATION = Pose.__dict__["orientation"].__set__


def _pose_from_row(x, y, z, qx, qy, qz, qw) -> Pose:
    """A Pose from trusted stored values (skips validation: this is on every query's hot path)."""
    pose = _NEW_POSE(Pose)
    _SET_POSITION(pose, (x, y, z))
    _SET_ORIENTATION(pose, (qx, qy, qz, qw))
    return pose


def _check_int(value, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _check_limit(limit) -> int | None:
    return None if limit is None else _check_int(limit, "limit", 1)


def _check_ids(ids, what: str = "ids") -> list[int]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise ValueError(f"{what} must be an iterable of ints, got {type(ids).__name__}")
    checked = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{what} must be ints, got {type(value).__name__} {value!r}")
        checked.append(value)
        if len(checked) > _MAX_IDS_PER_CALL:
            raise ValueError(f"at most {_MAX_IDS_PER_CALL} {what} per call")
    return checked


def _check_optional_text(value, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what} must be a str or None, got {type(value).__name__} {value!r}")
    return value


def _time_bound(ns, seconds, name: str) -> int | None:
    if ns is not None and seconds is not None:
        raise ValueError(f"give {name}_ns or {name}_s, not both")
    if ns is not None:
        return check_stamp_ns(ns, f"{name}_ns")
    if seconds is not None:
        return seconds_to_ns(seconds, f"{name}_s")
    return None


def _orientation_filter(orientation, max_angle_rad) -> tuple[str, tuple]:
    """SQL condition keeping memories whose orientation is within ``max_angle_rad`` of ``orientation``.

    The angle between unit quaternions q and r is ``2 acos(|q . r|)``; with r normalized here and
    q normalized implicitly, ``angle <= a`` iff ``(q . r)^2 >= cos^2(a / 2) |q|^2``.
    """
    if orientation is None and max_angle_rad is None:
        return "", ()
    if orientation is None or max_angle_rad is None:
        raise ValueError("orientation and max_angle_rad go together: give both or neither")
    q = check_quaternion(orientation, "orientation")
    if isinstance(max_angle_rad, bool) or not isinstance(max_angle_rad, (int, float)) \
            or not 0.0 <= max_angle_rad <= math.pi:
        raise ValueError(f"max_angle_rad must be a number in [0, pi], got {max_angle_rad!r}")
    norm = math.sqrt(math.fsum(v * v for v in q))
    a, b, c, d = (v / norm for v in q)
    cos2 = math.cos(max_angle_rad / 2.0) ** 2
    sql = (" AND (m.qx * ? + m.qy * ? + m.qz * ? + m.qw * ?) * (m.qx * ? + m.qy * ? + m.qz * ? + m.qw * ?)"
           " >= ? * (m.qx * m.qx + m.qy * m.qy + m.qz * m.qz + m.qw * m.qw)")
    return sql, (a, b, c, d, a, b, c, d, cos2)


class Store:
    """A robot's visual memory in one SQLite file (see the module docstring for usage and guarantees).

    Args:
        path: database file; created (with its schema) unless ``create`` is false.
        create: create a missing file; if false a missing file raises ``FileNotFoundError``.
        timeout_s: how long a write waits for another writer before raising :class:`StoreError`.
        page_size: SQLite page size in bytes for a new file (ignored for an existing one). Rows
            are packed whole into pages, so the bytes a memory costs beyond its payload depend on
            the payload's size; :func:`~gaussvae_ros.store.pages.page_size_for_payload` picks the
            page size for an expected payload size (e.g. 4.6 KB RGB memories: ~170 B beyond the
            payload on 4 KiB pages, ~3.6 KB on 8 KiB ones; measured table in BENCHMARKS.md, "Page
            size against payload size"). The default, 4096, suits the default codecs' payloads;
            :meth:`compact` changes it for an existing file.
        health_check: ``"auto"`` runs SQLite's ``quick_check`` when the file looks uncleanly shut
            down (a non-empty ``-wal`` file left beside it, or another process has it open),
            ``"always"`` at every open (the memory node), ``"never"`` skips it (``db recover``). A
            damaged file raises :class:`StoreError` naming ``gaussvae db recover``.
        cache_mb: page cache per connection, MiB.
        segment_extent_m, segment_max_ids: pose index granularity (see :mod:`.schema`); stored in
            the file, applying to segments built from then on. ``None`` keeps the stored values.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True, timeout_s: float = 5.0,
                 page_size: int = DEFAULT_PAGE_SIZE, cache_mb: float = 64.0, segment_extent_m: float | None = None,
                 segment_max_ids: int | None = None, health_check: str = "auto") -> None:
        if not isinstance(path, (str, os.PathLike)) or str(path) in ("", ":memory:") \
                or str(path).startswith("file:"):
            raise ValueError(f"path must name a database file, got {path!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 <= timeout_s < 1e6:
            raise ValueError(f"timeout_s must be a non-negative number of seconds, got {timeout_s!r}")
        check_page_size(page_size)
        if segment_extent_m is not None and (isinstance(segment_extent_m, bool) or not isinstance(
                segment_extent_m, (int, float)) or not 0 < segment_extent_m < 1e9):
            raise ValueError(f"segment_extent_m must be a positive number of metres, got {segment_extent_m!r}")
        if segment_max_ids is not None:
            _check_int(segment_max_ids, "segment_max_ids", 1)
        if health_check not in ("auto", "always", "never"):
            raise ValueError(f"health_check must be 'auto', 'always' or 'never', got {health_check!r}")
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no memory store at {self.path}")
        wal = self.path.with_name(self.path.name + "-wal")
        unclean = wal.exists() and wal.stat().st_size > 0  # left behind, or another connection has it open
        #: What closing found wrong (a WAL that could not be written back), set by :meth:`close`.
        self.close_problems: list[str] = []
        self._timeout_s = float(timeout_s)
        self._cache_kib = max(1, int(cache_mb * 1024))
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._stream_keys: dict[tuple[str, str], int] = {}
        self._profiles: dict[int, Profile] = {}
        self._profile_keys: dict[tuple, int] = {}
        self._recent_ids: list[int] = []  # ids inserted since the last retention run (its candidates)
        self._knn_radius_hint: dict[int, float] = {}
        self._closed = False
        self._conn = self._connect()
        try:
            version, has_tables = schema.check_compatible(self._conn, label=str(self.path))
            self._conn.execute("PRAGMA synchronous = NORMAL")
            if version == 0 and not has_tables:
                self._conn.execute(f"PRAGMA page_size = {page_size}")
            if self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL mode")
            if health_check == "always" or (health_check == "auto" and unclean and has_tables):
                self._health_check()
            schema.migrate(self._conn, label=str(self.path))
            if segment_extent_m is not None or segment_max_ids is not None:
                with self._write("store settings") as conn:
                    self._set_segment_options(conn, segment_extent_m, segment_max_ids)
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._error(exc, "open") from exc
        except BaseException:
            self._conn.close()
            raise

    def _health_check(self) -> None:
        """SQLite's ``quick_check`` (every page read, indexes not cross-checked: about as long as
        reading the file); StoreError naming the recovery command when it finds damage."""
        try:
            problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(20)") if r[0] != "ok"]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems:
            raise StoreError(f"{self.path} is damaged ({'; '.join(problems[:3])}"
                             f"{'; ...' if len(problems) > 3 else ''}): refused; salvage its readable memories "
                             f"into a new file with: gaussvae db recover {self.path} NEW_FILE")

    @staticmethod
    def _set_segment_options(conn, segment_extent_m, segment_max_ids) -> None:
        if segment_extent_m is not None:
            conn.execute("REPLACE INTO meta VALUES ('segment_extent_m', ?)", (repr(float(segment_extent_m)),))
        if segment_max_ids is not None:
            conn.execute("REPLACE INTO meta VALUES ('segment_max_ids', ?)", (str(segment_max_ids),))

    # ----------------------------------------------------------------------------------------
    # connections and transactions

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
            conn.execute(f"PRAGMA cache_size = -{self._cache_kib}")
            conn.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as exc:
            if "conn" in locals():
                conn.close()
            raise self._error(exc, "open") from exc
        return conn

    def _error(self, exc: sqlite3.Error, action: str) -> StoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreBusyError(f"{self.path} is locked by another connection (waited {self._timeout_s:g} s "
                                  f"to {action}): {text}; nothing was written by this call", "locked")
        if isinstance(exc, sqlite3.OperationalError) and "full" in text:
            return StoreBusyError(f"{self.path}: cannot {action}: the disk is full ({text}); nothing was written "
                                  "by this call", "full")
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
            return StoreError(f"cannot open {self.path}: {text}")
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError) \
                and not isinstance(exc, sqlite3.OperationalError):
            return StoreError(f"{self.path} is damaged or not a SQLite database ({text}) while trying to "
                              f"{action}; the file was left untouched")
        return StoreError(f"{self.path}: cannot {action}: {text}")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    @contextmanager
    def _write(self, action: str = "write") -> Iterator[sqlite3.Connection]:
        """The writer connection inside a ``BEGIN IMMEDIATE`` transaction, committed on success."""
        self._check_open()
        with self._write_lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc, action) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._forget_caches()
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc, action) from exc
                raise

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _read(self, action: str = "read", snapshot: bool = True) -> Iterator[sqlite3.Connection]:
        """This thread's reader connection, inside one read transaction (a consistent snapshot over
        several statements) unless ``snapshot`` is false (each statement sees its own snapshot)."""
        self._check_open()
        conn = self._reader()
        try:
            if snapshot:
                conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc

    def close(self) -> None:
        """Close every connection (checkpointing the WAL). Call once no other thread uses the store."""
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            try:  # write the WAL back now (not waiting for other connections), so that a failure is seen
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                if not ("locked" in str(exc) or "busy" in str(exc)):  # another connection: it checkpoints later
                    self.close_problems.append(f"{self.path}: the write-ahead log could not be written back into the "
                                               f"file ({exc}); the data is safe in {self.path.name}-wal, which "
                                               "must stay beside it until the store is opened again with space")
            self._conn.close()
            for problem in self.close_problems:
                _log.warning(problem)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', closed' if self._closed else ''})"

    # ----------------------------------------------------------------------------------------
    # streams and profiles (small tables, cached)

    # The caches are replaced, never mutated, so threads reading them need no lock.

    def _forget_caches(self) -> None:
        self._streams, self._stream_keys, self._profiles, self._profile_keys = {}, {}, {}, {}

    def _load_streams(self, conn: sqlite3.Connection) -> None:
        streams = {sid: Stream(sid, topic, frame)
                   for sid, topic, frame in conn.execute("SELECT id, topic, camera_frame_id FROM streams")}
        self._stream_keys = {(s.topic, s.camera_frame_id): sid for sid, s in streams.items()}
        self._streams = streams

    def _load_profiles(self, conn: sqlite3.Connection) -> None:
        profiles = {}
        for row in conn.execute("SELECT id, pose_frame_id, width, height, encoding, intrinsics, codec, model_id "
                                "FROM profiles"):
            pid, pose_frame, width, height, encoding, intrinsics, codec, model_id = row
            k = CameraIntrinsics.from_json(intrinsics) if intrinsics is not None else None
            profiles[pid] = Profile(pid, pose_frame, width, height, encoding, k, codec, model_id)
        self._profile_keys = {(p.pose_frame_id, p.width, p.height, p.encoding, p.intrinsics, p.codec, p.model_id): pid
                              for pid, p in profiles.items()}
        self._profiles = profiles

    def _stream(self, conn: sqlite3.Connection, sid: int) -> Stream:
        stream = self._streams.get(sid)
        if stream is None:
            self._load_streams(conn)
            stream = self._streams[sid]
        return stream

    def _profile(self, conn: sqlite3.Connection, pid: int) -> Profile:
        profile = self._profiles.get(pid)
        if profile is None:
            self._load_profiles(conn)
            profile = self._profiles[pid]
        return profile

    def _current_streams(self, conn: sqlite3.Connection) -> dict[int, Stream]:
        """All streams, reloading the cache when another connection added some."""
        newest = conn.execute("SELECT max(id) FROM streams").fetchone()[0]
        if newest is not None and newest not in self._streams:
            self._load_streams(conn)
        return self._streams

    def _stream_ids(self, conn: sqlite3.Connection, topic: str | None, camera_frame_id: str | None) -> list[int]:
        topic = _check_optional_text(topic, "topic")
        camera_frame_id = _check_optional_text(camera_frame_id, "camera_frame_id")
        return [sid for sid, s in sorted(self._current_streams(conn).items())
                if (topic is None or s.topic == topic) and (camera_frame_id is None or s.camera_frame_id == camera_frame_id)]

    def _stream_id_for_insert(self, conn: sqlite3.Connection, topic: str, frame: str) -> int:
        sid = self._stream_keys.get((topic, frame))
        if sid is None:
            conn.execute("INSERT OR IGNORE INTO streams (topic, camera_frame_id) VALUES (?, ?)", (topic, frame))
            sid = conn.execute("SELECT id FROM streams WHERE topic = ? AND camera_frame_id = ?",
                               (topic, frame)).fetchone()[0]
            self._load_streams(conn)
        return sid

    def _profile_id_for_insert(self, conn: sqlite3.Connection, m: Memory) -> int:
        key = (m.pose_frame_id, m.width, m.height, m.encoding, m.intrinsics, m.codec, m.model_id)
        pid = self._profile_keys.get(key)
        if pid is None:
            row = (*key[:4], None if m.intrinsics is None else m.intrinsics.to_json(), *key[5:])
            found = conn.execute(
                "SELECT id FROM profiles WHERE pose_frame_id = ? AND width = ? AND height = ? AND encoding = ? "
                "AND intrinsics IS ? AND codec = ? AND model_id = ?", row).fetchone()
            if found is None:
                pid = conn.execute("INSERT INTO profiles (pose_frame_id, width, height, encoding, intrinsics, "
                                   "codec, model_id) VALUES (?, ?, ?, ?, ?, ?, ?)", row).lastrowid
            else:
                pid = found[0]
            self._load_profiles(conn)
        return pid

    def _meta(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # ----------------------------------------------------------------------------------------
    # writing

    def insert(self, memory: Memory) -> int | None:
        """Store one memory in its own transaction; returns its id, or ``None`` if the same
        ``(topic, camera_frame_id, stamp_ns)`` was stored already (nothing is changed then)."""
        result = self.insert_many([memory], batch_size=1)
        return result.ids[0] if result.ids else None

    def insert_many(self, memories: Iterable[Memory], batch_size: int = 1000) -> InsertResult:
        """Store memories from any iterable, one transaction per ``batch_size`` of them.

        Memories whose ``(topic, camera_frame_id, stamp_ns)`` is stored already are skipped (a
        replay can simply be run again). If an item is invalid or the database fails, the
        current batch is rolled back, earlier batches stay, and the error says how many there were.
        """
        _check_int(batch_size, "batch_size", 1)
        if batch_size > _MAX_BATCH:
            raise ValueError(f"batch_size must be <= {_MAX_BATCH}, got {batch_size}")
        if isinstance(memories, Memory) or not isinstance(memories, Iterable):
            raise ValueError("memories must be an iterable of Memory (use insert() for a single one)")
        ids: list[int] = []
        skipped = 0
        done = 0
        iterator = iter(memories)
        while True:
            batch = list(itertools.islice(iterator, batch_size))
            if not batch:
                break
            for i, memory in enumerate(batch):
                if not isinstance(memory, Memory):
                    raise ValueError(f"item #{done + i} is a {type(memory).__name__}, not a Memory; "
                                     f"the {done} memories before its batch were stored")
            try:
                with self._write("insert memories") as conn:
                    new_ids = self._insert_batch(conn, batch)
            except StoreBusyError as exc:  # still one that may pass: the caller may retry
                raise StoreBusyError(f"{exc} (the {done} memories before this batch were stored)", exc.reason) from exc
            except StoreError as exc:
                raise StoreError(f"{exc} (the {done} memories before this batch were stored)") from exc
            ids.extend(new_ids)
            skipped += len(batch) - len(new_ids)
            done += len(batch)
        return InsertResult(tuple(ids), skipped)

    def _insert_batch(self, conn: sqlite3.Connection, batch: list[Memory]) -> list[int]:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'").fetchone()
        first_id = (row[0] if row else 0) + 1
        rows = []
        stream_key = self._stream_keys
        for i, m in enumerate(batch):
            sid = stream_key.get((m.topic, m.camera_frame_id)) or \
                self._stream_id_for_insert(conn, m.topic, m.camera_frame_id)
            pid = self._profile_id_for_insert(conn, m)
            if m.pose is None:
                rows.append((first_id + i, sid, m.stamp_ns, pid, None, None, None, None, None, None, None,
                             m.psnr, m.ssim, m.payload))
            else:
                rows.append((first_id + i, sid, m.stamp_ns, pid, *m.pose.position, *m.pose.orientation,
                             m.psnr, m.ssim, m.payload))
        inserted = conn.executemany(_INSERT_SQL, rows).rowcount
        if inserted == len(rows):
            new_rows = rows
        else:
            present = {r[0] for r in conn.execute("SELECT id FROM memories WHERE id BETWEEN ? AND ?",
                                                  (first_id, first_id + len(rows) - 1))}
            new_rows = [r for r in rows if r[0] in present]
        counts: dict[int, list[int]] = {}
        for r in new_rows:
            c = counts.get(r[1])
            if c is None:
                c = counts[r[1]] = [0, 0, 0]
            c[0] += 1
            c[1] += len(r[13])
            c[2] += r[4] is not None
        conn.executemany("UPDATE streams SET record_count = record_count + ?, payload_bytes = payload_bytes + ?, "
                         "pose_count = pose_count + ? WHERE id = ?", [(*c, sid) for sid, c in counts.items()])
        positions = [(r[0], r[4], r[5], r[6]) for r in new_rows if r[4] is not None]
        if positions:
            self._index_positions(conn, positions)
        new_ids = [r[0] for r in new_rows]
        self._recent_ids.extend(new_ids)
        del self._recent_ids[:-100_000]
        return new_ids

    def _index_positions(self, conn: sqlite3.Connection, positions: list[tuple[int, float, float, float]]) -> None:
        extent = float(self._meta(conn, "segment_extent_m"))
        max_ids = int(self._meta(conn, "segment_max_ids"))
        open_segment = None
        last = conn.execute("SELECT first_id, last_id FROM pose_segments ORDER BY first_id DESC LIMIT 1").fetchone()
        if last is not None:  # two statements: joined, SQLite would scan the R*Tree
            box = conn.execute("SELECT min_x, max_x, min_y, max_y, min_z, max_z FROM pose_index WHERE id = ?",
                               (last[0],)).fetchone()
            open_segment = Segment(*last, *box)
        changed, new = extend_segments(open_segment, positions, extent, max_ids)
        if changed:
            conn.execute("UPDATE pose_index SET min_x = ?, max_x = ?, min_y = ?, max_y = ?, min_z = ?, max_z = ? "
                         "WHERE id = ?", (*open_segment.box(), open_segment.first_id))
            conn.execute("UPDATE pose_segments SET last_id = ? WHERE first_id = ?",
                         (open_segment.last_id, open_segment.first_id))
        conn.executemany("INSERT INTO pose_index VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(s.first_id, *s.box()) for s in new])
        conn.executemany("INSERT INTO pose_segments VALUES (?, ?)", [(s.first_id, s.last_id) for s in new])
        xs, ys, zs = zip(*((p[1], p[2], p[3]) for p in positions))
        bounds = [min(xs), min(ys), min(zs), max(xs), max(ys), max(zs)]
        old = self._meta(conn, "pose_bounds_hint")
        if old is not None:
            old = json.loads(old)
            bounds = [min(a, b) for a, b in zip(bounds[:3], old[:3])] + [max(a, b) for a, b in zip(bounds[3:], old[3:])]
        if bounds != old:  # usually unchanged: the robot is inside the area it knows (one page less to write)
            conn.execute("REPLACE INTO meta VALUES ('pose_bounds_hint', ?)", (json.dumps(bounds),))

    def delete(self, ids: Iterable[int]) -> int:
        """Delete the memories with these ids in one transaction; returns how many were deleted.

        Raises ``ValueError`` (deleting nothing) if any id is unknown.
        """
        wanted = sorted(set(_check_ids(ids)))
        with self._write("delete memories") as conn:
            found = self._existing_ids(conn, wanted)
            if len(found) != len(wanted):
                missing = sorted(set(wanted) - found)
                raise ValueError(f"unknown memory ids {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                                 f"nothing was deleted")
            return self._delete_existing(conn, wanted)

    def existing_ids(self, ids: Iterable[int]) -> set[int]:
        """The ids among ``ids`` that are stored (one read snapshot; ids outside int64 never are)."""
        wanted = sorted({int(i) for i in ids if 0 <= int(i) <= _MAX_INT64})
        if not wanted:
            return set()
        with self._read("look up memory ids") as conn:
            return self._existing_ids(conn, wanted)

    @staticmethod
    def _existing_ids(conn: sqlite3.Connection, ids: list[int]) -> set[int]:
        found: set[int] = set()
        for start in range(0, len(ids), 10_000):
            chunk = ids[start:start + 10_000]
            found.update(r[0] for r in conn.execute(
                f"SELECT id FROM memories WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def _delete_existing(self, conn: sqlite3.Connection, ids: list[int]) -> int:
        """Delete existing memories and keep the pose index tight (inside the caller's transaction)."""
        segments: dict[int, int] = {}
        for memory_id in ids:
            row = conn.execute("SELECT s.first_id, s.last_id FROM pose_segments AS s "
                               "WHERE s.first_id <= ? ORDER BY s.first_id DESC LIMIT 1", (memory_id,)).fetchone()
            if row is not None and row[1] >= memory_id:
                segments[row[0]] = row[1]
        deleted = conn.executemany("DELETE FROM memories WHERE id = ?", [(i,) for i in ids]).rowcount
        for first_id, last_id in segments.items():
            count, *box = conn.execute(
                "SELECT count(*), min(x), max(x), min(y), max(y), min(z), max(z) FROM memories "
                "WHERE id BETWEEN ? AND ? AND x IS NOT NULL", (first_id, last_id)).fetchone()
            if count == 0:
                conn.execute("DELETE FROM pose_index WHERE id = ?", (first_id,))
                conn.execute("DELETE FROM pose_segments WHERE first_id = ?", (first_id,))
            else:
                conn.execute("UPDATE pose_index SET min_x = ?, max_x = ?, min_y = ?, max_y = ?, min_z = ?, max_z = ? "
                             "WHERE id = ?", (*box, first_id))
        return deleted

    # ----------------------------------------------------------------------------------------
    # reading

    def _records(self, conn: sqlite3.Connection, rows) -> list[StoredMemory]:
        """MemoryRecords from rows of ``_META_COLUMNS``, payload or NULL, squared distance or NULL."""
        streams, profiles = self._streams, self._profiles
        stream, profile, pose, sqrt = self._stream, self._profile, _pose_from_row, math.sqrt
        return [StoredMemory(mid, stamp, streams.get(sid) or stream(conn, sid), profiles.get(pid) or profile(conn, pid),
                             None if x is None else pose(x, y, z, qx, qy, qz, qw), psnr, ssim, size, payload,
                             None if d2 is None else sqrt(d2))
                for mid, sid, stamp, pid, x, y, z, qx, qy, qz, qw, psnr, ssim, size, payload, d2 in rows]

    @staticmethod
    def _select(with_payload: bool, distance: str = "NULL") -> str:
        # CAST: a payload stored with another SQLite type (TEXT) comes back as its bytes, for its codec
        # to decode or refuse as that memory's ValueError; read as TEXT it could fail the whole query.
        return f"SELECT {_META_COLUMNS}, {'CAST(m.payload AS BLOB)' if with_payload else 'NULL'}, {distance} AS d2"

    def get(self, ids: Iterable[int], *, with_payload: bool = False) -> list[StoredMemory]:
        """The memories with these ids, in the order given. Unknown ids raise ``ValueError``."""
        wanted = _check_ids(ids)
        unique = sorted(set(wanted))
        by_id: dict[int, StoredMemory] = {}
        with self._read("get memories") as conn:
            for start in range(0, len(unique), 10_000):
                chunk = unique[start:start + 10_000]
                rows = conn.execute(f"{self._select(with_payload)} FROM memories AS m "
                                    f"WHERE m.id IN ({','.join('?' * len(chunk))})", chunk)
                by_id.update((r.id, r) for r in self._records(conn, rows))
        missing = [i for i in unique if i not in by_id]
        if missing:
            raise ValueError(f"unknown memory ids {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        return [by_id[i] for i in wanted]

    def load_payload(self, memory_id: int) -> bytes:
        """The payload bytes of one memory (``ValueError`` if the id is unknown)."""
        _check_ids([memory_id], "memory_id")
        with self._read("load a payload") as conn:
            row = conn.execute("SELECT CAST(payload AS BLOB) FROM memories WHERE id = ?", (memory_id,)).fetchone()
        if row is None:
            raise ValueError(f"unknown memory id {memory_id}")
        return row[0]

    def by_time(self, start_ns: int | None = None, end_ns: int | None = None, *, start_s: float | None = None,
                end_s: float | None = None, order: str = "asc", limit: int | None = None,
                topic: str | None = None, camera_frame_id: str | None = None,
                with_payload: bool = False) -> list[StoredMemory]:
        """Memories stamped in ``[start, end]`` (inclusive; open-ended when ``None``), by stamp.

        Bounds are nanoseconds (``*_ns``) or float seconds (``*_s``). ``order`` is ``"asc"`` or
        ``"desc"``; equal stamps of different cameras come in stream order. ``limit`` caps the
        count; ``topic``/``camera_frame_id`` restrict the sources.
        """
        start = _time_bound(start_ns, start_s, "start")
        end = _time_bound(end_ns, end_s, "end")
        if start is not None and end is not None and start > end:
            raise ValueError(f"inverted time range: start {start} ns is after end {end} ns")
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        limit = _check_limit(limit)
        lo = -(2**63) if start is None else start
        hi = 2**63 - 1 if end is None else end
        direction = "ASC" if order == "asc" else "DESC"
        sql = (f"{self._select(with_payload)} FROM memories AS m WHERE m.stream_id = ? AND m.stamp_ns BETWEEN ? AND ? "
               f"ORDER BY m.stamp_ns {direction}{' LIMIT ?' if limit is not None else ''}")
        tail = (limit,) if limit is not None else ()
        with self._read("query by time", snapshot=False) as conn:
            stream_ids = self._stream_ids(conn, topic, camera_frame_id)
            if len(stream_ids) == 1:  # one statement: a snapshot of its own
                rows = conn.execute(sql, (stream_ids[0], lo, hi, *tail)).fetchall()
            else:  # merge the streams' ordered index ranges, in one read transaction
                conn.execute("BEGIN")
                cursors = [conn.execute(sql, (sid, lo, hi, *tail)) for sid in stream_ids]
                merged = heapq.merge(*cursors, key=lambda r: (r[2], r[1]), reverse=order == "desc")
                rows = list(itertools.islice(merged, limit))
                for cursor in cursors:
                    cursor.close()
            return self._records(conn, rows)

    def _spatial_rows(self, conn: sqlite3.Connection, position, radius: float, stream_ids: list[int] | None,
                      orientation_sql: str, orientation_args: tuple, limit: int | None, with_payload: bool):
        """Rows (+ squared distance) of memories within ``radius`` of ``position``, nearest first."""
        x, y, z = position
        streams_sql = ""
        if stream_ids is not None:
            streams_sql = f" AND m.stream_id IN ({','.join(str(int(s)) for s in stream_ids)})"
        distance = "(m.x - ?) * (m.x - ?) + (m.y - ?) * (m.y - ?) + (m.z - ?) * (m.z - ?)"
        sql = (f"{self._select(with_payload, distance)} "
               f"FROM pose_index AS i CROSS JOIN pose_segments AS s CROSS JOIN memories AS m "
               f"WHERE i.min_x <= ? AND i.max_x >= ? AND i.min_y <= ? AND i.max_y >= ? "
               f"AND i.min_z <= ? AND i.max_z >= ? AND s.first_id = i.id "
               f"AND m.id BETWEEN s.first_id AND s.last_id AND m.x IS NOT NULL AND d2 <= ?"
               f"{streams_sql}{orientation_sql} ORDER BY d2, m.id{' LIMIT ?' if limit is not None else ''}")
        args = (x, x, y, y, z, z, x + radius, x - radius, y + radius, y - radius, z + radius, z - radius,
                radius * radius, *orientation_args, *((limit,) if limit is not None else ()))
        return conn.execute(sql, args).fetchall()

    def _spatial_filters(self, conn, topic, camera_frame_id, orientation, max_angle_rad):
        orientation_sql, orientation_args = _orientation_filter(orientation, max_angle_rad)
        stream_ids = None
        if topic is not None or camera_frame_id is not None:
            stream_ids = self._stream_ids(conn, topic, camera_frame_id)
        return stream_ids, orientation_sql, orientation_args

    def within_radius(self, position, radius_m: float, *, orientation=None, max_angle_rad: float | None = None,
                      topic: str | None = None, camera_frame_id: str | None = None, limit: int | None = None,
                      with_payload: bool = False) -> list[StoredMemory]:
        """Memories whose position is within ``radius_m`` metres of ``position`` (x, y, z), nearest
        first (ties by id), each with ``distance_m``. Positions are compared as stored, whatever
        their pose frame. ``orientation`` (quaternion x, y, z, w) with ``max_angle_rad`` keeps
        only memories whose orientation differs by at most that angle."""
        position = check_position(position)
        if isinstance(radius_m, bool) or not isinstance(radius_m, (int, float)) or not math.isfinite(radius_m) \
                or radius_m < 0:
            raise ValueError(f"radius_m must be a finite number >= 0, got {radius_m!r}")
        limit = _check_limit(limit)
        with self._read("query by radius", snapshot=False) as conn:
            stream_ids, osql, oargs = self._spatial_filters(conn, topic, camera_frame_id, orientation, max_angle_rad)
            if stream_ids == []:
                return []
            rows = self._spatial_rows(conn, position, float(radius_m), stream_ids, osql, oargs, limit, with_payload)
            return self._records(conn, rows)

    def nearest(self, position, k: int, *, orientation=None, max_angle_rad: float | None = None,
                topic: str | None = None, camera_frame_id: str | None = None,
                with_payload: bool = False) -> list[StoredMemory]:
        """The ``k`` memories nearest to ``position`` (x, y, z metres), nearest first (ties by id),
        each with ``distance_m``; fewer if fewer match. Exact: an R*Tree box search whose radius
        grows until it holds ``k`` matches. ``k`` larger than the number of stored poses is clamped
        to it (a huge ``k`` returns every match, sorted). Filters as in :meth:`within_radius`."""
        position = check_position(position)
        _check_int(k, "k", 1)
        with self._read("query nearest") as conn:
            stream_ids, osql, oargs = self._spatial_filters(conn, topic, camera_frame_id, orientation, max_angle_rad)
            if stream_ids == []:
                return []
            pose_count = conn.execute("SELECT coalesce(sum(pose_count), 0) FROM streams").fetchone()[0]
            k = min(k, pose_count)
            if k == 0:
                return []
            hint = self._meta(conn, "pose_bounds_hint")
            lo, hi = (json.loads(hint)[:3], json.loads(hint)[3:]) if hint else (position, position)
            # Beyond this radius the ball holds every stored position: the search is complete.
            max_radius = math.sqrt(sum(max(abs(p - a), abs(p - b)) ** 2 for p, a, b in zip(position, lo, hi)))
            max_radius = max_radius * (1 + 1e-9) + 1e-9
            # Start from the k-th distance of the last such query (data are usually alike nearby), but
            # no wider than a segment, so that a query in a dense place never starts out reading
            # thousands of memories because the previous one was in a sparse place.
            extent = float(self._meta(conn, "segment_extent_m"))
            radius = min(self._knn_radius_hint.get(k, extent), extent)
            while True:
                radius = min(radius, max_radius)
                rows = self._spatial_rows(conn, position, radius, stream_ids, osql, oargs, k, with_payload)
                if len(rows) == k or radius >= max_radius:
                    break
                radius *= 4.0 if len(rows) == 0 else max(1.5, min(4.0, math.sqrt(k / len(rows)) * 1.2))
                if radius > max_radius / 1.5:  # close to everything: take everything in one go
                    radius = max_radius
            if len(rows) == k and not osql and stream_ids is None:
                self._knn_radius_hint[k] = math.sqrt(rows[-1][-1]) * 1.5 + 1e-6
            return self._records(conn, rows)

    # ----------------------------------------------------------------------------------------
    # replay support and stats

    def stamps(self, topic: str, camera_frame_id: str | None = None, start_ns: int | None = None,
               end_ns: int | None = None) -> list[int]:
        """Sorted stamps (ns) stored for ``topic`` (optionally one camera frame) in ``[start_ns, end_ns]``:
        which frames of a recording are in the store already."""
        if not isinstance(topic, str):
            raise ValueError(f"topic must be a str, got {topic!r}")
        lo = -(2**63) if start_ns is None else check_stamp_ns(start_ns, "start_ns")
        hi = 2**63 - 1 if end_ns is None else check_stamp_ns(end_ns, "end_ns")
        if lo > hi:
            raise ValueError(f"inverted time range: start {lo} ns is after end {hi} ns")
        with self._read("list stamps") as conn:
            out: list[int] = []
            for sid in self._stream_ids(conn, topic, camera_frame_id):
                out.extend(r[0] for r in conn.execute(
                    "SELECT stamp_ns FROM memories WHERE stream_id = ? AND stamp_ns BETWEEN ? AND ?", (sid, lo, hi)))
        return sorted(out)

    def latest_stamps(self) -> dict[tuple[str, str], int]:
        """Newest stored stamp (ns) per ``(topic, camera_frame_id)``: where an interrupted replay resumes."""
        with self._read("find latest stamps") as conn:
            out = {}
            for sid, stream in sorted(self._current_streams(conn).items()):
                row = conn.execute("SELECT max(stamp_ns) FROM memories WHERE stream_id = ?", (sid,)).fetchone()
                if row[0] is not None:
                    out[(stream.topic, stream.camera_frame_id)] = row[0]
        return out

    def stats(self) -> StoreStats:
        """Counts, payload bytes, time span, exact pose bounds and per-stream figures.

        Cost: a few index look-ups per stream and a few R*Tree searches, never a scan.
        """
        with self._read("compute stats") as conn:
            per_stream = []
            # Streams from this snapshot (the cache may hold one a writer is adding right now).
            for sid, topic, frame, count, size in conn.execute(
                    "SELECT id, topic, camera_frame_id, record_count, payload_bytes FROM streams ORDER BY id").fetchall():
                # Two queries: SQLite answers a lone min() or max() from the index, both together by a scan.
                first = conn.execute("SELECT min(stamp_ns) FROM memories WHERE stream_id = ?", (sid,)).fetchone()[0]
                last = conn.execute("SELECT max(stamp_ns) FROM memories WHERE stream_id = ?", (sid,)).fetchone()[0]
                per_stream.append(StreamStats(topic, frame, count, size, first, last))
            pose_count = conn.execute("SELECT coalesce(sum(pose_count), 0) FROM streams").fetchone()[0]
            bounds = self._exact_pose_bounds(conn) if pose_count else None
            firsts = [s.first_stamp_ns for s in per_stream if s.first_stamp_ns is not None]
            lasts = [s.last_stamp_ns for s in per_stream if s.last_stamp_ns is not None]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        return StoreStats(
            count=sum(s.count for s in per_stream), payload_bytes=sum(s.payload_bytes for s in per_stream),
            first_stamp_ns=min(firsts) if firsts else None, last_stamp_ns=max(lasts) if lasts else None,
            pose_count=pose_count, pose_bounds=bounds, streams=tuple(per_stream), file_bytes=page_size * pages,
            page_size=page_size)

    def id_range(self) -> tuple[int, int]:
        """``(min id, max id)`` of the stored memories, ``(0, 0)`` for an empty store."""
        with self._read("read the id range") as conn:
            low, high = conn.execute("SELECT min(id), max(id) FROM memories").fetchone()
        return low or 0, high or 0

    def profile_totals(self, head_bytes: int = 4) -> list[ProfileTotals]:
        """Per profile of stored memories (one read snapshot): their count, PSNR / SSIM counts and sums
        (finite values only) and the first ``head_bytes`` of one payload.

        Cost: one pass over the memories table (the payload pages are read too, as SQLite keeps
        small payloads inline), grouped by profile; tens of milliseconds per 10,000 memories.
        """
        with self._read("add up the profiles") as conn:
            rows = conn.execute(
                "SELECT profile_id, count(*), "
                "count(CASE WHEN psnr BETWEEN -1e300 AND 1e300 THEN 1 END), "
                "total(CASE WHEN psnr BETWEEN -1e300 AND 1e300 THEN psnr END), "
                "count(CASE WHEN ssim BETWEEN -1e300 AND 1e300 THEN 1 END), "
                "total(CASE WHEN ssim BETWEEN -1e300 AND 1e300 THEN ssim END) "
                "FROM memories GROUP BY profile_id").fetchall()
            totals = []
            for pid, count, pn, ps, sn, ss in rows:
                head = conn.execute("SELECT substr(CAST(payload AS BLOB), 1, ?) FROM memories WHERE profile_id = ? LIMIT 1",
                                    (int(head_bytes), pid)).fetchone()
                totals.append(ProfileTotals(self._profile(conn, pid), count, pn, ps, sn, ss,
                                            bytes(head[0]) if head and head[0] is not None else b""))
        return totals

    def storage_bytes(self) -> int:
        """Bytes the store takes on disk: the database file with its WAL and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total

    @staticmethod
    def _pose_index_box(conn: sqlite3.Connection) -> tuple[float, ...] | None:
        """A box ``(min_x, max_x, min_y, max_y, min_z, max_z)`` containing every stored position.

        Read from the R*Tree's root node (node 1 of ``pose_index_node``; format documented in
        SQLite's rtree.c: 2-byte depth, 2-byte entry count, then entries of an 8-byte id and six
        big-endian float32 bounds, rounded outwards), so it costs one row, not a scan.
        """
        row = conn.execute("SELECT data FROM pose_index_node WHERE nodeno = 1").fetchone()
        count = int.from_bytes(row[0][2:4], "big") if row else 0
        if count == 0:
            return None
        bounds = [struct.unpack_from(">6f", row[0], 4 + 32 * i + 8) for i in range(count)]
        return (min(b[0] for b in bounds), max(b[1] for b in bounds), min(b[2] for b in bounds),
                max(b[3] for b in bounds), min(b[4] for b in bounds), max(b[5] for b in bounds))

    def _exact_pose_bounds(self, conn: sqlite3.Connection):
        """Exact min/max of the stored positions: a conservative box from the R*Tree, refined on the
        few segments whose boxes reach near each face."""
        box = self._pose_index_box(conn)
        if box is None:
            return None
        result = []
        for axis, column in enumerate("xyz"):
            span = max(box[2 * axis + 1] - box[2 * axis], 1.0)
            for want_max in (False, True):
                bound = box[2 * axis + want_max]
                sign = -1.0 if want_max else 1.0
                agg, op, box_col = ("max", ">=", f"max_{column}") if want_max else ("min", "<=", f"min_{column}")
                sql = (f"SELECT {agg}(m.{column}) FROM pose_index AS i CROSS JOIN pose_segments AS s "
                       f"CROSS JOIN memories AS m WHERE i.{box_col} {op} ? AND s.first_id = i.id "
                       f"AND m.id BETWEEN s.first_id AND s.last_id AND m.x IS NOT NULL")
                # Segments left out have their box, hence every position in them, beyond the threshold:
                # a value found within the threshold is exact; one beyond it is exact after searching
                # up to that value; none found means the threshold was too tight.
                step = max(abs(bound), 1.0) * 2.0**-20
                while True:
                    threshold = bound + sign * step if step < 4 * span else sign * math.inf
                    value = conn.execute(sql, (threshold,)).fetchone()[0]
                    if value is not None:
                        if (value - threshold) * sign > 0:
                            value = conn.execute(sql, (value,)).fetchone()[0]
                        break
                    if math.isinf(threshold):
                        return None  # segments without positions only (rows deleted outside the store)
                    step *= 64
                result.append(value)
        return (result[0], result[2], result[4]), (result[1], result[3], result[5])

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite's ``integrity_check`` and the R*Tree's ``rtreecheck`` ([] if none)."""
        with self._read("check integrity") as conn:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            rtree = conn.execute("SELECT rtreecheck('pose_index')").fetchone()[0]
        if rtree != "ok":
            problems.append(rtree)
        return problems

    def typical_payload_bytes(self) -> int | None:
        """Median size (bytes) of the newest 1,000 payloads, ``None`` for an empty store: what
        :func:`~.pages.page_size_for_payload` sizes pages for."""
        with self._read("read payload sizes") as conn:
            sizes = sorted(r[0] for r in conn.execute(
                "SELECT length(payload) FROM memories ORDER BY id DESC LIMIT 1000"))
        return sizes[len(sizes) // 2] if sizes else None

    def compact(self, page_size: int | str | None = None) -> tuple[int, int, int]:
        """Rewrite the file without free pages (what deletes and retention left), optionally with
        another page size: an ``int`` (bytes, a power of two in [1024, 65536]) or ``"auto"``
        (:func:`~.pages.page_size_for_payload` of :meth:`typical_payload_bytes`).
        Returns the file size in bytes before (the WAL written back) and after, and the page size.

        Needs the file to itself: every other connection, in this process or another, must be
        closed, or :class:`StoreError` is raised and nothing changes; as with :meth:`close`, no
        other thread may be using this store meanwhile. Crash-safe (SQLite's
        rollback journal during the rewrite; the file is back in WAL mode afterwards). Takes about
        as long as copying the file, and as much free disk.
        """
        if page_size == "auto":
            page_size = page_size_for_payload(self.typical_payload_bytes())
        elif page_size is not None:
            check_page_size(page_size)
        with self._write_lock:
            self._check_open()
            with self._readers_lock:  # this store's own readers would block leaving WAL mode
                for reader in self._readers:
                    reader.close()
                self._readers.clear()
            self._local = threading.local()
            conn = self._conn
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                before = os.path.getsize(self.path)  # with the WAL's pages written back
                if conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0].lower() != "delete":
                    raise StoreError(f"{self.path}: cannot compact: another connection uses the file")
                try:
                    if page_size is not None:
                        conn.execute(f"PRAGMA page_size = {int(page_size)}")
                    conn.execute("VACUUM")
                finally:
                    conn.execute("PRAGMA journal_mode = WAL")
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            except sqlite3.Error as exc:  # another connection: "locked by another connection"
                raise self._error(exc, "compact (close the other nodes and tools first)") from exc
        return before, os.path.getsize(self.path), page_size

    # ----------------------------------------------------------------------------------------
    # retention

    def apply_retention(self, policy) -> RetentionReport:
        """Bring the store within ``policy`` (a :class:`~.retention.RetentionPolicy`); see :mod:`.retention`."""
        return apply_retention(self, policy)
