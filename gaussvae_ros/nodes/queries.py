"""Service request checking and store queries shared by the memory and recall nodes (no rclpy).

Requests arrive as ROS messages (``TimeQuery``, ``PoseQuery``, id lists); the functions here read
their fields, refuse malformed ones with :class:`RequestError` (a ``ValueError`` whose text goes
into the response's ``message``) and run them on a :class:`gaussvae_ros.store.Store`.

Server-side caps: every query returns at most ``max_results`` memories. A caller's ``limit`` of 0
("no limit") is capped silently except for the note returned with the results; a ``k`` above the
cap is an error (the caller asked for something the server will not return).

:func:`store_summary` adds up, through the store's API (:meth:`~gaussvae_ros.store.Store.profile_totals`),
the per-profile figures ``GetStats`` reports (memories with camera info, raw image bytes, mean fit
quality, codec and model ids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gaussvae_ros.bag.images import bytes_per_pixel
from gaussvae_ros.core.codec import payload_channels
from gaussvae_ros.store.records import DEFAULT_CODEC

__all__ = ["RequestError", "check_ids", "pose_query", "store_summary", "time_query", "time_range"]

_MAX_INT64 = 2**63 - 1

#: Largest |coordinate| and radius a pose query accepts, m: far beyond any map a robot uses (UTM
#: northings and ECEF coordinates are below 1e7 m) and well inside what the store's R*Tree (32-bit
#: floats) and squared distances can hold.
MAX_COORDINATE_M = 1e9


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
    if max(abs(v) for v in position) > MAX_COORDINATE_M:
        raise RequestError(f"pose query position {position} is out of range: each coordinate must be within "
                           f"+-{MAX_COORDINATE_M:g} m")
    radius = float(query.radius)
    if not math.isfinite(radius) or radius < 0:
        raise RequestError(f"pose query radius must be a finite number >= 0 m, got {radius}")
    if radius > MAX_COORDINATE_M:
        raise RequestError(f"pose query radius {radius:g} m is out of range (at most {MAX_COORDINATE_M:g} m)")
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


def store_summary(store) -> dict:
    """What ``GetStats`` reports beyond :meth:`~gaussvae_ros.store.Store.stats`, through the store's API:
    ``min_id``, ``max_id``, ``count_with_camera_info``, ``raw_bytes`` (the frames' raw size, by their
    encoding; a ``gaussians-q`` memory's colour channels from its payload header where the encoding
    does not say), ``mean_psnr``, ``mean_ssim``, ``codec_ids``, ``model_ids`` and ``storage_bytes``."""
    min_id, max_id = store.id_range()
    with_info = raw = psnr_n = ssim_n = 0
    psnr_sum = ssim_sum = 0.0
    codecs, models = set(), set()
    for t in store.profile_totals():
        p = t.profile
        with_info += t.count if p.intrinsics is not None else 0
        channels = payload_channels(t.payload_head) if p.codec == DEFAULT_CODEC else None
        raw += t.count * p.width * p.height * (bytes_per_pixel(p.encoding) or channels or 3)
        psnr_n, psnr_sum = psnr_n + t.psnr_count, psnr_sum + t.psnr_sum
        ssim_n, ssim_sum = ssim_n + t.ssim_count, ssim_sum + t.ssim_sum
        codecs.add(p.codec)
        models.add(p.model_id)
    return {
        "min_id": min_id, "max_id": max_id, "count_with_camera_info": with_info, "raw_bytes": raw,
        "mean_psnr": psnr_sum / psnr_n if psnr_n else float("nan"),
        "mean_ssim": ssim_sum / ssim_n if ssim_n else float("nan"),
        "codec_ids": sorted(codecs), "model_ids": sorted(models), "storage_bytes": store.storage_bytes(),
    }
