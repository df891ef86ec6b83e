"""A bounded retry queue in front of :meth:`Store.insert`: what the memory node writes through.

A write that fails for a reason that may pass (:class:`~.records.StoreBusyError`: the file is
locked by another connection, the disk is full) or that would take the disk's free space below a
floor is not lost: the memory waits in an in-memory queue and is tried again with exponential
backoff. Records keep their arrival order (a new record waits behind the queued ones). A record is
given up only past the queue's limits, the oldest first: when the queue holds ``max_records`` and
another arrives, or when it has waited ``max_age_s``; each one given up is counted and returned to
the caller, which logs it. A record that can never be stored (invalid, damaged store) is not
retried: its error is returned at once. ROS-free: the node calls :meth:`submit` per record and
:meth:`retry` from a timer. Thread-safe (one lock around each call).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .records import Memory, StoreBusyError, StoreError

__all__ = ["GivenUp", "WriteOutcome", "WriteQueue"]


@dataclass(frozen=True)
class GivenUp:
    """A record the queue stopped trying to store: its ``memory``, ``why`` (queue full / too old),
    the last ``error`` and how long it waited (``waited_s``)."""

    memory: Memory
    why: str
    error: str
    waited_s: float


@dataclass
class WriteOutcome:
    """What one :meth:`WriteQueue.submit` / :meth:`WriteQueue.retry` did: ids ``stored``, count of
    ``duplicates``, records ``given_up``, ``error`` of a record that cannot be stored at all (not
    retried), ``waiting`` records still queued, ``transient`` the last transient failure."""

    stored: list = field(default_factory=list)
    duplicates: int = 0
    given_up: list = field(default_factory=list)
    error: str = ""
    waiting: int = 0
    transient: str = ""


@dataclass
class _Waiting:
    memory: Memory
    since: float
    error: str


class WriteQueue:
    """Retrying writer of memories into a store.

    Args:
        insert: ``insert(memory) -> id or None`` (None: a duplicate), e.g. ``Store.insert``.
        max_records: most records waiting (0: none wait, a failed write is given up at once).
        max_age_s: longest a record waits before it is given up, seconds.
        min_free_bytes: free space the disk under ``path`` must keep; below it writes pause
            (records wait as for a full disk). 0: no floor.
        path: a file or folder on the store's disk (for the free-space floor).
        backoff_s, max_backoff_s: first retry delay and its cap, seconds (doubling in between).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, insert: Callable[[Memory], int | None], *, max_records: int = 1000,
                 max_age_s: float = 600.0, min_free_bytes: int = 0, path=None, backoff_s: float = 0.05,
                 max_backoff_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[], int] | None = None) -> None:
        if max_records < 0 or not max_age_s >= 0 or min_free_bytes < 0:
            raise ValueError("max_records, max_age_s and min_free_bytes must be >= 0")
        self._insert = insert
        self.max_records = int(max_records)
        self.max_age_s = float(max_age_s)
        self.min_free_bytes = int(min_free_bytes)
        self._path = path
        self._free_bytes = free_bytes
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self._clock = clock
        self._queue: deque[_Waiting] = deque()
        self._delay = self.backoff_s
        self._next_try = 0.0
        #: Counters since start: records ``queued`` (a first write failed), ``retries``, ``given_up``.
        self.counts = {"queued": 0, "retries": 0, "given_up": 0}
        self.below_floor = False  # the last check found less free space than min_free_bytes
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._queue)

    def oldest_age_s(self) -> float:
        return self._clock() - self._queue[0].since if self._queue else 0.0

    def free_bytes(self) -> int | None:
        """Free bytes on the store's disk (None: unknown)."""
        if self._free_bytes is not None:
            return int(self._free_bytes())
        if self._path is None:
            return None
        try:
            return int(shutil.disk_usage(self._path).free)
        except OSError:
            return None

    def _check_floor(self) -> str:
        if not self.min_free_bytes:
            self.below_floor = False
            return ""
        free = self.free_bytes()
        self.below_floor = free is not None and free < self.min_free_bytes
        if self.below_floor:
            return (f"{free / 2**20:.1f} MiB free on the store's disk, under the floor of "
                    f"{self.min_free_bytes / 2**20:.1f} MiB (min_free_bytes): storing paused")
        return ""

    def _write(self, memory: Memory, out: WriteOutcome) -> str:
        """Try one write; '' on success (or a permanent error, in ``out.error``), else the transient error."""
        floor = self._check_floor()
        if floor:
            return floor
        try:
            memory_id = self._insert(memory)
        except StoreBusyError as exc:
            return str(exc)
        except (StoreError, ValueError) as exc:  # damaged store, invalid record: retrying cannot help
            out.error = f"{type(exc).__name__}: {exc}"
            return ""
        if memory_id is None:
            out.duplicates += 1
        else:
            out.stored.append(memory_id)
        return ""

    def _give_up_old(self, now: float, out: WriteOutcome) -> None:
        while self._queue and now - self._queue[0].since > self.max_age_s:
            w = self._queue.popleft()
            self.counts["given_up"] += 1
            out.given_up.append(GivenUp(w.memory, f"waited over max_age_s ({self.max_age_s:g} s)", w.error,
                                        now - w.since))

    def _drain(self, now: float, out: WriteOutcome) -> None:
        """Write the queued records in order until one fails again."""
        while self._queue:
            w = self._queue[0]
            self.counts["retries"] += 1
            error = self._write(w.memory, out)
            if error:
                w.error = error
                out.transient = error
                self._next_try = now + self._delay
                self._delay = min(self._delay * 2.0, self.max_backoff_s)
                return
            self._queue.popleft()
        self._delay = self.backoff_s

    def submit(self, memory: Memory) -> WriteOutcome:
        """Store ``memory`` now if it can be, after the records waiting before it; else queue it."""
        with self._lock:
            return self._submit(memory)

    def _submit(self, memory: Memory) -> WriteOutcome:
        out = WriteOutcome()
        now = self._clock()
        self._give_up_old(now, out)
        if self._queue and now >= self._next_try:
            self._drain(now, out)
        if not self._queue:
            error = self._write(memory, out)
            if not error:
                out.waiting = 0
                return out
            out.transient = error
            self._next_try = now + self._delay
            self._delay = min(self._delay * 2.0, self.max_backoff_s)
        else:
            error = self._queue[-1].error
        self.counts["queued"] += 1
        self._queue.append(_Waiting(memory, now, error))
        while len(self._queue) > self.max_records:
            w = self._queue.popleft()
            self.counts["given_up"] += 1
            out.given_up.append(GivenUp(w.memory, f"queue full (write_queue_size {self.max_records})", w.error,
                                        now - w.since))
        out.waiting = len(self._queue)
        return out

    def retry(self) -> WriteOutcome:
        """Retry the waiting records whose backoff has passed (call it from a timer)."""
        with self._lock:
            return self._retry()

    def _retry(self) -> WriteOutcome:
        out = WriteOutcome()
        now = self._clock()
        self._give_up_old(now, out)
        if self._queue and now >= self._next_try:
            self._drain(now, out)
        elif not self._queue:
            self._check_floor() if self.min_free_bytes else None
        out.waiting = len(self._queue)
        return out

    def flush(self, timeout_s: float) -> WriteOutcome:
        """Keep retrying for up to ``timeout_s`` seconds (at shutdown): what is still waiting after it
        is given up and returned in ``given_up``."""
        out = WriteOutcome()
        deadline = self._clock() + timeout_s
        while len(self) and self._clock() < deadline:
            step = self.retry()
            out.stored += step.stored
            out.duplicates += step.duplicates
            out.given_up += step.given_up
            if len(self):
                time.sleep(min(0.05, max(0.0, deadline - self._clock())))
        with self._lock:
            now = self._clock()
            while self._queue:
                w = self._queue.popleft()
                self.counts["given_up"] += 1
                out.given_up.append(GivenUp(w.memory, "node shutting down", w.error, now - w.since))
        return out
