"""Codec ``gaussians-rd``: encode (fit + code) and decode time, and the rate estimate against the coded size.

    python benchmarks/bench_rd_codec.py --images ../shared/data/photos/val --limit 10 --json

Per image (long side 192, Lanczos, as ``gaussvae eval``) and budget: one :func:`encode_image` on
``--encode-threads`` threads (the frame's fit, quantization-aware refinement, rate control, coding),
then the payload decoded ``--repeat`` times on one thread (bytes -> Gaussians; rendering is recall's
and is measured by ``gaussvae bench``). Medians over images; the rate estimate's error is
``estimate / coded size - 1``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from gaussvae_ros.codecs.gaussians_rd import RDConfig, decode, encode_image
from gaussvae_ros.eval import list_images, load_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--budgets", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--long-side", type=int, default=192)
    parser.add_argument("--encode-threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    images = [load_image(p, args.long_side) for p in list_images(args.images)[:args.limit]]
    rows = {}
    for budget in args.budgets:
        encode_s, decode_ms, errors, sizes = [], [], [], []
        for image in images:
            torch.set_num_threads(args.encode_threads)
            result = encode_image(image, budget, RDConfig(threads=args.encode_threads))
            encode_s.append(result.seconds)
            sizes.append(len(result.payload))
            errors.append(result.estimated_bytes / len(result.payload) - 1)
            torch.set_num_threads(1)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                decode(result.payload)
                times.append(time.perf_counter() - start)
            decode_ms.append(statistics.median(times) * 1e3)
        rows[budget] = {"encode_s_median": round(statistics.median(encode_s), 3), "encode_s_max": round(max(encode_s), 3),
                        "decode_ms_median": round(statistics.median(decode_ms), 3),
                        "decode_ms_max": round(max(decode_ms), 3),
                        "bytes_mean": round(statistics.fmean(sizes), 1),
                        "rate_estimate_error_max": round(max(abs(e) for e in errors), 4)}
    report = {"images": len(images), "long_side": args.long_side, "encode_threads": args.encode_threads,
              "budgets": rows}
    if args.json:
        print(json.dumps(report))
    else:
        for budget, row in rows.items():
            print(f"{budget} B: encode {row['encode_s_median']} s (max {row['encode_s_max']}), decode "
                  f"{row['decode_ms_median']} ms (max {row['decode_ms_max']}), {row['bytes_mean']} B, rate estimate "
                  f"within {100 * row['rate_estimate_error_max']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
