"""``gaussvae recall`` and ``gaussvae query``: ask the running memory graph over DDS.

What ``ros2 service call`` would do, readable (:mod:`gaussvae_ros.apps.live_client`)::

    gaussvae query --near 10 0 0 --radius 5            # query_by_pose of gaussvae_memory
    gaussvae query --start 1700000000 --end 1700000060 --json
    gaussvae query --stats
    gaussvae recall --ids 3 4 5 --size 640x480 --out recalled/        # the recall service
    gaussvae recall --near 10 0 0 --radius 5 --out recalled/ --contact-sheet
    gaussvae recall --start 1700000000 --out recalled/ --stream       # the recall_memories action

Selection: ``--ids``, or ``--near X Y Z`` with ``--radius M`` and/or ``--k N`` (in ``--frame``,
default map), or a time range ``--start`` / ``--end`` (seconds, ROS time; neither = every
memory). The services are found in ``--namespace`` (the graph's) on the environment's
``ROS_DOMAIN_ID``; when none answers within ``--timeout`` seconds the command says which one and
exits with status 3 (2 for a refused request).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gaussvae_ros.cli.db_commands import _parse_size as parse_size  # the same WxH syntax as db export

EXIT_NO_SERVER = 3


def _selection(args):
    from gaussvae_ros.apps.live_client import Selection

    return Selection(ids=args.ids, near=args.near, radius=args.radius, k=args.k, frame_id=args.frame,
                     start=args.start, end=args.end, limit=args.limit or 0)


def _info_dict(m, distance=None) -> dict:
    p = m.pose.position
    return {"id": int(m.id), "stamp_ns": m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec,
            "topic": m.source_topic, "camera_frame_id": m.header.frame_id, "width": m.width, "height": m.height,
            "codec": m.codec_id, "payload_bytes": m.payload_size,
            "position": [p.x, p.y, p.z] if m.has_pose else None, "pose_frame_id": m.pose_frame_id or None,
            "distance_m": distance}


def _run(args, body) -> int:
    from gaussvae_ros.apps.live_client import LiveClient, NoServer

    try:
        with LiveClient(args.namespace, args.timeout) as client:
            return body(client)
    except NoServer as exc:
        print(f"gaussvae {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_NO_SERVER


def _query(args: argparse.Namespace) -> int:
    def body(client) -> int:
        if args.stats:
            r = client.stats()
            if not r.success:
                print(f"gaussvae query: error: {r.message}", file=sys.stderr)
                return 2
            data = {"memories": r.count, "with_pose": r.count_with_pose, "payload_bytes": r.payload_bytes,
                    "storage_bytes": r.storage_bytes, "min_id": r.min_id, "max_id": r.max_id,
                    "codec_ids": list(r.codec_ids)}
            print(json.dumps(data) if args.json else
                  f"{r.count} memories ({r.count_with_pose} with a pose), {r.payload_bytes} payload bytes, "
                  f"ids {r.min_id}..{r.max_id}, codecs {', '.join(r.codec_ids) or '-'}")
            return 0
        r = client.query(_selection(args))
        if not r.success:
            print(f"gaussvae query: error: {r.message}", file=sys.stderr)
            return 2
        distances = list(getattr(r, "distances", [])) or [None] * len(r.memories)
        rows = [_info_dict(m, d) for m, d in zip(r.memories, distances)]
        if args.json:
            print(json.dumps({"count": len(rows), "message": r.message, "memories": rows,
                              "missing_ids": list(getattr(r, "missing_ids", []))}))
            return 0
        print(r.message)
        for row in rows:
            where = "no pose" if row["position"] is None else "(" + ", ".join(f"{v:.2f}" for v in row["position"]) + ")"
            dist = "" if row["distance_m"] is None else f"  {row['distance_m']:.2f} m away"
            print(f"  #{row['id']:<6} {row['stamp_ns'] * 1e-9:.3f} s  {row['topic']} [{row['camera_frame_id']}]  "
                  f"{row['width']}x{row['height']}  {where}{dist}")
        return 0

    return _run(args, body)


def _recall(args: argparse.Namespace) -> int:
    from PIL import Image as PILImage

    from gaussvae_ros.apps.live_client import recall_goal
    from gaussvae_ros.nodes.recall_outputs import image_pixels
    from gaussvae_ros.store.export import contact_sheet

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    width, height = args.size or (0, 0)
    written, sheet_images, labels = [], [], []

    def save(memory_id: int, image) -> None:
        stamp_ns = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
        pixels = image_pixels(image)
        path = out / f"{int(memory_id):06d}_{stamp_ns}.png"
        PILImage.fromarray(pixels).save(path)
        written.append(str(path))
        if args.contact_sheet:
            sheet_images.append(pixels.copy())
            labels.append(f"#{memory_id}  {stamp_ns * 1e-9:.2f} s")

    def body(client) -> int:
        selection = _selection(args)
        result = {"out": str(out)}
        if args.stream:
            status, r = client.recall_stream(recall_goal(selection, width, height, args.publish, args.max_bytes),
                                             save)
            result.update(ids=list(r.ids), truncated=bool(r.truncated), total_bytes=int(r.total_bytes))
        else:
            r = client.recall(selection, width, height, args.publish)
            for memory_id, image in zip(r.ids, r.images):
                save(memory_id, image)
            result["ids"] = list(r.ids)
        result.update(success=bool(r.success), message=r.message, count=len(written), images=written,
                      failed_ids=list(r.failed_ids), failures=list(r.failures))
        if not r.success:
            print(f"gaussvae recall: error: {r.message}", file=sys.stderr)
            return 2
        if args.contact_sheet and sheet_images:
            path = out / "contact_sheet.png"
            contact_sheet(sheet_images, labels, columns=args.columns).save(path)
            result["contact_sheet"] = str(path)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{r.message}; {len(written)} images written to {out}")
            for failure in r.failures:
                print(f"  {failure}")
        return 1 if r.failed_ids else 0

    return _run(args, body)


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection (default: every memory, by time)")
    g.add_argument("--ids", type=int, nargs="+", metavar="ID", help="these memory ids")
    g.add_argument("--near", type=float, nargs=3, metavar=("X", "Y", "Z"), help="memories near this position (m)")
    g.add_argument("--radius", type=float, metavar="M", help="with --near: all within this distance")
    g.add_argument("--k", type=int, metavar="N", help="with --near: the N nearest (default 5 without --radius)")
    g.add_argument("--frame", default="map", help="with --near: the position's frame (default map)")
    g.add_argument("--start", type=float, metavar="S", help="from this time (seconds, ROS time)")
    g.add_argument("--end", type=float, metavar="S", help="up to this time (seconds, inclusive)")
    g.add_argument("--limit", type=int, metavar="N", help="at most N memories")
    c = p.add_argument_group("connection")
    c.add_argument("--namespace", "-n", default="", help="the graph's namespace (default: none)")
    c.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for a server (default 5; exit 3 when none answers)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def register(subparsers) -> None:
    doc = __doc__.split("\n\n")
    description = "\n\n".join([doc[0], doc[2], doc[3]])
    p = subparsers.add_parser("query", help="query the running memory node over DDS (query_by_* / get_stats)",
                              description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p)
    p.add_argument("--stats", action="store_true", help="the store's figures (get_stats) instead of memories")
    p.set_defaults(func=_query)

    p = subparsers.add_parser("recall", help="recall memories from the running recall node over DDS, as PNGs",
                              description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(p)
    p.add_argument("--size", type=parse_size, metavar="WxH", help="image size (default: each memory's own)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs (created)")
    p.add_argument("--contact-sheet", action="store_true", help="also write contact_sheet.png")
    p.add_argument("--columns", type=int, default=4, help="contact sheet columns (default 4)")
    p.add_argument("--stream", action="store_true",
                   help="use the recall_memories action: images one at a time, no response size limit")
    p.add_argument("--max-bytes", type=int, default=0, metavar="B",
                   help="with --stream: stop after this many image bytes (0 = the server's limit)")
    p.add_argument("--publish", action="store_true", help="the recall node also publishes them on recalled/image")
    p.set_defaults(func=_recall)
