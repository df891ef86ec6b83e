"""Experiment: one VAE latent per image tile instead of one per image, at the eval's byte budgets.

The latent saturates near 20.4 dB on held-out photographs however many bytes it gets (BENCHMARKS.md,
"Held-out photographs"). This measures the obvious way to spend more bytes: split the picture into
a grid of tiles, fit 512 Gaussians to each, code each tile's latent with ``budget / tiles`` bytes
(``encode_to_budget`` with refinement, as ``gaussvae eval`` scores "ours"), render each tile at its
own size and put the picture back together. ``best`` is per-image rate control over the layouts
that fit. Not a codec of the package (no payload format holds several latents yet): a measurement
of whether one should.

    python benchmarks/bench_latent_tiles.py --images experiments/heldout/* --fit-cache DIR --json

Long side 192 (Lanczos) like ``gaussvae eval``; PSNR and SSIM (scikit-image, data range 255) of the
reassembled picture, means over images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from gaussvae_ros.eval.methods import FitOptions, ImageContext, LatentMethod  # noqa: E402
from gaussvae_ros.eval.rd import load_image  # noqa: E402
from gaussvae_ros.vae import latent_codec  # noqa: E402

#: Tile grids (rows, columns) for a landscape picture; transposed for a portrait one.
LAYOUTS = {1: (1, 1), 2: (1, 2), 4: (2, 2), 8: (2, 4), 16: (4, 4)}


def tiled(reference: np.ndarray, method: LatentMethod, tiles: int, budget: int, fit_options: FitOptions,
          name: str) -> tuple[np.ndarray, int]:
    """The picture coded as ``tiles`` latents of ``budget // tiles`` bytes each: (decoded uint8, bytes)."""
    rows, cols = LAYOUTS[tiles]
    height, width = reference.shape[:2]
    if height > width:
        rows, cols = cols, rows
    ys = np.linspace(0, height, rows + 1).astype(int)
    xs = np.linspace(0, width, cols + 1).astype(int)
    decoded, total = np.zeros_like(reference), 0
    for r in range(rows):
        for c in range(cols):
            tile = np.ascontiguousarray(reference[ys[r]:ys[r + 1], xs[c]:xs[c + 1]])
            encoded = method.compress(ImageContext(f"{name}:{r}:{c}", tile, fit_options), budget // tiles)
            decoded[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = encoded.image
            total += encoded.nbytes
    return decoded, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", required=True, type=Path)
    parser.add_argument("--budgets", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--tiles", nargs="+", type=int, default=[1, 2, 4], choices=sorted(LAYOUTS),
                        help="tile counts to compare (default 1 2 4)")
    parser.add_argument("--model", default=None, help="latent model file (default: the shipped one)")
    parser.add_argument("--refine-iters", type=int, default=150)
    parser.add_argument("--fit-cache", default=None, help="keep the tiles' fits here (as gaussvae eval --fit-cache)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bundle = latent_codec.load_bundle(args.model or latent_codec.default_model_path())
    method = LatentMethod(latent_codec, bundle, bundle.seq_len, channels=3, refine_iters=args.refine_iters)
    fit_options = FitOptions(cache_dir=args.fit_cache, threads=args.threads)
    rows: dict[str, dict[str, list]] = {}
    for path in args.images:
        reference = load_image(path)
        channel_axis = 2 if reference.ndim == 3 else None
        for budget in args.budgets:
            best, smallest = None, None
            for tiles in args.tiles:
                decoded, nbytes = tiled(reference, method, tiles, budget, fit_options, path.name)
                score = (peak_signal_noise_ratio(reference, decoded, data_range=255),
                         structural_similarity(reference, decoded, data_range=255, channel_axis=channel_axis), nbytes)
                rows.setdefault(str(budget), {}).setdefault(f"tiles_{tiles}", []).append(score)
                if nbytes <= budget and (best is None or score[0] > best[0]):
                    best = score
                if smallest is None or nbytes < smallest[2]:
                    smallest = score
                print(f"{path.name} {budget} B, {tiles} tile(s): {score[0]:.2f} dB, {nbytes} B", file=sys.stderr)
            rows[str(budget)].setdefault("best", []).append(best or smallest)  # none fits: the smallest
    summary = {budget: {layout: dict(zip(("psnr", "ssim", "bytes"), np.mean(scores, axis=0).round(4).tolist()))
                        for layout, scores in by_layout.items()}
               for budget, by_layout in rows.items()}
    if args.json:
        print(json.dumps({"budgets": summary, "images": len(args.images), "refine_iters": args.refine_iters,
                          "model_id": bundle.model_id}, indent=2))
    else:
        for budget, by_layout in summary.items():
            for layout, row in by_layout.items():
                print(f"{budget:>5} B {layout:>8}: {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}, {row['bytes']:.0f} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
