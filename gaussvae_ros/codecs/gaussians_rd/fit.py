"""Rate-distortion fitting for codec ``gaussians-rd``: quantization-aware refinement and rate control.

:func:`encode_image` turns a frame into a payload of at most ``budget`` bytes:

1. the number of Gaussians is first estimated from the budget and the bits a Gaussian costs
   (:attr:`RDConfig.bits_per_gaussian`, re-measured on the payload itself after each pass);
2. :func:`gaussvae_ros.core.fit_image` fits that many (Image-GS fitter; a warm start is accepted);
3. :func:`refine_quantized` optimizes the Gaussians *through the payload's quantizer*
   (straight-through rounding of every attribute to the steps and adaptive precisions of
   :mod:`.format`), MSE plus ``rate_weight`` x a differentiable rate estimate;
4. rate control: while the coded size (:func:`.format.estimate_size`, within ~1 % of the real size)
   is over the budget, the Gaussians that carry least of the image are pruned (the count is decided
   by the budget, not taken from a grid), refined again, and the payload is written; a last check
   on the real bytes drops one Gaussian at a time until it fits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gaussvae_ros.core import FitConfig, Gaussians, fit_image, to_float_image
from gaussvae_ros.core.fit import contribution
from gaussvae_ros.core.render import render_covariance

from . import format as fmt


@dataclass(frozen=True)
class RDConfig:
    """Settings of :func:`encode_image` (chosen on the validation photographs, see BENCHMARKS.md)."""

    codes: fmt.StepCodes = field(default_factory=fmt.StepCodes)  # quantization steps; cell is re-derived
    cell_fraction: float = 1 / 8       # coarse position cell, as a fraction of the mean Gaussian spacing
    bits_per_gaussian: float = 30.0    # first guess of the cost of one Gaussian
    fit_iters: int = 120               # Image-GS fit before quantization-aware refinement
    refine_iters: int = 220            # quantization-aware steps after the fit
    prune_refine_iters: int = 40       # steps after pruning
    rate_weight: float = 0.0           # lambda of MSE + lambda * bits / pixel
    lrs: tuple = (0.3, 0.02, 0.02, 0.03, 0.01)  # per step: pixels, ls, an, radians, intensity
    threads: int | None = None
    seed: int = 0

    @classmethod
    def from_fit(cls, fit: FitConfig | None) -> "RDConfig":
        """The settings of a pipeline's fit: its threads and seed, and its iteration budget
        ``max_iters`` shared as the defaults share theirs (about 1/3 fitting, 2/3 quantization-aware
        refinement); its Gaussian count does not apply (the budget decides the count)."""
        if fit is None:
            return cls()
        base = cls()
        share = base.fit_iters / (base.fit_iters + base.refine_iters)
        fit_iters = max(1, round(fit.max_iters * share))
        refine_iters = max(1, fit.max_iters - fit_iters)
        return cls(fit_iters=fit_iters, refine_iters=refine_iters,
                   prune_refine_iters=max(1, refine_iters * base.prune_refine_iters // base.refine_iters),
                   threads=fit.threads, seed=fit.seed)


def _ste(x: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    return x + (xq - x).detach()


def canonical_tensors(g: Gaussians, width: int, height: int) -> list[torch.Tensor]:
    """``[xy [N, 2] px, ls [N], an [N], phi [N], colour [N, C] (YCoCg)]`` float32 tensors."""
    xy, ls, an, phi, color = fmt.to_canonical(g, width, height)
    ycc = fmt.ycocg(color) if color.shape[1] == 3 else color
    return [torch.tensor(a, dtype=torch.float32) for a in (xy, ls, an, phi, ycc)]


def quantized(params: list[torch.Tensor], steps: fmt.Steps, width: int, height: int) -> list[torch.Tensor]:
    """The payload's reconstruction of ``params`` (straight-through: the forward pass sees the decoded
    values, gradients pass as if rounding were the identity)."""
    xy, ls, an, phi, ycc = params
    an = an.abs()
    q_ls = torch.round(ls / steps.ls)
    q_an = torch.round(an / steps.an)
    q_ls_np, q_an_np = q_ls.detach().numpy().astype(np.int64), q_an.detach().numpy().astype(np.int64)
    refine = torch.from_numpy(np.exp2(fmt.refine_bits(q_ls_np, q_an_np, steps)).astype(np.float32))[:, None]
    gx, gy = fmt.grid_size(width, height, steps.cell)
    cell = steps.cell / refine
    hi = torch.stack([gx * refine[:, 0], gy * refine[:, 0]], 1) - 1
    xq = (torch.minimum(torch.clamp(torch.floor(xy / cell), min=0), hi) + 0.5) * cell
    levels = torch.from_numpy(fmt.rotation_levels(q_an_np, steps).astype(np.float32))
    phi_q = torch.round(phi / math.pi * levels) * math.pi / levels
    cstep = ycc.new_tensor(fmt.colour_steps(steps, ycc.shape[1]))
    return [_ste(xy, xq), _ste(ls, q_ls * steps.ls), _ste(an, q_an * steps.an), _ste(phi, phi_q),
            _ste(ycc, torch.round(ycc / cstep) * cstep)]


def render_canonical(xy, ls, an, phi, ycc, width: int, height: int, blend: str = "normalized",
                     threads: int | None = None) -> torch.Tensor:
    """Render canonical tensors to ``[H, W, C]`` (differentiable)."""
    v1, v2 = torch.exp(2 * (ls + an)), torch.exp(2 * (ls - an))
    cos, sin = torch.cos(phi), torch.sin(phi)
    cov = torch.stack([(v1 * cos * cos + v2 * sin * sin) / (width * width),
                       (v1 - v2) * cos * sin / (width * height),
                       (v1 * sin * sin + v2 * cos * cos) / (height * height)], -1)
    if ycc.shape[1] == 3:
        y, co, cg = ycc.unbind(-1)
        color = torch.stack([y - cg + co, y + cg, y - cg - co], -1)
    else:
        color = ycc
    return render_covariance(xy / xy.new_tensor([width, height]), cov, color, height, width, blend=blend,
                             threads=threads)


def rate_estimate(q: list[torch.Tensor], steps: fmt.Steps) -> torch.Tensor:
    """Differentiable bits of the size, anisotropy and colour symbols (two-sided geometric models around
    their medians, ratio fitted to the current values and held fixed for the gradient)."""
    _, ls, an, _, ycc = q
    cstep = fmt.colour_steps(steps, ycc.shape[1])
    bits = ls.new_zeros(())
    for v in [ls / steps.ls, an / steps.an] + [ycc[:, k] / float(cstep[k]) for k in range(ycc.shape[1])]:
        r = (v - v.detach().median()).abs()
        mean = float(r.detach().mean()) + 1e-3
        bits = bits + r.sum() * -math.log2(mean / (1 + mean))
    return bits


def refine_quantized(g: Gaussians, target: np.ndarray, steps: fmt.Steps, iters: int, config: RDConfig) -> Gaussians:
    """Optimize ``g`` through the quantizer of ``steps`` (Adam, cosine decay); returns the quantized
    Gaussians (the payload's values exactly: symbolizing them again gives the same symbols)."""
    h, w, _ = target.shape
    params = [p.requires_grad_() for p in canonical_tensors(g, w, h)]
    tgt = torch.from_numpy(target)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for it in range(1, iters + 1):
        q = quantized(params, steps, w, h)
        loss = ((render_canonical(*q, w, h, g.blend, config.threads) - tgt) ** 2).mean()
        if config.rate_weight:
            loss = loss + config.rate_weight * rate_estimate(q, steps) / (h * w)
        grads = torch.autograd.grad(loss, params)
        lr_scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (it - 1) / iters))
        with torch.no_grad():
            for p, grad, mm, vv, lr in zip(params, grads, m, v, config.lrs):
                mm.lerp_(grad, 0.1)
                vv.mul_(0.999).addcmul_(grad, grad, value=0.001)
                p -= lr * lr_scale * (mm / (1 - 0.9 ** it)) / ((vv / (1 - 0.999 ** it)).sqrt() + 1e-12)
    with torch.no_grad():
        xy, ls, an, phi, ycc = (t.numpy().astype(np.float64) for t in quantized(params, steps, w, h))
    color = fmt.rgb(ycc) if ycc.shape[1] == 3 else ycc
    return fmt.from_canonical(xy, ls, an, np.mod(phi, math.pi), color, w, h, g.blend)


def _strongest(g: Gaussians, count: int, height: int, width: int, threads) -> Gaussians:
    keep = np.argsort(-contribution(g, height, width, threads), kind="stable")[:max(1, count)]
    return g.take(np.sort(keep))


@dataclass
class RDResult:
    """An encoded frame: the payload, the Gaussians it decodes to, the last rate estimate (bytes) and
    the wall time of the whole encode (fit, refinement, rate control, coding; seconds)."""

    payload: bytes
    gaussians: Gaussians     # decoded from the payload
    estimated_bytes: float   # the rate estimate of the last pass
    seconds: float


def encode_image(image: np.ndarray, budget: int, config: RDConfig | None = None, init: Gaussians | None = None) -> RDResult:
    """A ``gaussians-rd`` payload of ``image`` (fitted at its own size) of at most ``budget`` bytes."""
    start = time.perf_counter()
    config = config or RDConfig()
    target = to_float_image(image)
    h, w, _ = target.shape
    header = fmt.estimate_size(fmt.Symbols(*(np.zeros(0, np.int64),) * 7, np.zeros((0, target.shape[2]), np.int64)),
                               config.codes.steps())
    if budget < header + 1:
        raise ValueError(f"a gaussians-rd payload needs more than {header:.0f} bytes, the budget is {budget}")
    n = max(1, int((budget - header) * 8 / config.bits_per_gaussian))
    fitted = fit_image(target, n_gaussians=n, init=init, max_iters=config.fit_iters, threads=config.threads,
                       seed=config.seed).gaussians
    fitted.check_valid("fitted Gaussians")  # a diverged warm start: the caller starts cold
    codes = config.codes.with_cell(math.sqrt(w * h / len(fitted)) * config.cell_fraction)
    steps = codes.steps()
    g = refine_quantized(fitted, target, steps, config.refine_iters, config)
    estimate = fmt.estimate_size(fmt.symbolize(g, w, h, steps), steps)
    for attempt in range(8):
        if estimate <= budget:
            break
        per = (estimate - header) / len(g)
        g = _strongest(g, len(g) - int(math.ceil((estimate - budget) / per)) - attempt, h, w, config.threads)
        if attempt == 0 and config.prune_refine_iters:
            g = refine_quantized(g, target, steps, config.prune_refine_iters, config)
        estimate = fmt.estimate_size(fmt.symbolize(g, w, h, steps), steps)
    payload = fmt.encode(fmt.symbolize(g, w, h, steps), codes, w, h, g.blend)
    while len(payload) > budget and len(g) > 1:
        g = _strongest(g, len(g) - 1, h, w, config.threads)
        payload = fmt.encode(fmt.symbolize(g, w, h, steps), codes, w, h, g.blend)
    if len(payload) > budget:
        raise ValueError(f"no gaussians-rd payload of this image fits {budget} bytes")
    return RDResult(payload, fmt.decode(payload).gaussians, estimate, time.perf_counter() - start)
