"""``gaussvae replay BAG --db FILE``: fit a recording's keyframes into a visual memory database.

Exit status: 0 the recording was read whole; 4 memories were stored but parts of the recording were
damaged and skipped (listed on stderr and in the report's ``damaged`` / ``frames_lost``); 1 nothing
was stored from a non-empty recording (every frame unreadable, unfittable or lost); 2 an error
(bad arguments, an unreadable recording or store).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _replay(args: argparse.Namespace) -> int:
    from gaussvae_ros.bag.keyframes import KeyframeConfig
    from gaussvae_ros.apps.replay import ReplayOptions, process_seconds, replay_bag

    # count the command's whole wall time, interpreter start-up and imports included
    started = time.perf_counter() - (process_seconds() or 0.0)
    keyframes = KeyframeConfig(
        max_interval_s=args.max_interval, min_interval_s=args.min_interval,
        min_translation_m=args.min_translation, min_rotation_rad=args.min_rotation,
        min_image_change=args.min_image_change, duplicate_image_change=args.duplicate_image_change)
    options = ReplayOptions(
        image_topics=args.image_topic or None,
        pose_topic="" if args.no_pose_topic else args.pose_topic,
        long_side=args.size, n_gaussians=args.gaussians, no_pose=args.no_pose, keyframes=keyframes,
        batch_size=args.batch_size, max_iters=args.iterations or None,
        warm_start_max_change=args.warm_start_max_change, threads=args.threads or None,
        progress=not args.quiet and not args.json, dry_run=args.dry_run, seed=args.seed, codec=args.codec,
        memory_bytes=args.memory_bytes, latent_model=args.latent_model, latent_step=args.latent_step, latent_max_bytes=args.latent_max_bytes,
        latent_refine_iters=args.latent_refine_iters, latent_tiles=args.latent_tiles,
        busy_timeout_s=args.busy_timeout, lock_give_up_s=args.lock_give_up)
    if args.db is None and not args.dry_run:
        raise ValueError("--db FILE is required (or --dry-run)")
    report = replay_bag(args.bag, args.db, options, started=started)
    data = report.to_dict()
    if args.json:
        print(json.dumps(data))
    else:
        _print_summary(data)
    for warning in report.warnings:
        print(f"gaussvae replay: warning: {warning}", file=sys.stderr)
    return replay_status(report, "gaussvae replay", dry_run=args.dry_run)


#: Exit status of a command (replay, play, dataset from-bag) that did its work but skipped damaged
#: parts of the recording.
EXIT_DAMAGED = 4


def print_damage(command: str, damaged: list, lost: dict, what: str = "frames") -> None:
    """Say on stderr which parts of a recording were skipped (``BagReader.damage_report``)."""
    for part in damaged:
        lost_here = ", ".join(f"{t}: {n}" for t, n in sorted(part["lost"].items()))
        when = f" bag time {part['start_ns']}-{part['end_ns'] if part['end_ns'] is not None else 'end'}" \
            if part["start_ns"] is not None else ""
        print(f"{command}: damaged recording: {part['where']}{when}: {part['error']}"
              + (f" (lost: {lost_here})" if lost_here else ""), file=sys.stderr)
    if lost:
        print(f"{command}: {sum(lost.values())} {what} lost to damage ("
              + ", ".join(f"{t}: {n}" for t, n in sorted(lost.items())) + ")", file=sys.stderr)


def replay_status(report, command: str, dry_run: bool = False) -> int:
    """The exit status of a replay (see the module docstring); says on stderr what was skipped."""
    print_damage(command, report.damaged, report.frames_lost)
    if not dry_run and report.nothing_stored:
        print(f"{command}: error: nothing stored from {max(report.frames_in_recording, report.frames_read)} "
              f"frames ({report.error_count} errors"
              + (f", {sum(report.frames_lost.values())} lost to damage" if report.frames_lost else "") + ")",
              file=sys.stderr)
        return 1
    return EXIT_DAMAGED if report.damaged else 0


def _print_summary(data: dict) -> None:
    print(f"{data['bag']}: {data['frames_read']} frames read, {data['memories_stored']} memories stored"
          f" ({data['already_stored']} already stored), {data['error_count']} errors, {data['seconds']:.1f} s")
    if data["damaged"]:
        print(f"  damaged recording: {len(data['damaged'])} unreadable parts skipped, "
              f"{sum(data['frames_lost'].values())} frames lost")
    for topic, counts in data["per_topic"].items():
        size = data["working_size"].get(topic, {})
        print(f"  {topic}: {counts['frames']} frames, {counts['stored']} stored, {counts['errors']} errors"
              + (f", fitted at {size['width']}x{size['height']}" if size else ""))
    if data["mean_psnr"] is not None:
        print(f"  mean PSNR {data['mean_psnr']:.2f} dB, {data['bytes_per_memory']:.0f} bytes per memory")
    if data["skipped"]:
        print("  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(data["skipped"].items())))
    for error in data["errors"][:10]:
        print(f"  error: {error}")


def register(subparsers) -> None:
    from gaussvae_ros.bag.keyframes import KeyframeConfig
    from gaussvae_ros.apps.replay import DEFAULT_BATCH_SIZE
    from gaussvae_ros.codecs import ENCODABLE_CODECS, LATENT_TILE_SETTINGS
    from gaussvae_ros.pipeline import (DEFAULT_GAUSSIANS, DEFAULT_LONG_SIDE, DEFAULT_MAX_ITERS, DEFAULT_MEMORY_BYTES,
                                       DEFAULT_MEMORY_CODEC, DEFAULT_THREADS, DEFAULT_WARM_START_MAX_CHANGE)

    k = KeyframeConfig()
    p = subparsers.add_parser(
        "replay", help="fit the keyframes of a rosbag2 recording into a memory database",
        description="Replay a rosbag2 recording (sqlite3 or mcap): every image topic by default, each camera kept "
                    "apart; keyframes are fitted with 2D Gaussians at a working resolution and stored with their "
                    "pose, time and camera. Re-running stores nothing twice; an interrupted run resumes.")
    p.add_argument("bag", help="rosbag2 folder")
    p.add_argument("--db", help="memory database (SQLite file, created if missing)")
    p.add_argument("--image-topic", action="append", metavar="T", help="image topic to replay (repeatable; "
                   "default: all Image / CompressedImage topics)")
    p.add_argument("--pose-topic", metavar="P", help="Odometry / PoseStamped topic (default: the only one)")
    p.add_argument("--no-pose-topic", action="store_true", help="ignore poses")
    p.add_argument("--no-pose", choices=("store", "skip"), default="store",
                   help="frames without a pose: store them anyway (time-queryable) or skip them (default: store)")
    p.add_argument("--size", type=int, default=DEFAULT_LONG_SIDE, metavar="LONG_SIDE",
                   help=f"working resolution, pixels of the long side (default {DEFAULT_LONG_SIDE})")
    p.add_argument("--gaussians", type=int, default=DEFAULT_GAUSSIANS,
                   help=f"Gaussians per memory with --memory-bytes 0 (default {DEFAULT_GAUSSIANS})")
    p.add_argument("--iterations", type=int, default=DEFAULT_MAX_ITERS, metavar="N",
                   help=f"fitting iterations per memory (default {DEFAULT_MAX_ITERS}; 0: the fitter's own budget)")
    p.add_argument("--warm-start-max-change", type=float, default=DEFAULT_WARM_START_MAX_CHANGE, metavar="D",
                   help="warm-start from the previous keyframe only when the frames differ by less than this "
                        f"(thumbnail mean absolute difference; default {DEFAULT_WARM_START_MAX_CHANGE}, 0: never)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"memories per transaction (default {DEFAULT_BATCH_SIZE})")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                   help=f"CPU threads for fitting (default {DEFAULT_THREADS}; 0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--busy-timeout", type=float, default=5.0, metavar="S",
                   help="seconds one write waits for another program's lock on the store (default 5)")
    p.add_argument("--lock-give-up", type=float, default=600.0, metavar="S",
                   help="a fitted batch the store does not take (locked, disk full) is kept and retried with "
                        "backoff for this long before the replay stops (default 600 s)")
    g = p.add_argument_group("payload codec")
    g.add_argument("--codec", choices=ENCODABLE_CODECS, default=DEFAULT_MEMORY_CODEC,
                   help=f"how memories are stored (default {DEFAULT_MEMORY_CODEC}: entropy-coded Gaussians fitted to "
                        "--memory-bytes; gaussians-q: quantized Gaussians, 72 bits each; vae-latent: the "
                        "entropy-coded VAE latent, lossier)")
    g.add_argument("--memory-bytes", type=int, default=DEFAULT_MEMORY_BYTES, metavar="B",
                   help=f"byte budget of one memory (default {DEFAULT_MEMORY_BYTES}; 0: the codec's own size, "
                        "e.g. --gaussians Gaussians for gaussians-q): gaussians-rd fits each frame to it, gaussians-q "
                        "stores as many Gaussians as fit, vae-latent the finest step that fits")
    g.add_argument("--latent-model", default="", metavar="FILE",
                   help="vae-latent model file (default: the model shipped with the package)")
    g.add_argument("--latent-step", type=float, default=0.0, metavar="S",
                   help="vae-latent quantization step (default: the codec's, 1.0; larger = fewer bytes)")
    g.add_argument("--latent-max-bytes", type=int, default=0, metavar="B",
                   help="vae-latent: finest step whose payload fits B bytes (default: off, use --latent-step)")
    g.add_argument("--latent-refine-iters", type=int, default=0, metavar="N",
                   help="vae-latent: refine each latent against its frame for N steps (~10 ms each; "
                        "better pictures at the same bytes; default 0: off)")
    g.add_argument("--latent-tiles", type=int, default=1, choices=LATENT_TILE_SETTINGS, metavar="T",
                   help="vae-latent: one latent per tile of a T-tile grid (1, 2, 4, 8, 16; each tile fitted again; "
                        "more Gaussians for larger budgets), 0 = choose 1, 2, 4 or 8 per frame within "
                        "--latent-max-bytes (default 1)")
    g = p.add_argument_group("keyframe policy")
    g.add_argument("--min-translation", type=float, default=k.min_translation_m, metavar="M",
                   help=f"metres moved since the last keyframe (default {k.min_translation_m})")
    g.add_argument("--min-rotation", type=float, default=k.min_rotation_rad, metavar="RAD",
                   help=f"radians turned (default {k.min_rotation_rad})")
    g.add_argument("--min-image-change", type=float, default=k.min_image_change, metavar="D",
                   help=f"thumbnail mean absolute difference (default {k.min_image_change})")
    g.add_argument("--duplicate-image-change", type=float, default=k.duplicate_image_change, metavar="D",
                   help=f"below this a frame is a near-duplicate, never stored (default {k.duplicate_image_change})")
    g.add_argument("--max-interval", type=float, default=k.max_interval_s, metavar="S",
                   help=f"seconds after which a changed frame is stored anyway (default {k.max_interval_s})")
    g.add_argument("--min-interval", type=float, default=k.min_interval_s, metavar="S",
                   help=f"never store two keyframes closer than this (default {k.min_interval_s})")
    p.add_argument("--dry-run", action="store_true", help="decide keyframes only; fit and write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_replay)
