"""``gaussvae play BAG``: publish a rosbag2 recording live over DDS, like ``ros2 bag play``.

Messages go out on their recorded topics and types with their recorded contents (header stamps
intact), paced by bag time at ``--rate``; ``--clock`` also publishes ``/clock`` for nodes with
``use_sim_time``. QoS is reliable by default (matches reliable and best-effort subscribers, nothing
dropped on loopback); ``--qos sensor`` publishes best-effort like a camera driver. See
:mod:`gaussvae_ros.apps.player`. Progress goes to stderr, ``--json`` prints a summary on stdout.

A damaged part of the recording (an MCAP chunk, a SQLite page, a truncated file) is skipped and
played past; it is listed on stderr and in the report (``damaged``, ``lost``), and the exit status is
4. Other statuses: 0 played, 2 an error, 3 no subscriber in time (``--wait-for``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def _yes_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "y", "true", "1", "on"):
        return True
    if value in ("no", "n", "false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def _remap(text: str) -> tuple[str, str]:
    if ":=" not in text:
        raise argparse.ArgumentTypeError(f"remap must look like FROM:=TO, got {text!r}")
    a, b = text.split(":=", 1)
    if not a or not b:
        raise argparse.ArgumentTypeError(f"remap must look like FROM:=TO, got {text!r}")
    return a, b


def _play(args: argparse.Namespace) -> int:
    from gaussvae_ros.apps.player import PlayOptions, Player

    options = PlayOptions(
        rate=args.rate, topics=args.topics, clock=args.clock is not None, clock_hz=args.clock or 40.0,
        loop=args.loop, max_loops=args.max_loops, start_paused=args.start_paused, qos=args.qos,
        depth=args.depth, delay_s=args.delay, wait_for=args.wait_for or [], wait_timeout_s=args.wait_timeout,
        start_offset_s=args.start_offset, check=not args.no_check, remap=dict(args.remap or []),
        node_name=args.node_name, progress=not args.quiet)
    player = Player(args.bag, options)

    def interrupt(signum, frame):
        player.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, interrupt)
    if args.start_paused and not args.quiet:
        print(f"gaussvae play: paused; call the {args.node_name}/resume service (std_srvs/Trigger) to start",
              file=sys.stderr, flush=True)
    try:
        report = player.run()
    except TimeoutError as exc:
        print(f"gaussvae play: error: {exc}", file=sys.stderr)
        return 3
    for warning in report.warnings:
        print(f"gaussvae play: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
    elif not args.quiet:
        print(f"played {report.messages_published} messages on {len(report.topics)} topics, "
              f"{report.bag_seconds:.2f} s of bag time in {report.wall_seconds:.2f} s "
              f"(rate {args.rate:g}, achieved {report.achieved_rate or 0:.3f}), max lag {report.max_lag_ms:.1f} ms"
              + (f", {report.clock_published} /clock" if options.clock else "")
              + (f", {report.malformed} malformed skipped" if report.malformed else ""))
    if report.damaged:
        from .replay_commands import EXIT_DAMAGED, print_damage

        print_damage("gaussvae play", report.damaged, report.lost, "messages")
        if not report.interrupted:
            return EXIT_DAMAGED
    return 130 if report.interrupted else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("play", help="publish a rosbag2 recording live over DDS (like ros2 bag play)",
                              description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="rosbag2 folder (sqlite3 or mcap)")
    p.add_argument("-r", "--rate", type=float, default=1.0, help="speed factor (default 1.0)")
    p.add_argument("--clock", type=float, nargs="?", const=40.0, default=None, metavar="HZ",
                   help="publish /clock with bag time, HZ times a second (default 40)")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics")
    p.add_argument("-l", "--loop", action="store_true", help="start over at the end until interrupted")
    p.add_argument("--max-loops", type=int, metavar="N", help="with --loop: stop after N passes")
    p.add_argument("--start-paused", type=_yes_no, nargs="?", const=True, default=False, metavar="yes|no",
                   help="wait for the ~/resume service before playing (default no)")
    p.add_argument("--qos", choices=("reliable", "sensor"), default="reliable",
                   help="reliable (default: matches every subscriber, no loss on loopback) or sensor "
                        "(best-effort, depth 5, like a camera driver)")
    p.add_argument("--depth", type=int, default=100, help="history depth of the reliable profile (default 100)")
    p.add_argument("-d", "--delay", type=float, default=0.0, metavar="S",
                   help="wait S seconds after creating the publishers (discovery)")
    p.add_argument("--wait-for", nargs="+", metavar="TOPIC",
                   help="wait until each of these topics has a subscriber (then 0.5 s more, for the "
                        "subscriber to match back) before playing")
    p.add_argument("--wait-timeout", type=float, default=10.0, metavar="S",
                   help="give up waiting for --wait-for after S seconds (exit 3)")
    p.add_argument("--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds")
    p.add_argument("--remap", type=_remap, nargs="+", metavar="FROM:=TO", help="publish a topic under another name")
    p.add_argument("--no-check", action="store_true",
                   help="publish without deserializing each message first (malformed ones go out too)")
    p.add_argument("--node-name", default="gaussvae_player", help="player node name (default gaussvae_player)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_play)
