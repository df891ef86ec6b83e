"""Benchmark of ``gaussvae replay`` on a real recording: wall time of the whole command and where it goes.

Runs the command as a user would (a fresh process, start-up and imports included) into a new
database in a temporary folder, ``--repeat`` times, and reports the median wall time measured
from outside the process, the command's own report (keyframes, PSNR, bytes per memory) and its
split of the work by stage (open, read + decode, prepare, keyframe, fit + encode, store).

    python benchmarks/bench_replay.py                                   # KITTI, defaults
    python benchmarks/bench_replay.py --repeat 3 --json
    python benchmarks/bench_replay.py --bag ../shared/data/bags/euroc_v101_static_sqlite3 -- --gaussians 256

Target: the KITTI recording (160 frames of 1226 x 370, 16.5 s of driving) replays in at most
16.5 s of wall time on a 2-core machine, i.e. at least as fast as it was recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BAG = ROOT / ".." / "shared" / "data" / "bags" / "kitti07_mono8_mcap"


def run_once(bag: Path, extra: list[str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "gaussvae_ros.cli.main", "replay", str(bag), "--db",
                   str(Path(folder) / "memories.db"), "--json", *extra]
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"replay failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bag", type=Path, default=DEFAULT_BAG, help="rosbag2 folder (default: KITTI 07)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("extra", nargs="*", help="options passed to gaussvae replay (after --)")
    args = parser.parse_args()
    if not args.bag.exists():
        raise SystemExit(f"no recording at {args.bag}")
    runs = [run_once(args.bag, args.extra) for _ in range(max(1, args.repeat))]
    walls = [w for w, _ in runs]
    median = statistics.median(walls)
    report = min(runs, key=lambda r: abs(r[0] - median))[1]
    duration = None
    try:
        import yaml

        meta = yaml.safe_load((args.bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        duration = meta["duration"]["nanoseconds"] * 1e-9
    except (OSError, KeyError, TypeError, ImportError):
        pass
    result = {
        "bag": str(args.bag), "options": args.extra, "runs": len(walls),
        "wall_seconds_median": round(median, 3), "wall_seconds": [round(w, 3) for w in walls],
        "recording_seconds": duration,
        "realtime_factor": None if duration is None else round(duration / median, 3),
        "command_seconds": round(report["seconds"], 3),
        "frames_read": report["frames_read"], "memories_stored": report["memories_stored"],
        "keyframe_reasons": report["keyframe_reasons"], "mean_psnr": report["mean_psnr"],
        "mean_ssim": report["mean_ssim"], "bytes_per_memory": report["bytes_per_memory"],
        "fit_iterations_mean": report["fit_iterations_mean"], "seconds_by_stage": report["seconds_by_stage"],
        "cpu_count": os.cpu_count(),
    }
    result["startup_seconds"] = round(report["seconds"] - sum(report["seconds_by_stage"].values()), 3)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['bag']}: {median:.2f} s wall (median of {len(walls)}), recording {duration or 0:.1f} s "
          f"-> {result['realtime_factor']}x real time")
    print(f"  {result['frames_read']} frames, {result['memories_stored']} memories "
          f"({result['keyframe_reasons']}), PSNR {result['mean_psnr'] or 0:.2f} dB, "
          f"{result['bytes_per_memory'] or 0:.0f} B/memory, {result['fit_iterations_mean'] or 0:.0f} iterations/fit")
    stages = dict(result["seconds_by_stage"], startup=result["startup_seconds"])
    print("  time: " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(stages.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
