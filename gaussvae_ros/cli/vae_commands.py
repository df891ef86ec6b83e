"""``gaussvae train``, ``gaussvae vae-dataset`` and ``gaussvae vae-eval``: the VAE stage's commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def _train(args: argparse.Namespace) -> int:
    from gaussvae_ros.vae.config import load_config
    from gaussvae_ros.vae.train import train

    output = Path(args.output)
    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise ValueError("--config is required unless --resume")
        config_path = output / "config.yaml"
        if not config_path.exists():
            raise ValueError(f"nothing to resume: {config_path} does not exist")
    config = load_config(config_path, args.set)
    summary = train(config, output, resume=args.resume, max_steps=args.max_steps, init=args.init)
    if summary.get("world_size", 1) == 1 or _is_rank0():
        print(json.dumps(summary, indent=2))
    return 0


def _is_rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _dataset(args: argparse.Namespace) -> int:
    from gaussvae_ros.vae.data import save_param_set
    from gaussvae_ros.vae.delaunay import delaunay_gaussians, make_delaunay_param_set, random_delaunay_art

    from tqdm import tqdm

    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    with tqdm(total=args.count, desc="artworks", unit="image", file=sys.stderr, disable=args.quiet) as bar:
        params, seeds = make_delaunay_param_set(args.count, args.seed, args.gaussians, args.min_points,
                                                args.max_points, args.color_mode,
                                                progress=lambda done: bar.update(done - bar.n))
    path = save_param_set(args.output, params, kind=np.array("delaunay"), seeds=seeds,
                          color_mode=np.array(args.color_mode), blend=np.array("normalized"))
    previews = []
    if args.previews:
        from PIL import Image
        from gaussvae_ros.core import render, to_uint8

        folder = Path(args.previews)
        folder.mkdir(parents=True, exist_ok=True)
        for s in seeds[:args.preview_count]:
            art = random_delaunay_art(int(s), args.size, args.size, args.min_points, args.max_points,
                                      args.color_mode)
            fit = render(delaunay_gaussians(art, args.gaussians), args.size, args.size)
            Image.fromarray(art.image).save(folder / f"art_{s}.png")
            Image.fromarray(to_uint8(fit)).save(folder / f"fit_{s}.png")
            previews.append(str(folder / f"art_{s}.png"))
    print(json.dumps({"output": str(path), "samples": int(params.shape[0]), "gaussians": int(params.shape[1]),
                      "seeds": [int(seeds[0]), int(seeds[-1])], "previews": previews}, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from gaussvae_ros.vae.checkpoint import load_model
    from gaussvae_ros.vae.data import load_param_set, split_indices
    from gaussvae_ros.vae.reconstruction import evaluate_against_mean, features_of, pca_errors

    model, config, transform, slot_mean = load_model(args.model)
    params = load_param_set(args.data)
    splits = split_indices(len(params), config.data.val_fraction, config.data.test_fraction, config.data.split_seed)
    heldout = params if args.split == "all" else params[splits[args.split]]
    if args.pca is not None and args.split in ("train", "all"):
        raise ValueError("--pca fits on the training split, so evaluate a held-out split (--split val or test)")
    report = evaluate_against_mean(model, transform, slot_mean, heldout, per_slot=bool(args.per_slot),
                                   image_size=args.image_size)
    if args.pca is not None:
        components = config.model.latent_dim if args.pca == 0 else args.pca
        errors = pca_errors(features_of(params[splits["train"]], transform), features_of(heldout, transform),
                            components, transform.groups)
        for group, value in errors.items():
            report["groups"][group]["pca"] = value
        report["pca_components"] = components
    if args.per_slot:
        per_slot = report.pop("per_slot")
        np.savez(args.per_slot, **{f"{who}_{g}": v for who, rows in per_slot.items() for g, v in rows.items()})
        report["per_slot_file"] = args.per_slot
    print(json.dumps(report, indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a Gaussian-parameter VAE (resumable; DDP under torchrun)")
    p.add_argument("--config", help="experiment YAML (e.g. config/conv1d_512d.yaml); optional with --resume")
    p.add_argument("--output", required=True, help="experiment directory, e.g. experiments/NAME")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total")
    p.add_argument("--init", metavar="MODEL", help="start a new run from this model file's weights (same "
                   "architecture and representation), e.g. to fine-tune through the renderer")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), repeatable")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("vae-dataset", help="make a VAE training set of Delaunay-art Gaussian fits (.npz)")
    p.add_argument("--output", required=True, help="output .npz parameter set")
    p.add_argument("--count", type=int, default=11501,
                   help="number of images (default 11,501, the prototype's set: 10,502 / 500 / 499 with the "
                        "configs' splits; ~2 min on one core, no fitting)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image (image i uses seed + i)")
    p.add_argument("--gaussians", type=int, default=512, help="Gaussians per image")
    p.add_argument("--min-points", type=int, default=4, help="fewest interior triangulation points")
    p.add_argument("--max-points", type=int, default=100, help="most interior triangulation points")
    p.add_argument("--color-mode", choices=("random", "gradient"), default="random",
                   help="independent random triangle colours, or a jittered two-colour gradient")
    p.add_argument("--previews", metavar="DIR", help="also write art and fit PNGs of the first images here")
    p.add_argument("--preview-count", type=int, default=4, help="how many previews")
    p.add_argument("--size", type=int, default=256, help="preview image side (pixels)")
    p.set_defaults(func=_dataset)

    p = subparsers.add_parser("vae-eval", help="per-group errors of a VAE vs mean predictors on held-out data")
    p.add_argument("--model", required=True, help="model.pt or checkpoint.pt")
    p.add_argument("--data", required=True, help=".npz parameter set or directory")
    p.add_argument("--split", choices=("val", "test", "train", "all"), default="test",
                   help="evaluate this split of DATA (as split for training) or all of it")
    p.add_argument("--per-slot", metavar="FILE.npz", help="write per-slot errors (model_<group>, slot_mean_<group>)")
    p.add_argument("--image-size", type=int, default=64, metavar="PX",
                   help="also compare renderings of decoded and input Gaussians at PX x PX (image_psnr; 0 = off)")
    p.add_argument("--pca", type=int, nargs="?", const=0, default=None, metavar="K",
                   help="also report a K-component PCA code fitted on DATA's training split (K: latent size)")
    p.set_defaults(func=_evaluate)

