"""``make demo``: the main job on bundled real data.

Fits a real colour photograph that scikit-image ships, writes the quantized Gaussians, the
reconstruction at the fitted size and at 2x (resolution-free rendering), and a side-by-side PNG,
and prints size and quality.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def photo_demo(out: Path) -> dict:
    from .bench import skimage_photo
    from .cli.core_commands import save_png
    from .core import decode_gaussians, encode_gaussians, fit_image, psnr, render

    out.mkdir(parents=True, exist_ok=True)
    image = skimage_photo("astronaut", 256)
    result = fit_image(image)
    payload = encode_gaussians(result.gaussians)
    (out / "astronaut.gs").write_bytes(payload)
    decoded = decode_gaussians(payload)
    recon = render(decoded, result.height, result.width)
    save_png(out / "astronaut_original.png", image)
    save_png(out / "astronaut_recalled.png", recon)
    save_png(out / "astronaut_recalled_2x.png", render(decoded, 2 * result.height, 2 * result.width))
    save_png(out / "astronaut_side_by_side.png", np.concatenate([image, recon], axis=1))
    return {"image": "skimage astronaut", "size": f"{result.width}x{result.height}",
            "gaussians": len(decoded), "bytes": len(payload), "psnr_fit": round(result.psnr, 2),
            "psnr_decoded": round(psnr(image, recon), 2), "seconds": round(result.seconds, 2), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="output folder")
    args = parser.parse_args(argv)
    summary = photo_demo(Path(args.out))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
