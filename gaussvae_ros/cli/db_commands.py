"""``gaussvae db stats|query|export|compact FILE``: look into a memory database, or compact it.

* ``stats``: counts, size, time span, pose bounds, per camera.
* ``query``: memories by time range (``--start/--end`` seconds) or by pose (``--near X Y Z`` with
  ``--radius M`` or ``--k N``), as a table or JSON.
* ``export``: the queried memories recalled as PNG images at any size (``--size WxH``, default the
  original camera size), optionally a contact sheet and a PNG map of the stored poses coloured by time;
  or, with ``--bag OUT.mcap``, as a ROS 2 recording (records, recalled images, poses, markers) that
  Foxglove opens and ``gaussvae play`` / ``ros2 bag play`` replays (:mod:`gaussvae_ros.apps.bag_export`).
* ``compact``: rewrite the file without the pages deletes and retention freed, optionally with the
  page size that wastes least for its payloads (``--page-size auto``); needs the file to itself.
* ``recover FILE OUT``: copy every readable memory of a damaged store into a new one, memory by
  memory (a damaged page costs only the memories on it), and say which were lost (exit 1 if any).

Times on the command line are seconds: absolute ROS time, or after the first stored memory with
``--relative``. Positions are metres in the stored poses' frame.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from gaussvae_ros.store.export import contact_sheet, pose_map


def _open_store(path: str):
    from gaussvae_ros.store.store import Store

    return Store(path, create=False)


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"size must look like WIDTHxHEIGHT (e.g. 640x480), got {text!r}")
    return int(match[1]), int(match[2])


# --- stats --------------------------------------------------------------------------------------

def _stats(args: argparse.Namespace) -> int:
    with _open_store(args.file) as store:
        s = store.stats()
        typical_payload = None if args.json else store.typical_payload_bytes()  # for the text's advice only
    data = {
        "file": str(args.file), "memories": s.count, "payload_bytes": s.payload_bytes, "file_bytes": s.file_bytes,
        "page_size": s.page_size,
        "bytes_per_memory": s.payload_bytes / s.count if s.count else None,
        "overhead_bytes_per_memory": (s.file_bytes - s.payload_bytes) / s.count if s.count else None,
        "first_stamp_ns": s.first_stamp_ns, "last_stamp_ns": s.last_stamp_ns, "time_span_s": s.time_span_s,
        "with_pose": s.pose_count,
        "pose_bounds": None if s.pose_bounds is None else {"min": list(s.pose_bounds[0]),
                                                            "max": list(s.pose_bounds[1])},
        "cameras": [{"topic": c.topic, "camera_frame_id": c.camera_frame_id, "memories": c.count,
                     "payload_bytes": c.payload_bytes, "first_stamp_ns": c.first_stamp_ns,
                     "last_stamp_ns": c.last_stamp_ns} for c in s.streams],
    }
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"{args.file}: {s.count} memories, {s.payload_bytes / 1024:.1f} KiB of payload "
          f"({data['bytes_per_memory'] or 0:.0f} B each), file {s.file_bytes / 1024:.1f} KiB "
          f"({s.page_size} B pages)")
    if s.count:
        print(f"  time: {s.first_stamp_ns * 1e-9:.3f} .. {s.last_stamp_ns * 1e-9:.3f} s ({s.time_span_s:.2f} s)")
    if s.pose_bounds is not None:
        lo, hi = s.pose_bounds
        print(f"  {s.pose_count} with a pose, within ({', '.join(f'{v:.2f}' for v in lo)}) .. "
              f"({', '.join(f'{v:.2f}' for v in hi)}) m")
    for c in s.streams:
        print(f"  {c.topic} [{c.camera_frame_id}]: {c.count} memories, {c.payload_bytes / 1024:.1f} KiB")
    hint = _page_size_hint(s, typical_payload)
    if hint:
        print(f"  {hint}")
    return 0


def _page_size_hint(s, payload: int | None) -> str | None:
    """Advice when another page size would waste much less for payloads of ``payload`` bytes (the
    store's typical one), else None."""
    from gaussvae_ros.store.pages import page_size_for_payload, predicted_overhead

    if s.count < 100 or payload is None:
        return None
    better = page_size_for_payload(payload)
    now, then = predicted_overhead(payload, s.page_size), predicted_overhead(payload, better)
    if better == s.page_size or then > 0.5 * now or now - then < 200:
        return None
    return (f"pages of {s.page_size} B cost ~{now:.0f} B per {payload} B memory, {better} B pages ~{then:.0f} B: "
            f"`gaussvae db compact FILE --page-size auto` rewrites the file")


# --- query --------------------------------------------------------------------------------------

def _query_records(store, args: argparse.Namespace, with_payload: bool = False) -> list:
    """Records selected by the shared query options (time range or pose), without payload by default."""
    start_ns, end_ns = (None if v is None else round(v * 1e9) for v in (args.start, args.end))
    if args.relative:
        first = store.stats().first_stamp_ns or 0
        start_ns = None if args.start is None else first + round(args.start * 1e9)
        end_ns = None if args.end is None else first + round(args.end * 1e9)
    if args.near is not None:
        if args.radius is not None and args.k is not None:
            raise ValueError("give --radius or --k with --near, not both")
        common = dict(topic=args.topic, with_payload=with_payload)
        if args.orientation is not None:
            common.update(orientation=tuple(args.orientation), max_angle_rad=args.max_angle)
        if args.radius is not None:
            records = store.within_radius(tuple(args.near), args.radius, limit=args.limit, **common)
        else:
            records = store.nearest(tuple(args.near), args.k or 5, **common)
        if start_ns is not None or end_ns is not None:
            lo = -math.inf if start_ns is None else start_ns
            hi = math.inf if end_ns is None else end_ns
            records = [r for r in records if lo <= r.stamp_ns <= hi]
        return records[: args.limit] if args.limit else records
    if args.radius is not None or args.k is not None or args.orientation is not None:
        raise ValueError("--radius, --k and --orientation need --near X Y Z")
    return store.by_time(start_ns, end_ns, topic=args.topic, limit=args.limit,
                         with_payload=with_payload)


def _record_dict(r) -> dict:
    return {
        "id": r.id, "stamp_ns": r.stamp_ns, "topic": r.topic, "camera_frame_id": r.camera_frame_id,
        "width": r.width, "height": r.height, "encoding": r.encoding,
        "position": None if r.pose is None else list(r.pose.position),
        "orientation": None if r.pose is None else list(r.pose.orientation),
        "pose_frame_id": r.pose_frame_id or None,
        "distance_m": r.distance_m, "psnr": None if r.psnr is None or not math.isfinite(r.psnr) else r.psnr,
        "ssim": r.ssim, "payload_bytes": r.payload_size,
    }


def _query(args: argparse.Namespace) -> int:
    with _open_store(args.file) as store:
        records = _query_records(store, args)
    rows = [_record_dict(r) for r in records]
    if args.json:
        print(json.dumps({"file": str(args.file), "count": len(rows), "memories": rows}))
        return 0
    print(f"{len(rows)} memories")
    for row in rows:
        where = "no pose" if row["position"] is None else "(" + ", ".join(f"{v:.2f}" for v in row["position"]) + ")"
        dist = "" if row["distance_m"] is None else f"  {row['distance_m']:.2f} m away"
        print(f"  #{row['id']:<6} {row['stamp_ns'] * 1e-9:.3f} s  {row['topic']} [{row['camera_frame_id']}]  "
              f"{row['width']}x{row['height']}  {where}{dist}")
    return 0


# --- export -------------------------------------------------------------------------------------

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "topic"


def _export_bag(args: argparse.Namespace) -> int:
    from gaussvae_ros.apps.bag_export import export_bag

    with _open_store(args.file) as store:
        records = _query_records(store, args)
        report = export_bag(store, records, args.bag, size=args.size, image_format=args.bag_format)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"{report.memories} memories, {report.images} images, {report.markers} markers written to {args.bag}")
    for error in report.errors:
        print(f"gaussvae db export: memory #{error['id']} not recalled: {error['error']}", file=sys.stderr)
    return 1 if report.errors else 0


def _export(args: argparse.Namespace) -> int:
    from PIL import Image

    if args.bag:
        if args.out or args.contact_sheet or args.map:
            raise ValueError("--bag writes a recording: give no output folder, --contact-sheet or --map with it")
        return _export_bag(args)
    if not args.out:
        raise ValueError("give an output folder, or --bag OUT.mcap")

    from gaussvae_ros.codecs.registry import render_memory

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with _open_store(args.file) as store:
        records = _query_records(store, args)
        written, images, labels, errors = [], [], [], []
        for r in records:
            width, height = args.size if args.size else (r.width, r.height)
            try:  # through the memory's own codec and model, as the recall service decodes it
                image = render_memory(store.load_payload(r.id), r.codec, r.model_id, width, height)
            except ValueError as exc:  # one undecodable memory (damaged, or its model is missing) costs no other
                errors.append({"id": r.id, "error": str(exc)})
                print(f"gaussvae db export: memory #{r.id} not exported: {exc}", file=sys.stderr)
                continue
            path = out / f"{r.id:06d}_{_safe(r.topic)}_{r.stamp_ns}.png"
            Image.fromarray(image).save(path)
            written.append(str(path))
            if args.contact_sheet:
                images.append(image)
                labels.append(f"#{r.id}  {r.stamp_ns * 1e-9:.2f} s  {r.topic}")
        result = {"file": str(args.file), "out": str(out), "count": len(written), "images": written,
                  "errors": errors}
        if args.contact_sheet:
            if images:
                sheet_path = out / "contact_sheet.png"
                contact_sheet(images, labels, columns=args.columns).save(sheet_path)
                result["contact_sheet"] = str(sheet_path)
            else:
                result["contact_sheet"] = None
        if args.map:
            map_records = records if (args.start is not None or args.end is not None or args.near is not None
                                      or args.topic is not None) else store.by_time()
            map_path = out / "pose_map.png"
            try:
                result["map_points"] = pose_map(map_records, map_path)
                result["map"] = str(map_path)
            except ValueError as exc:
                result["map"] = None
                result["map_error"] = str(exc)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(written)} images written to {out}")
        for key in ("contact_sheet", "map"):
            if result.get(key):
                print(f"  {key.replace('_', ' ')}: {result[key]}")
        if result.get("map_error"):
            print(f"  map: {result['map_error']}")
        if errors:
            print(f"  {len(errors)} memories could not be decoded (see above)")
    return 1 if errors else 0


# --- compact ------------------------------------------------------------------------------------

def _page_size(text: str) -> int | str:
    from gaussvae_ros.store.pages import check_page_size

    if text == "auto":
        return text
    try:
        return check_page_size(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'auto')") from None


def _compact(args: argparse.Namespace) -> int:
    with _open_store(args.file) as store:
        before, after, page_size = store.compact(args.page_size)
    data = {"file": str(args.file), "bytes_before": before, "bytes_after": after, "page_size": page_size}
    if args.json:
        print(json.dumps(data))
    else:
        print(f"{args.file}: {before / 1024:.1f} KiB -> {after / 1024:.1f} KiB ({page_size} B pages)")
    return 0


# --- recover ------------------------------------------------------------------------------------

def _recover(args: argparse.Namespace) -> int:
    from gaussvae_ros.store.recover import recover_store

    report = recover_store(args.file, args.out)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"{args.file}: {report.recovered} memories recovered into {args.out}, {len(report.lost)} lost"
              + (f" (ids {', '.join(map(str, report.lost[:20]))}{' ...' if len(report.lost) > 20 else ''})"
                 if report.lost else ""))
        for line in report.lost_errors[:5]:
            print(f"  lost: {line}")
    return 1 if report.lost else 0


# --- parsers ------------------------------------------------------------------------------------

def _add_query_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection (default: every memory, by time)")
    g.add_argument("--start", type=float, metavar="S", help="from this time (seconds)")
    g.add_argument("--end", type=float, metavar="S", help="up to this time (seconds, inclusive)")
    g.add_argument("--relative", action="store_true", help="--start/--end count from the first stored memory")
    g.add_argument("--near", type=float, nargs=3, metavar=("X", "Y", "Z"), help="memories near this position (m)")
    g.add_argument("--radius", type=float, metavar="M", help="with --near: all within this distance")
    g.add_argument("--k", type=int, metavar="N", help="with --near: the N nearest (default 5)")
    g.add_argument("--orientation", type=float, nargs=4, metavar=("QX", "QY", "QZ", "QW"),
                   help="with --near: only memories facing within --max-angle of this orientation")
    g.add_argument("--max-angle", type=float, default=0.5, metavar="RAD", help="default 0.5 rad")
    g.add_argument("--topic", help="only this camera topic")
    g.add_argument("--limit", type=int, metavar="N", help="at most N memories")


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="inspect a memory database: stats, query, export images, compact",
                               description=__doc__.split("\n\n")[0])
    sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")

    p = sub.add_parser("stats", help="counts, sizes, time span, pose bounds per camera")
    p.add_argument("file", help="memory database")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_stats)

    p = sub.add_parser("query", help="list memories by time range or by pose")
    p.add_argument("file", help="memory database")
    _add_query_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_query)

    p = sub.add_parser("export", help="recall memories as PNG images, a contact sheet and a pose map, or as an "
                                      "MCAP recording (--bag)")
    p.add_argument("file", help="memory database")
    p.add_argument("out", nargs="?", help="output folder (created); not with --bag")
    p.add_argument("--bag", metavar="OUT.mcap", help="write a ROS 2 recording instead: one MCAP file (OUT.mcap) "
                   "or a rosbag2 folder (any other name)")
    p.add_argument("--bag-format", choices=("jpeg", "png"), default="jpeg",
                   help="with --bag: the recalled images' compression (default jpeg)")
    _add_query_options(p)
    p.add_argument("--size", type=_parse_size, metavar="WxH", help="render size (default: the original camera size)")
    p.add_argument("--contact-sheet", action="store_true", help="also write contact_sheet.png")
    p.add_argument("--columns", type=int, default=4, help="contact sheet columns (default 4)")
    p.add_argument("--map", action="store_true", help="also write pose_map.png (all memories unless filtered)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_export)

    p = sub.add_parser("compact", help="rewrite the file without free pages, optionally with another page size")
    p.add_argument("file", help="memory database (no other program may have it open)")
    p.add_argument("--page-size", type=_page_size, default=None, metavar="auto|BYTES",
                   help="new page size: 'auto' (the one wasting least for the stored payloads) or bytes; "
                        "default: keep it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_compact)

    p = sub.add_parser("recover", help="salvage the readable memories of a damaged database into a new one")
    p.add_argument("file", help="damaged memory database (read, never written)")
    p.add_argument("out", help="new memory database (must not exist)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_recover)
