"""``gaussvae fit``, ``gaussvae render`` and ``gaussvae bench``: the core on files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(width, height)``, both positive."""
    try:
        w, h = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w <= 0 or h <= 0 or w * h > 100_000_000:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive and at most 100 megapixels")
    return w, h


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file with Pillow into a numpy array (8/16-bit, gray, RGB or RGBA kept as is)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im, dtype=np.uint16)
            elif im.mode == "I":
                return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
            return np.asarray(im)
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file Pillow can read") from None
    except OSError as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from None


def save_png(path: str | Path, image: np.ndarray) -> None:
    from PIL import Image

    from ..core import to_uint8

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar on stderr and a ``progress(i, total)`` callback that advances it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, leave=False, unit="it")

    def update(i: int, _total: int) -> None:
        bar.update(i - bar.n)

    return bar, update


def cmd_fit(args: argparse.Namespace) -> int:
    from ..core import encode_gaussians, fit_image, render, to_float_image
    from ..core.image import resize

    image = to_float_image(load_image(args.image))
    if args.size:
        image = resize(image, *args.size)
    from ..core import FitConfig

    bar, update = progress_bar(args.max_iters or FitConfig().max_iters, f"fit {Path(args.image).name}", sys.stderr.isatty() or not args.json)
    overrides = {"max_iters": args.max_iters} if args.max_iters else {}
    result = fit_image(image, n_gaussians=args.gaussians, seed=args.seed, progress=update, **overrides)
    bar.close()
    payload = encode_gaussians(result.gaussians)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_bytes(payload)
    if args.preview:
        recon = render(result.gaussians, result.height, result.width)
        save_png(args.preview, np.concatenate([image, recon], axis=1))
    summary = {
        "psnr": round(result.psnr, 3), "ssim": round(result.ssim, 4), "seconds": round(result.seconds, 3),
        "iterations": result.iterations, "gaussians": len(result.gaussians), "bytes": len(payload),
        "width": result.width, "height": result.height, "out": args.out, "preview": args.preview,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.image}: {summary['gaussians']} Gaussians, {summary['psnr']} dB PSNR, SSIM {summary['ssim']}, "
              f"{summary['iterations']} iterations in {summary['seconds']} s, {summary['bytes']} bytes"
              + (f" -> {args.out}" if args.out else ""))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..core import decode_gaussians
    from ..core.render import render_uint8

    data = Path(args.file).read_bytes()
    gaussians = decode_gaussians(data)
    width, height = args.size
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_uint8(gaussians, height, width)).save(args.out)  # in bands: any size fits in memory
    print(f"{args.file}: {len(gaussians)} Gaussians rendered at {width}x{height} -> {args.out}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from gaussvae_ros.apps.bench import core_benchmark

    results = core_benchmark(long_run=not args.quick, bag=args.bag, progress=not args.json or sys.stderr.isatty())
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:28s} {value}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fit", help="fit an image with 2D Gaussians")
    p.add_argument("image", help="image file (PNG, JPEG, ...; 8 or 16 bit; gray, RGB or RGBA)")
    p.add_argument("--gaussians", type=int, default=512, help="number of Gaussians (default 512)")
    p.add_argument("--size", type=parse_size, help="resize to WxH before fitting (default: the image's size)")
    p.add_argument("--max-iters", type=int, help="iteration budget (default: the fitter's, FitConfig.max_iters)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the quantized Gaussians (binary format) here")
    p.add_argument("--preview", help="write a side-by-side PNG (input | reconstruction) here")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_fit)

    p = subparsers.add_parser("render", help="render a Gaussian file to a PNG at any size")
    p.add_argument("file", help="file written by 'gaussvae fit --out'")
    p.add_argument("--size", type=parse_size, required=True, help="output size WxH")
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=cmd_render)

    p = subparsers.add_parser("bench", help="render and fit benchmarks (figures for BENCHMARKS.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quick", action="store_true", help="skip the 10x-budget fits")
    p.add_argument("--bag", help="KITTI rosbag for the warm-start benchmark (default: ../shared copy if present)")
    p.set_defaults(func=cmd_bench)
