"""Page size of a new store from its expected payload size, checked against real SQLite files, and
compaction (free pages dropped, pages resized) of an existing one."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gaussvae_ros.core import encoded_size
from gaussvae_ros.store import Memory, Pose, Store, StoreError, page_size_for_payload
from gaussvae_ros.store.pages import CANDIDATE_PAGE_SIZES, DEFAULT_PAGE_SIZE, predicted_overhead
from support.memories import SECOND, T0


def measured_overhead(tmp_path, payload_bytes: int, page_size: int, count: int = 600) -> float:
    """File bytes per memory beyond the payload, between a store of ``count`` and one of ``2 count``
    memories (so the schema's fixed pages cancel), payloads +-5 % around ``payload_bytes``."""
    rng = np.random.default_rng(payload_bytes)
    path = tmp_path / f"s{payload_bytes}_{page_size}.db"
    sizes, payloads = [], 0
    with Store(path, page_size=page_size) as store:
        for half in range(2):
            memories = []
            for i in range(half * count, (half + 1) * count):
                n = payload_bytes + int(rng.integers(-payload_bytes // 20, payload_bytes // 20 + 1))
                memories.append(Memory(T0 + i * SECOND, "/cam", "cam", rng.bytes(n), 640, 480, "rgb8",
                                       pose=Pose((0.5 * i, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)), pose_frame_id="odom"))
                payloads += n if half else 0
            store.insert_many(memories)
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(os.path.getsize(path))
    return (sizes[1] - sizes[0] - payloads) / count


def test_defaults_and_bad_sizes():
    assert page_size_for_payload(None) == DEFAULT_PAGE_SIZE == 4096
    assert page_size_for_payload(encoded_size(512, 3)) == 4096  # the default RGB gaussians-q payload (4,638 B)
    assert page_size_for_payload(encoded_size(256, 3)) > 4096  # 2,334 B: two rows would not fit a 4 KiB page
    assert page_size_for_payload(250) == 8192  # a latent: any page packs it; a tie goes to 8 KiB
    assert page_size_for_payload(400) == 8192  # the store benchmark's payloads
    for bad in (-1, 1.5, True, "4096", 1 << 31):
        with pytest.raises(ValueError):
            page_size_for_payload(bad)
    assert predicted_overhead(4638, 8192) > 3000  # one 4.7 KB row per 8 KiB page


@pytest.mark.parametrize("payload_bytes", [250, 2334, 3614, 4638, 9300])
def test_the_chosen_page_size_wastes_least_in_a_real_file(tmp_path, payload_bytes):
    measured = {p: measured_overhead(tmp_path, payload_bytes, p) for p in CANDIDATE_PAGE_SIZES}
    chosen = page_size_for_payload(payload_bytes)
    assert measured[chosen] <= min(measured.values()) * 1.15 + 40, (chosen, measured)
    assert measured[chosen] < 600  # never most of a page per memory


def test_store_opens_existing_files_with_their_page_size(tmp_path):
    with Store(tmp_path / "a.db", page_size=8192):
        pass
    with Store(tmp_path / "a.db") as store:  # the default (4096) applies to new files only
        assert store._conn.execute("PRAGMA page_size").fetchone()[0] == 8192
    with Store(tmp_path / "b.db") as store:
        assert store._conn.execute("PRAGMA page_size").fetchone()[0] == DEFAULT_PAGE_SIZE


def posed_memories(count: int, payload_bytes: int, seed: int = 0, first: int = 0) -> list[Memory]:
    rng = np.random.default_rng(seed)
    return [Memory(T0 + i * SECOND, "/cam", "cam", rng.bytes(payload_bytes), 640, 480, "rgb8",
                   pose=Pose((0.3 * i, 0.1 * (i % 7), 0.0), (0.0, 0.0, 0.0, 1.0)), pose_frame_id="odom")
            for i in range(first, first + count)]


def answers(store: Store) -> tuple:
    """What the queries return, to compare before and after a compaction."""
    return ([(r.id, r.stamp_ns) for r in store.by_time()],
            [(r.id, round(r.distance_m, 9)) for r in store.within_radius((30.0, 0.3, 0.0), 12.0)],
            [r.id for r in store.nearest((11.0, 0.5, 0.0), 7)],
            [store.load_payload(i) for i in (1, 150, 300)])


def test_compact_resizes_pages_drops_free_ones_and_keeps_every_memory(tmp_path):
    path = tmp_path / "old.db"
    with Store(path, page_size=8192) as store:  # the page size of stores made before 2026-12-02
        store.insert_many(posed_memories(300, encoded_size(512, 3)))
        store.delete(range(2, 300, 3))  # what retention leaves behind: free pages
        expected = answers(store)
        assert store.typical_payload_bytes() == encoded_size(512, 3)
        before, after, page_size = store.compact("auto")
        assert page_size == store.stats().page_size == 4096 and after < 0.45 * before
        assert answers(store) == expected and store.integrity_check() == []
        new_ids = store.insert_many(posed_memories(5, encoded_size(512, 3), seed=1, first=300)).ids
        assert min(new_ids) > 300  # AUTOINCREMENT survives: ids are never reused
    with Store(path) as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.stats().count == 300 - 100 + 5


def test_compact_is_refused_while_another_connection_has_the_file(tmp_path):
    path = tmp_path / "shared.db"
    with Store(path, page_size=8192) as store:
        store.insert_many(posed_memories(40, 3000))
        with Store(path, create=False) as other:
            other.by_time(limit=1)
            with pytest.raises(StoreError, match="another connection"):
                store.compact(4096)
            assert other.stats().page_size == 8192 and len(other.by_time()) == 40
        assert store.compact(4096)[1:] == (os.path.getsize(path), 4096)
        assert store.stats().page_size == 4096 and len(store.by_time()) == 40
    with pytest.raises(ValueError, match="power of two"):
        Store(path).compact(3000)


def test_db_stats_suggests_compacting_a_badly_paged_store(tmp_path, capsys):
    from gaussvae_ros.cli.main import main

    path = tmp_path / "old.db"
    with Store(path, page_size=8192) as store:
        store.insert_many(posed_memories(120, encoded_size(512, 3)))
    assert main(["db", "stats", str(path)]) == 0
    assert "gaussvae db compact" in capsys.readouterr().out
    assert main(["db", "stats", str(path), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["db", "compact", str(path), "--page-size", "auto"]) == 0
    capsys.readouterr()
    assert main(["db", "stats", str(path), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert before["page_size"] == 8192 and after["page_size"] == 4096
    assert after["overhead_bytes_per_memory"] < before["overhead_bytes_per_memory"] / 4  # schema pages included
    assert main(["db", "stats", str(path)]) == 0
    assert "gaussvae db compact" not in capsys.readouterr().out
