"""Damaged payloads are per-memory ValueErrors: wrong SQLite type, recomputed-CRC payloads decoding out of range."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sqlite3
import struct
import zlib

import numpy as np
import pytest

from gaussvae_ros.cli.main import main
from gaussvae_ros.codecs import decode_payload, render_memory
from gaussvae_ros.core import Gaussians, encode_gaussians
from gaussvae_ros.store.store import Store

from support.memories import random_memories

HEADER = struct.Struct("<2sBBH4B4f")


def payload(n: int = 16) -> bytes:
    rng = np.random.default_rng(0)
    return encode_gaussians(Gaussians(rng.uniform(0, 1, (n, 2)), rng.uniform(0.02, 0.2, (n, 2)), rng.uniform(0, 3, n),
                                      rng.uniform(0, 1, (n, 3))))


def with_ranges(data: bytes, **ranges) -> bytes:
    """``data`` with its header's scale / colour ranges replaced and the CRC recomputed."""
    fields = list(HEADER.unpack_from(data))
    for name, value in ranges.items():
        fields[{"s_lo": 8, "s_hi": 9, "c_lo": 10, "c_hi": 11}[name]] = value
    body = HEADER.pack(*fields) + data[HEADER.size:-4]
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("ranges", [dict(c_lo=math.nan), dict(c_hi=math.inf), dict(s_lo=math.nan),
                                    dict(c_lo=1.0, c_hi=0.0), dict(s_hi=1e30)])
def test_a_recomputed_crc_over_out_of_range_values_is_a_value_error(ranges):
    damaged = with_ranges(payload(), **ranges)
    with pytest.raises(ValueError, match="corrupt"):
        decode_payload(damaged, "gaussians-q")
    with pytest.raises(ValueError, match="corrupt"):
        render_memory(damaged, "gaussians-q", "", 16, 12)
    decode_payload(payload(), "gaussians-q")  # the intact one decodes


@pytest.mark.parametrize("value", ["GS\x01\x03 text", 12345, 1.5, None])
def test_a_payload_of_another_sqlite_type_is_a_value_error(value):
    with pytest.raises(ValueError, match="not as bytes"):
        decode_payload(value, "gaussians-q")
    with pytest.raises(ValueError, match="not as bytes"):
        render_memory(value, "gaussians-q", "", 16, 12)


def test_export_and_store_reads_skip_only_the_damaged_memories(tmp_path, capsys):
    """A TEXT payload is read as its bytes: decoded when they are intact, that memory's ValueError when not."""
    path = tmp_path / "m.db"
    memories = random_memories(3, 12)
    good = payload()
    with Store(path) as store:
        store.insert_many([dataclasses.replace(m, payload=good) for m in memories])
    with sqlite3.connect(path) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM memories ORDER BY id")]
        conn.execute("UPDATE memories SET payload = 'not a payload' WHERE id = ?", (ids[2],))  # TEXT
        conn.execute("UPDATE memories SET payload = CAST(payload AS TEXT) WHERE id = ?", (ids[3],))  # TEXT, intact
        conn.execute("UPDATE memories SET payload = ? WHERE id = ?", (with_ranges(good, c_lo=math.nan), ids[5]))
    with Store(path, create=False) as store:
        records = store.get(ids, with_payload=True)
        failed = []
        for r in records:
            try:
                render_memory(r.payload, r.codec, r.model_id, 16, 12)
            except ValueError:
                failed.append(r.id)
        assert failed == [ids[2], ids[5]]
    code = main(["db", "export", str(path), str(tmp_path / "out"), "--size", "16x12", "--json"])
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert code == 1 and result["count"] == 10
    assert [e["id"] for e in result["errors"]] == [ids[2], ids[5]]
    assert "Traceback" not in out.err
