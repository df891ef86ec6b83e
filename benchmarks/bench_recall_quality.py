"""How well a replayed store's memories come back: decode each one and compare it with its bag frame.

For every memory of the store whose camera stamp is a frame of the bag, the stored payload is
decoded through the recall path (:func:`gaussvae_ros.codecs.registry.render_memory`: any registered
codec, the memory's own model) at the replay's working size (:func:`gaussvae_ros.core.image.working_image`,
``--long-side``) and compared with the frame at that size. Prints PSNR (dB, peak 1) and payload bytes.

    gaussvae replay BAG --db D --codec vae-latent --latent-max-bytes 1024 --latent-tiles 4
    python benchmarks/bench_recall_quality.py --db D --bag BAG [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gaussvae_ros.bag.reader import BagReader, Frame  # noqa: E402
from gaussvae_ros.core.image import psnr, to_float_image  # noqa: E402
from gaussvae_ros.codecs.registry import render_memory  # noqa: E402
from gaussvae_ros.core.image import working_image  # noqa: E402
from gaussvae_ros.pipeline import DEFAULT_LONG_SIDE  # noqa: E402
from gaussvae_ros.store import Store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, type=Path, help="store written by gaussvae replay")
    parser.add_argument("--bag", required=True, type=Path, help="the bag it was replayed from")
    parser.add_argument("--long-side", type=int, default=DEFAULT_LONG_SIDE, help="replay's working size (px)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with Store(args.db) as store:
        memories = {(m.topic, m.stamp_ns): m for m in store.by_time()}
        with BagReader(args.bag) as reader:
            for frame in reader.frames():
                memory = memories.get((getattr(frame, "topic", None), getattr(frame, "stamp_ns", None)))
                if not isinstance(frame, Frame) or memory is None:
                    continue
                reference = working_image(frame.image, args.long_side)
                decoded = render_memory(store.load_payload(memory.id), memory.profile.codec, memory.profile.model_id,
                                        reference.shape[1], reference.shape[0])
                rows.append({"id": memory.id, "codec": memory.profile.codec, "bytes": memory.payload_size,
                             "psnr": psnr(to_float_image(reference), to_float_image(decoded))})
    if not rows:
        print("no memory of the store matches a frame of the bag", file=sys.stderr)
        return 1
    summary = {"memories": len(rows), "codecs": sorted({r["codec"] for r in rows}),
               "psnr_mean": statistics.mean(r["psnr"] for r in rows), "psnr_min": min(r["psnr"] for r in rows),
               "psnr_max": max(r["psnr"] for r in rows), "bytes_mean": statistics.mean(r["bytes"] for r in rows)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{summary['memories']} memories ({', '.join(summary['codecs'])}): decoded PSNR "
              f"{summary['psnr_mean']:.2f} dB (min {summary['psnr_min']:.2f}, max {summary['psnr_max']:.2f}), "
              f"{summary['bytes_mean']:.0f} B per memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
