"""``gaussvae_memory``: stores memory records and answers queries about them.

A thin ROS shell over :class:`gaussvae_ros.store.Store`. Each received record is written in its own
transaction (the store's key, topic + camera frame + stamp, makes a repeated record a no-op), then
the retention policy (:mod:`gaussvae_ros.store.retention`) brings the store back within its budget.
A write that fails for a reason that may pass (the file locked by another program, the disk full,
free space under ``min_free_bytes``) is retried with backoff from a bounded in-memory queue
(:class:`gaussvae_ros.store.write_queue.WriteQueue`); a record is given up only past
``write_queue_size`` / ``write_queue_max_age_s``, each one logged and counted in ``/diagnostics``.
The store is health-checked at start-up (``quick_check``): a damaged file stops the node with exit
status 2 and the ``gaussvae db recover`` command to salvage it, as does a locked or unreadable one.
Writes (records, deletions, retention) run one at a time in one callback group; queries run in
parallel with them and with each other (the store gives each thread its own read snapshot).

Every service answers malformed requests (inverted time range, NaN position, negative radius, k
above ``max_results``, empty id lists...) and store failures with ``success = false`` and a
message saying why; the node itself never stops on a bad request.

Subscriptions:
    ``memories``            gaussvae_ros_interfaces/MemoryRecord, reliable, transient local, depth 50
Publications:
    ``/diagnostics``        diagnostic_msgs/DiagnosticArray every ``diagnostics_period_s``: stored,
                            duplicates, rejected, store errors, retention drops, memories, bytes
    ``memory_poses``        visualization_msgs/MarkerArray, reliable, transient local: a frustum (or
                            arrow) and an ``#id  time`` label per memory, following inserts, deletes
                            and retention (:mod:`.markers`)
    ``memory_pose_array``   geometry_msgs/PoseArray, reliable, transient local: the same poses
Services:
    ``query_by_time``       gaussvae_ros_interfaces/QueryByTime
    ``query_by_pose``       gaussvae_ros_interfaces/QueryByPose (only memories in the query's frame)
    ``query_by_ids``        gaussvae_ros_interfaces/QueryByIds
    ``get_stats``           gaussvae_ros_interfaces/GetStats
    ``delete_memories``     gaussvae_ros_interfaces/DeleteMemories (refused unless ``allow_delete``)

Parameters: see :data:`PARAMETERS` (and ``config/gaussvae.yaml``).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node

from diagnostic_msgs.msg import DiagnosticArray

from gaussvae_ros_interfaces.msg import MemoryRecord
from gaussvae_ros_interfaces.srv import DeleteMemories, GetStats, QueryByIds, QueryByPose, QueryByTime

from gaussvae_ros.store import RetentionPolicy, Store, StoreError, page_size_for_payload
from gaussvae_ros.store.write_queue import WriteQueue

from .convert import (MEMORY_QOS, diagnostic_status, guarded_callback, guarded_service, info_from_record,
                      memory_from_record_msg, ns_to_time, time_to_ns)
from .markers import MARKER_PARAMETERS, MemoryMarkerPublisher, check_marker_parameters
from .params import ParamSpec, check_range, declare_parameters, install_validator, nonempty
from .queries import RequestError, check_ids, pose_query, store_summary, time_query
from .runner import run_node

PARAMETERS = (
    ParamSpec("database", "memories.db", "memory store file (SQLite); created with its folder when missing", True),
    ParamSpec("expected_payload_bytes", 0,
              "typical memory payload, bytes: sizes a new database's pages to waste least (0 = 4 KiB pages, "
              "right for the default codecs; e.g. 2334 for 256 RGB Gaussians)", True),
    ParamSpec("max_records", 0, "retention: most memories kept (0 = unlimited)"),
    ParamSpec("max_bytes", 0, "retention: most payload bytes kept, bytes (0 = unlimited)"),
    ParamSpec("max_age_s", 0.0, "retention: drop memories older than this before the newest one, s (0 = unlimited)"),
    ParamSpec("retention_metres_per_second", 0.1,
              "retention coverage metric: 1 s apart counts like this many metres apart, m/s (> 0)"),
    ParamSpec("max_results", 10_000, "most memories one query returns (caps limit = 0; a larger k is an error)"),
    ParamSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status, s (> 0)", True),
    ParamSpec("write_queue_size", 1000, "records kept in memory while the store cannot be written (locked, disk "
              "full), retried with backoff; past it the oldest is given up and logged (0..1000000)", True),
    ParamSpec("write_queue_max_age_s", 600.0, "longest a record waits in the write queue before it is given up, "
              "s (0..86400)", True),
    ParamSpec("min_free_bytes", 64 * 2**20, "free disk space kept under the store, bytes: below it storing pauses "
              "(records wait in the write queue, WARN in /diagnostics); 0 = no floor", True),
    ParamSpec("allow_delete", False, "whether the delete_memories service deletes (false: it refuses; the "
              "deployment default, so that no client on the network can erase the memory)", True),
) + MARKER_PARAMETERS


def check_parameters(values: dict) -> list[str]:
    problems: list[str] = []
    nonempty(problems, values, "database")
    check_range(problems, values, "expected_payload_bytes", 0, 1 << 30)
    check_range(problems, values, "max_records", 0)
    check_range(problems, values, "max_bytes", 0)
    check_range(problems, values, "max_age_s", 0.0)
    check_range(problems, values, "retention_metres_per_second", 1e-12)
    check_range(problems, values, "max_results", 1, 10_000_000)
    check_range(problems, values, "diagnostics_period_s", 1e-3, 3600.0)
    check_range(problems, values, "write_queue_size", 0, 1_000_000)
    check_range(problems, values, "write_queue_max_age_s", 0.0, 86400.0)
    check_range(problems, values, "min_free_bytes", 0, 1 << 50)
    check_marker_parameters(problems, values)
    return problems


def retention_policy(values: dict) -> RetentionPolicy | None:
    """The retention policy of the parameters, or None when every limit is 0 (unlimited)."""
    if not (values["max_records"] or values["max_bytes"] or values["max_age_s"]):
        return None
    return RetentionPolicy(max_records=int(values["max_records"]) or None,
                           max_payload_bytes=int(values["max_bytes"]) or None,
                           max_age_s=float(values["max_age_s"]) or None,
                           metres_per_second=float(values["retention_metres_per_second"]), seed=None)


class MemoryNode(Node):
    """Memory store node (see module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("gaussvae_memory", **kwargs)
        self._values = declare_parameters(self, PARAMETERS, check_parameters)
        self._store = self._open_store()
        # Writes go through a bounded retry queue: a locked or full store delays records, never drops
        # them before the queue's limits (its insert follows self._store, which the managed node swaps).
        self._queue = WriteQueue(lambda memory: self._store.insert(memory),
                                 max_records=int(self._values["write_queue_size"]),
                                 max_age_s=float(self._values["write_queue_max_age_s"]),
                                 min_free_bytes=int(self._values["min_free_bytes"]),
                                 path=Path(self._values["database"]).expanduser().parent)
        self._apply(self._values)
        self._lock = threading.Lock()
        self._counts = {"stored": 0, "duplicates": 0, "rejected": 0, "store_errors": 0, "retention_dropped": 0,
                        "deleted": 0, "write_retries": 0, "given_up": 0}
        self._reported = dict(self._counts)

        writes = MutuallyExclusiveCallbackGroup()  # one write at a time, in arrival order
        reads = ReentrantCallbackGroup()
        self._sub = self.create_subscription(MemoryRecord, "memories", self._on_record, MEMORY_QOS.get(),
                                             callback_group=writes)
        self._services = [
            self.create_service(QueryByTime, "query_by_time", self._query_by_time, callback_group=reads),
            self.create_service(QueryByPose, "query_by_pose", self._query_by_pose, callback_group=reads),
            self.create_service(QueryByIds, "query_by_ids", self._query_by_ids, callback_group=reads),
            self.create_service(GetStats, "get_stats", self._get_stats, callback_group=reads),
            self.create_service(DeleteMemories, "delete_memories", self._delete, callback_group=writes),
        ]
        self._retry_timer = self.create_timer(0.1, self._retry_writes, callback_group=writes)  # seconds
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = self.create_timer(float(self._values["diagnostics_period_s"]), self._publish_diagnostics,
                                        callback_group=MutuallyExclusiveCallbackGroup())
        self._markers = MemoryMarkerPublisher(self, lambda: self._store, self._values)
        install_validator(self, PARAMETERS, self._values, check_parameters, self._apply)
        self.get_logger().info(f"listening on {self._sub.topic_name}"
                               + (f"; retention {self._policy}" if self._policy else ""))

    def _open_store(self):
        """Open (creating it and its folder when missing) the store of the ``database`` parameter."""
        path = Path(self._values["database"]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        # quick_check at every start: a damaged file is refused (exit 2) naming gaussvae db recover. A write
        # waits 1 s for another program's lock; the write queue does the longer waiting.
        store = Store(path, page_size=page_size_for_payload(self._values["expected_payload_bytes"] or None),
                      health_check="always", timeout_s=1.0)
        self.get_logger().info(f"memory store {path}: {store.stats().count} memories")
        return store

    def _apply(self, values: dict) -> None:
        self._policy = retention_policy(values)
        self._max_results = int(values["max_results"])

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    # --- writes -----------------------------------------------------------------------------

    @guarded_callback
    def _on_record(self, msg: MemoryRecord) -> None:
        try:
            memory = memory_from_record_msg(msg)
        except ValueError as exc:
            self._count("rejected")
            self.get_logger().warning(f"record from {msg.source_topic or '?'} at {time_to_ns(msg.header.stamp)} ns "
                                      f"rejected: {exc}", throttle_duration_sec=5.0)
            return
        self._written(self._queue.submit(memory), memory)

    def _retry_writes(self) -> None:
        if len(self._queue) or self._queue.below_floor:
            self._written(self._queue.retry())

    def _written(self, out, memory=None) -> None:
        """Count and log what the write queue did."""
        if out.error:
            self._count("store_errors")
            self.get_logger().error(f"cannot store record from {memory.topic if memory else '?'}: {out.error}",
                                    throttle_duration_sec=5.0)
        if out.transient and out.waiting:
            self.get_logger().warning(f"store not writable, {out.waiting} records waiting: {out.transient}",
                                      throttle_duration_sec=5.0)
        for g in out.given_up:  # every record given up is logged
            self._count("given_up")
            self.get_logger().error(f"record from {g.memory.topic} at {g.memory.stamp_ns} ns given up after "
                                    f"{g.waited_s:.1f} s: {g.why}; last error: {g.error}")
        if out.duplicates:
            self._count("duplicates", out.duplicates)
        if out.stored:
            self._count("stored", len(out.stored))
            self.get_logger().debug(f"stored memories {out.stored}")
            self._retain()

    def _retain(self) -> None:
        policy = self._policy
        if policy is None:
            return
        try:
            report = self._store.apply_retention(policy)
        except (StoreError, ValueError) as exc:
            self._count("store_errors")
            self.get_logger().error(f"retention failed: {exc}", throttle_duration_sec=5.0)
            return
        if report.dropped:
            self._count("retention_dropped", report.dropped)
            self.get_logger().debug(f"retention dropped {report.dropped} memories, {report.records} left")

    @guarded_service
    def _delete(self, request: DeleteMemories.Request, response: DeleteMemories.Response):
        if not self._values["allow_delete"]:
            response.success = False
            response.message = "delete_memories is disabled on this node (parameter allow_delete is false)"
            return response
        try:
            ids = [int(i) for i in request.ids]
            before = time_to_ns(request.before)
            if not ids and not before:
                raise RequestError("nothing selected: give ids and/or a non-zero before time")
            if len(ids) > self._max_results:
                raise RequestError(f"{len(ids)} ids requested; this server deletes at most {self._max_results} "
                                   "per request")
            existing = self._store.existing_ids(ids)
            missing = list(dict.fromkeys(i for i in ids if i not in existing))
            selected = set(existing)
            if before:
                selected.update(r.id for r in self._store.by_time(end_ns=before - 1))
            selected = sorted(selected)
            if not request.dry_run and selected:
                self._store.delete(selected)
                self._count("deleted", len(selected))
            response.deleted_ids = selected
            response.missing_ids = missing
            response.success = True
            verb = "would delete" if request.dry_run else "deleted"
            response.message = f"{verb} {len(selected)} memories"
            if missing:
                response.message += f"; {len(missing)} ids not found"
        except (RequestError, ValueError, StoreError) as exc:
            response.success, response.message = False, str(exc)
        return response

    # --- queries ------------------------------------------------------------------------------

    @guarded_service
    def _query_by_time(self, request: QueryByTime.Request, response: QueryByTime.Response):
        try:
            records, note = time_query(self._store, request.query, self._max_results)
            response.memories = [info_from_record(r) for r in records]
            response.success, response.message = True, _found(len(records), note)
        except (RequestError, ValueError, StoreError) as exc:
            response.success, response.message = False, str(exc)
        return response

    @guarded_service
    def _query_by_pose(self, request: QueryByPose.Request, response: QueryByPose.Response):
        try:
            records, note = pose_query(self._store, request.query, self._max_results)
            response.memories = [info_from_record(r) for r in records]
            response.distances = [float(r.distance_m) for r in records]
            response.success, response.message = True, _found(len(records), note)
        except (RequestError, ValueError, StoreError) as exc:
            response.success, response.message = False, str(exc)
        return response

    @guarded_service
    def _query_by_ids(self, request: QueryByIds.Request, response: QueryByIds.Response):
        try:
            ids = check_ids(request.ids, self._max_results)
            existing = self._store.existing_ids(ids)
            found = [i for i in ids if i in existing]
            records = self._store.get(found) if found else []
            response.memories = [info_from_record(r) for r in records]
            response.missing_ids = list(dict.fromkeys(i for i in ids if i not in existing))
            response.success = True
            response.message = _found(len(records)) + (
                f"; {len(response.missing_ids)} ids not found" if response.missing_ids else "")
        except ValueError as exc:
            if not isinstance(exc, RequestError) and "unknown memory ids" in str(exc):  # deleted meanwhile
                exc = ValueError(f"{exc} (deleted while answering; ask again)")
            response.success, response.message = False, str(exc)
        except StoreError as exc:
            response.success, response.message = False, str(exc)
        return response

    @guarded_service
    def _get_stats(self, request: GetStats.Request, response: GetStats.Response):
        try:
            stats = self._store.stats()
            extra = store_summary(self._store)
            response.count = stats.count
            response.count_with_pose = stats.pose_count
            response.count_with_camera_info = extra["count_with_camera_info"]
            response.min_id, response.max_id = extra["min_id"], extra["max_id"]
            if stats.first_stamp_ns is not None:
                response.oldest_stamp = ns_to_time(stats.first_stamp_ns)
                response.newest_stamp = ns_to_time(stats.last_stamp_ns)
            response.payload_bytes = stats.payload_bytes
            response.raw_bytes = extra["raw_bytes"]
            response.storage_bytes = extra["storage_bytes"]
            response.mean_psnr_db = float(extra["mean_psnr"])
            response.mean_ssim = float(extra["mean_ssim"])
            response.codec_ids = extra["codec_ids"]
            response.model_ids = extra["model_ids"]
            response.success = True
            response.message = f"{stats.count} memories, {stats.payload_bytes} payload bytes"
        except (StoreError, ValueError, OSError) as exc:
            response.success, response.message = False, f"cannot read the store: {exc}"
        except Exception as exc:  # anything else the store raises: said in the response
            response.success, response.message = False, f"cannot read the store: {type(exc).__name__}: {exc}"
        return response

    # --- diagnostics --------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        with self._lock:
            counts, last = dict(self._counts), self._reported
            self._reported = counts
        level, message = "ok", "storing"
        queue = self._queue
        if counts["store_errors"] > last["store_errors"]:
            level, message = "error", "store errors"
        elif counts["given_up"] > last["given_up"]:
            level, message = "error", "records given up (write queue limits)"
        elif queue.below_floor:
            level, message = "warn", "free disk space under min_free_bytes: storing paused"
        elif len(queue):
            level, message = "warn", f"store not writable: {len(queue)} records waiting"
        elif counts["rejected"] > last["rejected"]:
            level, message = "warn", "malformed records rejected"
        values = dict(counts)
        values.update(write_queue=len(queue), write_queue_oldest_s=round(queue.oldest_age_s(), 3),
                      write_queued=queue.counts["queued"], write_retries=queue.counts["retries"],
                      free_bytes=queue.free_bytes() or 0)
        try:
            stats = self._store.stats()
            values.update(memories=stats.count, payload_bytes=stats.payload_bytes, file_bytes=stats.file_bytes)
        except StoreError as exc:
            level, message = "error", f"cannot read the store: {exc}"
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        name = self.get_fully_qualified_name()
        out.status.append(diagnostic_status(f"{name}: memory store", name, level, message, values))
        self._diagnostics.publish(out)

    def counters(self) -> dict:
        """Counters since start: stored, duplicates, rejected, store_errors, retention_dropped, deleted."""
        with self._lock:
            return dict(self._counts)

    def destroy_node(self) -> None:
        queue = getattr(self, "_queue", None)
        if queue is not None and len(queue):  # a last try for what waits, each record given up said
            self._written(queue.flush(2.0))
        super().destroy_node()
        store = getattr(self, "_store", None)  # None when the store could not be opened
        if store is not None:
            store.close()
            self._store = None


def _found(count: int, note: str = "") -> str:
    text = f"{count} memor{'y' if count == 1 else 'ies'}"
    return f"{text} ({note})" if note else text


def main(args=None) -> int:
    """Console script ``gaussvae_memory``."""
    return run_node(MemoryNode, args)


if __name__ == "__main__":
    sys.exit(main())
