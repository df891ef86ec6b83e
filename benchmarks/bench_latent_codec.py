"""Benchmark of the ``vae-latent`` codec: payload size, latent/feature error and time per memory.

With a trained model file and its parameter set, fits the entropy model on the model's training
split (the split of its stored config), then encodes held-out samples (validation split) at each
step of a ladder and reports, per step: mean payload bytes, bits per latent dimension, the ideal
code length of the symbols under the fitted prior (bytes - ideal = 24 bytes of header and CRC +
the coder's overhead), the RMS quantization error of the latent in the entropy model's per-dimension
units (posterior standard deviations with ``--unit posterior``), the feature MSE of the decoded Gaussians (standardized
features) against the unquantized reconstruction and against the input, and the median encode /
decode time of one memory (one thread unless ``--threads``). For reference: a ``gaussians-q``
payload of 512 RGB Gaussians is 4,638 bytes.

    python benchmarks/bench_latent_codec.py --model run/model.pt --params data/set.npz
    python benchmarks/bench_latent_codec.py --model run/model.pt --params data/set.npz --save run/latent.pt
    python benchmarks/bench_latent_codec.py                 # untrained prototype-size model, synthetic data
    python benchmarks/bench_latent_codec.py ... --tiles 4   # also payloads of 4 latents (tiles)

Target: encode and decode <= 5 ms per memory on CPU.

Measured (2026-11-25, 2-core shared CPU, 1 thread; conv1d_vae 512-D trained 100 epochs on 2,000
Delaunay images, entropy model fitted on 1,000 training images, 50 validation images)::

     step    bytes bits/dim    ideal  lat rms  mse/unq   mse/in  enc ms  dec ms
    0.250    299.4    4.678    272.9    0.072   0.0001   0.6534    1.11    0.93
    1.000    175.5    2.743    149.1    0.287   0.0010   0.6539    1.28    1.04
    2.000    117.9    1.843     91.3    0.550   0.0038   0.6570    1.12    0.92
    4.000     68.8    1.075     42.6    0.925   0.0143   0.6686    0.98    0.90
    8.000     41.0    0.641     14.8    1.368   0.0426   0.6955    1.10    0.96

(unquantized reconstruction: feature MSE 0.6532; ``--unit latent`` needs ~30 % more distortion
at the same size; a per-dimension histogram prior codes the same symbols no smaller than the
Gaussian one.) The untrained ResNet prototype (16M parameters) takes 6.4 ms / 7.0 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gaussvae_ros.core import Gaussians, morton_order  # noqa: E402
from gaussvae_ros.vae import ParamTransform, build_model, load_model, load_param_set, split_indices  # noqa: E402
from gaussvae_ros.codecs import latent as lc  # noqa: E402
from gaussvae_ros.vae.config import ExperimentConfig  # noqa: E402
from gaussvae_ros.codecs.latent.tiles import TILE_COUNTS, grid_for  # noqa: E402


def _synthetic(m: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    params = np.concatenate([rng.uniform(0, 1, (m, n, 2)), np.exp(rng.normal(np.log(0.03), 0.5, (m, n, 2))),
                             rng.uniform(-np.pi, np.pi, (m, n, 1)), rng.uniform(0, 1, (m, n, 3))], -1)
    params = params.astype(np.float32)
    for i in range(m):
        params[i] = params[i][morton_order(params[i, :, :2])]
    return params


def _setup(args):
    if args.model:
        model, config, transform, slot_mean = load_model(args.model)
        params = load_param_set(args.params or config.data.path)
        splits = split_indices(len(params), config.data.val_fraction, config.data.test_fraction,
                               config.data.split_seed)
        train, held = params[splits["train"]], params[splits["val"] if len(splits["val"]) else splits["test"]]
    else:
        torch.manual_seed(0)
        config = ExperimentConfig()
        config.model.seq_len, config.model.in_channels = 512, 8
        params = _synthetic(args.fit + args.samples, 512, 0)
        train, held = params[:args.fit], params[args.fit:]
        transform = ParamTransform(representation="cholesky").fit(train)
        model = build_model(config.model).eval()
        slot_mean = transform.encode(train).mean(0).numpy()
    rng = np.random.default_rng(0)
    train = train[rng.permutation(len(train))[:args.fit]]
    held = held[:args.samples]
    entropy = lc.fit_entropy_model(model, transform, train, unit=args.unit)
    bundle = lc.make_bundle(model, config, transform, entropy, slot_mean)
    if args.save:
        lc.save_bundle(args.save, model, config, transform, slot_mean, entropy)
        print(f"wrote {args.save} (model id {bundle.model_id})", file=sys.stderr)
    return bundle, held


def _ideal_bits(bundle, symbols: np.ndarray, step: float) -> float:
    """Code length (bits) of symbols under the (unclipped) quantized Gaussian prior."""
    s = bundle.entropy.symbol_stds(step)
    q = symbols.astype(np.float64)
    cdf = lambda x: 0.5 * (1 + torch.special.erf(torch.from_numpy(x / (s * math.sqrt(2))))).numpy()  # noqa: E731
    p = np.maximum(cdf(q + 0.5) - cdf(q - 0.5), 2.0 ** -24)
    return float(-np.log2(p).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="trained model file (default: untrained prototype-size conv1d_vae)")
    ap.add_argument("--params", help="parameter set (default: the model config's data.path)")
    ap.add_argument("--fit", type=int, default=1000, help="training samples used to fit the entropy model")
    ap.add_argument("--samples", type=int, default=50, help="held-out memories to encode")
    ap.add_argument("--steps", type=float, nargs="*", default=[0.125, 0.25, 0.5, 1, 2, 4, 8])
    ap.add_argument("--unit", default="posterior", choices=["posterior", "latent"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--save", help="write the model file with the fitted entropy model here")
    ap.add_argument("--tiles", type=int, default=1, choices=sorted(TILE_COUNTS),
                    help="also time payloads of this many latents (one per tile, version 2), built from "
                         "consecutive held-out memories")
    ap.add_argument("--repeat", type=int, default=5,
                    help="times each tiled payload is encoded and decoded (few payloads: the median is taken "
                         "over all repeats)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle, held = _setup(args)
    rows = []
    with torch.inference_mode():
        x = bundle.transform.encode(held)
        mu, _ = bundle.model.encode(x.transpose(1, 2).contiguous())
        base = bundle.model.decode(mu).transpose(1, 2)
    units = bundle.entropy.units.astype(np.float64)
    for step in args.steps:
        step = lc.check_step(step)
        sizes, ideal, lat_err, enc_t, dec_t, f_base, f_in = [], [], [], [], [], [], []
        for i in range(len(held)):
            g = Gaussians.from_array(held[i])
            t0 = time.perf_counter()
            payload = lc.encode_latent(bundle, g, step=step)
            t1 = time.perf_counter()
            out = lc.decode_latent(bundle, payload)
            t2 = time.perf_counter()
            enc_t.append(t1 - t0)
            dec_t.append(t2 - t1)
            sizes.append(len(payload))
            m = mu[i].double().numpy()
            q = bundle.entropy.quantize(m, step, "symbols")
            ideal.append(_ideal_bits(bundle, q, step) / 8)
            lat_err.append(np.sqrt(np.mean(((bundle.entropy.dequantize(q, step) - m) / units) ** 2)))
            feats = bundle.transform.encode(out.to_array())  # decoded slots are in Morton order already
            f_base.append(float(((feats - base[i]) ** 2).mean()))
            f_in.append(float(((feats - x[i]) ** 2).mean()))
        rows.append({"step": step, "bytes": statistics.mean(sizes), "bits_per_dim": 8 * statistics.mean(sizes)
                     / bundle.entropy.dim, "ideal_coded_bytes": statistics.mean(ideal),
                     "latent_rms_posterior_units": float(statistics.mean(lat_err)),
                     "feature_mse_vs_unquantized": statistics.mean(f_base),
                     "feature_mse_vs_input": statistics.mean(f_in),
                     "encode_ms": 1e3 * statistics.median(enc_t), "decode_ms": 1e3 * statistics.median(dec_t)})
    with torch.inference_mode():
        unq = float(((base - x) ** 2).mean())
    summary = {"model_id": bundle.model_id, "latent_dim": bundle.entropy.dim, "samples": len(held),
               "threads": args.threads, "feature_mse_unquantized_vs_input": unq, "rows": rows}
    if args.tiles > 1:
        summary["tiled"] = _tiled_rows(bundle, held, args.steps, grid_for(args.tiles, 3, 4), args.repeat)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"model {summary['model_id']}, D={summary['latent_dim']}, {len(held)} held-out memories, "
              f"{args.threads} thread(s); unquantized reconstruction feature MSE {unq:.4f}")
        print(f"{'step':>7} {'bytes':>8} {'bits/dim':>8} {'ideal':>8} {'lat rms':>8} {'mse/unq':>8} {'mse/in':>8} "
              f"{'enc ms':>7} {'dec ms':>7}")
        for r in rows:
            print(f"{r['step']:7.3f} {r['bytes']:8.1f} {r['bits_per_dim']:8.3f} {r['ideal_coded_bytes']:8.1f} "
                  f"{r['latent_rms_posterior_units']:8.3f} {r['feature_mse_vs_unquantized']:8.4f} "
                  f"{r['feature_mse_vs_input']:8.4f} {r['encode_ms']:7.2f} {r['decode_ms']:7.2f}")
        for r in summary.get("tiled", []):
            print(f"{r['step']:7.3f} {r['bytes']:8.1f}  {r['grid']} tiles, one payload: "
                  f"encode {r['encode_ms']:.2f} ms, decode {r['decode_ms']:.2f} ms")
    return 0


def _tiled_rows(bundle, held: np.ndarray, steps, grid, repeat: int) -> list[dict]:
    """Bytes and median encode / decode time of payloads holding ``grid.count`` latents (consecutive
    held-out memories standing in for the tiles of one picture), each payload timed ``repeat`` times."""
    groups = [held[i:i + grid.count] for i in range(0, len(held) - grid.count + 1, grid.count)]
    rows = []
    for step in steps:
        sizes, enc_t, dec_t = [], [], []
        for group in groups:
            tiles = [Gaussians.from_array(p) for p in group]
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                payload = lc.encode_latent(bundle, tiles, step=step, grid=grid)
                t1 = time.perf_counter()
                lc.decode_latent(bundle, payload)
                t2 = time.perf_counter()
                enc_t.append(t1 - t0)
                dec_t.append(t2 - t1)
            sizes.append(len(payload))
        rows.append({"step": lc.check_step(step), "grid": str(grid), "payloads": len(groups), "repeat": max(1, repeat),
                     "bytes": statistics.mean(sizes), "encode_ms": 1e3 * statistics.median(enc_t),
                     "decode_ms": 1e3 * statistics.median(dec_t)})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
