"""Blend-mode comparison behind the renderer's default (figures in BENCHMARKS.md).

Fits scikit-image's astronaut, chelsea, coffee and rocket at long side 128 and 256 with 512
Gaussians, once per blend mode, with the default fitter settings otherwise, and prints mean PSNR,
SSIM and seconds per image, plus the 256x256 render time of the astronaut fit.

    python benchmarks/bench_blend.py [--json]
"""

import argparse
import json
import sys

from gaussvae_ros.apps.bench import BENCH_IMAGES, render_benchmark, skimage_photo
from gaussvae_ros.core import FitConfig, fit_image


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    fit_image(skimage_photo("chelsea", 64), max_iters=20)  # warm-up
    out = {}
    for long_side in (128, 256):
        for blend in ("normalized", "sum"):
            results = [fit_image(skimage_photo(name, long_side), config=FitConfig(blend=blend)) for name in BENCH_IMAGES]
            key = f"{blend}_{long_side}"
            out[key] = {
                "psnr": round(sum(r.psnr for r in results) / len(results), 3),
                "ssim": round(sum(r.ssim for r in results) / len(results), 4),
                "seconds": round(sum(r.seconds for r in results) / len(results), 3),
                "render_ms_256": round(render_benchmark(results[0].gaussians, repeats=100), 3),
            }
            print(key, out[key], file=sys.stderr)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
