"""Benchmark of the memory store against bare SQLite on a synthetic robot trajectory.

Builds two databases from the same data: the store (through its API, batched inserts) and a bare
SQLite baseline (one plain table, a time index, a per-record R*Tree, raw ``executemany``). Then
times, through each, the median latency of a time-range query (at most 100 results), a 5 m radius
query and a k = 10 nearest-neighbour query (expanding box search in both), and reports insert
rates and the store's per-record overhead: (file size - payload bytes) / records.

The store gets the page size :func:`gaussvae_ros.store.page_size_for_payload` picks for 400 B
payloads (8 KiB), as replay and the memory node size a new store for their codec's payloads.

Page cache: at 10M records the two files (5-6 GB each) are read from disk unless cached, and the
one written last is the one cached, which skews a side-by-side comparison (at stop 6 the store's
file was mostly evicted while the baseline's was hot: 3.2x "slower"). So both files are put in
the same cache state before the queries: ``--cache warm`` (default) reads each file through
once, ``--cache cold`` drops the page cache before each query kind (root only: writes
``/proc/sys/vm/drop_caches``), ``--cache asis`` leaves it as the build left it. The share of
each file resident in the page cache when the queries start is reported (``mincore``).

Data: one camera at 2 Hz on a ground robot doing a random walk at 1 m/s over a 1 km x 1 km square
(heading noise, reflected at the borders, z within centimetres of 0, yaw-only orientation), with
400-byte random payloads. At 10M records that is 58 days of driving in one square kilometre: a
5 m disk around a stored pose holds ~940 memories, which no query returns in 1 ms; ``--side-m
10000`` lets the walk roam 100 km^2 (~130 per disk: a random walk keeps coming back). Query
points are positions of stored memories (plus up to 1 m of noise for kNN), time ranges start at
stamps of stored memories.

    python benchmarks/bench_store.py --records 100000            # development size
    python benchmarks/bench_store.py --records 1000000 --json    # report size
    python benchmarks/bench_store.py --records 10000000 --cache cold   # disk-bound (root only)
    python benchmarks/bench_store.py --records 10000000 --side-m 10000  # sparser: ~130 per 5 m disk

Targets: queries <= 1 ms median and within 2x of bare SQLite, insert >= 25,000 records/s,
overhead <= 150 B/record.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import mmap
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gaussvae_ros.store import Memory, Pose, Store, page_size_for_payload  # noqa: E402

PAYLOAD_BYTES = 400
FRAME_INTERVAL_S = 0.5
SPEED_M_S = 1.0
SIDE_M = 1000.0
START_NS = 1_700_000_000_000_000_000
TOPIC, CAMERA = "/camera/image_raw", "camera_optical"


def trajectory(count: int, seed: int, side_m: float = SIDE_M, chunk: int = 100_000):
    """Yield ``(stamps_ns [n], xyz [n, 3], quat_xyzw [n, 4], payloads [n, 400] uint8)`` chunks."""
    rng = np.random.default_rng(seed)
    x, y, heading = side_m / 2, side_m / 2, 0.0
    step = SPEED_M_S * FRAME_INTERVAL_S
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        turns = rng.normal(0.0, 0.35, n)
        xyz = np.empty((n, 3))
        yaw = np.empty(n)
        for i in range(n):  # sequential because of the reflections
            heading += turns[i]
            x += step * math.cos(heading)
            y += step * math.sin(heading)
            if not 0 <= x <= side_m:
                x = -x if x < 0 else 2 * side_m - x
                heading = math.pi - heading
            if not 0 <= y <= side_m:
                y = -y if y < 0 else 2 * side_m - y
                heading = -heading
            xyz[i, 0], xyz[i, 1] = x, y
            yaw[i] = heading
        xyz[:, 2] = rng.normal(0.0, 0.02, n)
        quat = np.stack([np.zeros(n), np.zeros(n), np.sin(yaw / 2), np.cos(yaw / 2)], axis=1)
        jitter = rng.integers(-2_000_000, 2_000_000, n)
        stamps = START_NS + (np.arange(start, start + n) * int(FRAME_INTERVAL_S * 1e9)) + jitter
        payloads = rng.integers(0, 256, (n, PAYLOAD_BYTES), dtype=np.uint8)
        yield stamps, xyz, quat, payloads


def build_store(path: Path, count: int, batch: int, seed: int, store_options: dict, side_m: float = SIDE_M) -> dict:
    """Insert through the store API; times ``insert_many`` alone and with building the Memory objects."""
    inserting = building = 0.0
    with Store(path, **store_options) as store:
        for stamps, xyz, quat, payloads in trajectory(count, seed, side_m):
            rows = list(zip(stamps.tolist(), xyz.tolist(), quat.tolist(), [p.tobytes() for p in payloads]))
            started = time.perf_counter()
            memories = [Memory(t, TOPIC, CAMERA, p, 1226, 370, "mono8", pose=Pose(q, o), pose_frame_id="odom",
                               psnr=30.0, ssim=0.9) for t, q, o, p in rows]
            built = time.perf_counter()
            store.insert_many(memories, batch_size=batch)
            inserting += time.perf_counter() - built
            building += built - started
    return {"insert_s": inserting, "insert_rate": count / inserting,
            "insert_rate_with_memory_objects": count / (inserting + building)}


def build_bare(path: Path, count: int, batch: int, seed: int, side_m: float = SIDE_M) -> dict:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, stamp_ns INTEGER NOT NULL, x REAL, y REAL, z REAL, "
                 "qx REAL, qy REAL, qz REAL, qw REAL, psnr REAL, ssim REAL, payload BLOB NOT NULL)")
    conn.execute("CREATE INDEX memories_by_time ON memories (stamp_ns)")
    conn.execute("CREATE VIRTUAL TABLE poses USING rtree(id, min_x, max_x, min_y, max_y, min_z, max_z)")
    inserting = 0.0
    next_id = 1
    for stamps, xyz, quat, payloads in trajectory(count, seed, side_m):
        rows = [(next_id + i, t, *q, *o, 30.0, 0.9, p.tobytes())
                for i, (t, q, o, p) in enumerate(zip(stamps.tolist(), xyz.tolist(), quat.tolist(), payloads))]
        boxes = [(r[0], r[2], r[2], r[3], r[3], r[4], r[4]) for r in rows]
        next_id += len(rows)
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + batch])
            conn.executemany("INSERT INTO poses VALUES (?, ?, ?, ?, ?, ?, ?)", boxes[i:i + batch])
            conn.execute("COMMIT")
        inserting += time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"insert_s": inserting, "insert_rate": count / inserting}


_BARE_COLUMNS = "m.id, m.stamp_ns, m.x, m.y, m.z, m.qx, m.qy, m.qz, m.qw, m.psnr, m.ssim, length(m.payload)"


def bare_time(conn, start_ns: int, end_ns: int) -> list:
    return conn.execute(f"SELECT {_BARE_COLUMNS} FROM memories AS m WHERE m.stamp_ns BETWEEN ? AND ? "
                        f"ORDER BY m.stamp_ns LIMIT 100", (start_ns, end_ns)).fetchall()


def bare_radius(conn, p, radius: float, limit: int | None = None) -> list:
    x, y, z = p
    sql = (f"SELECT {_BARE_COLUMNS}, (m.x - ?) * (m.x - ?) + (m.y - ?) * (m.y - ?) + (m.z - ?) * (m.z - ?) AS d2 "
           f"FROM poses AS r CROSS JOIN memories AS m WHERE r.min_x <= ? AND r.max_x >= ? AND r.min_y <= ? "
           f"AND r.max_y >= ? AND r.min_z <= ? AND r.max_z >= ? AND m.id = r.id AND d2 <= ? ORDER BY d2, m.id"
           f"{' LIMIT ?' if limit else ''}")
    args = (x, x, y, y, z, z, x + radius, x - radius, y + radius, y - radius, z + radius, z - radius,
            radius * radius, *((limit,) if limit else ()))
    return conn.execute(sql, args).fetchall()


def bare_knn(conn, p, k: int, hint: dict, side_m: float = SIDE_M) -> list:
    radius = hint.get("r", 1.0)
    while True:
        rows = bare_radius(conn, p, radius, k)
        if len(rows) == k or radius > 2 * side_m:
            break
        radius *= 2.0
    hint["r"] = math.sqrt(rows[-1][-1]) * 1.5 + 1e-6
    return rows


def cached_fraction(path: Path) -> float | None:
    """Share of ``path``'s pages resident in the OS page cache (``mincore``), ``None`` if unknown."""
    size = os.path.getsize(path)
    name = ctypes.util.find_library("c")
    if size == 0 or name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            if libc.mincore(address, size, vector) != 0:
                return None
        finally:
            libc.munmap(address, size)
    return sum(v & 1 for v in bytes(vector)) / pages


def read_through(path: Path, chunk: int = 8 << 20) -> None:
    """Read the whole file once, which leaves it in the page cache if memory allows."""
    with open(path, "rb", buffering=0) as f:
        while f.read(chunk):
            pass


def drop_page_cache() -> None:
    """Empty the OS page cache (Linux, root); ``PermissionError`` otherwise."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("1\n")


def latencies_ms(pairs, args_list) -> list[tuple[float, float]]:
    """Median and 90th percentile latency (ms) of each function in ``pairs`` over ``args_list``.

    The functions take turns on every query (in alternating order), so both see the same cache
    state and the same load from other processes on the machine.
    """
    times: list[list[float]] = [[] for _ in pairs]
    for i, args in enumerate(args_list):
        order = range(len(pairs)) if i % 2 == 0 else reversed(range(len(pairs)))
        for j in order:
            started = time.perf_counter()
            pairs[j](*args)
            times[j].append((time.perf_counter() - started) * 1e3)
    return [(statistics.median(t), float(np.percentile(t, 90))) for t in times]


def query_workload(count: int, queries: int, seed: int, side_m: float = SIDE_M):
    """Positions and stamps of random stored memories (re-generated from the same seed)."""
    rng = np.random.default_rng(seed + 1)
    picks = np.sort(rng.choice(count, size=min(queries, count), replace=False))
    positions, stamps, offset = [], [], 0
    for chunk_stamps, xyz, _, _ in trajectory(count, seed, side_m):
        inside = picks[(picks >= offset) & (picks < offset + len(chunk_stamps))] - offset
        positions.extend(map(tuple, xyz[inside].tolist()))
        stamps.extend(chunk_stamps[inside].tolist())
        offset += len(chunk_stamps)
    order = rng.permutation(len(positions))
    return [positions[i] for i in order], [stamps[i] for i in order], rng


def run(count: int, batch: int, queries: int, seed: int, workdir: Path, store_options: dict | None = None,
        bare: bool = True, cache: str = "warm", side_m: float = SIDE_M) -> dict:
    store_path, bare_path = workdir / "store.db", workdir / "bare.db"
    for path in (store_path, bare_path):
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    print(f"building the store with {count} records ...", file=sys.stderr)
    store_options = {"page_size": page_size_for_payload(PAYLOAD_BYTES), **(store_options or {})}
    store_build = build_store(store_path, count, batch, seed, store_options, side_m)
    if bare:
        print("building the bare SQLite baseline ...", file=sys.stderr)
        bare_build = build_bare(bare_path, count, batch, seed, side_m)
    positions, stamps, rng = query_workload(count, queries, seed, side_m)
    knn_points = [tuple(np.add(p, rng.normal(0, 0.5, 3) * [1, 1, 0.05]).tolist()) for p in positions]
    span_ns = int(99.5 * FRAME_INTERVAL_S * 1e9)
    results: dict = {"records": count, "batch": batch, "queries": len(positions),
                     "payload_bytes": PAYLOAD_BYTES, "side_m": side_m, "store_options": store_options,
                     "cache": cache}
    files = [store_path, bare_path] if bare else [store_path]
    results["cached_after_build"] = {p.stem: cached_fraction(p) for p in files}
    if cache == "warm":
        for path in files:
            read_through(path)

    store = Store(store_path, create=False)
    conn = sqlite3.connect(bare_path, isolation_level=None) if bare else None
    hint: dict = {}
    kinds = {
        "time": ([(s,) for s in stamps],
                 lambda s: store.by_time(start_ns=s, end_ns=s + span_ns, limit=100),
                 lambda s: bare_time(conn, s, s + span_ns)),
        "radius": ([(p,) for p in positions], lambda p: store.within_radius(p, 5.0),
                   lambda p: bare_radius(conn, p, 5.0)),
        "knn": ([(p,) for p in knn_points], lambda p: store.nearest(p, 10),
                lambda p: bare_knn(conn, p, 10, hint, side_m)),
    }
    try:
        for p in positions[:20]:  # warm up both the same way
            store.within_radius(p, 5.0)
            if bare:
                bare_radius(conn, p, 5.0)
        timings, cached = {}, {}
        for kind, (args, store_fn, bare_fn) in kinds.items():
            if cache == "cold":
                drop_page_cache()
            cached[kind] = {p.stem: cached_fraction(p) for p in files}
            timings[kind] = latencies_ms([store_fn, bare_fn] if bare else [store_fn], args)
        results["cached_before_queries"] = cached
        stats = store.stats()
        sizes = {"time": statistics.mean(len(store.by_time(start_ns=s, end_ns=s + span_ns, limit=100))
                                         for s in stamps[:50]),
                 "radius": statistics.mean(len(store.within_radius(p, 5.0)) for p in positions[:50])}
    finally:
        store.close()
        if conn is not None:
            conn.close()
    file_bytes = os.path.getsize(store_path)
    results["store"] = {
        **store_build, "file_bytes": file_bytes, "stored_payload_bytes": stats.payload_bytes,
        "overhead_bytes_per_record": (file_bytes - stats.payload_bytes) / count, "mean_results": sizes,
        **{f"{kind}_ms": t[0][0] for kind, t in timings.items()},
        **{f"{kind}_p90_ms": t[0][1] for kind, t in timings.items()},
    }
    if not bare:
        return results
    bare_bytes = os.path.getsize(bare_path)
    results["bare"] = {
        **bare_build, "file_bytes": bare_bytes,
        "overhead_bytes_per_record": (bare_bytes - count * PAYLOAD_BYTES) / count,
        **{f"{kind}_ms": t[1][0] for kind, t in timings.items()},
        **{f"{kind}_p90_ms": t[1][1] for kind, t in timings.items()},
    }
    s, b = results["store"], results["bare"]
    results["ratio_store_to_bare"] = {q: s[f"{q}_ms"] / b[f"{q}_ms"] for q in ("time", "radius", "knn")}
    results["targets_met"] = {
        "queries_le_1ms": all(s[f"{q}_ms"] <= 1.0 for q in ("time", "radius", "knn")),
        "queries_within_2x_bare": all(v <= 2.0 for v in results["ratio_store_to_bare"].values()),
        "insert_ge_25k_per_s": s["insert_rate"] >= 25_000,
        "overhead_le_150_bytes": s["overhead_bytes_per_record"] <= 150,
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="memories to insert (default 10M)")
    parser.add_argument("--batch", type=int, default=1000, help="records per insert transaction")
    parser.add_argument("--queries", type=int, default=500, help="queries of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the databases (default: a temp dir)")
    parser.add_argument("--segment-extent", type=float, default=None, help="store option segment_extent_m")
    parser.add_argument("--segment-max-ids", type=int, default=None, help="store option segment_max_ids")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare SQLite baseline")
    parser.add_argument("--side-m", type=float, default=SIDE_M,
                        help="side of the square the robot roams, m (default 1000: ~940 memories in a 5 m disk at "
                             "10M records; 10000 gives ~130)")
    parser.add_argument("--cache", choices=("warm", "cold", "asis"), default="warm",
                        help="page cache state for the queries: both files read through first (warm), dropped "
                             "before each query kind (cold, root only), or as the build left it (asis)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    options = {k: v for k, v in (("segment_extent_m", args.segment_extent), ("segment_max_ids", args.segment_max_ids))
               if v is not None}
    if args.records < 1000 or args.batch < 1 or args.queries < 1 or not args.side_m > 10:
        parser.error("--records must be >= 1000, --batch and --queries >= 1, --side-m > 10")
    if args.cache == "cold" and not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        parser.error("--cache cold drops the page cache: it needs Linux and root")
    with tempfile.TemporaryDirectory(prefix="bench_store_", dir=args.dir) as tmp:
        results = run(args.records, args.batch, args.queries, args.seed, Path(tmp), options, not args.no_bare,
                      args.cache, args.side_m)
    if args.json or args.no_bare:
        print(json.dumps(results, indent=2))
    else:
        s, b = results["store"], results["bare"]
        print(f"records {results['records']}, payload {PAYLOAD_BYTES} B, batch {results['batch']}")
        print(f"insert: store {s['insert_rate']:.0f}/s ({s['insert_rate_with_memory_objects']:.0f}/s including "
              f"building the Memory objects), bare {b['insert_rate']:.0f}/s")
        print(f"overhead per record: store {s['overhead_bytes_per_record']:.1f} B, "
              f"bare {b['overhead_bytes_per_record']:.1f} B")
        for q in ("time", "radius", "knn"):
            print(f"{q:>6} median: store {s[f'{q}_ms']:.3f} ms, bare {b[f'{q}_ms']:.3f} ms "
                  f"({results['ratio_store_to_bare'][q]:.2f}x); p90 store {s[f'{q}_p90_ms']:.3f} ms")
        print(f"mean results: {s['mean_results']}")
        print(f"page cache ({args.cache}): resident after the build {results['cached_after_build']}, "
              f"before the queries {results['cached_before_queries']}")
        print(f"targets met: {results['targets_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
