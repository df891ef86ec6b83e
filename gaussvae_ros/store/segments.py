"""Grouping consecutive memory positions into pose-index segments (pure Python, no SQLite).

A segment covers a run of consecutive memory ids ``[first_id, last_id]`` spanning at most
``max_ids`` ids, with an axis-aligned box (metres, pose frame) no wider than ``extent_m`` on any
axis that contains every position in the run. See :mod:`gaussvae_ros.store.schema`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Segment:
    first_id: int
    last_id: int
    min_x: float
    max_x: float
    min_y: float
    max_y: float
    min_z: float
    max_z: float

    def box(self) -> tuple[float, float, float, float, float, float]:
        """``(min_x, max_x, min_y, max_y, min_z, max_z)``, the R*Tree column order."""
        return self.min_x, self.max_x, self.min_y, self.max_y, self.min_z, self.max_z

    def try_add(self, memory_id: int, x: float, y: float, z: float, extent_m: float, max_ids: int) -> bool:
        """Grow the segment to hold the position of ``memory_id`` (> ``last_id``) if it stays within limits."""
        if memory_id - self.first_id >= max_ids:
            return False
        min_x, max_x = min(self.min_x, x), max(self.max_x, x)
        min_y, max_y = min(self.min_y, y), max(self.max_y, y)
        min_z, max_z = min(self.min_z, z), max(self.max_z, z)
        if max_x - min_x > extent_m or max_y - min_y > extent_m or max_z - min_z > extent_m:
            return False
        self.last_id = memory_id
        self.min_x, self.max_x, self.min_y, self.max_y, self.min_z, self.max_z = min_x, max_x, min_y, max_y, min_z, max_z
        return True


def extend_segments(open_segment: Segment | None, positions, extent_m: float, max_ids: int
                    ) -> tuple[bool, list[Segment]]:
    """Add ``positions`` (``(id, x, y, z)`` with ids ascending, all above existing ids) to segments.

    The newest existing segment ``open_segment`` (or ``None``) is grown in place while the new
    positions fit; the rest go into new segments. Returns ``(open_segment_changed, new_segments)``.
    """
    changed = False
    new: list[Segment] = []
    current = open_segment
    for memory_id, x, y, z in positions:
        if current is not None and current.try_add(memory_id, x, y, z, extent_m, max_ids):
            if current is open_segment:
                changed = True
            continue
        current = Segment(memory_id, memory_id, x, x, y, y, z, z)
        new.append(current)
    return changed, new
