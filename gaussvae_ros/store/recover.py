"""Salvaging the readable memories of a damaged store into a new one (``gaussvae db recover``).

The damaged file is never written: it is copied (with its ``-wal``) to a scratch folder beside the
new file, and the copy is read memory by memory through its rowid (a damaged page costs the
memories on it, not the ones after it). Every memory read whole is inserted into the new store
(new ids, same topic, frame, stamp, pose, camera and payload); the report says what was lost.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .records import Memory, StoreError
from .store import Store

__all__ = ["RecoveryReport", "recover_store"]


@dataclass
class RecoveryReport:
    """What :func:`recover_store` did: ``recovered`` memories written to ``out``, ``lost`` ids that
    could not be read (``lost_errors`` why, first few), ``highest_id`` the largest id the damaged
    file knew (ids above the last readable one may be lost unseen), ``problems`` of the damaged
    file (``quick_check``)."""

    source: str
    out: str
    recovered: int = 0
    lost: list = field(default_factory=list)
    lost_errors: list = field(default_factory=list)
    highest_id: int = 0
    problems: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _ids(conn: sqlite3.Connection, report: RecoveryReport) -> tuple[list[int], list[int]]:
    """``(readable ids, ids whose rows could not be read)``, probing one by one past a damaged page."""
    top = 0
    for query in ("SELECT seq FROM sqlite_sequence WHERE name = 'memories'", "SELECT max(id) FROM memories"):
        try:
            row = conn.execute(query).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row and row[0] is not None:
            top = max(top, int(row[0]))
    report.highest_id = top
    ids, bad, last = [], [], 0
    while True:
        try:
            batch = [int(r[0]) for r in conn.execute(
                "SELECT id FROM memories WHERE id > ? ORDER BY id LIMIT 1000", (last,))]
        except sqlite3.DatabaseError:
            probe, found = last + 1, False
            while probe <= top:
                try:
                    row = conn.execute("SELECT id FROM memories WHERE id = ?", (probe,)).fetchone()
                except sqlite3.DatabaseError:
                    bad.append(probe)
                    probe += 1
                    continue
                probe += 1
                if row is not None:
                    ids.append(int(row[0]))
                    last, found = int(row[0]), True
                    break
            if not found:
                break
            continue
        if not batch:
            break
        ids.extend(batch)
        last = batch[-1]
    return ids, bad


def recover_store(source: str | Path, out: str | Path, batch_size: int = 64) -> RecoveryReport:
    """Copy every readable memory of the store ``source`` into a new store ``out`` (must not exist).

    Raises FileNotFoundError for a missing source, ValueError when ``out`` exists, StoreError when
    nothing of the source can be read as a store (its schema pages are damaged).
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise FileNotFoundError(f"no memory store at {source}")
    if out.exists():
        raise ValueError(f"{out} exists: recovery writes a new file")
    report = RecoveryReport(str(source), str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".recover-", dir=out.parent) as scratch:
        copy = Path(scratch) / source.name
        shutil.copyfile(source, copy)
        wal = source.with_name(source.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        raw = sqlite3.connect(copy, isolation_level=None)
        try:
            try:
                report.problems = [r[0] for r in raw.execute("PRAGMA quick_check(50)") if r[0] != "ok"]
            except sqlite3.DatabaseError as exc:
                report.problems = [str(exc)]
            ids, bad = _ids(raw, report)
        finally:
            raw.close()
        report.lost.extend(bad)
        if bad:
            report.lost_errors.append(f"ids {bad[0]}..{bad[-1]}: rows on damaged pages ({len(bad)})")
        try:
            damaged = Store(copy, create=False, health_check="never")
        except StoreError as exc:
            raise StoreError(f"{source}: nothing recoverable: {exc}") from exc
        with damaged, Store(out) as target:
            pending: list[Memory] = []
            for memory_id in ids:
                try:
                    (r,) = damaged.get([memory_id], with_payload=True)
                    if not isinstance(r.payload, (bytes, bytearray, memoryview)):
                        raise ValueError("no payload bytes")
                    pending.append(Memory(
                        stamp_ns=r.stamp_ns, topic=r.topic, camera_frame_id=r.camera_frame_id, payload=bytes(r.payload),
                        width=r.width, height=r.height, encoding=r.encoding, codec=r.codec, model_id=r.model_id,
                        pose=r.pose, pose_frame_id=r.pose_frame_id, intrinsics=r.intrinsics, psnr=r.psnr,
                        ssim=r.ssim))
                except (StoreError, ValueError, sqlite3.Error) as exc:
                    report.lost.append(memory_id)
                    if len(report.lost_errors) < 10:
                        report.lost_errors.append(f"memory {memory_id}: {exc}")
                    continue
                if len(pending) >= batch_size:
                    report.recovered += target.insert_many(pending, batch_size=batch_size).inserted
                    pending = []
            if pending:
                report.recovered += target.insert_many(pending, batch_size=batch_size).inserted
    report.lost = sorted(set(report.lost))
    return report
