"""``gaussvae dataset from-bag|from-photos``: VAE training sets of fitted Gaussians from real images."""

from __future__ import annotations

import argparse
import json
import sys


def _build(args: argparse.Namespace, items, total: int | None) -> int:
    from tqdm import tqdm

    import torch

    from ..vae.fitted_sets import build_fitted_set

    torch.set_num_threads(args.threads)  # the fitter's torch ops, not only its compiled kernels
    overrides = {"threads": args.threads}
    if args.max_iters:
        overrides["max_iters"] = args.max_iters
    with tqdm(total=total, desc="fit", unit="image", file=sys.stderr) as bar:
        summary = build_fitted_set(items, args.out, n_gaussians=args.gaussians, shard_size=args.shard_size,
                                   fit_overrides=overrides, progress=lambda seen, _fitted: bar.update(seen - bar.n),
                                   settings={"long_side": args.long_side})
    print(json.dumps(summary, indent=2))
    return 0


def _from_bag(args: argparse.Namespace) -> int:
    """Exit status 4 when damaged parts of the recording were skipped (listed on stderr)."""
    from ..vae.fitted_sets import bag_frames

    damage: list = []
    status = _build(args, bag_frames(args.bag, args.image_topic, args.every, args.long_side, damage), None)
    if damage:
        from .replay_commands import EXIT_DAMAGED, print_damage

        print_damage("gaussvae dataset from-bag", damage[0]["damaged"], damage[0]["lost"])
        return status or EXIT_DAMAGED
    return status


def _from_photos(args: argparse.Namespace) -> int:
    from ..vae.fitted_sets import photo_views

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    return _build(args, photo_views(args.count, args.long_side, args.seed), args.count)


def register(subparsers: argparse._SubParsersAction) -> None:
    dataset = subparsers.add_parser("dataset", help="build a VAE training set of fitted Gaussians (resumable)")
    sub = dataset.add_subparsers(dest="source", required=True, metavar="SOURCE")

    def common(p: argparse.ArgumentParser, long_side: int) -> None:
        p.add_argument("--out", required=True, help="folder of shards (re-running resumes, nothing is fitted twice)")
        p.add_argument("--gaussians", type=int, default=512, help="Gaussians per sample (default 512)")
        p.add_argument("--long-side", type=int, default=long_side, help=f"fitting size, px (default {long_side})")
        p.add_argument("--max-iters", type=int, help="fitting iterations (default: the fitter's)")
        p.add_argument("--threads", type=int, default=1,
                       help="CPU threads per fit (default 1: run one process per core for throughput)")
        p.add_argument("--shard-size", type=int, default=64, help="samples per shard file (default 64)")

    p = sub.add_parser("from-bag", help="frames of a rosbag2 recording (sqlite3 or mcap)")
    p.add_argument("bag", help="recording folder")
    p.add_argument("--image-topic", action="append", help="image topic (repeatable; default: every one)")
    p.add_argument("--every", type=int, default=1, help="take every N-th frame of each topic (default 1)")
    common(p, 256)
    p.set_defaults(func=_from_bag)

    p = sub.add_parser("from-photos", help="crops and flips of scikit-image's colour photographs")
    p.add_argument("--count", type=int, required=True, help="number of views")
    p.add_argument("--seed", type=int, default=0)
    common(p, 128)
    p.set_defaults(func=_from_photos)
