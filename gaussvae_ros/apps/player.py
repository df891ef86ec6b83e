"""Live replay of a rosbag2 recording over DDS: what ``ros2 bag play`` does, without a ROS install.

:class:`Player` reads a recording (sqlite3 or mcap, via ``rosbags``) and publishes its messages
with rclpy on their original topics and types, paced by the recording's receive times (bag time)
at a rate factor, optionally publishing ``/clock`` (``rosgraph_msgs/Clock``) for nodes running
with ``use_sim_time``. ``gaussvae play`` is its command line.

How messages are published
    A recording holds each message as CDR bytes, exactly what the recording node received. The
    player publishes those bytes as they are (``Publisher.publish(bytes)``: no Python message is
    built, no re-serialization), so every field, header stamps and frame ids included, arrives
    unchanged. Before publishing, each message is checked by deserializing it into its rclpy type
    (``rclpy.serialization.deserialize_message``); a message that does not parse (truncated or
    corrupt, or recorded with another definition of its type) is counted as malformed and skipped,
    never sent to subscribers that would choke on it. ``check=False`` skips that check.

Which topics
    Every topic whose type has a Python module in this environment (``sensor_msgs`` Image,
    CompressedImage, CameraInfo, Imu...; ``nav_msgs`` Odometry; ``geometry_msgs`` PoseStamped;
    ``tf2_msgs`` TFMessage when installed; ``std_msgs``; ``diagnostic_msgs``; this project's
    ``gaussvae_ros_interfaces`` once ``build_ros/env.sh`` is sourced). Topics of other types are
    skipped with a warning. ``topics`` restricts playback to the named topics.

Timing
    Message ``i`` is published at ``wall_start + (bag_time_i - bag_time_0) / rate`` (plus time
    spent paused). Messages are read ahead on a separate thread, so reading and decompressing the
    recording does not delay publishing. When the player falls behind (a slow machine, a rate
    factor too high), it publishes as fast as it can and reports the lag (``max_lag_ms``).
    ``/clock`` carries bag time, advancing at ``rate`` times wall time, published ``clock_hz``
    times per second (default 40, like ``ros2 bag play --clock``), frozen while paused.

QoS
    ``reliable`` (default): reliable, volatile, keep-last ``depth`` (100); a topic recorded with a
    transient-local offer (latched state, ``gaussvae db export --bag``'s ``/memories``) is published
    transient local, as ``ros2 bag play`` adapts durability to the recorded offers. A reliable publisher
    matches both reliable and best-effort subscriptions, so a node subscribing with the sensor-data
    profile a camera driver uses still receives everything, and on loopback nothing is dropped by
    the transport. ``sensor``: best-effort, keep-last 5 (``qos_profile_sensor_data``), what most
    camera drivers publish with; reliable subscribers then do not match. ``/clock`` is always
    reliable with depth 1 (it matches rclpy's best-effort clock subscription).
    Latched topics, in either mode: a topic recorded with a transient-local offer, and
    ``/tf_static`` always (REP 105: static transforms are latched; recordings without QoS metadata
    lose that otherwise), is played reliable and transient local, keeping every message of the
    recording (depth = its message count, at least ``depth``), so a TF listener started later still
    gets every static transform. ``topics[name]["qos"]`` in the report says which.

Pausing
    ``start_paused`` waits for a resume. While playing, the player offers ``std_srvs/Trigger``
    services ``~/pause``, ``~/resume`` and ``~/toggle_paused`` (node name ``gaussvae_player`` by
    default), and :meth:`Player.pause` / :meth:`Player.resume` / :meth:`Player.stop` from Python.

The player uses its own rclpy context, so it can run in a process that also runs other nodes.
"""

from __future__ import annotations

import importlib
import math
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

# rclpy and the message packages are imported when the player runs: the demo imports this module for
# its options, and its recording half works without a ROS install.

__all__ = ["PlayOptions", "PlayReport", "Player", "message_class", "play_bag"]

#: Messages read ahead of publishing.
READ_AHEAD = 64


def _offered_transient_local(connection) -> bool:
    """Whether a rosbag2 connection was recorded with a transient-local offered QoS."""
    offers = getattr(getattr(connection, "ext", None), "offered_qos_profiles", None) or []
    if isinstance(offers, str):  # older metadata: YAML text
        return "durability: 1" in offers or "transient_local" in offers.lower()
    return any(getattr(getattr(q, "durability", None), "name", "") == "TRANSIENT_LOCAL" for q in offers)


def message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name`` (or ``pkg/Name``); raises ImportError/AttributeError."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a message type name: {msgtype!r}")
    module = importlib.import_module(f"{parts[0]}.{parts[1]}")
    return getattr(module, parts[2])


@dataclass
class PlayOptions:
    """How to play a recording.

    Attributes:
        rate: playback speed factor (2.0 = twice as fast as recorded).
        topics: topics to play (default: all playable ones).
        clock: publish ``/clock`` with bag time.
        clock_hz: ``/clock`` messages per second of wall time.
        loop: start over at the end, until stopped (or ``max_loops`` passes).
        max_loops: with ``loop``, stop after this many passes (None: until stopped).
        start_paused: wait for a resume (service or :meth:`Player.resume`) before the first message.
        qos: ``reliable`` or ``sensor`` (see the module docstring).
        depth: history depth of the reliable profile.
        delay_s: wait this long after creating the publishers before playing (discovery).
        wait_for: topics that must have at least one matched subscriber before playing starts.
        wait_timeout_s: give up (error) when ``wait_for`` is not satisfied within this time.
        settle_s: once ``wait_for`` is satisfied, wait this long more. A publisher sees a subscriber
            a moment before that subscriber has matched the publisher, and a best-effort
            subscriber drops what arrives in between (the first frames of a replay).
        start_offset_s: skip this much of the start of the recording (bag time, seconds).
        check: deserialize each message before publishing it; malformed ones are skipped.
        ack_timeout_s: at the end, wait up to this long for reliable subscribers to acknowledge.
        node_name: name of the player node (its services are under it).
        remap: ``{recorded topic: published topic}``.
        progress: print progress lines to stderr.
    """

    rate: float = 1.0
    topics: list[str] | None = None
    clock: bool = False
    clock_hz: float = 40.0
    loop: bool = False
    max_loops: int | None = None
    start_paused: bool = False
    qos: str = "reliable"
    depth: int = 100
    delay_s: float = 0.0
    wait_for: list[str] = field(default_factory=list)
    wait_timeout_s: float = 10.0
    settle_s: float = 0.5
    start_offset_s: float = 0.0
    check: bool = True
    ack_timeout_s: float = 5.0
    node_name: str = "gaussvae_player"
    remap: dict = field(default_factory=dict)
    progress: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if not (math.isfinite(self.clock_hz) and self.clock_hz > 0):
            raise ValueError(f"clock rate must be a positive number of Hz, got {self.clock_hz}")
        if self.qos not in ("reliable", "sensor"):
            raise ValueError(f"qos must be 'reliable' or 'sensor', got {self.qos!r}")
        if int(self.depth) < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")
        if self.max_loops is not None and int(self.max_loops) < 1:
            raise ValueError(f"max_loops must be at least 1, got {self.max_loops}")
        for name in ("delay_s", "wait_timeout_s", "settle_s", "start_offset_s", "ack_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value}")


@dataclass
class PlayReport:
    """What a playback did.

    ``published``/``malformed`` per topic (all passes), ``skipped_topics`` topic -> why it was not
    played, ``clock_published`` ``/clock`` messages, ``bag_seconds`` bag time covered by one pass,
    ``wall_seconds`` time from the first message to the last (pauses included, ``paused_seconds``),
    ``achieved_rate`` bag seconds played per wall second outside pauses, ``max_lag_ms`` /
    ``mean_lag_ms`` how late messages went out against their schedule, ``acked`` whether reliable
    subscribers acknowledged everything at the end (None: not waited for). ``damaged`` the parts of
    the recording that could not be read and were skipped (a damaged chunk or page, a truncated file;
    see :meth:`~gaussvae_ros.bag.reader.BagReader.damage_report`), ``lost`` messages lost per topic.
    """

    bag: str
    rate: float
    qos: str
    topics: dict = field(default_factory=dict)
    skipped_topics: dict = field(default_factory=dict)
    messages_published: int = 0
    malformed: int = 0
    clock_published: int = 0
    loops: int = 0
    bag_start_ns: int | None = None
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    paused_seconds: float = 0.0
    achieved_rate: float | None = None
    max_lag_ms: float = 0.0
    mean_lag_ms: float = 0.0
    acked: bool | None = None
    interrupted: bool = False
    warnings: list = field(default_factory=list)
    damaged: list = field(default_factory=list)
    lost: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


_END = object()  # end of one pass through the recording

#: Topics played transient local whatever the recording says (REP 105's static transforms).
LATCHED_TOPICS = ("/tf_static",)


def recorded_durability(connections) -> str:
    """``"transient_local"`` when any of the recorded publishers (rosbags connections of one topic)
    offered transient-local durability, else ``"volatile"`` (also when the recording has no QoS)."""
    return "transient_local" if any(_offered_transient_local(c) for c in connections) else "volatile"


def played_qos(topic: str, connections) -> tuple[str, int | None]:
    """``(durability, depth)`` a topic is played with: transient local for :data:`LATCHED_TOPICS`
    and recorded transient-local topics, with a depth holding all of its messages; else volatile
    with the player's ``depth`` (``None``)."""
    if topic in LATCHED_TOPICS or recorded_durability(connections) == "transient_local":
        return "transient_local", sum(int(getattr(c, "msgcount", 0) or 0) for c in connections)
    return "volatile", None


class Player:
    """Plays one recording; :meth:`run` blocks until it has played (or :meth:`stop` is called).

    ``pause``, ``resume`` and ``stop`` may be called from any thread.
    """

    def __init__(self, bag_path: str | Path, options: PlayOptions | None = None) -> None:
        self.bag_path = Path(bag_path)
        self.options = options or PlayOptions()
        self._stop = threading.Event()
        self._resumed = threading.Event()
        if not self.options.start_paused:
            self._resumed.set()
        self._lock = threading.Lock()
        self._paused_total = 0.0
        self._paused_since: float | None = None if not self.options.start_paused else time.perf_counter()
        self.started = threading.Event()  # set when the first message is about to be played
        self._latched: set[str] = set()  # topics recorded with a transient-local offer
        self.damage: dict | None = None  # what the last pass could not read (BagReader.damage_report)

    # --- control ------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def pause(self) -> bool:
        with self._lock:
            if self._resumed.is_set():
                self._paused_since = time.perf_counter()
                self._resumed.clear()
                return True
            return False

    def resume(self) -> bool:
        with self._lock:
            if not self._resumed.is_set():
                if self._paused_since is not None:
                    self._paused_total += time.perf_counter() - self._paused_since
                self._paused_since = None
                self._resumed.set()
                return True
            return False

    def stop(self) -> None:
        self._stop.set()
        self._resumed.set()

    def _paused_seconds(self) -> float:
        with self._lock:
            extra = 0.0 if self._paused_since is None else time.perf_counter() - self._paused_since
            return self._paused_total + extra

    # --- playback -----------------------------------------------------------------------------

    def _plan(self, reader, report: PlayReport) -> dict:
        """``{connection id: (topic, msgtype, class)}`` of the connections to play."""
        from rosbags.highlevel import AnyReader  # noqa: F401  (import check only)

        available = sorted({c.topic for c in reader.connections})
        wanted = None if self.options.topics is None else list(dict.fromkeys(self.options.topics))
        if wanted is not None:
            missing = [t for t in wanted if t not in available]
            if missing:
                raise ValueError(f"topics not in {self.bag_path.name}: {', '.join(missing)}; "
                                 f"topics: {', '.join(available)}")
        plan = {}
        for c in reader.connections:
            if wanted is not None and c.topic not in wanted:
                continue
            try:
                cls = message_class(c.msgtype)
            except (ImportError, AttributeError, ValueError) as exc:
                reason = f"type {c.msgtype} not available here ({type(exc).__name__})"
                if c.topic not in report.skipped_topics:
                    report.skipped_topics[c.topic] = reason
                    report.warnings.append(f"skipping {c.topic}: {reason}")
                continue
            plan[c.id] = (c.topic, c.msgtype, cls)
            if _offered_transient_local(c):
                self._latched.add(c.topic)
        if not plan:
            raise ValueError(f"nothing to play in {self.bag_path.name}: no topic of a type available here "
                             f"({', '.join(sorted(report.skipped_topics)) or 'no topics'})")
        for topic, msgtype, _ in plan.values():
            report.topics.setdefault(topic, {"type": msgtype, "published": 0, "malformed": 0,
                                             "published_as": self.options.remap.get(topic, topic)})
        return plan

    def _reader_thread(self, plan: dict, start_ns: int, out: queue.Queue) -> None:
        """Reads the recording (again for each loop pass) into ``out``; ``_END`` after each pass.

        A damaged part of the recording is skipped (:class:`~gaussvae_ros.bag.reader.BagReader`
        reads on past it); what the last pass skipped is kept for the report."""
        from gaussvae_ros.bag.reader import BagReader

        try:
            while not self._stop.is_set():
                with BagReader(self.bag_path) as reader:
                    connections = [c for c in reader.connections if c.id in plan]
                    for connection, bag_time, raw in reader.raw_messages(connections, start=start_ns):
                        while not self._stop.is_set():
                            try:
                                out.put((connection.id, int(bag_time), bytes(raw)), timeout=0.2)
                                break
                            except queue.Full:
                                continue
                        if self._stop.is_set():
                            return
                    self.damage = reader.damage_report(sorted({c.topic for c in connections}))
                while not self._stop.is_set():
                    try:
                        out.put(_END, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if not self.options.loop:
                    return
        except Exception as exc:  # reported by the playing thread
            out.put(exc)

    def run(self) -> PlayReport:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                               qos_profile_sensor_data)
        from rclpy.serialization import deserialize_message

        from gaussvae_ros.bag.reader import BagReader

        o = self.options
        report = PlayReport(str(self.bag_path), o.rate, o.qos)
        if not self.bag_path.exists():
            raise FileNotFoundError(f"no recording at {self.bag_path}")
        with BagReader(self.bag_path) as reader:  # ValueError for an unreadable recording
            plan = self._plan(reader, report)
            latched = {}
            for topic in {t for t, _, _ in plan.values()}:
                durability, count = played_qos(topic, [c for c in reader.connections if c.topic == topic])
                report.topics[topic]["qos"] = durability
                if durability == "transient_local":
                    latched[topic] = max(int(o.depth), count or 1)
            bag_start = int(reader.start_ns)
            bag_end = int(reader.end_ns)
        start_ns = bag_start + round(o.start_offset_s * 1e9)
        report.bag_start_ns = start_ns

        context = rclpy.Context()
        rclpy.init(context=context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        executor = None
        spin_thread = None
        reader_thread = None
        try:
            node = rclpy.create_node(o.node_name, context=context)
            if o.qos == "sensor":
                qos = qos_profile_sensor_data
            else:
                qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(o.depth),
                                 reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
            publishers = {}
            by_topic = {}
            for cid, (topic, msgtype, cls) in plan.items():
                if topic not in by_topic:
                    topic_qos = qos
                    if topic in latched:  # recorded transient local (or /tf_static): a late subscriber gets it
                        topic_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=latched[topic],
                                               reliability=ReliabilityPolicy.RELIABLE,
                                               durability=DurabilityPolicy.TRANSIENT_LOCAL)
                    by_topic[topic] = node.create_publisher(cls, o.remap.get(topic, topic), topic_qos)
                publishers[cid] = (topic, cls, by_topic[topic])
            clock_pub = None
            if o.clock:
                from rosgraph_msgs.msg import Clock

                clock_pub = node.create_publisher(
                    Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
            self._add_services(node)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            spin_thread = threading.Thread(target=self._spin, args=(executor,), daemon=True, name="player-spin")
            spin_thread.start()

            self._wait_for_subscribers(by_topic, report)
            if o.delay_s:
                self._stop.wait(o.delay_s)

            messages: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
            reader_thread = threading.Thread(target=self._reader_thread, args=(plan, start_ns, messages),
                                             daemon=True, name="player-read")
            reader_thread.start()
            self._play(messages, publishers, clock_pub, deserialize_message, start_ns, bag_end, report)
            if o.qos == "reliable" and o.ack_timeout_s > 0 and not report.interrupted:
                from rclpy.duration import Duration

                report.acked = all(p.wait_for_all_acked(Duration(nanoseconds=round(o.ack_timeout_s * 1e9)))
                                   for p in by_topic.values())
            if self.damage is not None:
                report.damaged, report.lost = self.damage["damaged"], self.damage["lost"]
        finally:
            self._stop.set()
            if reader_thread is not None:
                reader_thread.join(timeout=5)
            if executor is not None:
                executor.shutdown(timeout_sec=1)
            if spin_thread is not None:
                spin_thread.join(timeout=2)
            try:
                rclpy.shutdown(context=context)
            except Exception:  # already shut down
                pass
        return report

    def _spin(self, executor) -> None:
        try:
            while not self._stop.is_set():
                executor.spin_once(timeout_sec=0.1)
        except Exception:  # context shut down under us
            pass

    def _add_services(self, node) -> None:
        try:
            from std_srvs.srv import Trigger
        except ImportError:
            return

        def service(action, done_text, noop_text):
            def callback(request, response):
                response.success = bool(action())
                response.message = done_text if response.success else noop_text
                return response
            return callback

        node.create_service(Trigger, "~/pause", service(self.pause, "paused", "already paused"))
        node.create_service(Trigger, "~/resume", service(self.resume, "resumed", "not paused"))
        node.create_service(Trigger, "~/toggle_paused",
                            service(lambda: self.resume() or self.pause(), "toggled", "toggled"))

    def _wait_for_subscribers(self, by_topic: dict, report: PlayReport) -> None:
        o = self.options
        if not o.wait_for:
            return
        remapped = {o.remap.get(t, t): t for t in by_topic}
        pubs = {}
        for name in o.wait_for:
            topic = name if name in by_topic else remapped.get(name)
            if topic is None:
                raise ValueError(f"--wait-for {name}: not a played topic ({', '.join(sorted(by_topic))})")
            pubs[name] = by_topic[topic]
        deadline = time.monotonic() + o.wait_timeout_s
        while not self._stop.is_set():
            waiting = [n for n, p in pubs.items() if p.get_subscription_count() < 1]
            if not waiting:
                self._stop.wait(o.settle_s)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {', '.join(waiting)} after {o.wait_timeout_s:g} s")
            time.sleep(0.02)

    def _play(self, messages: queue.Queue, publishers: dict, clock_pub, deserialize, start_ns: int,
              bag_end: int, report: PlayReport) -> None:
        o = self.options
        rate = float(o.rate)
        clock_period = 1.0 / o.clock_hz
        clock_msg = None
        if clock_pub is not None:
            from rosgraph_msgs.msg import Clock

            clock_msg = Clock()
        bag_seconds = max(0.0, (bag_end - start_ns) * 1e-9)
        report.bag_seconds = round(bag_seconds, 6)
        lags: list[float] = []
        malformed_logged: Counter = Counter()
        last_progress = 0.0

        def publish_clock(bag_ns: int) -> None:
            clock_msg.clock.sec, clock_msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
            clock_pub.publish(clock_msg)
            report.clock_published += 1

        # The first message is read before the clock starts, so opening the recording adds no lag.
        item = None
        while item is None and not self._stop.is_set():
            try:
                item = messages.get(timeout=0.1)
            except queue.Empty:
                pass
        # A pass: wall_start is the wall time at which bag time ``start_ns`` is played.
        self._resumed.wait()
        self.started.set()
        first_wall = time.perf_counter()
        wall_start = first_wall
        pause_base = self._paused_seconds()
        next_clock = wall_start
        passes = 0
        finished = False

        def bag_now(now: float) -> int:
            return start_ns + round((now - wall_start - (self._paused_seconds() - pause_base)) * rate * 1e9)

        try:
            while not self._stop.is_set():
                if item is None:
                    try:
                        item = messages.get(timeout=0.05)
                    except queue.Empty:
                        item = None
                    if item is None:
                        if clock_pub is not None and not self.paused and time.perf_counter() >= next_clock:
                            publish_clock(min(bag_now(time.perf_counter()), bag_end))
                            next_clock += clock_period
                        continue
                if isinstance(item, Exception):
                    raise item
                if item is _END:
                    passes += 1
                    report.loops = passes
                    item = None
                    if not o.loop or (o.max_loops is not None and passes >= o.max_loops):
                        finished = True
                        break
                    wall_start = time.perf_counter()
                    pause_base = self._paused_seconds()
                    next_clock = wall_start
                    continue
                cid, bag_time, raw = item
                # Wait for the message's time, publishing /clock meanwhile; honour pauses.
                while not self._stop.is_set():
                    if self.paused:
                        self._resumed.wait(0.1)
                        continue
                    now = time.perf_counter()
                    due = wall_start + (self._paused_seconds() - pause_base) + (bag_time - start_ns) * 1e-9 / rate
                    if clock_pub is not None and next_clock <= min(due, now):
                        publish_clock(min(bag_now(now), bag_time))
                        next_clock += clock_period
                        if next_clock < now - clock_period:  # fell behind: do not burst
                            next_clock = now + clock_period
                        continue
                    if now >= due:
                        lags.append(now - due)
                        break
                    wake = due if clock_pub is None else min(due, next_clock)
                    self._stop.wait(max(0.0, min(wake - now, 0.1)))
                if self._stop.is_set():
                    break
                topic, cls, pub = publishers[cid]
                item = None
                if o.check:
                    try:
                        deserialize(raw, cls)
                    except Exception as exc:  # malformed CDR comes out as several exception types
                        report.malformed += 1
                        report.topics[topic]["malformed"] += 1
                        if malformed_logged[topic] < 3:
                            malformed_logged[topic] += 1
                            report.warnings.append(f"{topic}: malformed message at bag time {bag_time} skipped "
                                                   f"({type(exc).__name__}: {exc})")
                        continue
                pub.publish(raw)
                report.messages_published += 1
                report.topics[topic]["published"] += 1
                if o.progress and time.perf_counter() - last_progress > 1.0:
                    last_progress = time.perf_counter()
                    print(f"gaussvae play: {report.messages_published} messages, bag time "
                          f"{(bag_time - start_ns) * 1e-9:.1f}/{bag_seconds:.1f} s, "
                          f"lag {lags[-1] * 1e3:.0f} ms", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            pass
        report.interrupted = not finished
        end = time.perf_counter()
        report.wall_seconds = round(end - first_wall, 6)
        report.paused_seconds = round(self._paused_seconds(), 6)
        active = report.wall_seconds - report.paused_seconds
        played = bag_seconds * max(passes, 1)
        report.achieved_rate = round(played / active, 4) if active > 0 and passes else None
        if lags:
            report.max_lag_ms = round(max(lags) * 1e3, 3)
            report.mean_lag_ms = round(sum(lags) / len(lags) * 1e3, 3)


def play_bag(bag_path: str | Path, options: PlayOptions | None = None) -> PlayReport:
    """Play ``bag_path`` with ``options`` and return the report (blocks)."""
    return Player(bag_path, options).run()
