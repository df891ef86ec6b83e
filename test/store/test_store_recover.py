"""Damaged stores: refused clearly at open (health check), salvaged memory by memory by ``db recover``;
WAL write-back failures at close are reported."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from gaussvae_ros.cli.main import main
from gaussvae_ros.store import Memory, Store, StoreError

from support.memories import SECOND, T0


def filled(path, count=60, payload=3000):
    memories = [Memory(T0 + k * SECOND, "/cam", "front", bytes([k % 251]) * payload, 64, 48, "rgb8")
                for k in range(count)]
    with Store(path) as store:
        store.insert_many(memories)
    return memories


def damage_page(path, fraction=0.5):
    page = 4096
    pages = path.stat().st_size // page
    with open(path, "r+b") as f:
        f.seek(int(pages * fraction) * page)
        f.write(b"\xab" * page)


def test_a_damaged_store_is_refused_at_open_and_recovered_row_by_row(tmp_path, capsys):
    path = tmp_path / "m.db"
    memories = filled(path)
    damage_page(path)
    with pytest.raises(StoreError, match="damaged.*gaussvae db recover"):
        Store(path, create=False, health_check="always")
    code = main(["db", "recover", str(path), str(tmp_path / "new.db"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and 1 <= len(report["lost"]) <= 3 and report["problems"]
    assert report["recovered"] == len(memories) - len(report["lost"])
    with Store(tmp_path / "new.db", create=False, health_check="always") as store:
        recovered = store.by_time(with_payload=True)
        assert store.integrity_check() == []
    by_stamp = {m.stamp_ns: m for m in memories}
    assert len(recovered) == report["recovered"]
    assert all(r.payload == by_stamp[r.stamp_ns].payload for r in recovered)
    assert main(["db", "recover", str(path), str(tmp_path / "new.db")]) == 2  # never overwrites


def test_an_intact_store_is_recovered_whole(tmp_path, capsys):
    path = tmp_path / "m.db"
    memories = filled(path, 20)
    assert main(["db", "recover", str(path), str(tmp_path / "new.db"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recovered"] == len(memories) and report["lost"] == []


def test_an_unclean_shutdown_is_checked_at_open(tmp_path):
    path = tmp_path / "m.db"
    filled(path, 30)
    conn = sqlite3.connect(path, isolation_level=None)  # a writer that "crashes" with its WAL left behind
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE memories SET psnr = 30.0")
    shutil.copyfile(path, tmp_path / "crashed.db")
    shutil.copyfile(str(path) + "-wal", str(tmp_path / "crashed.db") + "-wal")
    conn.close()
    crashed = tmp_path / "crashed.db"
    with Store(crashed, create=False) as store:  # the WAL is replayed and the file checked: fine
        assert store.stats().count == 30
    shutil.copyfile(path, crashed)
    damage_page(crashed, 0.3)
    with open(str(crashed) + "-wal", "wb") as f:
        f.write(b"\x00" * 100)  # an unclean shutdown's leftovers beside a damaged file
    with pytest.raises(StoreError, match="damaged"):
        Store(crashed, create=False)


def test_a_wal_that_cannot_be_written_back_at_close_is_reported(tmp_path, caplog):
    path = tmp_path / "m.db"
    filled(path, 5)
    store = Store(path, create=False)

    class Failing:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)

        def close(self):
            self.conn.close()

    store._conn = Failing(store._conn)
    store.close()
    assert store.close_problems and "could not be written back" in store.close_problems[0]
    assert "disk is full" in caplog.text
