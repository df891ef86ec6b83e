"""Soak benchmark: the live graph fed 1280x720 colour frames at 30 Hz for minutes.

Starts ``gaussvae graph --nodes encoder memory`` (``config/gaussvae.yaml``, a database in a
temporary folder, the encoder's fitting settings from ``--gaussians`` / ``--long-side`` /
``--iterations``), publishes a slowly panning 1280x720 rgb8 scene at ``--hz`` on the encoder's
image topic (sensor-data QoS, as a camera driver) for ``--seconds``, then waits until the encoder
is idle and reports:

* resident memory (VmRSS) of the encoder and memory node processes, sampled every second, and its
  slope in MiB per minute (least squares over the samples after the first ``--warmup`` fraction);
* frames published, received (best-effort images of 2.7 MB: DDS delivers what it can, the rest
  is ``frames_lost_in_transport``) and dropped by the encoder (its queue keeps the newest frames:
  at 30 Hz most frames are dropped by design and counted), keyframes published and memories stored
  (``every_keyframe_stored``), decode / fit / store errors and records given up;
* the graph's exit status after SIGINT.

    python benchmarks/bench_soak.py --seconds 600 --json        # the 10-minute soak
    python benchmarks/bench_soak.py --seconds 8                 # the short version (test_bench_soak)

DDS stays on loopback in a random domain (``ROS_DOMAIN_ID`` when set). Needs the interfaces:
``. build_ros/env.sh`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def node_pids(graph_pid: int) -> dict[str, int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(graph_pid)], capture_output=True, text=True).stdout
    pids = {}
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        for name in ("encoder", "memory"):
            if f"gaussvae_ros.nodes.{name}_node" in args:
                pids[name] = int(pid)
    return pids


def slope_mib_per_min(samples: list[tuple[float, float]], warmup: float) -> float | None:
    if len(samples) < 4:
        return None
    t0 = samples[0][0]
    kept = [(t, v) for t, v in samples if t - t0 >= warmup * (samples[-1][0] - t0)]
    if len(kept) < 3:
        return None
    t = np.array([s[0] for s in kept])
    v = np.array([s[1] for s in kept])
    return float(np.polyfit(t - t[0], v, 1)[0] * 60.0)


def scene(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 256, size=(9, 32, 3)).astype(np.uint8)
    big = np.kron(grid, np.ones((height // 9 + 1, width // 16 + 1, 1), np.uint8))
    return np.ascontiguousarray(big[:height, : 2 * width])


def run(seconds: float, hz: float, width: int, height: int, gaussians: int, long_side: int, iterations: int,
        warmup: float, quiet: bool) -> dict:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    tmp = Path(tempfile.mkdtemp(prefix="gaussvae-soak-"))
    params = yaml.safe_load((ROOT / "config" / "gaussvae.yaml").read_text())
    enc = params["/**/gaussvae_encoder"]["ros__parameters"]
    # quantized Gaussians of a fixed count, as measured in BENCHMARKS.md ("Soak"); the default codec
    # (gaussians-rd at memory_bytes) fits each keyframe longer
    enc.update(codec="gaussians-q", memory_bytes=0, n_gaussians=gaussians, long_side=long_side, max_iters=iterations,
               threads=1, pose_wait_s=0.0)
    enc["keyframe"]["min_interval_s"] = 0.0
    params_file = tmp / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    ns = f"/soak{os.getpid()}"
    graph = subprocess.Popen([sys.executable, "-m", "gaussvae_ros.cli.main", "graph", "--nodes", "encoder", "memory",
                              "--params", str(params_file), "--database", str(tmp / "m.db"), "--namespace", ns,
                              "--image-topic", f"{ns}/cam/image_raw", "--respawn", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(graph.stdout), daemon=True).start()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("soak_feeder", context=context)
    pub = node.create_publisher(Image, f"{ns}/cam/image_raw", qos_profile_sensor_data)
    latest: dict[str, dict] = {}

    def on_diag(msg) -> None:
        for status in msg.status:
            if status.hardware_id.startswith(ns):
                kind = "encoder" if "encoder" in status.name else "memory"
                latest[kind] = {v.key: v.value for v in status.values}

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    result: dict = {"seconds": seconds, "hz": hz, "width": width, "height": height, "gaussians": gaussians,
                    "long_side": long_side, "iterations": iterations}
    try:
        deadline = time.monotonic() + 120
        while pub.get_subscription_count() < 1 or "memory" not in latest:
            if time.monotonic() > deadline or graph.poll() is not None:
                raise RuntimeError("the graph did not start:\n" + "".join(log[-30:]))
            time.sleep(0.1)
        pids = node_pids(graph.pid)
        picture = scene(width, height)
        msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
        msg.header.frame_id = "soak_cam"
        samples: dict[str, list] = {k: [] for k in pids}
        sent, start = 0, time.monotonic()
        next_frame, next_sample = start, start
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if now >= next_sample:
                for k, pid in pids.items():
                    value = rss_mib(pid)
                    if value is not None:
                        samples[k].append((now - start, value))
                next_sample += 1.0
            if now < next_frame:
                time.sleep(min(next_frame - now, 0.005))
                continue
            shift = (sent * 6) % width  # a pan: a keyframe every second or so
            msg.data = picture[:, shift:shift + width].tobytes()
            stamp = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            pub.publish(msg)
            sent += 1
            next_frame += 1.0 / hz
        fed = time.monotonic() - start
        deadline = time.monotonic() + 60  # the encoder finishes its queue, the memory node stores
        while time.monotonic() < deadline:
            e, m = latest.get("encoder", {}), latest.get("memory", {})
            if e and m and e.get("queue_depth") == "0" and e.get("encoding_now") in ("False", "false") \
                    and int(m.get("stored", 0)) + int(m.get("duplicates", 0)) >= int(e.get("keyframes", 0)):
                break
            time.sleep(0.5)
        time.sleep(1.5)  # one more diagnostics period
        e, m = latest.get("encoder", {}), latest.get("memory", {})
        result.update(
            achieved_hz=round(sent / fed, 2), frames_sent=sent, frames_received=int(e.get("frames_received", 0)),
            frames_dropped=int(e.get("frames_dropped", 0)), frames_processed=int(e.get("frames_processed", 0)),
            keyframes=int(e.get("keyframes", 0)), memories_stored=int(m.get("stored", 0)),
            errors={"decode": int(e.get("decode_errors", 0)), "fit": int(e.get("fit_errors", 0)),
                    "store": int(m.get("store_errors", 0)), "given_up": int(m.get("given_up", 0))},
            rss_mib={k: {"first": round(v[0][1], 1), "last": round(v[-1][1], 1), "max": round(max(x for _, x in v), 1)}
                     for k, v in samples.items() if v},
            rss_slope_mib_per_min={k: (None if (s := slope_mib_per_min(v, warmup)) is None else round(s, 3))
                                   for k, v in samples.items()},
        )
        result["every_keyframe_stored"] = result["memories_stored"] == result["keyframes"]
        # best-effort (sensor data) images that DDS did not deliver: a camera's QoS, counted apart
        result["frames_lost_in_transport"] = max(0, sent - result["frames_received"])
    finally:
        executor.shutdown(timeout_sec=1)
        node.destroy_node()
        rclpy.shutdown(context=context)
        if graph.poll() is None:
            graph.send_signal(signal.SIGINT)
        try:
            graph.wait(timeout=60)
        except subprocess.TimeoutExpired:
            graph.kill()
            graph.wait()
        result["graph_exit_status"] = graph.returncode
        result["tracebacks"] = sum("Traceback" in line for line in log)
    if not quiet:
        print(json.dumps(result, indent=2), file=sys.stderr)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--hz", type=float, default=30.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--gaussians", type=int, default=512)
    p.add_argument("--long-side", type=int, default=256)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of the samples left out of the slope")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.seconds, args.hz, args.width, args.height, args.gaussians, args.long_side, args.iterations,
                 args.warmup, quiet=args.json)
    if args.json:
        print(json.dumps(result))
    ok = result["every_keyframe_stored"] and not any(result["errors"].values()) and result["tracebacks"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
