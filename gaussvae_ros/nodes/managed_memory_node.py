"""``gaussvae_memory_managed``: the memory node as a lifecycle (managed) node.

The same node as ``gaussvae_memory`` (:class:`~.memory_node.MemoryNode`: topics, services,
parameters), driven by the ROS 2 lifecycle state machine (``~/change_state``, ``~/get_state``;
``ros2 lifecycle set /gaussvae_memory configure``; ``launch_ros.actions.LifecycleNode``):

    unconfigured  the store is closed; services answer ``success = false`` ("not configured")
    configure     opens (or creates) the store -> inactive
    inactive      the store is open and answers queries; records are held, not stored
    activate      stores the held records first, in arrival order, then every record as it comes
    deactivate    storing pauses: a write in progress finishes, later records are held
    cleanup       closes the store (``gaussvae db compact`` can then have the file) -> unconfigured
    shutdown      closes the store

The subscription to ``memories`` exists in every state, so nothing is lost across a pause or a
cleanup / compact / configure cycle: records that arrive while the node is not active wait in a
queue of at most ``inactive_queue_size`` records; when it is full the oldest is dropped and
counted (``dropped_inactive`` in ``/diagnostics`` and :meth:`counters`; ``held`` counts every
record that waited). Records still held at shutdown are not stored (a node started again gets the
encoder's last 50 records, transient local, once more). The plain ``gaussvae_memory`` stays what ``ros2 run`` and the launch files
start by default; ``gaussvae.launch.py managed:=true`` starts this one.
"""

from __future__ import annotations

import collections
import sys
import threading

from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from gaussvae_ros.store import StoreError

from .memory_node import MemoryNode
from .params import ParamSpec, check_range, declare_parameters
from .runner import run_node

MANAGED_PARAMETERS = (
    ParamSpec("inactive_queue_size", 1000, "records held while the node is not active (>= 1); when full the "
              "oldest is dropped and counted", True),
)


def check_managed_parameters(values: dict) -> list[str]:
    problems: list[str] = []
    check_range(problems, values, "inactive_queue_size", 1, 10_000_000)
    return problems


class ClosedStore:
    """Stands for the store while the node is unconfigured: every use raises :class:`StoreError`."""

    def __init__(self, why: str) -> None:
        self._why = why

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        raise StoreError(self._why)


class ManagedMemoryNode(LifecycleNodeMixin, MemoryNode):
    """Memory store node with a lifecycle (see module docstring)."""

    def __init__(self, **kwargs) -> None:
        self._active = False
        self._gate = threading.Lock()  # held while a record is stored or the state changes
        self._held: collections.deque = collections.deque()
        MemoryNode.__init__(self, **kwargs)
        LifecycleNodeMixin.__init__(self)
        values = declare_parameters(self, MANAGED_PARAMETERS, check_managed_parameters)
        self._hold_limit = int(values["inactive_queue_size"])
        with self._lock:
            self._counts.update(held=0, dropped_inactive=0)
        self._reported = dict(self._counts)

    def _open_store(self):
        if not hasattr(self, "_store"):  # at construction: unconfigured
            return ClosedStore(f"{self.get_name()} is not configured: the store is closed "
                               "(lifecycle transition configure opens it)")
        return MemoryNode._open_store(self)

    # --- records ------------------------------------------------------------------------------

    def _on_record(self, msg) -> None:
        with self._gate:
            if not self._active:
                if len(self._held) >= self._hold_limit:
                    self._held.popleft()
                    self._count("dropped_inactive")
                self._held.append(msg)
                self._count("held")
                return
            MemoryNode._on_record(self, msg)

    @property
    def held_records(self) -> int:
        """Records waiting for the node to be active."""
        with self._gate:
            return len(self._held)

    # --- transitions ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            store = MemoryNode._open_store(self)
        except (StoreError, OSError, ValueError) as exc:
            self.get_logger().error(f"configure: cannot open the store: {exc}")
            return TransitionCallbackReturn.FAILURE
        with self._gate:
            self._store = store
        self._markers.reset()
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._gate:
            held = list(self._held)
            self._held.clear()
            for msg in held:  # before any newer record: arrival order is kept
                MemoryNode._on_record(self, msg)
            self._active = True
        self.get_logger().info("active: storing" + (f" ({len(held)} held records stored)" if held else ""))
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._gate:
            self._active = False
        self.get_logger().info("inactive: storing paused, records are held")
        return super().on_deactivate(state)

    def _close(self) -> None:
        with self._gate:
            self._active = False
            store, self._store = self._store, ClosedStore(f"{self.get_name()} is not configured: the store is closed")
        store.close()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        self.get_logger().info("unconfigured: store closed")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        return super().on_error(state)

    def _publish_diagnostics(self) -> None:
        if not isinstance(self._store, ClosedStore):  # unconfigured: nothing to report
            MemoryNode._publish_diagnostics(self)


def main(args=None) -> int:
    """Console script ``gaussvae_memory_managed``."""
    return run_node(ManagedMemoryNode, args)


if __name__ == "__main__":
    sys.exit(main())
