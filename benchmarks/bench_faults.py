"""Fault injection over the families of issue 13 that need no ROS graph: damaged recordings,
payloads, model files and stores. Each case ends as ``recovered`` (the damage was read past, or
decoded / salvaged), ``refused`` (a clear error naming the problem, nothing else lost) or
``failed`` (a traceback, a wrong result, or memories lost beyond the damaged part); ``undetected``
when the damage hit bytes that no checksum of the file covers (read as if intact).

    python benchmarks/bench_faults.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import traceback
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BAGS = ROOT / ".." / "shared" / "data" / "bags"


def copy_bag(name: str, dest: Path) -> tuple[Path, Path]:
    shutil.copytree(BAGS / name, dest)
    for p in [dest, *dest.iterdir()]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return dest, next(p for p in dest.iterdir() if p.suffix in (".mcap", ".db3"))


def bag_cases(tmp: Path, results: list) -> None:
    from gaussvae_ros.bag.reader import BagReader, Frame

    for name, images in (("kitti07_mono8_mcap", 160), ("kitti07_compressed_sqlite3", 40),
                         ("euroc_v101_static_sqlite3", 60)):
        kinds = [("overwrite", f) for f in (0.2, 0.35, 0.5, 0.65, 0.8)]
        if name.endswith("mcap"):
            kinds += [("truncate", f) for f in (0.1, 0.5, 0.9, 0.99)]
        for kind, fraction in kinds:
            case = f"recording {name}: {kind} at {fraction:.0%}"
            folder, data = copy_bag(name, tmp / f"{name}_{kind}_{fraction}")
            size = data.stat().st_size
            if kind == "overwrite":
                with open(data, "r+b") as f:
                    f.seek(int(size * fraction) // 4096 * 4096)
                    f.write(b"\xab" * 4096)
            else:
                os.truncate(data, int(size * fraction))
            try:
                with BagReader(folder) as bag:
                    topic = bag.image_topics[0]
                    read = sum(isinstance(x, Frame) for x in bag.stream([topic]))
                    report = bag.damage_report([topic])
                lost = (report or {}).get("lost", {}).get(topic, 0)
                ok = read + lost == images
                outcome = "recovered" if ok else "failed"
                if ok and report is None and kind == "overwrite":
                    # the block hit data no checksum covers (rosbag2 MCAP chunks carry CRC 0, zstd raw blocks
                    # have none): every frame is read, one may hold damaged pixels; nothing can tell
                    outcome = "undetected"
                results.append((case, outcome, f"{read} read, {lost} lost (reported)"))
            except ValueError as exc:
                results.append((case, "refused", str(exc)[:120]))
            except Exception as exc:  # noqa: BLE001
                results.append((case, "failed", f"{type(exc).__name__}: {exc}"))


def payload_cases(results: list) -> None:
    from gaussvae_ros.codecs import render_memory
    from gaussvae_ros.core import Gaussians, encode_gaussians

    rng = np.random.default_rng(0)
    good = encode_gaussians(Gaussians(rng.uniform(0, 1, (64, 2)), rng.uniform(0.02, 0.2, (64, 2)),
                                      rng.uniform(0, 3, 64), rng.uniform(0, 1, (64, 3))))
    header = struct.Struct("<2sBBH4B4f")

    def recrc(fields):
        body = header.pack(*fields) + good[header.size:-4]
        return body + struct.pack("<I", zlib.crc32(body))

    fields = list(header.unpack_from(good))
    cases = {"TEXT payload": "GS not bytes", "INTEGER payload": 7, "NULL payload": None}
    for i, name in ((8, "s_lo"), (9, "s_hi"), (10, "c_lo"), (11, "c_hi")):
        for value in (math.nan, math.inf, -math.inf):
            f = list(fields)
            f[i] = value
            cases[f"gaussians-q {name}={value} (CRC recomputed)"] = recrc(f)
    for k in range(20):
        data = bytearray(good)
        data[int(rng.integers(0, len(good)))] ^= 1 << int(rng.integers(0, 8))
        cases[f"gaussians-q flipped bit #{k}"] = bytes(data)
    for case, payload in cases.items():
        try:
            render_memory(payload, "gaussians-q", "", 16, 12)
            results.append((f"payload {case}", "failed", "rendered without complaint"))
        except ValueError as exc:
            results.append((f"payload {case}", "refused", str(exc)[:120]))
        except Exception as exc:  # noqa: BLE001
            results.append((f"payload {case}", "failed", f"{type(exc).__name__}: {exc}"))


def model_cases(tmp: Path, results: list) -> None:
    from gaussvae_ros.codecs import latent as lc
    from gaussvae_ros.codecs.latent import model_registry
    from gaussvae_ros.vae import checkpoint

    good = lc.default_model_path().read_bytes()
    rng = np.random.default_rng(1)
    cases = {}
    for k in range(8):
        data = bytearray(good)
        data[int(rng.integers(0, len(good)))] ^= 0x10
        cases[f"flipped byte #{k}"] = bytes(data)
    for k, offset in enumerate((len(good) // 4, len(good) // 2, 3 * len(good) // 4)):
        data = bytearray(good)
        data[offset:offset + 65536] = bytes(65536)
        cases[f"zeroed 64 KiB #{k}"] = bytes(data)
    for case, data in cases.items():
        path = tmp / "models" / case.replace(" ", "_").replace("#", "") / model_registry.DEFAULT_MODEL_FILE
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        checkpoint.pin_file_digest(path, model_registry.SHIPPED_MODEL_SHA256)
        try:
            lc.load_bundle(path)
            results.append((f"shipped model {case}", "failed", "loaded"))
        except ValueError as exc:
            results.append((f"shipped model {case}", "refused", str(exc)[:120]))
        except Exception as exc:  # noqa: BLE001
            results.append((f"shipped model {case}", "failed", f"{type(exc).__name__}: {exc}"))
    plain = tmp / "models" / "unverified.pt"
    plain.write_bytes(good)
    try:
        lc.load_bundle(plain)
        results.append(("model file without digest", "failed", "loaded without opt-in"))
    except ValueError as exc:
        results.append(("model file without digest", "refused", str(exc)[:120]))


def store_cases(tmp: Path, results: list) -> None:
    from gaussvae_ros.store import Memory, Store, StoreError
    from gaussvae_ros.store.recover import recover_store

    t0 = 1_700_000_000 * 10**9
    for k, fraction in enumerate((0.2, 0.4, 0.5, 0.6, 0.8)):
        path = tmp / f"store{k}.db"
        with Store(path) as store:
            store.insert_many([Memory(t0 + i * 10**9, "/cam", "f", bytes([i % 251]) * 3000, 64, 48, "rgb8")
                               for i in range(60)])
        pages = path.stat().st_size // 4096
        with open(path, "r+b") as f:
            f.seek(int(pages * fraction) * 4096)
            f.write(b"\xab" * 4096)
        case = f"store damaged page at {fraction:.0%}"
        try:
            try:
                Store(path, create=False, health_check="always").close()
                refused = False
            except StoreError:
                refused = True
            report = recover_store(path, tmp / f"recovered{k}.db")
            ok = refused and report.recovered + len(report.lost) == 60 and len(report.lost) <= 3
            results.append((case, "recovered" if ok else "failed",
                            f"refused at open: {refused}; {report.recovered} recovered, {len(report.lost)} lost"))
        except Exception as exc:  # noqa: BLE001
            results.append((case, "failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    results: list = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bag_cases(tmp, results)
        payload_cases(results)
        model_cases(tmp, results)
        store_cases(tmp, results)
    counts = Counter(r[1] for r in results)
    summary = {"cases": len(results),
               **{k: counts.get(k, 0) for k in ("recovered", "refused", "undetected", "failed")},
               "results": [{"case": c, "outcome": o, "detail": d} for c, o, d in results]}
    if args.json:
        print(json.dumps(summary))
    else:
        for c, o, d in results:
            print(f"{o:9s} {c}: {d}")
        print(f"{summary['cases']} cases: {summary['recovered']} recovered, {summary['refused']} refused clearly, "
              f"{summary['undetected']} undetectable, {summary['failed']} failed")
    return 1 if counts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
