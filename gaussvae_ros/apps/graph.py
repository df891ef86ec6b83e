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
* The player exiting is normal: with ``stop_after_play_s`` the graph stops that many seconds
  later (time for the encoder to drain its queue), otherwise the nodes keep running.
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
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gaussvae_ros.bag.reader import BagReader

from gaussvae_ros.nodes import EXECUTABLES

from .respawn import Respawner

__all__ = ["GraphOptions", "default_params_file", "encoder_inputs", "graph_commands", "run_graph"]

#: Short node names accepted by ``--nodes`` -> executable names.
NODE_NAMES = {"encoder": "gaussvae_encoder", "memory": "gaussvae_memory", "recall": "gaussvae_recall"}

#: Encoder topic names the launch arguments remap.
TOPIC_REMAPS = {"image_topic": "image_raw", "odom_topic": "odom", "camera_info_topic": "camera_info"}


def default_params_file() -> Path:
    """``config/gaussvae.yaml`` of a source tree, or of the installed package's share folder."""
    source = Path(__file__).resolve().parents[1] / "config" / "gaussvae.yaml"
    if source.exists():
        return source
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
            if options.bag:  # a recording played on loopback: subscribe reliably, lose no frame
                argv += ["-p", "image_reliability:=reliable"]
            for option, name in TOPIC_REMAPS.items():
                target = getattr(options, option)
                if target:
                    argv += ["-r", f"{name}:={target}"]
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


def encoder_inputs(options: GraphOptions) -> list[str]:
    """The encoder's image topics after namespacing and remapping, read from the parameter file."""
    data = yaml.safe_load(options.params_file.read_text()) or {}
    params = {}
    for key, section in data.items():
        if str(key).rstrip("/").split("/")[-1] == "gaussvae_encoder" and isinstance(section, dict):
            params.update(section.get("ros__parameters") or {})
    topics = list(params.get("image_topics", ["image_raw"])) + list(params.get("compressed_image_topics", []))
    remaps = {name: getattr(options, option) for option, name in TOPIC_REMAPS.items() if getattr(options, option)}
    resolved = []
    for topic in (str(t) for t in topics if t):
        topic = remaps.get(topic, topic)
        if not topic.startswith("/"):
            topic = f"{options.namespace.rstrip('/')}/{topic}"
        resolved.append(topic)
    return resolved


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
    commands = graph_commands(options)
    stop_reason: list[str] = []

    def request_stop(signum, frame) -> None:
        stop_reason.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen] = {}
    argvs = dict(commands)
    respawner = Respawner(options.respawn, options.respawn_delay_s)
    status = 0
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
