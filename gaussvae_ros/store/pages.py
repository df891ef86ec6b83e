"""Choosing the SQLite page size of a new store from the payload size it will hold.

SQLite packs whole rows into a table's leaf pages and moves only what does not fit to overflow
pages, so the bytes a memory costs beyond its payload depend on the payload's size relative to the
page size. With payloads of a few kilobytes the wrong page size wastes most of a page per memory:
measured with ~4.7 KB payloads (512 RGB Gaussians, ``gaussians-q``), 4 KiB pages cost 172 B per
memory beyond the payload and 8 KiB pages 3,627 B (one row per page); with ~2.4 KB payloads (256
RGB Gaussians) it is the other way round (1,760 B against 397 B).

:func:`predicted_overhead` models SQLite's cell layout (its b-tree local-payload and overflow
rules, rows appended in id order, so leaf pages fill completely) and :func:`page_size_for_payload`
picks the page size with the least predicted overhead, averaged over +-5 % of the payload size.
Only 4, 8 and 16 KiB are considered: larger pages cost every query more bytes read per page. Some
payload sizes waste about a kilobyte whatever the page (measured: 7 KB payloads, ~1.25 KB on 4,
8 and 16 KiB pages).
"""

from __future__ import annotations

import math

#: Page size of a new store when no payload size is expected: the best of the candidates, or close,
#: for the default codecs' payloads (a ~250 B latent, ~3.6 KB mono and ~4.6 KB RGB ``gaussians-q``).
DEFAULT_PAGE_SIZE = 4096

#: Page sizes SQLite accepts, bytes.
VALID_PAGE_SIZES = (1024, 2048, 4096, 8192, 16384, 32768, 65536)

def check_page_size(page_size) -> int:
    """``page_size`` if SQLite accepts it (one of :data:`VALID_PAGE_SIZES`), else ValueError."""
    if isinstance(page_size, bool) or page_size not in VALID_PAGE_SIZES:
        raise ValueError(f"page_size must be a power of two in [1024, 65536], got {page_size!r}")
    return int(page_size)


#: Page sizes :func:`page_size_for_payload` chooses from, bytes.
CANDIDATE_PAGE_SIZES = (4096, 8192, 16384)

#: Which page size wins a near tie (see :func:`page_size_for_payload`).
_TIE_ORDER = (8192, 4096, 16384)

#: Record bytes of a memory's row besides its payload: the record header and the stream, stamp,
#: profile, pose (7 doubles) and fit-quality (2 doubles) columns.
_ROW_BYTES = 98
#: Per-memory bytes outside the memories table: the (stream, stamp) index entry and its share of
#: the pose index.
_INDEX_BYTES = 20


def predicted_overhead(payload_bytes: int, page_size: int) -> float:
    """Predicted file bytes per memory beyond its payload, for payloads of ``payload_bytes``."""
    if payload_bytes < 0 or page_size < 512:
        raise ValueError(f"need payload_bytes >= 0 and page_size >= 512, got {payload_bytes}, {page_size}")
    usable = page_size
    record = payload_bytes + _ROW_BYTES
    max_local = usable - 35
    min_local = (usable - 12) * 32 // 255 - 23
    if record <= max_local:
        local, overflow_pages = record, 0
    else:
        spill = min_local + (record - min_local) % (usable - 4)
        local = spill if spill <= max_local else min_local
        overflow_pages = math.ceil((record - local) / (usable - 4))
    cell = local + 7 + (4 if overflow_pages else 0) + 2  # size and rowid varints, overflow pointer, cell pointer
    rows_per_page = max(1, (usable - 8) // cell)
    return page_size / rows_per_page + overflow_pages * page_size - payload_bytes + _INDEX_BYTES


def page_size_for_payload(payload_bytes: int | None) -> int:
    """The page size (bytes) wasting least for payloads of about ``payload_bytes`` (``None``:
    :data:`DEFAULT_PAGE_SIZE`). Near ties (within 10 % of the least) go to 8 KiB, then 4 KiB: a
    row's exact size (how SQLite stores each column's value) moves it across the model's page
    boundaries by a few bytes, and at the cliff edge 8 KiB pages lose least (400 B payloads with the
    benchmark's columns: 149 B per memory on 4 KiB pages, 119 B on 8 KiB)."""
    if payload_bytes is None:
        return DEFAULT_PAGE_SIZE
    if isinstance(payload_bytes, bool) or not isinstance(payload_bytes, int) or not 0 <= payload_bytes <= 1 << 30:
        raise ValueError(f"payload_bytes must be an integer number of bytes in [0, 2^30], got {payload_bytes!r}")
    sizes = [max(0, round(payload_bytes * f)) for f in (0.95, 0.975, 1.0, 1.025, 1.05)]
    cost = {p: sum(predicted_overhead(s, p) for s in sizes) / len(sizes) for p in CANDIDATE_PAGE_SIZES}
    best = min(cost.values())
    return next(p for p in _TIE_ORDER if cost[p] <= best * 1.1 + 1.0)
