"""Retention: keep a store within a record count, payload size and age budget, forgetting by thinning.

Algorithm (``apply_retention``), cheap enough to run after every insert batch of a live node:

1. **Age.** With ``max_age_s``, every memory stamped strictly before ``newest - max_age_s`` goes,
   where ``newest`` is the newest stamp in the store (not the wall clock, so replaying an old
   recording behaves like the live run did). Old memories go first and unconditionally.
2. **Budget.** While the store holds more than ``max_records`` memories or ``max_payload_bytes``
   payload bytes, it drops the memories whose removal loses least coverage, in rounds:

   * *Coverage distance.* Within one stream (camera frame on a topic) the distance between two
     memories is ``sqrt(|p1 - p2|^2 + (v (t1 - t2))^2)`` (metres): position difference plus the
     time difference converted at ``metres_per_second`` = v (time only if either has no pose).
     A memory's *redundancy* is the length of the (time, position) path through it from its
     previous to its next memory in time: small when both neighbours are near, i.e. where the
     stream is densely sampled (a robot standing still or crawling), large after a fast or rare
     pass, at a turn-around point or next to a gap. (Its nearest-neighbour distance alone would
     let the greedy eat a uniform run from one end, since removing a memory does not change its
     neighbour's nearest-neighbour distance; the path length grows with the gap left behind.)
   * *Candidates.* A round scores a sample of memories: those inserted through this store since
     the last run (where density grows in a live node) plus a uniform random sample of the
     store (random ids, kept when they exist; topped up by the next existing id when too few
     ids survive, which over-samples sparse regions and only costs some efficiency). The
     oldest and newest memory of each stream are never candidates, so every camera keeps its
     time span.
   * *Dropping.* Lazy greedy: candidates are taken in increasing redundancy and deleted at once;
     a candidate whose scoring neighbour was deleted meanwhile is re-scored first (its
     redundancy can only grow) and put back in line. A round drops at most half its candidates
     and no more than the excess, in one transaction; rounds repeat until the budget holds.
     Within a round this is exactly "repeatedly drop the memory with the nearest neighbour";
     over rounds it approximates it through sampling. It thins the most densely sampled places
     and times first and keeps the spatial extent and the time span.
   * If only protected memories are left and the budget still does not hold (a budget below
     two memories per camera), the oldest memories go.

Each round costs a few index look-ups per candidate (O(K log N) for K candidates, N memories)
and never scans the store; a store within budget costs one look-up of the per-stream counters.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from dataclasses import dataclass

_MAX_ROUND_CANDIDATES = 8192
_MAX_RANDOM_PROBES = 50_000
_AGE_CHUNK = 5000


@dataclass(frozen=True)
class RetentionPolicy:
    """Budget of a store; ``None`` disables a limit.

    Attributes:
        max_records: most memories kept.
        max_payload_bytes: most payload bytes kept (sum of payload sizes).
        max_age_s: memories older than this many seconds before the newest memory are dropped.
        metres_per_second: time-to-distance scale of the coverage metric: 1 s apart counts like
            this many metres apart. The default 0.1 makes 10 s count like 1 m, so a robot standing
            still is thinned well before one moving at walking pace.
        candidates: memories scored per thinning round, at least.
        seed: random seed of the candidate sampling (``None``: fresh randomness).
    """

    max_records: int | None = None
    max_payload_bytes: int | None = None
    max_age_s: float | None = None
    metres_per_second: float = 0.1
    candidates: int = 512
    seed: int | None = 0

    def __post_init__(self) -> None:
        for name in ("max_records", "max_payload_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        for name, allow_zero in (("max_age_s", True), ("metres_per_second", False)):
            value = getattr(self, name)
            if value is None and name == "max_age_s":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (value == 0 and not allow_zero):
                raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or not 8 <= self.candidates \
                <= _MAX_ROUND_CANDIDATES:
            raise ValueError(f"candidates must be an int in [8, {_MAX_ROUND_CANDIDATES}], got {self.candidates!r}")


@dataclass(frozen=True)
class RetentionReport:
    """What a retention run dropped, and what is left."""

    dropped_for_age: int
    dropped_for_budget: int
    dropped_oldest: int
    rounds: int
    records: int
    payload_bytes: int
    seconds: float

    @property
    def dropped(self) -> int:
        return self.dropped_for_age + self.dropped_for_budget + self.dropped_oldest


def _totals(conn) -> tuple[int, int]:
    count, size = conn.execute("SELECT coalesce(sum(record_count), 0), coalesce(sum(payload_bytes), 0) "
                               "FROM streams").fetchone()
    return count, size


def _excess(conn, policy: RetentionPolicy) -> tuple[int, int, int, int]:
    count, size = _totals(conn)
    extra_records = max(0, count - policy.max_records) if policy.max_records is not None else 0
    extra_bytes = max(0, size - policy.max_payload_bytes) if policy.max_payload_bytes is not None else 0
    return extra_records, extra_bytes, count, size


def _drop_for_age(store, policy: RetentionPolicy) -> int:
    with store._read("apply retention") as conn:
        stream_ids = sorted(store._current_streams(conn))
        # One max() per stream: each is a single index look-up, a max() over all stamps would scan.
        newest = max((conn.execute("SELECT max(stamp_ns) FROM memories WHERE stream_id = ?", (sid,)).fetchone()[0]
                      for sid in stream_ids), key=lambda v: -math.inf if v is None else v, default=None)
    if newest is None:
        return 0
    cutoff = newest - round(policy.max_age_s * 1e9)
    dropped = 0
    for sid in stream_ids:
        while True:
            with store._write("apply retention") as conn:
                ids = [r[0] for r in conn.execute("SELECT id FROM memories WHERE stream_id = ? AND stamp_ns < ? "
                                                  "ORDER BY stamp_ns LIMIT ?", (sid, cutoff, _AGE_CHUNK))]
                dropped += store._delete_existing(conn, sorted(ids))
            if len(ids) < _AGE_CHUNK:
                break
    return dropped


def _sample_ids(conn, rng: random.Random, wanted: int, count: int) -> list[int]:
    # Two statements: SQLite answers a lone min() or max() from the b-tree, both together by a scan.
    lo = conn.execute("SELECT min(id) FROM memories").fetchone()[0]
    hi = conn.execute("SELECT max(id) FROM memories").fetchone()[0]
    if lo is None:
        return []
    span = hi - lo + 1
    if span <= wanted * 2:
        return [r[0] for r in conn.execute("SELECT id FROM memories")]
    probes = min(_MAX_RANDOM_PROBES, math.ceil(wanted * span / max(count, 1) * 1.2))
    found: set[int] = set()
    draws = sorted({rng.randrange(lo, hi + 1) for _ in range(probes)})
    for start in range(0, len(draws), 10_000):
        chunk = draws[start:start + 10_000]
        found.update(r[0] for r in conn.execute(
            f"SELECT id FROM memories WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    for _ in range(max(0, wanted // 2 - len(found))):  # too few ids survive: next existing id instead
        row = conn.execute("SELECT id FROM memories WHERE id >= ? ORDER BY id LIMIT 1",
                           (rng.randrange(lo, hi + 1),)).fetchone()
        found.add(row[0])
    return list(found)


_CANDIDATE_SQL = "SELECT id, stream_id, stamp_ns, x, y, z, length(payload) FROM memories WHERE id IN ({})"
_BEFORE_SQL = "SELECT id, stamp_ns, x, y, z FROM memories WHERE stream_id = ? AND stamp_ns < ? ORDER BY stamp_ns DESC LIMIT 1"
_AFTER_SQL = "SELECT id, stamp_ns, x, y, z FROM memories WHERE stream_id = ? AND stamp_ns > ? ORDER BY stamp_ns LIMIT 1"


def _distance(stamp, x, y, z, other, metres_per_second: float) -> float:
    _, ostamp, ox, oy, oz = other
    dt = (ostamp - stamp) * 1e-9 * metres_per_second
    if x is None or ox is None:
        return abs(dt)
    return math.sqrt((ox - x) ** 2 + (oy - y) ** 2 + (oz - z) ** 2 + dt * dt)


def _score_one(conn, row, metres_per_second: float):
    """``(redundancy, stamp, id, payload size, neighbour ids)`` of one memory, ``None`` if protected."""
    mid, sid, stamp, x, y, z, size = row
    before = conn.execute(_BEFORE_SQL, (sid, stamp)).fetchone()
    if before is None:
        return None  # oldest of its stream
    after = conn.execute(_AFTER_SQL, (sid, stamp)).fetchone()
    if after is None:
        return None  # newest of its stream
    score = _distance(stamp, x, y, z, before, metres_per_second) + _distance(stamp, x, y, z, after, metres_per_second)
    return score, stamp, mid, size, (before[0], after[0])


def _score(conn, candidates: list[int], metres_per_second: float) -> list[tuple]:
    """Scores of the unprotected memories among ``candidates`` (see :func:`_score_one`)."""
    scored = []
    for start in range(0, len(candidates), 10_000):
        chunk = candidates[start:start + 10_000]
        for row in conn.execute(_CANDIDATE_SQL.format(",".join("?" * len(chunk))), chunk).fetchall():
            score = _score_one(conn, row, metres_per_second)
            if score is not None:
                scored.append(score)
    return scored


def _thin(store, conn, scored: list[tuple], extra_records: int, extra_bytes: int, metres_per_second: float) -> int:
    """Lazy greedy thinning inside the caller's transaction; returns how many memories it dropped.

    Takes candidates by increasing redundancy and deletes each at once. A candidate one of whose
    scoring neighbours was deleted meanwhile is re-scored first (its redundancy can only have
    grown) and put back in line. Drops at most half the candidates, and no more than the excess.
    """
    heap = list(scored)
    heapq.heapify(heap)
    waiting: dict[int, list[int]] = {}  # neighbour id -> candidates whose score used it
    for _, _, mid, _, neighbours in scored:
        for n in neighbours:
            waiting.setdefault(n, []).append(mid)
    stale: set[int] = set()
    cap = max(1, len(scored) // 2)
    dropped = freed = 0
    while heap and dropped < cap and (dropped < extra_records or freed < extra_bytes):
        score, stamp, mid, size, neighbours = heapq.heappop(heap)
        if mid in stale:
            stale.discard(mid)
            row = conn.execute(_CANDIDATE_SQL.format("?"), (mid,)).fetchone()
            fresh = _score_one(conn, row, metres_per_second) if row is not None else None
            if fresh is not None:
                heapq.heappush(heap, fresh)
                for n in fresh[4]:
                    waiting.setdefault(n, []).append(mid)
            continue
        store._delete_existing(conn, [mid])
        dropped += 1
        freed += size
        stale.update(waiting.pop(mid, ()))
    return dropped


def _drop_oldest(store, extra_records: int, extra_bytes: int) -> int:
    with store._write("apply retention") as conn:
        ids, freed = [], 0
        for mid, size in conn.execute("SELECT id, length(payload) FROM memories ORDER BY stamp_ns, id"):
            if len(ids) >= extra_records and freed >= extra_bytes:
                break
            ids.append(mid)
            freed += size
        return store._delete_existing(conn, sorted(ids))


def apply_retention(store, policy: RetentionPolicy) -> RetentionReport:
    """Bring ``store`` within ``policy`` (see the module docstring); one transaction per round."""
    if not isinstance(policy, RetentionPolicy):
        raise ValueError(f"policy must be a RetentionPolicy, got {type(policy).__name__}")
    started = time.perf_counter()
    rng = random.Random(policy.seed)
    dropped_age = _drop_for_age(store, policy) if policy.max_age_s is not None else 0
    dropped_budget = dropped_oldest = rounds = empty_rounds = 0
    while True:
        with store._write("apply retention") as conn:
            extra_records, extra_bytes, count, size = _excess(conn, policy)
            if not extra_records and not extra_bytes:
                break
            rounds += 1
            mean_size = size / count
            need = max(extra_records, math.ceil(extra_bytes / max(mean_size, 1.0)))
            wanted = min(_MAX_ROUND_CANDIDATES, max(policy.candidates, 4 * need))
            recent = store._recent_ids[-(wanted // 2):]
            candidates = set(_sample_ids(conn, rng, wanted - len(recent), count)) | set(recent)
            if empty_rounds >= 3:  # samples keep missing the few droppable memories: take a window in id order
                start = rng.randrange(count)
                candidates.update(r[0] for r in conn.execute(
                    "SELECT id FROM memories ORDER BY id LIMIT ? OFFSET ?", (wanted, max(0, start - wanted))))
            scored = _score(conn, sorted(candidates), policy.metres_per_second)
            dropped = _thin(store, conn, scored, extra_records, extra_bytes, policy.metres_per_second)
            if dropped:
                dropped_budget += dropped
                empty_rounds = 0
                continue
            empty_rounds += 1
            unprotected = count - conn.execute(
                "SELECT coalesce(sum(min(record_count, 2)), 0) FROM streams").fetchone()[0]
        if unprotected > 0:
            continue  # an unlucky sample: sample again
        dropped_oldest += _drop_oldest(store, extra_records, extra_bytes)
    store._recent_ids.clear()
    with store._read("apply retention") as conn:
        count, size = _totals(conn)
    return RetentionReport(dropped_age, dropped_budget, dropped_oldest, rounds, count, size,
                           time.perf_counter() - started)
