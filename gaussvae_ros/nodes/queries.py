"""Service request checking and store queries shared by the memory and recall nodes (no rclpy).

Requests arrive as ROS messages (``TimeQuery``, ``PoseQuery``, id lists); the functions here read
their fields, refuse malformed ones with :class:`RequestError` (a ``ValueError`` whose text goes
into the response's ``message``) and run them on a :class:`gaussvae_ros.store.Store`.

Server-side caps: every query returns at most ``max_results`` memories. A caller's ``limit`` of 0
("no limit") is capped silently except for the note returned with the results; a ``k`` above the
cap is an error (the caller asked for something the server will not return).

:class:`StoreInspector` answers what the store's API does not: which of many ids exist (one
``IN`` query instead of an exception per id), and the per-profile figures ``GetStats`` reports
(memories with camera info, raw image bytes, mean fit quality, codec and model ids). It reads the
same SQLite file through its own read-only connection (the store runs in WAL mode, so readers
never block the writer).
"""

from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from gaussvae_ros.bag.images import _ENCODINGS

__all__ = ["RequestError", "StoreInspector", "check_ids", "pose_query", "time_query", "time_range"]

_MAX_INT64 = 2**63 - 1


class RequestError(ValueError):
    """A malformed service request; the text says what is wrong."""


def _stamp_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def time_range(query) -> tuple[int | None, int | None]:
    """``(start_ns, end_ns)`` of a ``TimeQuery``; a zero time leaves that side open (None)."""
    start = _stamp_ns(query.start) if (query.start.sec or query.start.nanosec) else None
    end = _stamp_ns(query.end) if (query.end.sec or query.end.nanosec) else None
    if start is not None and end is not None and start > end:
        raise RequestError(f"inverted time range: start {start * 1e-9:.9f} s is after end {end * 1e-9:.9f} s")
    return start, end


def time_query(store, query, max_results: int) -> tuple[list, str]:
    """Memories of a ``TimeQuery`` (no payloads) and a note for the response message."""
    start, end = time_range(query)
    limit = int(query.limit)
    capped = limit == 0 or limit > max_results
    limit = max_results if capped else limit
    records = store.by_time(start, end, order="desc" if query.descending else "asc", limit=limit)
    # Say so only when the cap actually cut the answer short (it holds max_results memories).
    note = f"capped at this server's max_results={max_results}" if capped and len(records) == limit else ""
    return records, note


def _finite(values, what: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in values):
        raise RequestError(f"{what} must be finite, got {values}")
    return values


@dataclass
class _PoseRequest:
    frame_id: str
    position: tuple
    radius: float
    k: int
    orientation: tuple | None
    tolerance: float | None
    want: int
    note: str = field(default="")


def check_pose_query(query, max_results: int) -> _PoseRequest:
    """Validate a ``PoseQuery`` (see its definition for the rules)."""
    if not query.frame_id:
        raise RequestError("pose query frame_id must not be empty (memories are compared only in the same frame)")
    p = query.position
    position = _finite((p.x, p.y, p.z), "pose query position")
    radius = float(query.radius)
    if not math.isfinite(radius) or radius < 0:
        raise RequestError(f"pose query radius must be a finite number >= 0 m, got {radius}")
    k = int(query.k)
    if radius == 0 and k == 0:
        raise RequestError("pose query selects nothing: set radius > 0 (m), k > 0, or both")
    if k > max_results:
        raise RequestError(f"pose query k={k} exceeds this server's max_results={max_results}")
    orientation = tolerance = None
    if query.use_orientation:
        o = query.orientation
        orientation = _finite((o.x, o.y, o.z, o.w), "pose query orientation")
        norm = math.sqrt(sum(v * v for v in orientation))
        if abs(norm - 1.0) > 1e-3:
            raise RequestError(f"pose query orientation must be a unit quaternion, its norm is {norm:.6g}")
        tolerance = float(query.orientation_tolerance)
        if not math.isfinite(tolerance) or not 0.0 <= tolerance <= math.pi:
            raise RequestError(f"pose query orientation_tolerance must be in [0, pi] rad, got {tolerance}")
    limit = int(query.limit)
    candidates = [v for v in (k, limit) if v > 0]
    want = min(candidates) if candidates else max_results
    note = ""
    if want > max_results or not candidates:
        want, note = max_results, f"capped at this server's max_results={max_results}"
    return _PoseRequest(query.frame_id, position, radius, k, orientation, tolerance, want, note)


def pose_query(store, query, max_results: int) -> tuple[list, str]:
    """Memories of a ``PoseQuery`` nearest first, each with ``distance_m``, and a note.

    Only memories whose pose frame equals ``frame_id`` count. The store compares positions whatever
    their frame, so results of other frames are filtered out here, fetching more until enough
    matches are found or the store has no more.
    """
    req = check_pose_query(query, max_results)
    extra = {}
    if req.orientation is not None:
        extra = dict(orientation=req.orientation, max_angle_rad=req.tolerance)
    fetch = req.want
    while True:
        if req.radius > 0:
            found = store.within_radius(req.position, req.radius, limit=fetch, **extra)
        else:
            found = store.nearest(req.position, fetch, **extra)
        matches = [r for r in found if r.pose_frame_id == req.frame_id]
        if len(matches) >= req.want or len(found) < fetch:
            break
        fetch = min(fetch * 4, _MAX_INT64)
    note = req.note if len(matches) >= req.want else ""
    return matches[: req.want], note


def check_ids(ids, max_ids: int, what: str = "ids") -> list[int]:
    """Requested store ids as ints; empty or too many is an error."""
    ids = [int(i) for i in ids]
    if not ids:
        raise RequestError(f"{what} must not be empty")
    if len(ids) > max_ids:
        raise RequestError(f"{len(ids)} {what} requested; this server answers at most {max_ids} per request")
    return ids


def _bytes_per_pixel(encoding: str, channels: int | None) -> int:
    spec = _ENCODINGS.get(encoding.strip().lower())
    if spec is None:  # a CompressedImage format string: the encoding before ';' if it names one
        spec = _ENCODINGS.get(encoding.split(";")[0].strip().lower())
    if spec is not None:
        dtype, msg_channels, _ = spec
        return dtype.itemsize * msg_channels
    return channels or 3


class StoreInspector:
    """Read-only look-ups on a store file that the store's API does not offer (see module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def existing_ids(self, ids) -> set[int]:
        """The ids among ``ids`` that are stored (ids beyond int64 never are)."""
        wanted = sorted({i for i in ids if 0 <= i <= _MAX_INT64})
        found: set[int] = set()
        conn = self._connect()
        try:
            for start in range(0, len(wanted), 10_000):
                chunk = wanted[start:start + 10_000]
                found.update(r[0] for r in conn.execute(
                    f"SELECT id FROM memories WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        finally:
            conn.close()
        return found

    def summary(self) -> dict:
        """``min_id``, ``max_id``, ``count_with_camera_info``, ``raw_bytes``, ``mean_psnr``,
        ``mean_ssim``, ``codec_ids``, ``model_ids`` and ``storage_bytes``.

        Cost: one pass over the memories table (the payload pages are read too, as SQLite keeps
        small payloads inline), grouped by profile; tens of milliseconds per 10,000 memories.
        """
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            min_id, max_id = conn.execute("SELECT min(id), max(id) FROM memories").fetchone()
            profiles = {pid: (width, height, encoding, has_k, codec, model) for pid, width, height, encoding, has_k,
                        codec, model in conn.execute("SELECT id, width, height, encoding, intrinsics IS NOT NULL, "
                                                     "codec, model_id FROM profiles")}
            rows = conn.execute(
                "SELECT profile_id, count(*), "
                "count(CASE WHEN psnr BETWEEN -1e300 AND 1e300 THEN 1 END), "
                "total(CASE WHEN psnr BETWEEN -1e300 AND 1e300 THEN psnr END), "
                "count(CASE WHEN ssim BETWEEN -1e300 AND 1e300 THEN 1 END), "
                "total(CASE WHEN ssim BETWEEN -1e300 AND 1e300 THEN ssim END) "
                "FROM memories GROUP BY profile_id").fetchall()
            channels = {}
            for pid, *_ in rows:  # colour or gray, from the first payload's header (gaussians-q only)
                if profiles[pid][4] == "gaussians-q":
                    head = conn.execute("SELECT substr(payload, 1, 4) FROM memories WHERE profile_id = ? LIMIT 1",
                                        (pid,)).fetchone()
                    if head and len(head[0]) == 4 and head[0][:2] == b"GS":
                        channels[pid] = 3 if head[0][3] & 2 else 1
            conn.execute("COMMIT")
        finally:
            conn.close()
        with_info = raw = psnr_n = ssim_n = 0
        psnr_sum = ssim_sum = 0.0
        codecs, models = set(), set()
        for pid, count, pn, ps, sn, ss in rows:
            width, height, encoding, has_k, codec, model = profiles[pid]
            with_info += count if has_k else 0
            raw += count * width * height * _bytes_per_pixel(encoding, channels.get(pid))
            psnr_n, psnr_sum, ssim_n, ssim_sum = psnr_n + pn, psnr_sum + ps, ssim_n + sn, ssim_sum + ss
            codecs.add(codec)
            models.add(model)
        storage = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                storage += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return {
            "min_id": min_id or 0, "max_id": max_id or 0, "count_with_camera_info": with_info, "raw_bytes": raw,
            "mean_psnr": psnr_sum / psnr_n if psnr_n else float("nan"),
            "mean_ssim": ssim_sum / ssim_n if ssim_n else float("nan"),
            "codec_ids": sorted(codecs), "model_ids": sorted(models), "storage_bytes": storage,
        }
