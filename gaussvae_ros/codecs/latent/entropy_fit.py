"""Making a ``vae-latent`` model file: fit the entropy model of a trained VAE's latents on its
training split and attach it to the model file (``python -m gaussvae_ros.codecs.latent``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gaussvae_ros.vae.checkpoint import load_model
from gaussvae_ros.vae.data import load_param_set, split_indices
from gaussvae_ros.vae.features import ParamTransform

from .bundle import LatentModelBundle, attach_entropy_model, load_bundle
from .entropy import EntropyModel

__all__ = ["build_bundle_file", "fit_entropy_model", "main"]


def fit_entropy_model(model: nn.Module, transform: ParamTransform, params: np.ndarray, *, unit: str = "posterior",
                      batch_size: int = 256, **kwargs) -> EntropyModel:
    """Fit an :class:`EntropyModel` on the latents of training parameters ``[M, N, 5 + C]``
    (Morton-sorted, as in training). Returns it updated."""
    model = getattr(model, "module", model).eval()
    params = np.asarray(params, dtype=np.float32)
    mus, logvars = [], []
    with torch.inference_mode():
        for start in range(0, params.shape[0], batch_size):
            x = transform.encode(params[start:start + batch_size]).transpose(1, 2).contiguous()
            mu, logvar = model.encode(x)
            mus.append(mu.double())
            logvars.append(logvar.double())
    return EntropyModel.fit(torch.cat(mus), torch.cat(logvars), unit=unit, **kwargs).update()


def build_bundle_file(model_path: str | Path, params_path: str | Path | None = None,
                      out_path: str | Path | None = None, *, max_samples: int | None = None,
                      unit: str = "posterior", seed: int = 0) -> LatentModelBundle:
    """Fit an entropy model on the training split (the model config's split) of ``params_path``
    (default: the config's ``data.path``), at most ``max_samples`` of them drawn at random, and
    write the model file with it to ``out_path`` (default: in place). Returns the loaded bundle."""
    model_path = Path(model_path)
    model, config, transform, _ = load_model(model_path)
    params = load_param_set(params_path or config.data.path)
    train = split_indices(len(params), config.data.val_fraction, config.data.test_fraction,
                          config.data.split_seed)["train"]
    if max_samples is not None and max_samples < len(train):
        train = np.sort(np.random.default_rng(seed).choice(train, max_samples, replace=False))
    entropy = fit_entropy_model(model, transform, params[train], unit=unit)
    out = attach_entropy_model(model_path, entropy, out_path)
    return load_bundle(out)


def main(argv=None) -> int:
    """``python -m gaussvae_ros.codecs.latent MODEL [--params SET] [--out FILE]``: fit and attach
    the entropy model, print the model id (the ``model_id`` of ``vae-latent`` memories)."""
    ap = argparse.ArgumentParser(description="fit a VAE model's latent entropy model and store it in the model file")
    ap.add_argument("model", help="model file or training checkpoint")
    ap.add_argument("--params", help="parameter set (default: the config's data.path)")
    ap.add_argument("--out", help="output model file (default: rewrite MODEL)")
    ap.add_argument("--max-samples", type=int, default=None, help="training samples to fit on (default: all)")
    ap.add_argument("--unit", default="posterior", choices=["posterior", "latent"])
    args = ap.parse_args(argv)
    try:
        bundle = build_bundle_file(args.model, args.params, args.out, max_samples=args.max_samples, unit=args.unit)
    except (ValueError, OSError) as exc:  # a damaged or missing model or parameter set: said, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(bundle.model_id)
    return 0
