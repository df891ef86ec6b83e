"""Run the node graph of ``launch/gaussvae.launch.py`` without ``ros2 launch``: ``gaussvae graph``.

Starts ``gaussvae_encoder``, ``gaussvae_memory`` and ``gaussvae_recall`` as separate processes
(``python -m gaussvae_ros.nodes.<node> --ros-args --params-file ... -r ...``), from the same
parameter file and with the same namespace, remappings and overrides the launch file applies,
optionally with a bag player (``gaussvae play``, as ``launch/replay.launch.py`` starts one).

Process handling:
* SIGINT / SIGTERM to the graph are forwarded to every child as SIGINT (the nodes shut down
  cleanly: worker joined, store closed); a child still running after ``grace_s`` gets SIGTERM,
  then SIGKILL. Children run in their own process groups (a terminal's Ctrl-C reaches them only
  through the graph, once) and get SIGTERM if the graph process itself dies (Linux
  ``PR_SET_PDEATHSIG``), so no orphan keeps the database open.
* A node that dies (crash, signal, an exit status other than 0 and 2) is started again after
  ``respawn_delay_s``, at most ``respawn`` times per node, each time logged (as ``respawn=True``
  in launch; :mod:`.respawn`). A node exiting with 0 or 2 (invalid parameters, a damaged or
  locked store), or dying once its respawns are used up, stops the whole graph; the graph's exit
  status is that node's (or 1 if it died by a signal).
* The player waits until the encoder subscribes to the recording's image topics it is configured
  for (``gaussvae play --wait-for``), as node start-up takes seconds.
* The player finishing is normal: with ``stop_after_play_s`` the graph stops that many seconds
  later (time for the encoder to drain its queue), otherwise the nodes keep running. A player
  that fails (exit status not 0: unreadable recording, no subscriber in time) stops the graph,
  whose exit status is then the player's.

The recording against the encoder (:func:`check_recording`, before anything starts): the types of
the recording's topics decide how the encoder subscribes to ``image_topic`` (Image or
CompressedImage) and ``odom_topic`` (Odometry or PoseStamped); a topic named on the command line
that the recording lacks or holds with another type, or a recording none of whose image topics
the encoder subscribes to, is an error (:class:`RecordingMismatch`) that names what the
recording holds.
* Exit status 0 after a requested stop when every node exited cleanly.

Launch-file equivalence (checked by ``test/test_launch.py``): parameters from the YAML file,
``namespace`` -> ``-r __ns:=``, ``image_topic`` / ``odom_topic`` / ``camera_info_topic`` ->
remaps of the encoder's default topic names ``image_raw`` / ``odom`` / ``camera_info``,
``database`` -> ``-p database:=`` for the memory and recall nodes, ``use_sim_time`` -> ``-p
use_sim_time:=true`` for every node.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from gaussvae_ros.bag.reader import BagReader

from gaussvae_ros.nodes import EXECUTABLES

from .respawn import Respawner

__all__ = ["GraphOptions", "RecordingMismatch", "check_recording", "default_params_file", "encoder_inputs",
           "graph_commands", "run_graph"]

#: Short node names accepted by ``--nodes`` -> executable names.
NODE_NAMES = {"encoder": "gaussvae_encoder", "memory": "gaussvae_memory", "recall": "gaussvae_recall"}

#: Encoder topic names the launch arguments remap.
TOPIC_REMAPS = {"image_topic": "image_raw", "odom_topic": "odom", "camera_info_topic": "camera_info"}

#: Encoder list parameters the options override (``-p NAME:=[topic]``), as the launch arguments
#: ``compressed_image_topics`` / ``pose_topics`` do.
TOPIC_LISTS = {"compressed_image_topic": "compressed_image_topics", "pose_topic": "pose_topics"}

IMAGE, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
ODOMETRY, POSE_STAMPED = "nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped"


class RecordingMismatch(ValueError):
    """The recording's topics do not fit what the encoder subscribes to (the text says how)."""


def default_params_file() -> Path:
    """``config/gaussvae.yaml`` of a source tree, else of the installed package's share folder (the
    ament index's after ``colcon build``, else the Python prefix's after ``pip install``)."""
    source = Path(__file__).resolve().parents[2] / "config" / "gaussvae.yaml"
    if source.exists():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("gaussvae_ros")) / "config" / "gaussvae.yaml"
    except Exception:  # no ament index, or the package is not in it
        return Path(sys.prefix) / "share" / "gaussvae_ros" / "config" / "gaussvae.yaml"


@dataclass
class GraphOptions:
    """What ``gaussvae graph`` starts (see the module docstring)."""

    params_file: Path = field(default_factory=default_params_file)
    namespace: str = ""
    database: str | None = None
    image_topic: str | None = None
    odom_topic: str | None = None
    camera_info_topic: str | None = None
    compressed_image_topic: str | None = None
    pose_topic: str | None = None
    image_reliability: str | None = None
    use_sim_time: bool = False
    nodes: tuple = ("encoder", "memory", "recall")
    log_level: str | None = None
    bag: str | None = None
    rate: float = 1.0
    stop_after_play_s: float | None = None
    grace_s: float = 10.0
    python: str = sys.executable
    respawn: int = 3
    respawn_delay_s: float = 1.0

    def __post_init__(self) -> None:
        self.params_file = Path(self.params_file)
        unknown = [n for n in self.nodes if n not in NODE_NAMES]
        if unknown:
            raise ValueError(f"unknown nodes {unknown}; choose from {', '.join(NODE_NAMES)}")
        if not self.nodes and not self.bag:
            raise ValueError("nothing to start: no nodes and no bag")
        if self.namespace and not self.namespace.startswith("/"):
            self.namespace = "/" + self.namespace
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.image_reliability not in (None, "reliable", "best_effort"):
            raise ValueError(f"image_reliability must be reliable or best_effort, got {self.image_reliability!r}")


def graph_commands(options: GraphOptions) -> list[tuple[str, list[str]]]:
    """``[(name, argv)]`` of the processes to start, nodes first, the player last."""
    if not options.params_file.is_file():
        raise FileNotFoundError(f"no parameter file at {options.params_file}")
    commands = []
    for short in options.nodes:
        executable = NODE_NAMES[short]
        argv = [options.python, "-m", EXECUTABLES[executable], "--ros-args", "-r", f"__node:={executable}",
                "--params-file", str(options.params_file)]
        if options.namespace:
            argv += ["-r", f"__ns:={options.namespace}"]
        if short == "encoder":
            reliability = options.image_reliability or ("reliable" if options.bag else None)
            if reliability:  # a recording played on loopback: subscribe reliably, lose no frame
                argv += ["-p", f"image_reliability:={reliability}"]
            for option, name in TOPIC_REMAPS.items():
                target = getattr(options, option)
                if target:
                    argv += ["-r", f"{name}:={target}"]
            for option, name in TOPIC_LISTS.items():
                if getattr(options, option):
                    argv += ["-p", f"{name}:=[{getattr(options, option)}]"]
        if short in ("memory", "recall") and options.database:
            argv += ["-p", f"database:={Path(options.database).expanduser().resolve()}"]
        if options.use_sim_time:
            argv += ["-p", "use_sim_time:=true"]
        if options.log_level:
            argv += ["--log-level", options.log_level]
        commands.append((executable, argv))
    if options.bag:
        argv = [options.python, "-m", "gaussvae_ros.cli.main", "play", str(options.bag), "--rate", f"{options.rate:g}",
                "--quiet"]
        if options.use_sim_time:
            argv += ["--clock"]
        wait_for = _played_inputs(options) if "encoder" in options.nodes else []
        if wait_for:  # start playing once the encoder listens (node start-up takes seconds)
            argv += ["--wait-for", *wait_for, "--wait-timeout", "120"]
        else:
            argv += ["--delay", "2"]
        commands.append(("player", argv))
    return commands


def encoder_subscriptions(options: GraphOptions) -> list[tuple[str, str]]:
    """``[(topic, message type)]`` the encoder subscribes to for images and poses, after namespacing,
    remapping and the options' list overrides, read from the parameter file."""
    data = yaml.safe_load(options.params_file.read_text()) or {}
    params = {}
    for key, section in data.items():
        if str(key).rstrip("/").split("/")[-1] == "gaussvae_encoder" and isinstance(section, dict):
            params.update(section.get("ros__parameters") or {})
    for option, name in TOPIC_LISTS.items():
        if getattr(options, option):
            params[name] = [getattr(options, option)]
    remaps = {name: getattr(options, option) for option, name in TOPIC_REMAPS.items() if getattr(options, option)}
    subscribed = []
    for name, msgtype, default in (("image_topics", IMAGE, ["image_raw"]), ("compressed_image_topics", COMPRESSED, []),
                                   ("odometry_topics", ODOMETRY, ["odom"]), ("pose_topics", POSE_STAMPED, [])):
        for topic in (str(t) for t in params.get(name, default) if t):
            topic = remaps.get(topic, topic)
            if not topic.startswith("/"):
                topic = f"{options.namespace.rstrip('/')}/{topic}"
            subscribed.append((topic, msgtype))
    return subscribed


def encoder_inputs(options: GraphOptions) -> list[str]:
    """The encoder's image topics after namespacing and remapping, read from the parameter file."""
    return [t for t, msgtype in encoder_subscriptions(options) if msgtype in (IMAGE, COMPRESSED)]


def check_recording(options: GraphOptions) -> tuple[GraphOptions, list[str]]:
    """Fit the encoder's subscriptions to the recording ``options.bag`` (see the module docstring).

    Returns ``(options, notes)``: the options with ``image_topic`` / ``odom_topic`` moved to
    ``compressed_image_topic`` / ``pose_topic`` where the recording holds them as CompressedImage /
    PoseStamped, and what was decided or is missing (no pose source: memories without pose).

    Raises:
        RecordingMismatch: a named topic the recording lacks or holds with a type the encoder
            cannot take there, or no image topic the encoder subscribes to in the recording.
        OSError / ValueError: the recording cannot be read.
    """
    if not options.bag:
        return options, []
    with BagReader(options.bag) as bag:
        recorded = {t.name: t.msgtype for t in bag.topics}
    holds = "; the recording holds " + (", ".join(f"{n} ({t})" for n, t in sorted(recorded.items())) or "no topics")
    notes = []
    changes = {}
    for option, accepted, moved_to in (("image_topic", (IMAGE, COMPRESSED), "compressed_image_topic"),
                                       ("odom_topic", (ODOMETRY, POSE_STAMPED), "pose_topic")):
        topic = getattr(options, option)
        if not topic or not topic.startswith("/"):
            continue
        if topic not in recorded:
            raise RecordingMismatch(f"--{option.replace('_', '-')} {topic}: no such topic in {options.bag}{holds}")
        if recorded[topic] not in accepted:
            raise RecordingMismatch(f"--{option.replace('_', '-')} {topic} is {recorded[topic]} in the recording, "
                                    f"the encoder takes {' or '.join(accepted)} there{holds}")
        if recorded[topic] == accepted[1] and not getattr(options, moved_to):
            changes.update({option: None, moved_to: topic})
            notes.append(f"{topic} is {accepted[1]} in the recording: subscribed as such "
                         f"(--{moved_to.replace('_', '-')})")
    for option, wanted in (("compressed_image_topic", COMPRESSED), ("pose_topic", POSE_STAMPED)):
        topic = changes.get(option, getattr(options, option))
        if topic and topic.startswith("/") and recorded.get(topic) != wanted:
            found = f"is {recorded[topic]}" if topic in recorded else "is not"
            raise RecordingMismatch(f"--{option.replace('_', '-')} {topic} {found} in the recording "
                                    f"(expected {wanted}){holds}")
    if changes:
        options = replace(options, **changes)
    subscribed = encoder_subscriptions(options)
    images = [(t, m) for t, m in subscribed if m in (IMAGE, COMPRESSED)]
    if "encoder" in options.nodes and not any(recorded.get(t) == m for t, m in images):
        wrong = [f"{t} is {recorded[t]}, subscribed as {m}" for t, m in images if t in recorded]
        raise RecordingMismatch(
            "the encoder subscribes to none of the recording's image topics: it takes "
            + ", ".join(f"{t} ({m})" for t, m in images) + (f" ({'; '.join(wrong)})" if wrong else "")
            + holds + "; name the camera with --image-topic or --compressed-image-topic")
    poses = [(t, m) for t, m in subscribed if m in (ODOMETRY, POSE_STAMPED)]
    if "encoder" in options.nodes and not any(recorded.get(t) == m for t, m in poses):
        notes.append("no pose source of the encoder (" + ", ".join(f"{t} ({m})" for t, m in poses)
                     + ") is in the recording: memories are stored without pose unless TF gives one")
    return options, notes


def _played_inputs(options: GraphOptions) -> list[str]:
    """Encoder inputs that the recording holds (what the player should wait for)."""
    try:
        with BagReader(options.bag) as bag:
            recorded = set(bag.image_topics)
    except Exception:  # unreadable here: the player reports it
        return []
    return [t for t in encoder_inputs(options) if t in recorded]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _log(text: str) -> None:
    print(f"gaussvae graph: {text}", file=sys.stderr, flush=True)


def run_graph(options: GraphOptions) -> int:
    """Start the graph and supervise it until a signal, a node's exit or the end of playback."""
    options, notes = check_recording(options)
    for note in notes:
        _log(note)
    commands = graph_commands(options)
    stop_reason: list[str] = []

    def request_stop(signum, frame) -> None:
        stop_reason.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen] = {}
    argvs = dict(commands)
    respawner = Respawner(options.respawn, options.respawn_delay_s)
    status = 0
    damaged: list[str] = []
    try:
        for name, argv in commands:
            children[name] = subprocess.Popen(argv, preexec_fn=_die_with_parent)
            _log(f"started {name} (pid {children[name].pid})")
        stop_at = None
        while not stop_reason:
            for name in respawner.due():
                children[name] = subprocess.Popen(argvs[name], preexec_fn=_die_with_parent)
                _log(f"respawned {name} (pid {children[name].pid})")
            for name, proc in children.items():
                code = proc.poll()
                if code is None or respawner.waiting(name):
                    continue
                if name == "player":
                    if code == 4 and not damaged:  # played past damaged parts of the recording (reported)
                        damaged.append(name)
                        _log("player skipped damaged parts of the recording (exit 4); the rest was played")
                    if code not in (0, 4) and stop_at is None:
                        _log(f"player failed with status {code}; stopping the graph")
                        status = code if code > 0 else 1
                        stop_reason.append("player failed")
                        break
                    if stop_at is None and options.stop_after_play_s is not None:
                        _log(f"player finished (exit {code}); stopping in {options.stop_after_play_s:g} s")
                        stop_at = time.monotonic() + options.stop_after_play_s
                    elif stop_at is None:
                        _log(f"player finished (exit {code}); nodes keep running (Ctrl-C to stop)")
                        stop_at = float("inf")
                    continue
                line = respawner.decide(name, code)
                if line is not None:
                    _log(line)
                    continue
                if respawner.counts.get(name, 0) >= options.respawn and code not in (0, 2):
                    _log(f"{name} died again after {options.respawn} respawns")
                _log(f"{name} exited on its own with status {code}; stopping the graph")
                status = code if code > 0 else 1
                stop_reason.append(f"{name} exited")
                break
            if stop_at is not None and time.monotonic() >= stop_at:
                stop_reason.append("playback done")
            time.sleep(0.1)
        _log(f"stopping ({stop_reason[0]})")
    finally:
        codes = _stop_all(children, options.grace_s)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if status == 0 and damaged:
        status = 4  # as gaussvae play: something was skipped
    if status == 0:
        failed = {n: c for n, c in codes.items() if n != "player" and c not in (0, -signal.SIGINT)}
        if failed:
            _log(f"unclean exit: {failed}")
            status = 1
    return status


def _stop_all(children: dict, grace_s: float) -> dict[str, int]:
    """SIGINT every running child, then SIGTERM / SIGKILL the ones that do not exit in time."""
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        running = [p for p in children.values() if p.poll() is None]
        if not running:
            break
        for proc in running:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if sig != signal.SIGINT:
            _log(f"sent {sig.name} to {len(running)} process(es) that did not stop in time")
    return {name: proc.returncode for name, proc in children.items()}
