"""When ``gaussvae graph`` starts a dead node again: bounded retries, as ``respawn=True`` in launch.

A node that dies (a crash, a signal, any exit status but 0 and 2) is started again after
``delay_s``, at most ``max_respawns`` times per node over the graph's life; a node that exits with
status 2 (invalid parameters, a damaged or locked store: starting again cannot help) or 0 (asked
to stop) is not, and stops the graph as before. Every decision is logged by the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["NO_RESPAWN_STATUSES", "Respawner"]

#: Exit statuses after which a node is not started again (0: a clean stop, 2: configuration / store
#: errors that a new start would only repeat).
NO_RESPAWN_STATUSES = (0, 2)


@dataclass
class Respawner:
    """Tracks respawns per node: :meth:`decide` after a node exited, :meth:`due` for the ones to start now."""

    max_respawns: int = 3
    delay_s: float = 1.0
    counts: dict = field(default_factory=dict)
    _pending: dict = field(default_factory=dict)  # name -> monotonic time it is due

    def __post_init__(self) -> None:
        if self.max_respawns < 0 or not self.delay_s >= 0:
            raise ValueError("max_respawns and delay_s must be >= 0")

    def decide(self, name: str, status: int, now: float | None = None) -> str | None:
        """After ``name`` exited with ``status``: None when it must not be restarted, else a log line
        (the restart is then :meth:`due` after ``delay_s``)."""
        if status in NO_RESPAWN_STATUSES:
            return None
        done = self.counts.get(name, 0)
        if done >= self.max_respawns:
            return None
        self.counts[name] = done + 1
        now = time.monotonic() if now is None else now
        self._pending[name] = now + self.delay_s
        how = f"signal {-status}" if status < 0 else f"status {status}"
        return (f"{name} died ({how}); respawning in {self.delay_s:g} s "
                f"(respawn {done + 1} of {self.max_respawns})")

    def waiting(self, name: str) -> bool:
        return name in self._pending

    def due(self, now: float | None = None) -> list[str]:
        """Names whose restart is due now (removed from the pending set)."""
        now = time.monotonic() if now is None else now
        names = [n for n, t in self._pending.items() if t <= now]
        for n in names:
            del self._pending[n]
        return names
