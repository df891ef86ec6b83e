"""Benchmark of the live node graph: the KITTI recording played over DDS into ``gaussvae graph``.

Starts the graph (encoder, memory, recall; ``config/gaussvae.yaml`` with the recording's topics and
a database in a temporary folder), plays the recording into it with ``gaussvae play`` at
``--rate`` (default 1.0: real time), waits for the encoder to finish, and reports:

* whether the graph keeps up with real time (``keeps_up``: every keyframe offline replay keeps is
  stored live, and the encoder is idle within 2 s of the last frame; ``keeps_up_every_frame``:
  also no frame dropped), with the player's achieved rate and lag, frames the encoder dropped (its
  queue of 2 was full while fitting: the oldest waiting frame goes), how long the encoder was
  still busy after the last frame (``drain_s``), encode latency (frame receipt to record publish);
* keyframes expected (what offline replay's keyframe policy keeps of the same recording, a dry
  run: ``gaussvae replay --dry-run``) against memories stored by the live graph. Dropped frames
  change what the live policy sees, so the two differ when the encoder cannot keep up;
* recall latency of one memory at 256x256 through the ``recall`` service, median of ``--recalls``
  (50) calls, measured by the client (request to response, DDS included).

    python benchmarks/bench_live.py                  # KITTI at rate 1.0
    python benchmarks/bench_live.py --rate 0.5 --json

DDS stays on loopback in a random domain (``ROS_DOMAIN_ID`` when set). Needs the interfaces:
``. build_ros/env.sh`` first (``make bench`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_BAG = ROOT / ".." / "shared" / "data" / "bags" / "kitti07_mono8_mcap"


def _float(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if v != v else v  # NaN -> None


def expected_keyframes(bag: Path, image_topic: str, pose_topic: str) -> int:
    """Keyframes offline replay keeps of the recording (keyframe decisions only, no fitting)."""
    from gaussvae_ros.apps.replay import ReplayOptions, replay_bag

    report = replay_bag(bag, None, ReplayOptions(image_topics=[image_topic], pose_topic=pose_topic, dry_run=True))
    return int(report.keyframes)


def run(bag: Path, rate: float, recalls: int, image_topic: str, odom_topic: str, info_topic: str,
        out: Path | None, quiet: bool) -> dict:
    from gaussvae_ros.apps.demo import GraphClient, GraphProcess, DemoError, dds_environment, wait_until_encoded, \
        write_params
    from gaussvae_ros.apps.graph import default_params_file
    from gaussvae_ros.apps.player import PlayOptions, Player

    result: dict = {"bag": str(bag.resolve()), "rate": rate}
    result["keyframes_expected"] = expected_keyframes(bag, image_topic, odom_topic)
    env = dds_environment()
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        database = folder / "memories.db"
        params = write_params(folder / "params.yaml", default_params_file(), {
            "encoder": {"image_topics": [image_topic], "odometry_topics": [odom_topic], "pose_topics": [""],
                        "camera_info_topics": [info_topic], "image_reliability": "reliable"},
            "memory": {"database": str(database)}, "recall": {"database": str(database)}})
        graph = GraphProcess(params, (out or folder) / "bench_live_graph.log", env)
        client = None
        try:
            graph.start()
            client = GraphClient("bench_live")
            for name in ("get_stats", "recall"):
                client.service_name(name, timeout=120, check=graph.check_alive)
            options = PlayOptions(rate=rate, wait_for=[image_topic, odom_topic, info_topic], wait_timeout_s=120, settle_s=2.0,
                                  progress=not quiet)
            report = Player(bag, options).run()
            played_at = time.perf_counter()
            published = report.topics[image_topic]["published"]
            enc = wait_until_encoded(client, graph, published, timeout=1800, quiet=quiet)
            # drain: from the end of playback to the first encoder status (1 s period) saying it is idle
            # with every frame received
            idle = [h["_t"] for h in client.encoder_history
                    if h["_t"] >= played_at and h.get("encoding_now") == "False" and h.get("queue_depth") == "0"
                    and int(h.get("frames_received", "0")) >= published]
            drain_s = (idle[0] if idle else time.perf_counter()) - played_at
            from gaussvae_ros_interfaces.srv import GetStats, Recall

            stats = client.call("get_stats", GetStats, GetStats.Request())
            if not stats.success or stats.count < 1:
                raise DemoError(f"nothing stored: {stats.message}")
            first_id = int(stats.min_id)
            times = []
            for _ in range(recalls):
                start = time.perf_counter()
                answer = client.call("recall", Recall, Recall.Request(select=Recall.Request.SELECT_IDS, ids=[first_id],
                                                                      width=256, height=256))
                times.append(time.perf_counter() - start)
                if not answer.success or answer.images[0].width != 256:
                    raise DemoError(f"recall failed: {answer.message}")
            latencies = [_float(h.get("encode_latency_ms_max")) for h in client.encoder_history]
            fits = [_float(h.get("fit_ms_mean")) for h in client.encoder_history]
            received = client.encoder_count("frames_received")
            dropped = client.encoder_count("frames_dropped")
            result.update({
                "frames_in_bag": published,
                "player": {"achieved_rate": report.achieved_rate, "max_lag_ms": report.max_lag_ms,
                           "wall_s": report.wall_seconds, "bag_s": report.bag_seconds},
                "frames_received": received, "frames_dropped": dropped,
                "frames_processed": client.encoder_count("frames_processed"),
                "keyframes_live": client.encoder_count("keyframes"),
                "memories_stored": int(stats.count),
                "bytes_per_memory": round(stats.payload_bytes / stats.count, 1),
                "drain_s": round(drain_s, 2),
                "encode_latency_ms_max": max([v for v in latencies if v is not None], default=None),
                "fit_ms_mean_of_periods": round(statistics.fmean([v for v in fits if v is not None]), 1)
                if any(v is not None for v in fits) else None,
                "recall_ms_256_median": round(statistics.median(times) * 1e3, 2),
                "recall_ms_256_p90": round(sorted(times)[int(0.9 * (len(times) - 1))] * 1e3, 2),
                "recalls": recalls,
            })
            on_time = abs((report.achieved_rate or 0) - rate) < 0.02 * rate and result["drain_s"] < 2.0
            # keeps up: every keyframe offline replay would store is stored live, and the encoder is idle
            # within 2 s of the last frame. Frames dropped while a keyframe is fitted are by design (queue
            # of 2, newest kept); keeps_up_every_frame also asks for none dropped.
            result["keeps_up"] = bool(on_time and int(stats.count) >= result["keyframes_expected"])
            result["keeps_up_every_frame"] = bool(on_time and dropped == 0 and received == published)
            result["encoder_last_status"] = {k: v for k, v in enc.items() if not k.startswith("_")}
            result["encoder_history_len"] = len(client.encoder_history)
        finally:
            if client is not None:
                client.close()
            result["graph_exit_status"] = graph.stop()
    result["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bag", type=Path, default=DEFAULT_BAG, help="rosbag2 folder (default: KITTI 07 mcap)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    parser.add_argument("--recalls", type=int, default=50, help="recall calls for the latency median (default 50)")
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--odom-topic", default="/odom")
    parser.add_argument("--camera-info-topic", default="/camera/camera_info")
    parser.add_argument("--out", type=Path, help="also write live.json (and the graph log) into this folder")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()
    if not args.bag.exists():
        print(f"bench_live: no recording at {args.bag}; skipped", file=sys.stderr)
        return 0
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    from gaussvae_ros.apps.demo import DemoError

    try:
        result = run(args.bag, args.rate, args.recalls, args.image_topic, args.odom_topic, args.camera_info_topic,
                     args.out, args.quiet)
    except DemoError as exc:
        print(f"bench_live failed: {exc}", file=sys.stderr)
        return 1
    if args.out:
        (args.out / "live.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return 0
    p = result["player"]
    print(f"live replay of {Path(result['bag']).name} at rate {args.rate:g}: "
          f"{'keeps up' if result['keeps_up'] else 'does NOT keep up'} (every expected keyframe stored, idle "
          f"within 2 s); every frame processed: {'yes' if result['keeps_up_every_frame'] else 'no'}")
    print(f"  player: {p['bag_s']:.1f} s of bag in {p['wall_s']:.1f} s (achieved rate {p['achieved_rate']}), "
          f"max lag {p['max_lag_ms']:.0f} ms")
    print(f"  encoder: {result['frames_received']}/{result['frames_in_bag']} frames received, "
          f"{result['frames_processed']} processed, {result['frames_dropped']} dropped; busy "
          f"{result['drain_s']:.1f} s after the last frame; fit {result['fit_ms_mean_of_periods']} ms mean, "
          f"encode latency up to {result['encode_latency_ms_max']} ms")
    print(f"  keyframes: {result['keyframes_expected']} expected (offline replay), {result['keyframes_live']} live, "
          f"{result['memories_stored']} stored ({result['bytes_per_memory']:.0f} B each)")
    print(f"  recall of one memory at 256x256 via the service: median {result['recall_ms_256_median']:.1f} ms, "
          f"p90 {result['recall_ms_256_p90']:.1f} ms ({result['recalls']} calls)")
    print(f"  machine: {result['machine']['cpus']} CPUs, load {result['machine']['load_avg_1m_at_end']} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
