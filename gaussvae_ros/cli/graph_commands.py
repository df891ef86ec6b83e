"""``gaussvae graph``: start the encoder, memory and recall nodes as one graph (``ros2 launch`` stand-in).

Runs the same graph as ``ros2 launch gaussvae_ros gaussvae.launch.py`` (and, with ``--bag``, as
``replay.launch.py``) from the same parameter file, one process per node; Ctrl-C stops every node
cleanly. See :mod:`gaussvae_ros.apps.graph`. Examples::

    gaussvae graph --params config/gaussvae.yaml --database /tmp/memories.db \\
        --image-topic /camera/image_raw --odom-topic /odom
    gaussvae graph --database /tmp/kitti.db --image-topic /camera/image_raw --odom-topic /odom \\
        --camera-info-topic /camera/camera_info --use-sim-time \\
        --bag ../shared/data/bags/kitti07_mono8_mcap --stop-after-play 10
    gaussvae graph --database /tmp/kitti.db --use-sim-time --bag ../shared/data/bags/kitti07_compressed_sqlite3 \
        --compressed-image-topic /camera/image_raw/compressed --pose-topic /pose

With ``--bag``, the recording's topic types are checked against what the encoder subscribes to
before anything starts: ``--image-topic`` / ``--odom-topic`` naming a CompressedImage / PoseStamped
topic of the recording subscribe with that type, and a named topic the recording lacks (or holds
with another type), or no image topic of the recording subscribed, is an error (exit status 2).
A player that fails stops the graph with its exit status.

Started apart (``gaussvae graph`` here, ``gaussvae play`` elsewhere), the player loses no frame
when it waits for the encoder: ``gaussvae play BAG --clock --wait-for TOPIC`` (and the graph with
``--image-reliability reliable`` for a recording played on loopback).
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _graph(args: argparse.Namespace) -> int:
    from gaussvae_ros.apps.graph import GraphOptions, check_recording, graph_commands, run_graph

    try:
        options = GraphOptions(
            params_file=args.params, namespace=args.namespace or "", database=args.database,
            image_topic=args.image_topic, odom_topic=args.odom_topic, camera_info_topic=args.camera_info_topic,
            compressed_image_topic=args.compressed_image_topic, pose_topic=args.pose_topic,
            image_reliability=args.image_reliability, use_sim_time=args.use_sim_time, nodes=tuple(args.nodes),
            log_level=args.log_level, bag=args.bag, rate=args.rate, stop_after_play_s=args.stop_after_play,
            grace_s=args.grace, respawn=args.respawn, respawn_delay_s=args.respawn_delay)
        if args.print_commands:
            options, notes = check_recording(options)
            for note in notes:
                print(f"gaussvae graph: {note}", file=sys.stderr)
            for name, argv in graph_commands(options):
                print(f"{name}: {shlex.join(argv)}")
            return 0
        return run_graph(options)
    except (ValueError, OSError) as exc:  # a mismatched or unreadable recording, a bad option
        print(f"gaussvae graph: error: {exc}", file=sys.stderr)
        return 2


def register(subparsers) -> None:
    from gaussvae_ros.apps.graph import NODE_NAMES, default_params_file

    p = subparsers.add_parser("graph", help="run the encoder, memory and recall nodes (like ros2 launch)",
                              description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default=str(default_params_file()), metavar="YAML",
                   help="ROS 2 parameter file (default: config/gaussvae.yaml)")
    p.add_argument("--namespace", "-n", default="", help="namespace of every node (default: none)")
    p.add_argument("--database", help="memory store file (overrides the parameter file)")
    p.add_argument("--image-topic", help="encoder input: remaps image_raw to this topic")
    p.add_argument("--odom-topic", help="encoder pose source: remaps odom to this topic")
    p.add_argument("--camera-info-topic", help="encoder intrinsics: remaps camera_info to this topic")
    p.add_argument("--compressed-image-topic", metavar="TOPIC",
                   help="encoder input: a sensor_msgs/CompressedImage topic (sets compressed_image_topics)")
    p.add_argument("--pose-topic", metavar="TOPIC",
                   help="encoder pose source: a geometry_msgs/PoseStamped topic (sets pose_topics)")
    p.add_argument("--image-reliability", choices=("reliable", "best_effort"),
                   help="encoder image QoS (default: reliable with --bag, else the parameter file's)")
    p.add_argument("--use-sim-time", action="store_true",
                   help="every node on /clock time (and the player publishes it)")
    p.add_argument("--nodes", nargs="+", default=list(NODE_NAMES), choices=list(NODE_NAMES),
                   help="nodes to start (default: all three)")
    p.add_argument("--log-level", choices=("debug", "info", "warn", "error", "fatal"), help="log level of the nodes")
    p.add_argument("--bag", help="also play this rosbag2 recording (gaussvae play), like replay.launch.py")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor with --bag (default 1)")
    p.add_argument("--stop-after-play", type=float, metavar="S",
                   help="with --bag: stop the graph S seconds after playback ends (default: keep running)")
    p.add_argument("--grace", type=float, default=10.0, metavar="S",
                   help="seconds a node gets to exit after SIGINT before SIGTERM / SIGKILL (default 10)")
    p.add_argument("--respawn", type=int, default=3, metavar="N",
                   help="start a node that dies (not exit status 0 or 2) again, at most N times (default 3; 0: never)")
    p.add_argument("--respawn-delay", type=float, default=1.0, metavar="S", help="seconds before a respawn (default 1)")
    p.add_argument("--print-commands", action="store_true", help="print the process command lines and exit")
    p.set_defaults(func=_graph)
