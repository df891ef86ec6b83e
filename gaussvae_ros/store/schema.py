"""The store's SQLite schema and its migrations (``PRAGMA user_version`` is the schema version).

Schema (version 2):

``meta(key TEXT PRIMARY KEY, value TEXT)``
    Store settings: ``segment_extent_m`` and ``segment_max_ids`` (pose index granularity, see
    below) and ``pose_bounds_hint`` (JSON ``[min x, y, z, max x, y, z]`` of every pose ever stored;
    it never shrinks, so it is only a search limit, not a statistic).
``streams(id, topic, camera_frame_id, record_count, payload_bytes, pose_count)``
    One row per ``(topic, camera_frame_id)``, with counters so that budgets and stats never scan
    the memories: the store adds each insert batch's counts (one UPDATE per stream and batch; a
    trigger per inserted row would halve the insert rate) and a trigger subtracts deleted rows
    (so deletes made with plain SQL keep them exact too).
``profiles(id, pose_frame_id, width, height, encoding, intrinsics, codec, model_id)``
    Metadata that rarely changes (image size and encoding, camera intrinsics as compact JSON,
    codec and model id, pose frame), stored once and referenced by each memory. A VAE latent is a
    new ``(codec, model_id)`` profile: no schema change.
``memories(id, stream_id, stamp_ns, profile_id, x, y, z, qx, qy, qz, qw, psnr, ssim, payload)``
    One row per memory. ``id`` is ``INTEGER PRIMARY KEY AUTOINCREMENT`` (never reused, which the
    pose index relies on). Pose columns are NULL when the pose is unknown. ``payload`` is last so
    metadata reads never touch it; its size is ``length(payload)``. ``UNIQUE(stream_id,
    stamp_ns)`` is both the time index and the idempotency key (topic, camera frame, stamp).
``pose_segments(first_id INTEGER PRIMARY KEY, last_id)`` and R*Tree ``pose_index(id, min_x,
max_x, min_y, max_y, min_z, max_z)``
    The pose index. Instead of one R*Tree entry per memory (about 75 bytes each), memories are
    grouped into *segments*: runs of consecutive ids (at most ``segment_max_ids`` of them) whose
    positions fit in a box no wider than ``segment_extent_m`` on any axis, which a moving robot
    produces naturally. The R*Tree holds one box per segment (keyed by its first id) and a
    spatial query reads the id ranges of the boxes it hits, filtering positions exactly. Invariant:
    every memory with a pose lies inside the box of the segment whose id range contains it; the
    store maintains it on insert and delete, and a trigger forbids updating ids or positions.
``memory_view``
    A flat, human-readable view joining the three tables (what ``sqlite3`` users want to read).

Write memories only through :class:`~gaussvae_ros.store.Store`: a row inserted with plain SQL
would be missing from the pose index and the counters (deleting with plain SQL is safe).

Migrations: ``MIGRATIONS[v]`` turns a version ``v`` file into version ``v + 1``; each runs in its
own transaction together with the ``user_version`` bump, so a failed migration changes nothing.
Version 1 had no per-stream counters (stats and budgets scanned the table); version 2 adds them,
the delete trigger and the view, and back-fills the counters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from .records import StoreError

#: Current schema version (``PRAGMA user_version``).
SCHEMA_VERSION = 2

#: ``PRAGMA application_id`` marking a gaussvae_ros memory store ("GVMS").
APPLICATION_ID = 0x47564D53

#: Defaults for the pose index granularity (see the module docstring).
DEFAULT_SEGMENT_EXTENT_M = 2.0
DEFAULT_SEGMENT_MAX_IDS = 16

MEMORY_COLUMNS = ("id", "stream_id", "stamp_ns", "profile_id", "x", "y", "z", "qx", "qy", "qz", "qw",
                  "psnr", "ssim", "payload")


def _create_v1(db: sqlite_utils.Database) -> None:
    db.create_table("meta", {"key": str, "value": str}, pk="key", not_null={"value"})
    db.create_table("streams", {"id": int, "topic": str, "camera_frame_id": str}, pk="id",
                    not_null={"topic", "camera_frame_id"})
    db["streams"].create_index(["topic", "camera_frame_id"], unique=True, index_name="streams_by_key")
    db.create_table(
        "profiles",
        {"id": int, "pose_frame_id": str, "width": int, "height": int, "encoding": str, "intrinsics": str,
         "codec": str, "model_id": str},
        pk="id", not_null={"pose_frame_id", "width", "height", "encoding", "codec", "model_id"},
    )
    db["profiles"].create_index(
        ["pose_frame_id", "width", "height", "encoding", "intrinsics", "codec", "model_id"],
        unique=True, index_name="profiles_by_value")
    # Written by hand: sqlite-utils has no AUTOINCREMENT, and the column order matters (payload last).
    db.execute("""
        CREATE TABLE memories (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stream_id INTEGER NOT NULL REFERENCES streams(id),
            stamp_ns INTEGER NOT NULL,
            profile_id INTEGER NOT NULL REFERENCES profiles(id),
            x REAL, y REAL, z REAL,
            qx REAL, qy REAL, qz REAL, qw REAL,
            psnr REAL, ssim REAL,
            payload BLOB NOT NULL
        )""")
    db.execute("CREATE UNIQUE INDEX memories_by_stream_time ON memories (stream_id, stamp_ns)")
    db.create_table("pose_segments", {"first_id": int, "last_id": int}, pk="first_id", not_null={"last_id"})
    db.execute("CREATE VIRTUAL TABLE pose_index USING rtree(id, min_x, max_x, min_y, max_y, min_z, max_z)")
    db.execute("""
        CREATE TRIGGER memories_pose_is_immutable BEFORE UPDATE OF id, x, y, z ON memories
        BEGIN SELECT RAISE(ABORT, 'memory ids and positions are immutable (the pose index depends on them)'); END""")
    db["meta"].insert_all([
        {"key": "segment_extent_m", "value": repr(DEFAULT_SEGMENT_EXTENT_M)},
        {"key": "segment_max_ids", "value": str(DEFAULT_SEGMENT_MAX_IDS)},
    ])


def _add_stream_counters_v2(db: sqlite_utils.Database) -> None:
    for column in ("record_count", "payload_bytes", "pose_count"):
        db.execute(f"ALTER TABLE streams ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    db.execute("""
        UPDATE streams SET
            record_count = (SELECT count(*) FROM memories WHERE stream_id = streams.id),
            payload_bytes = (SELECT coalesce(sum(length(payload)), 0) FROM memories WHERE stream_id = streams.id),
            pose_count = (SELECT count(x) FROM memories WHERE stream_id = streams.id)""")
    db.execute("""
        CREATE TRIGGER memories_count_delete AFTER DELETE ON memories BEGIN
            UPDATE streams SET record_count = record_count - 1,
                               payload_bytes = payload_bytes - length(OLD.payload),
                               pose_count = pose_count - (OLD.x IS NOT NULL)
            WHERE id = OLD.stream_id;
        END""")
    db.create_view("memory_view", """
        SELECT m.id, m.stamp_ns, s.topic, s.camera_frame_id, p.pose_frame_id,
               m.x, m.y, m.z, m.qx, m.qy, m.qz, m.qw, p.width, p.height, p.encoding, p.intrinsics,
               p.codec, p.model_id, m.psnr, m.ssim, length(m.payload) AS payload_size
        FROM memories AS m JOIN streams AS s ON s.id = m.stream_id JOIN profiles AS p ON p.id = m.profile_id""")


#: ``MIGRATIONS[v]`` upgrades a version-``v`` database to version ``v + 1``.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_create_v1, _add_stream_counters_v2]
assert len(MIGRATIONS) == SCHEMA_VERSION


def read_version(conn: sqlite3.Connection) -> tuple[int, int, bool]:
    """``(user_version, application_id, has_tables)`` of an open database."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    has_tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] > 0
    return version, app_id, has_tables


def check_compatible(conn: sqlite3.Connection, *, label: str = "database") -> tuple[int, bool]:
    """``(schema version, has_tables)``, or :class:`StoreError` for a SQLite file that is not a memory
    store or comes from a newer version of this package. Reads only: a foreign file stays untouched."""
    version, app_id, has_tables = read_version(conn)
    if version == 0 and has_tables or version > 0 and app_id != APPLICATION_ID:
        raise StoreError(f"{label} is a SQLite database but not a gaussvae memory store "
                         f"(application_id {app_id:#x}, user_version {version}); it was left untouched")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{label} has schema version {version}, newer than this gaussvae_ros supports "
                         f"({SCHEMA_VERSION}); upgrade the package to read it")
    return version, has_tables


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION, *, label: str = "database") -> int:
    """Bring the store in ``conn`` (autocommit mode) up to schema ``target``; returns the old version.

    An empty database is created from scratch (the migrations from version 0).
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target schema version must be in [0, {SCHEMA_VERSION}], got {target}")
    version, _ = check_compatible(conn, label=label)
    if version > target:
        raise ValueError(f"{label} is at schema version {version}, past the target {target}")
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    for step in range(version, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](db)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {step + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return version
