"""The memory node's write path without ROS: transient failures retried in order, limits, the free-space floor."""

from __future__ import annotations

import pytest

from gaussvae_ros.store import Memory, Store, StoreBusyError, StoreError
from gaussvae_ros.store.write_queue import WriteQueue

from support.memories import SECOND, T0


def memory(k: int) -> Memory:
    return Memory(T0 + k * SECOND, "/cam", "front", bytes([k]) * 16, 8, 8, "mono8")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Flaky:
    """An insert that fails while ``down`` (locked or full), then stores into a real store."""

    def __init__(self, store, reason="locked"):
        self.store, self.down, self.reason = store, True, reason

    def __call__(self, m):
        if self.down:
            raise StoreBusyError(f"store {self.reason}", self.reason)
        return self.store.insert(m)


@pytest.mark.parametrize("reason", ["locked", "full"])
def test_transient_failures_are_retried_in_order_and_nothing_is_lost(tmp_path, reason):
    clock = Clock()
    with Store(tmp_path / "m.db") as store:
        insert = Flaky(store, reason)
        q = WriteQueue(insert, max_records=100, max_age_s=60.0, clock=clock)
        for k in range(10):
            out = q.submit(memory(k))
            assert not out.stored and not out.given_up and out.waiting == k + 1
            clock.t += 0.5
            q.retry()
        assert q.counts["queued"] == 10 and q.counts["retries"] > 0
        insert.down = False
        clock.t += 5.0
        out = q.retry()
        assert len(out.stored) == 10 and len(q) == 0
        assert [r.stamp_ns for r in store.by_time()] == [memory(k).stamp_ns for k in range(10)]
        out = q.submit(memory(3))  # a duplicate by stream and stamp, as before
        assert out.duplicates == 1 and q.counts["given_up"] == 0


def test_records_are_given_up_only_past_the_limits_and_each_is_reported(tmp_path):
    clock = Clock()
    with Store(tmp_path / "m.db") as store:
        insert = Flaky(store)
        q = WriteQueue(insert, max_records=3, max_age_s=10.0, clock=clock)
        given_up = []
        for k in range(5):
            given_up += q.submit(memory(k)).given_up
        assert [g.memory.stamp_ns for g in given_up] == [memory(0).stamp_ns, memory(1).stamp_ns]
        assert "queue full" in given_up[0].why and "locked" in given_up[0].error
        clock.t += 11.0
        out = q.retry()
        assert len(out.given_up) == 3 and "max_age_s" in out.given_up[0].why
        assert q.counts["given_up"] == 5 and len(q) == 0


def test_a_permanent_error_is_not_retried(tmp_path):
    def broken(m):
        raise StoreError("damaged")

    q = WriteQueue(broken, clock=Clock())
    out = q.submit(memory(1))
    assert "damaged" in out.error and len(q) == 0 and not out.given_up


def test_the_free_space_floor_pauses_storing_before_the_disk_is_full(tmp_path):
    clock = Clock()
    free = [10 * 2**20]
    with Store(tmp_path / "m.db") as store:
        q = WriteQueue(store.insert, max_records=10, max_age_s=60.0, min_free_bytes=2**20, clock=clock,
                       free_bytes=lambda: free[0])
        assert q.submit(memory(1)).stored
        free[0] = 2**19
        out = q.submit(memory(2))
        assert not out.stored and q.below_floor and "under the floor" in out.transient
        free[0] = 10 * 2**20
        clock.t += 1.0
        assert q.retry().stored and not q.below_floor
        assert store.stats().count == 2


def test_flush_at_shutdown_gives_up_what_cannot_be_written(tmp_path):
    with Store(tmp_path / "m.db") as store:
        insert = Flaky(store)
        q = WriteQueue(insert, max_records=10, backoff_s=0.01)
        q.submit(memory(1))
        q.submit(memory(2))
        out = q.flush(0.1)
        assert len(out.given_up) == 2 and out.given_up[0].why == "node shutting down"
