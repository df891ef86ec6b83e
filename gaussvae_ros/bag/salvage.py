"""Reading what is left of a damaged rosbag2 recording (mcap or sqlite3), no ROS runtime.

``rosbags`` reads intact recordings and raises at the first damaged MCAP chunk or SQLite page, or
refuses a truncated MCAP (no footer) whole. The readers here are the fallback of
:class:`~gaussvae_ros.bag.reader.BagReader`: they read record by record, skip what cannot be read,
and describe each skipped part as a :class:`Damage` (where, which topics, which time range, how
many messages when the file still says so).

* MCAP: with an intact summary, chunk by chunk through the chunk index; without one (a truncated
  file), a linear scan from the start that stops at the end of the readable data and, after a
  damaged record header, searches forward for the next intact chunk.
* sqlite3: the ``messages`` table row by row through its rowid (a damaged page costs the rows it
  holds, not the rows after it).

The readers offer the part of ``rosbags.highlevel.AnyReader`` that the reader uses:
``connections``, ``start_time``, ``end_time``, ``messages(connections, start)``, ``deserialize``,
``close``.
"""

from __future__ import annotations

import mmap
import sqlite3
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import lz4.frame
import yaml
from backports import zstd  # rosbags' own zstd (the standard library's compression.zstd from Python 3.14)

__all__ = ["Damage", "SalvageConnection", "open_salvage"]

MCAP_MAGIC = b"\x89MCAP0\r\n"
_OP_HEADER, _OP_FOOTER, _OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
_OP_MESSAGE_INDEX, _OP_CHUNK_INDEX, _OP_DATA_END = 0x07, 0x08, 0x0F
_KNOWN_OPS = set(range(0x01, 0x11))
_COMPRESSIONS = ("", "zstd", "lz4")


@dataclass
class Damage:
    """A part of a recording that could not be read.

    Attributes:
        where: location in the file (``chunk at byte 123``, ``rows 40-47``, ``end of file``).
        error: why it could not be read.
        start_ns, end_ns: recording (receive) time range of the lost messages, when known.
        lost: topic -> messages lost there, when the file still says (else empty; the per-topic
            totals of :meth:`BagReader.damage_report` then come from the recording's metadata).
    """

    where: str
    error: str
    start_ns: int | None = None
    end_ns: int | None = None
    lost: dict = field(default_factory=dict)

    def describe(self) -> str:
        when = ""
        if self.start_ns is not None and self.end_ns is not None:
            when = f", bag time {self.start_ns}-{self.end_ns}"
        elif self.start_ns is not None:
            when = f", from bag time {self.start_ns}"
        lost = ", ".join(f"{t}: {n} lost" for t, n in sorted(self.lost.items()))
        return f"{self.where}{when}{' (' + lost + ')' if lost else ''}: {self.error}"

    def to_dict(self) -> dict:
        return {"where": self.where, "error": self.error, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "lost": dict(self.lost)}


@dataclass(frozen=True)
class SalvageConnection:
    """A topic connection of a salvaged recording (the fields of a ``rosbags`` Connection used here)."""

    id: int
    topic: str
    msgtype: str
    msgcount: int
    msgdef: str = ""


def _metadata(folder: Path) -> dict:
    try:
        with open(folder / "metadata.yaml") as f:
            return (yaml.safe_load(f) or {}).get("rosbag2_bagfile_information", {}) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _metadata_counts(info: dict) -> dict[str, tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of metadata.yaml."""
    out = {}
    for entry in info.get("topics_with_message_count") or []:
        try:
            meta = entry["topic_metadata"]
            out[str(meta["name"])] = (str(meta["type"]), int(entry["message_count"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _storage_files(folder: Path, info: dict) -> list[Path]:
    names = info.get("relative_file_paths") or []
    files = [folder / n for n in names if (folder / n).exists()]
    if not files:
        files = sorted(p for p in folder.iterdir() if p.suffix in (".mcap", ".db3"))
    return files


def open_salvage(folder: Path, error: str = "", damage: list | None = None) -> "SalvagedRecording":
    """A salvaging reader of the rosbag2 folder ``folder``; ValueError if nothing can be read.

    What it skips is appended to ``damage`` (default: a new list, its ``damage`` attribute).
    """
    folder = Path(folder)
    if folder.is_file():  # a lone MCAP file, without a rosbag2 folder around it
        info, files = {}, [folder]
    else:
        info = _metadata(folder)
        files = _storage_files(folder, info)
    if not files:
        raise ValueError(f"no mcap or db3 file in {folder}")
    per_message = str(info.get("compression_mode") or "").lower() == "message"
    recording = SalvagedRecording(folder, files, _metadata_counts(info), damage,
                                  str(info.get("compression_format") or "") if per_message else "")
    if not recording.connections:
        recording.close()
        raise ValueError(f"nothing readable in {folder}" + (f" ({error})" if error else ""))
    return recording


class SalvagedRecording:
    """All storage files of one recording, read by :class:`_McapSalvage` / :class:`_SqliteSalvage`."""

    def __init__(self, folder: Path, files: list[Path], expected: dict[str, tuple[str, int]],
                 damage: list | None = None, message_compression: str = "") -> None:
        self.folder = folder
        self.message_compression = message_compression  # rosbag2 per-message compression ("": none)
        self.damage: list[Damage] = [] if damage is None else damage
        self.expected = expected  # topic -> (msgtype, count) of metadata.yaml
        self._parts = []
        for path in files:
            try:
                part = _McapSalvage(path, self.damage) if path.suffix == ".mcap" else _SqliteSalvage(path, self.damage)
            except (OSError, ValueError, sqlite3.Error) as exc:
                self.damage.append(Damage(f"{path.name}", f"unreadable: {exc}"))
                continue
            self._parts.append(part)
        # One connection per (topic, msgtype) across files; counts from metadata.yaml where it has them.
        self.connections: list[SalvageConnection] = []
        by_key: dict[tuple[str, str], SalvageConnection] = {}
        for part in self._parts:
            for c in part.connections.values():
                key = (c.topic, c.msgtype)
                if key not in by_key:
                    count = expected.get(c.topic, (None, c.msgcount))[1]
                    by_key[key] = SalvageConnection(len(by_key) + 1, c.topic, c.msgtype, int(count), c.msgdef)
        self.connections = list(by_key.values())
        self._by_key = by_key
        times = [t for part in self._parts for t in part.times()]
        self.start_time = min(times) if times else 0
        self.end_time = max(times) + 1 if times else 0
        self._typestore = None

    def messages(self, connections=None, start: int | None = None) -> Iterator[tuple[SalvageConnection, int, bytes]]:
        """``(connection, bag time ns, raw CDR)`` of the readable messages of ``connections``."""
        wanted = None if connections is None else {(c.topic, c.msgtype) for c in connections}
        for part in self._parts:
            for c, stamp, raw in part.messages():
                key = (c.topic, c.msgtype)
                if wanted is not None and key not in wanted:
                    continue
                if start is not None and stamp < start:
                    continue
                if self.message_compression:
                    try:
                        raw = _decompress(raw, self.message_compression, 0)
                    except Exception as exc:  # zstd / lz4 errors: this message is lost
                        self.damage.append(Damage(f"message at bag time {stamp}", f"{type(exc).__name__}: {exc}",
                                                  stamp, stamp, {c.topic: 1}))
                        continue
                yield self._by_key[key], stamp, raw

    def deserialize(self, raw: bytes, msgtype: str):
        if self._typestore is None:
            from rosbags.typesys import Stores, get_types_from_msg, get_typestore

            store = get_typestore(Stores.ROS2_HUMBLE)
            for c in self.connections:
                if c.msgtype not in store.fielddefs and c.msgdef:
                    try:
                        store.register(get_types_from_msg(c.msgdef, c.msgtype))
                    except Exception:  # an unparsable definition: that topic stays undecodable
                        pass
            self._typestore = store
        return self._typestore.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        for part in self._parts:
            part.close()
        self._parts = []


# --- MCAP -------------------------------------------------------------------------------------


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return bytes(data)
    if compression == "zstd":
        return zstd.decompress(bytes(data))
    if compression == "lz4":
        return lz4.frame.decompress(data)
    raise ValueError(f"unknown chunk compression {compression!r}")


def _string(buf, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    if pos + 4 + n > len(buf):
        raise ValueError("string runs past its record")
    return bytes(buf[pos + 4:pos + 4 + n]).decode(), pos + 4 + n


class _McapSalvage:
    """One MCAP file read chunk by chunk, damaged chunks and a truncated tail skipped and described."""

    def __init__(self, path: Path, damage: list[Damage]) -> None:
        self.path = path
        self.damage = damage
        self._file = open(path, "rb")
        size = self._file.seek(0, 2)
        if size < len(MCAP_MAGIC) + 9:
            raise ValueError("too short for an MCAP file")
        self.buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        if self.buf[:8] != MCAP_MAGIC:
            raise ValueError("not an MCAP file (bad magic)")
        self.schemas: dict[int, tuple[str, str]] = {}  # id -> (name, definition)
        self.connections: dict[int, SalvageConnection] = {}
        self.chunks: list[tuple[int, int, int, dict]] = []  # (offset, start, end, {channel: count})
        self.indexed = self._read_summary()
        if not self.indexed:
            self._scan_metadata()

    # The summary (footer -> summary offset -> schemas, channels, chunk indexes) when intact.
    def _read_summary(self) -> bool:
        buf = self.buf
        n = len(buf)
        try:
            if buf[n - 8:] != MCAP_MAGIC or buf[n - 37] != _OP_FOOTER:
                return False
            (summary,) = struct.unpack_from("<Q", buf, n - 37 + 9)
            if not 8 < summary < n - 37:
                return False
            pos = summary
            chunks = []
            while pos < n - 37:
                op = buf[pos]
                (length,) = struct.unpack_from("<Q", buf, pos + 1)
                body = pos + 9
                if op == _OP_FOOTER or body + length > n:
                    break
                if op in (_OP_SCHEMA, _OP_CHANNEL):
                    self._record_meta(op, body, body + length)
                elif op == _OP_CHUNK_INDEX:
                    start, end, offset, _chunk_len = struct.unpack_from("<QQQQ", buf, body)
                    (idx_len,) = struct.unpack_from("<I", buf, body + 32)
                    offsets = sorted((off, cid) for cid, off in struct.iter_unpack(
                        "<HQ", bytes(buf[body + 36:body + 36 + idx_len])))
                    (index_length,) = struct.unpack_from("<Q", buf, body + 36 + idx_len)
                    stops = [off for off, _ in offsets[1:]] + [offset + _chunk_len + index_length]
                    counts = {cid: (stop - off - 15) // 16 for (off, cid), stop in zip(offsets, stops)}
                    chunks.append((offset, start, end, counts))
                pos = body + length
            if not chunks:
                return False
            self.chunks = sorted(chunks, key=lambda c: (c[1], c[0]))
            return True
        except (struct.error, ValueError, IndexError):
            self.schemas.clear()
            self.connections.clear()
            return False

    def _record_meta(self, op: int, pos: int, end: int) -> None:
        buf = self.buf
        if op == _OP_SCHEMA:
            (sid,) = struct.unpack_from("<H", buf, pos)
            name, pos = _string(buf, pos + 2)
            _encoding, pos = _string(buf, pos)
            (n,) = struct.unpack_from("<I", buf, pos)
            self.schemas[sid] = (name, bytes(buf[pos + 4:min(pos + 4 + n, end)]).decode(errors="replace"))
        else:
            cid, sid = struct.unpack_from("<HH", buf, pos)
            topic, pos = _string(buf, pos + 4)
            name, definition = self.schemas.get(sid, ("", ""))
            if cid not in self.connections and name:
                self.connections[cid] = SalvageConnection(cid, topic, name, 0, definition)

    def _valid_chunk_header(self, pos: int) -> tuple[int, int, int, int, str, int] | None:
        """``(length, start, end, uncompressed size, compression, compressed size)`` of a plausible
        chunk record at ``pos``, else None."""
        buf = self.buf
        try:
            if buf[pos] != _OP_CHUNK:
                return None
            (length,) = struct.unpack_from("<Q", buf, pos + 1)
            start, end, usize, _crc = struct.unpack_from("<QQQI", buf, pos + 9)
            compression, p = _string(buf, pos + 9 + 28)
            (csize,) = struct.unpack_from("<Q", buf, p)
        except (struct.error, ValueError, IndexError, UnicodeDecodeError):
            return None
        if compression not in _COMPRESSIONS or start > end or length < 40 or csize > length:
            return None
        if usize > 1 << 34:
            return None
        return length, start, end, usize, compression, csize

    def _chunk_records(self, pos: int):
        """Decompressed records of the chunk at ``pos``: ``[(op, body bytes)]``; raises if damaged."""
        header = self._valid_chunk_header(pos)
        if header is None:
            raise ValueError("not an intact chunk header")
        length, _start, _end, usize, compression, csize = header
        (crc,) = struct.unpack_from("<I", self.buf, pos + 9 + 24)
        data_at = pos + 9 + 28 + 4 + len(compression) + 8
        if data_at + csize > len(self.buf):
            raise ValueError(f"chunk ends after the end of the file ({len(self.buf)} bytes)")
        raw = _decompress(self.buf[data_at:data_at + csize], compression, usize)
        if len(raw) != usize:
            raise ValueError(f"chunk decompresses to {len(raw)} bytes, not {usize}")
        if crc and zlib.crc32(raw) != crc:
            raise ValueError("chunk checksum mismatch")
        records, p = [], 0
        while p < len(raw):
            if p + 9 > len(raw):
                raise ValueError("chunk ends inside a record header")
            op = raw[p]
            (n,) = struct.unpack_from("<Q", raw, p + 1)
            if p + 9 + n > len(raw):
                raise ValueError("record runs past its chunk")
            records.append((op, raw[p + 9:p + 9 + n]))
            p += 9 + n
        return records

    def _scan(self):
        """Top-level records from the data start: ``(op, offset, length)``; resynchronises on
        the next intact chunk after a damaged header, stops at the end of the readable data."""
        buf = self.buf
        n = len(buf)
        pos = 8
        while pos < n:
            if pos + 9 > n:
                yield None, pos, 0
                return
            op = buf[pos]
            (length,) = struct.unpack_from("<Q", buf, pos + 1)
            broken_chunk = op == _OP_CHUNK and self._valid_chunk_header(pos) is None
            if op not in _KNOWN_OPS or pos + 9 + length > n or broken_chunk:
                yield -1, pos, length  # damaged header or truncated record: the caller reports it
                nxt = self._next_chunk(pos + 1)
                if nxt is None:
                    return
                pos = nxt
                continue
            yield op, pos, length
            if op in (_OP_FOOTER, _OP_DATA_END):
                return
            pos += 9 + length

    def _next_chunk(self, pos: int) -> int | None:
        buf = self.buf
        while True:
            pos = buf.find(bytes([_OP_CHUNK]), pos)
            if pos < 0:
                return None
            header = self._valid_chunk_header(pos)
            if header is not None and pos + 9 + header[0] <= len(buf):
                return pos
            pos += 1

    def _scan_metadata(self) -> None:
        """Schemas and channels by a linear scan (top level and inside the readable chunks)."""
        for op, pos, length in self._scan():
            if op in (_OP_SCHEMA, _OP_CHANNEL):
                self._record_meta(op, pos + 9, pos + 9 + length)
            elif op == _OP_CHUNK:
                header = self._valid_chunk_header(pos)
                try:
                    records = self._chunk_records(pos)
                except Exception:  # reported when the messages are read
                    records = []
                for rop, body in records:
                    if rop in (_OP_SCHEMA, _OP_CHANNEL):
                        self._inner_meta(rop, body)
                self.chunks.append((pos, header[1], header[2], {}))

    def _inner_meta(self, op: int, body: bytes) -> None:
        try:
            if op == _OP_SCHEMA:
                (sid,) = struct.unpack_from("<H", body, 0)
                name, p = _string(body, 2)
                _encoding, p = _string(body, p)
                (k,) = struct.unpack_from("<I", body, p)
                self.schemas[sid] = (name, bytes(body[p + 4:p + 4 + k]).decode(errors="replace"))
            else:
                cid, sid = struct.unpack_from("<HH", body, 0)
                topic, _ = _string(body, 4)
                name, definition = self.schemas.get(sid, ("", ""))
                if cid not in self.connections and name:
                    self.connections[cid] = SalvageConnection(cid, topic, name, 0, definition)
        except (struct.error, ValueError, UnicodeDecodeError):
            pass

    def times(self) -> list[int]:
        return [t for _, start, end, _ in self.chunks for t in (start, end)]

    def _lost(self, counts: dict) -> dict:
        out: dict[str, int] = {}
        for cid, k in counts.items():
            c = self.connections.get(cid)
            if c is not None and k > 0:
                out[c.topic] = out.get(c.topic, 0) + int(k)
        return out

    def _chunk_messages(self, pos: int):
        msgs = []
        for op, body in self._chunk_records(pos):
            if op == _OP_MESSAGE and len(body) >= 22:
                cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", body, 0)
                if cid in self.connections:
                    msgs.append((log_time, cid, body[22:]))
            elif op in (_OP_SCHEMA, _OP_CHANNEL):
                self._inner_meta(op, body)
        msgs.sort(key=lambda m: m[0])
        return msgs

    def messages(self):
        if self.indexed:
            for offset, start, end, counts in self.chunks:
                try:
                    msgs = self._chunk_messages(offset)
                except Exception as exc:  # zstd, lz4 and struct errors: this chunk is lost
                    self.damage.append(Damage(f"{self.path.name}: chunk at byte {offset}",
                                              f"{type(exc).__name__}: {exc}", start, end, self._lost(counts)))
                    continue
                for log_time, cid, raw in msgs:
                    yield self.connections[cid], log_time, raw
            return
        last_time = None
        lost_chunk = None  # Damage of the chunk just skipped, completed by the message indexes after it
        for op, pos, length in self._scan():
            if op == _OP_MESSAGE_INDEX and lost_chunk is not None:
                try:
                    (cid,) = struct.unpack_from("<H", self.buf, pos + 9)
                    (k,) = struct.unpack_from("<I", self.buf, pos + 11)
                    c = self.connections.get(cid)
                    if c is not None and k // 16:
                        lost_chunk.lost[c.topic] = lost_chunk.lost.get(c.topic, 0) + k // 16
                except struct.error:
                    pass
                continue
            if op != _OP_MESSAGE_INDEX:
                lost_chunk = None
            if op is None or op == -1:
                truncated = op is None or pos + 9 + length > len(self.buf)
                what = "the file ends inside a record" if truncated else "damaged record header"
                header = self._valid_chunk_header(pos)
                start = header[1] if header else last_time
                end = None if truncated else (header[2] if header else None)
                self.damage.append(Damage(f"{self.path.name}: byte {pos} of {len(self.buf)}",
                                          what + ("; read up to here" if truncated else
                                                  "; reading goes on at the next intact chunk"), start, end))
                continue
            if op == _OP_MESSAGE:
                body = self.buf[pos + 9:pos + 9 + length]
                if len(body) >= 22:
                    cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", body, 0)
                    if cid in self.connections:
                        last_time = log_time
                        yield self.connections[cid], log_time, bytes(body[22:])
            elif op == _OP_CHUNK:
                header = self._valid_chunk_header(pos)
                try:
                    msgs = self._chunk_messages(pos)
                except Exception as exc:  # zstd, lz4 and struct errors: this chunk is lost
                    lost_chunk = Damage(f"{self.path.name}: chunk at byte {pos}", f"{type(exc).__name__}: {exc}",
                                        header[1], header[2])
                    self.damage.append(lost_chunk)
                    continue
                for log_time, cid, raw in msgs:
                    last_time = log_time
                    yield self.connections[cid], log_time, raw

    def close(self) -> None:
        try:
            self.buf.close()
        finally:
            self._file.close()


# --- sqlite3 ----------------------------------------------------------------------------------


class _SqliteSalvage:
    """One rosbag2 sqlite3 file read row by row; rows on damaged pages skipped and described."""

    def __init__(self, path: Path, damage: list[Damage]) -> None:
        self.path = path
        self.damage = damage
        self.db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        self.connections: dict[int, SalvageConnection] = {}
        rows = self.db.execute("SELECT id, name, type FROM topics").fetchall()
        definitions: dict[str, str] = {}
        try:
            for name, encoding, text in self.db.execute(
                    "SELECT topic_type, encoding, type_description FROM message_definitions"):
                if encoding == "ros2msg":
                    definitions[str(name)] = str(text)
        except sqlite3.Error:
            pass
        for tid, name, msgtype in rows:
            self.connections[int(tid)] = SalvageConnection(int(tid), str(name), str(msgtype), 0,
                                                           definitions.get(str(msgtype), ""))
        self._rows: list[tuple[int, int, int]] | None = None  # (timestamp, id, topic id), time order

    def _max_id(self) -> int:
        for query in ("SELECT max(id) FROM messages", "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"):
            try:
                row = self.db.execute(query).fetchone()
                if row and row[0] is not None:
                    return int(row[0])
            except sqlite3.Error:
                continue
        return 0

    def _index(self) -> list[tuple[int, int, int]]:
        """Readable rows' (timestamp, id, topic id); runs of unreadable ids become Damage."""
        if self._rows is not None:
            return self._rows
        rows, bad = [], []
        last, top = 0, self._max_id()
        while True:
            try:
                batch = self.db.execute("SELECT id, topic_id, timestamp FROM messages WHERE id > ? ORDER BY id "
                                        "LIMIT 512", (last,)).fetchall()
            except sqlite3.DatabaseError as exc:  # a damaged page: probe the ids one by one past it
                error = f"{type(exc).__name__}: {exc}"
                probe = last + 1
                found = False
                while probe <= top:
                    try:
                        row = self.db.execute("SELECT id, topic_id, timestamp FROM messages WHERE id = ?",
                                              (probe,)).fetchone()
                    except sqlite3.DatabaseError:
                        bad.append((probe, error))
                        probe += 1
                        continue
                    if row is not None:
                        rows.append((int(row[2]), int(row[0]), int(row[1])))
                        # read on in batches once a few rows in a row are readable again
                        last = probe
                        found = True
                        break
                    probe += 1
                if not found:
                    break
                continue
            if not batch:
                break
            rows.extend((int(ts), int(i), int(t)) for i, t, ts in batch)
            last = int(batch[-1][0])
        rows.sort()
        self._describe(bad, rows)
        self._rows = rows
        return rows

    def _describe(self, bad: list[tuple[int, str]], rows: list[tuple[int, int, int]]) -> None:
        if not bad:
            return
        by_id = sorted((i, ts) for ts, i, _ in rows)
        runs, run = [], [bad[0]]
        for item in bad[1:]:
            if item[0] == run[-1][0] + 1:
                run.append(item)
            else:
                runs.append(run)
                run = [item]
        runs.append(run)
        import bisect

        ids = [i for i, _ in by_id]
        for run in runs:
            first, last = run[0][0], run[-1][0]
            k = bisect.bisect_left(ids, first)
            before = by_id[k - 1][1] if k > 0 else None
            after = by_id[k][1] if k < len(by_id) else None
            self.damage.append(Damage(f"{self.path.name}: rows {first}-{last}", run[0][1], before, after,
                                      {"(unknown topic)": last - first + 1}))

    def times(self) -> list[int]:
        rows = self._index()
        return [rows[0][0], rows[-1][0]] if rows else []

    def messages(self):
        for stamp, rid, tid in self._index():
            c = self.connections.get(tid)
            if c is None:
                continue
            try:
                row = self.db.execute("SELECT data FROM messages WHERE id = ?", (rid,)).fetchone()
            except sqlite3.DatabaseError as exc:
                self.damage.append(Damage(f"{self.path.name}: row {rid}", f"{type(exc).__name__}: {exc}",
                                          stamp, stamp, {c.topic: 1}))
                continue
            if row is None or not isinstance(row[0], (bytes, memoryview)):
                self.damage.append(Damage(f"{self.path.name}: row {rid}", "no message data", stamp, stamp,
                                          {c.topic: 1}))
                continue
            yield c, stamp, bytes(row[0])

    def close(self) -> None:
        self.db.close()
