"""Core benchmarks behind ``gaussvae bench`` (figures recorded in BENCHMARKS.md).

* ``render_ms_256``: the default fit of scikit-image's astronaut (long side 128, 512 Gaussians)
  rendered to 256x256 RGB with :func:`gaussvae_ros.core.render`, forward only, one thread, median
  of 200 renders after 20 warm-up renders.
* ``fit_seconds_128`` / ``fit_psnr_128`` / ``fit_ssim_128``: the default fit (512 Gaussians) of
  astronaut, chelsea, coffee and rocket resized to long side 128, means over the four.
* ``fit_psnr_128_long``: the same fits with 10x the iteration budget and the same stopping rule.
* ``warm_start_*`` (when the KITTI recording is available): consecutive frames at the encoder's
  working resolution (long side :data:`WARM_START_LONG_SIDE`); each frame is fitted cold, and again
  warm-started from the previous frame's cold fit until it reaches the cold fit's PSNR. The ratio is
  median cold iterations / median warm iterations.
"""

from __future__ import annotations

import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from skimage import data

from gaussvae_ros.core import FitConfig, fit_image, render, resize_long_side, to_float_image
from gaussvae_ros.vae.fitted_sets import bag_frames

BENCH_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")
WARM_START_LONG_SIDE = 256
WARM_START_PAIRS = 12
DEFAULT_KITTI = Path(__file__).resolve().parents[3] / "shared" / "data" / "bags" / "kitti07_mono8_mcap"


@contextmanager
def torch_threads(n: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def skimage_photo(name: str, long_side: int) -> np.ndarray:
    return resize_long_side(to_float_image(getattr(data, name)()), long_side)


def render_benchmark(gaussians, repeats: int = 200, warmup: int = 20) -> float:
    """Median milliseconds of one 256x256 render, one thread."""
    with torch_threads(1):
        for _ in range(warmup):
            render(gaussians, 256, 256, threads=1)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            render(gaussians, 256, 256, threads=1)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def fit_benchmark(config: FitConfig, progress: bool = True) -> dict:
    results = []
    for name in BENCH_IMAGES:
        result = fit_image(skimage_photo(name, 128), config=config)
        results.append(result)
        if progress:
            print(f"  {name}: {result.psnr:.2f} dB in {result.seconds:.3f} s, {result.iterations} it",
                  file=sys.stderr)
    return {
        "psnr": float(np.mean([r.psnr for r in results])),
        "ssim": float(np.mean([r.ssim for r in results])),
        "seconds": float(np.mean([r.seconds for r in results])),
        "iterations": float(np.mean([r.iterations for r in results])),
        "per_image": {n: round(r.psnr, 3) for n, r in zip(BENCH_IMAGES, results)},
        "results": results,
    }


def kitti_frames(bag: Path, count: int, long_side: int) -> list[np.ndarray]:
    """The first ``count`` frames, brought to the working size exactly as replay and the encoder do,
    as float ``[H, W, C]`` images."""
    return [to_float_image(image) for _, image in islice(bag_frames(bag, long_side=long_side), count)]


def warm_start_benchmark(bag: Path, pairs: int = WARM_START_PAIRS, progress: bool = True) -> dict:
    frames = kitti_frames(bag, pairs + 1, WARM_START_LONG_SIDE)
    cold = [fit_image(f) for f in frames]
    cold_iters, warm_iters, warm_reached = [], [], 0
    for k in range(1, len(frames)):
        warm = fit_image(frames[k], init=cold[k - 1].gaussians, target_psnr=cold[k].psnr)
        cold_iters.append(cold[k].iterations)
        warm_iters.append(max(1, warm.iterations))
        warm_reached += warm.psnr >= cold[k].psnr - 1e-6
        if progress:
            print(f"  frame {k}: cold {cold[k].iterations} it {cold[k].psnr:.2f} dB, warm {warm.iterations} it "
                  f"{warm.psnr:.2f} dB", file=sys.stderr)
    h, w, _ = frames[0].shape
    return {
        "warm_start_size": f"{w}x{h}",
        "warm_start_pairs": len(warm_iters),
        "warm_start_cold_iterations": statistics.median(cold_iters),
        "warm_start_iterations": statistics.median(warm_iters),
        "warm_start_ratio": statistics.median(cold_iters) / statistics.median(warm_iters),
        "warm_start_reached": warm_reached,
        "warm_start_cold_psnr": float(np.mean([c.psnr for c in cold[1:]])),
    }


def core_benchmark(long_run: bool = True, bag: str | None = None, progress: bool = True) -> dict:
    """All core figures as a flat dict (see the module docstring)."""
    config = FitConfig()
    if progress:
        print("fit, default budget", file=sys.stderr)
    fit_image(skimage_photo("chelsea", 64), max_iters=20)  # warm-up: imports, kernel load, allocator
    default = fit_benchmark(config, progress)
    out = {
        "render_ms_256": round(render_benchmark(default["results"][0].gaussians), 4),
        "fit_seconds_128": round(default["seconds"], 4),
        "fit_psnr_128": round(default["psnr"], 3),
        "fit_ssim_128": round(default["ssim"], 4),
        "fit_iterations_128": default["iterations"],
        "fit_psnr_128_per_image": default["per_image"],
    }
    if long_run:
        if progress:
            print("fit, 10x budget", file=sys.stderr)

        long = fit_benchmark(replace(config, max_iters=10 * config.max_iters), progress)
        out.update({
            "fit_psnr_128_long": round(long["psnr"], 3),
            "fit_seconds_128_long": round(long["seconds"], 4),
            "fit_iterations_128_long": long["iterations"],
            "fit_psnr_128_gap": round(long["psnr"] - default["psnr"], 3),
        })
    bag_path = Path(bag) if bag else DEFAULT_KITTI
    if bag_path.exists():
        if progress:
            print(f"warm start on {bag_path.name}", file=sys.stderr)
        out.update(warm_start_benchmark(bag_path, progress=progress))
    out["threads"] = torch.get_num_threads()
    return out
