"""Fitting an image with 2D Gaussians, following Image-GS.

* Content-adaptive initialization: a fraction of the Gaussians is placed by sampling pixels with
  probability ``(1 - r) * |grad I| / sum |grad I| + r / P`` (``r`` = :attr:`FitConfig.random_fraction`),
  each sized from the distance to its nearest neighbours and coloured with the pixel it sits on.
* Error-guided progressive addition: every :attr:`FitConfig.add_every` steps more Gaussians are placed
  at pixels sampled by their current reconstruction error until the budget is reached.
* Adam with per-group learning rates (position, log-scale, rotation, colour), loss
  ``(1 - l) * L1 + l * (1 - SSIM)`` with ``l`` = :attr:`FitConfig.ssim_weight`.
* Stops when the loss has plateaued (relative improvement of the windowed mean loss below
  :attr:`FitConfig.plateau_tol` over :attr:`FitConfig.plateau_window` steps) or at
  :attr:`FitConfig.max_iters`.
* Warm start: pass the previous frame's Gaussians as ``init``: shifted by the global image motion
  (phase correlation), those that left the image re-placed where the error is largest, then
  optimized with the whole budget present from step 0 and a short learning-rate ramp (Adam's first
  steps would otherwise jolt every parameter of a converged set). This is what makes video cheap.

Deterministic for a given seed (single process; the compiled kernels reduce in a fixed order).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from . import _native
from .gaussians import DEFAULT_NUM_GAUSSIANS, Gaussians
from .image import psnr, ssim, to_float_image
from .morton import morton_order
from .render import render, render_params


@dataclass(frozen=True)
class FitConfig:
    """Fitting hyper-parameters. Learning rates are per step, in the parameter's own units."""

    n_gaussians: int = DEFAULT_NUM_GAUSSIANS  # total budget
    blend: str = "normalized"  # see gaussvae_ros.core.render
    init_fraction: float = 0.8  # share of the budget placed at initialization (cold start)
    random_fraction: float = 0.3  # share of initial positions sampled uniformly instead of by gradient
    add_every: int = 25  # steps between error-guided additions
    add_steps: int = 2  # number of additions that complete the budget
    max_iters: int = 350  # iteration budget
    min_iters: int = 100  # never stop on a plateau before this
    plateau_window: int = 50  # steps per window of the plateau rule
    plateau_tol: float = 2e-3  # stop when the windowed loss improves by less than this fraction
    ssim_weight: float = 0.2  # l in (1 - l) L1 + l (1 - SSIM)
    lr_xy: float = 3e-3  # normalized image units per step
    lr_scale: float = 6e-2  # log-scale per step
    lr_rot: float = 5e-2  # radians per step
    lr_color: float = 3e-2  # intensity per step
    lr_final: float = 0.1  # learning rates decay by cosine to this fraction at max_iters
    min_scale_px: float = 0.3  # smallest standard deviation, in pixels of the fitted image
    max_scale: float = 0.5  # largest standard deviation, in normalized units (half the image)
    target_psnr: float | None = None  # also stop as soon as the fit reaches this PSNR (dB)
    warm_lr_scale: float = 1.0  # learning rates are multiplied by this when warm-starting
    warm_warmup: int = 10  # a warm start ramps its learning rates up over this many steps
    warm_align: bool = True  # shift a warm start by the image motion found by phase correlation
    warm_reseed_fraction: float = 0.0  # share of a warm start's least useful Gaussians moved to the worst pixels
    # (0 by default: on KITTI it slowed warm starts; Gaussians that left the image are always moved)
    threads: int | None = None  # CPU threads for the compiled kernels (default: torch's)
    seed: int = 0


@dataclass
class FitResult:
    """A fitted image: the Gaussians plus how well and how fast they were fitted."""

    gaussians: Gaussians
    psnr: float  # dB, against the (converted) input at the fitted size
    ssim: float  # scikit-image SSIM, data range 1
    iterations: int
    seconds: float  # wall time of the fit, conversions included
    height: int
    width: int
    history: list[float] = field(default_factory=list)  # windowed mean loss, one value per plateau window


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    gray = image.mean(axis=2)
    gy, gx = np.gradient(gray)
    return np.hypot(gx, gy)


def _sample_pixels(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct pixel indices drawn with probability proportional to ``weights`` (flat)."""
    p = weights.ravel().astype(np.float64)
    p = p / p.sum()
    count = min(count, int(np.count_nonzero(p)))
    return rng.choice(p.size, size=count, replace=False, p=p)


def _place(image: np.ndarray, flat_idx: np.ndarray, existing_xy: np.ndarray, rng: np.random.Generator,
           blend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New Gaussians at pixels ``flat_idx``: positions (jittered within the pixel), log-scales from the
    nearest-neighbour spacing among all Gaussians, colours from the image."""
    from scipy.spatial import cKDTree

    h, w, _ = image.shape
    rows, cols = np.divmod(flat_idx, w)
    px = np.stack([cols + rng.uniform(0.25, 0.75, cols.size), rows + rng.uniform(0.25, 0.75, rows.size)], 1)
    xy = px / np.array([w, h])
    everything = np.concatenate([existing_xy, xy]) * np.array([w, h])
    k = min(4, len(everything))
    dist, _ = cKDTree(everything).query(px, k=k)
    spacing = dist[:, 1:].mean(axis=1) if k > 1 else np.full(len(px), max(h, w) / 4.0)
    sigma_px = np.clip(0.6 * spacing, 0.5, max(h, w) / 4.0)
    log_scale = np.log(np.stack([sigma_px / w, sigma_px / h], 1))
    color = image[rows, cols].copy()
    if blend == "sum":
        color *= 0.5
    return xy.astype(np.float32), log_scale.astype(np.float32), color.astype(np.float32)


def _ssim_window(channels: int, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).repeat(channels * 5, 1, 1)  # [5C, 1, size]


def ssim_loss(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """PyTorch implementation of ``1 - SSIM``: 11-tap Gaussian window (sigma 1.5) applied separably with
    replicated borders, images ``[C, H, W]`` in [0, 1]. Reference for the compiled :func:`image_loss`."""
    c = x.shape[0]
    window = _ssim_window(c).to(x) if window is None else window
    stack = torch.cat([x, y, x * x, y * y, x * y], 0)[None]  # [1, 5C, H, W]
    pad = window.shape[-1] // 2
    blurred = F.conv2d(F.pad(stack, (pad, pad, 0, 0), mode="replicate"), window[:, :, None, :], groups=5 * c)
    blurred = F.conv2d(F.pad(blurred, (0, 0, pad, pad), mode="replicate"), window[:, :, :, None], groups=5 * c)
    mx, my, xx, yy, xy = blurred[0].split(c)
    vx, vy, cxy = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1.0 - s.mean()


class _ImageLossCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rendered, target, ssim_weight, threads):
        h, w, c = rendered.shape
        grad = torch.empty_like(rendered)
        value = _native.load().gs_image_loss(h, w, c, rendered.data_ptr(), target.data_ptr(), float(ssim_weight),
                                             threads, grad.data_ptr())
        if not math.isfinite(value):
            raise RuntimeError("image loss failed (allocation)")
        ctx.save_for_backward(grad)
        return rendered.new_tensor(value)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None


def image_loss(rendered: torch.Tensor, target: torch.Tensor, ssim_weight: float,
               threads: int | None = None) -> torch.Tensor:
    """``(1 - l) * mean|rendered - target| + l * (1 - SSIM)`` for ``[H, W, C]`` images (differentiable
    w.r.t. ``rendered``). Compiled on the CPU; :func:`ssim_loss` in PyTorch elsewhere."""
    if rendered.device.type == "cpu" and rendered.dtype == torch.float32 and _native.load() is not None:
        threads = torch.get_num_threads() if threads is None else int(threads)
        return _ImageLossCPU.apply(rendered.contiguous(), target.contiguous(), ssim_weight, threads)
    l1 = (rendered - target).abs().mean()
    if ssim_weight == 0:
        return l1
    return (1 - ssim_weight) * l1 + ssim_weight * ssim_loss(rendered.permute(2, 0, 1), target.permute(2, 0, 1))


class _PackedParams:
    """All raw parameters in one ``[N, 5 + C]`` tensor, optimized by Adam in a few in-place ops.

    Columns: u, v, log s1, log s2, rot, colour. Each group is stored divided by its learning rate, so
    Adam with a unit learning rate moves it by that group's rate (Adam's step does not depend on the
    gradient's scale): per-group learning rates at the cost of one update. Adam is written out here
    (beta1 0.9, beta2 0.999, bias-corrected) because ``torch.optim`` imports ``torch._dynamo`` on
    first use, which costs seconds in every process that fits one image.
    """

    beta1, beta2, eps = 0.9, 0.999, 1e-15

    def __init__(self, xy, log_scale, rot, color, lrs: tuple[float, float, float, float]):
        c = color.shape[1]
        self.scale = torch.tensor([lrs[0]] * 2 + [lrs[1]] * 2 + [lrs[2]] + [lrs[3]] * c, dtype=torch.float32)
        self.raw = (self._stack(xy, log_scale, rot, color) / self.scale).requires_grad_()
        self.exp_avg = torch.zeros_like(self.raw)
        self.exp_avg_sq = torch.zeros_like(self.raw)
        self.steps = torch.zeros(len(self.raw), 1)  # per row: Gaussians added later restart their count

    @staticmethod
    def _stack(xy, log_scale, rot, color) -> torch.Tensor:
        arrays = [np.asarray(xy), np.asarray(log_scale), np.asarray(rot).reshape(-1, 1), np.asarray(color)]
        return torch.from_numpy(np.concatenate(arrays, 1).astype(np.float32))

    def values(self) -> torch.Tensor:
        """``[N, 5 + C]`` parameter values (differentiable w.r.t. the raw tensor)."""
        return self.raw * self.scale

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One Adam step with learning rate ``lr`` on the raw tensor's ``.grad``, which it then clears."""
        grad = self.raw.grad
        self.raw.grad = None
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        correction1 = 1 - self.beta1 ** self.steps
        correction2 = 1 - self.beta2 ** self.steps
        denom = (self.exp_avg_sq / correction2).sqrt_().add_(self.eps)
        self.raw.sub_(self.exp_avg / correction1 / denom * lr)

    def append(self, xy, log_scale, rot, color) -> None:
        extra = self._stack(xy, log_scale, rot, color) / self.scale
        self.raw = torch.cat([self.raw.detach(), extra]).requires_grad_()
        zeros = torch.zeros_like(extra)
        self.exp_avg = torch.cat([self.exp_avg, zeros])
        self.exp_avg_sq = torch.cat([self.exp_avg_sq, zeros])
        self.steps = torch.cat([self.steps, torch.zeros(len(extra), 1)])


def estimate_shift(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """Translation ``(dx, dy)`` in pixels that moves ``reference`` onto ``image`` (``[H, W, C]``), by
    phase correlation of their grey levels (whole pixels; wrap-around ignored)."""
    a = reference.mean(axis=2) - reference.mean()
    b = image.mean(axis=2) - image.mean()
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1])) if min(a.shape) > 2 else 1.0
    cross = np.fft.fft2(b * window) * np.conj(np.fft.fft2(a * window))
    corr = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return float(dx - w if dx > w // 2 else dx), float(dy - h if dy > h // 2 else dy)


def _prepare_warm_start(warm: Gaussians, target: np.ndarray, config: FitConfig,
                        rng: np.random.Generator) -> Gaussians:
    """Adapt the previous frame's Gaussians to this frame before optimizing: shift them by the global
    image motion (phase correlation of their rendering with the new frame), then move the ones that
    left the image and the least useful ones (smallest share of the blended image, as in
    :func:`contribution`) to where the shifted rendering is worst, as a cold fit's error-guided
    addition would."""
    h, w, _ = target.shape
    warm = warm.copy()
    if config.warm_align and h >= 8 and w >= 8:
        dx, dy = estimate_shift(render(warm, h, w, threads=config.threads), target)
        warm.xy += np.array([dx / w, dy / h], dtype=np.float32)
    outside = ((warm.xy < 0) | (warm.xy > 1)).any(axis=1)
    warm.xy = np.clip(warm.xy, 0.0, 1.0)
    count = max(int(outside.sum()), int(config.warm_reseed_fraction * len(warm)))
    if count == 0:
        return warm
    share = contribution(warm, h, w, config.threads)
    share[outside] = -1.0
    weakest = np.argsort(share, kind="stable")[:count]
    rendered = render(warm, h, w, threads=config.threads)
    error = np.abs(rendered - target).sum(axis=2) + 1e-6
    keep = np.setdiff1d(np.arange(len(warm)), weakest)
    xy, log_scale, color = _place(target, _sample_pixels(error, count, rng), warm.xy[keep], rng, config.blend)
    weakest = weakest[:len(xy)]
    warm.xy[weakest], warm.scale[weakest], warm.color[weakest] = xy, np.exp(log_scale), color
    warm.rot[weakest] = rng.uniform(0, math.pi, len(xy))
    return warm


def contribution(g: Gaussians, h: int, w: int, threads: int | None = None) -> np.ndarray:
    """Each Gaussian's share ``[N]`` of its rendering at ``h x w`` pixels, ``sum_p w_i(p) / sum_j w_j(p)``
    (normalized blend) or ``sum_p w_i(p)`` (sum blend): the colour gradient of the image's sum, one
    backward pass. What warm starts re-place and rate control prunes first when small."""
    tensors = [torch.from_numpy(a) for a in (g.xy, g.scale, g.rot)]
    color = torch.from_numpy(g.color.copy()).requires_grad_()
    image = render_params(*tensors, color, h, w, blend=g.blend, threads=threads)
    (grad,) = torch.autograd.grad(image.sum(), color)
    return grad[:, 0].numpy().copy()


def fit_image(image: np.ndarray, n_gaussians: int | None = None, init: Gaussians | None = None, seed: int | None = None,
              config: FitConfig | None = None, progress=None, **overrides) -> FitResult:
    """Fit ``image`` with 2D Gaussians.

    Args:
        image: any array :func:`~gaussvae_ros.core.image.to_float_image` accepts (``[H, W]`` or
            ``[H, W, C]``, uint8 / uint16 / float). Fitted at its own size.
        n_gaussians: budget (default :data:`DEFAULT_NUM_GAUSSIANS`, or ``len(init)`` with ``init``).
        init: warm start, e.g. the previous frame's Gaussians (its colour channels must match the image).
            An ``init`` of more Gaussians than the budget starts from an evenly spread subset (every
            k-th along the Morton curve), so the whole picture is covered.
        seed: random seed (default ``config.seed``).
        config: hyper-parameters; keyword ``overrides`` replace single fields (``max_iters=...``).
        progress: optional callable ``progress(iteration, max_iters)``.
    Returns:
        :class:`FitResult` with the Gaussians in normalized coordinates.
    """
    start = time.perf_counter()
    config = replace(config or FitConfig(), **overrides)
    if n_gaussians is not None:
        config = replace(config, n_gaussians=int(n_gaussians))
    elif init is not None:
        config = replace(config, n_gaussians=len(init))
    if seed is not None:
        config = replace(config, seed=int(seed))
    if config.n_gaussians < 1:
        raise ValueError(f"n_gaussians must be at least 1, got {config.n_gaussians}")
    target_np = to_float_image(image)
    h, w, ch = target_np.shape
    if h * w < 4:
        raise ValueError(f"image of {w}x{h} pixels is too small to fit (need at least 4 pixels)")
    if init is not None and init.channels != ch:
        raise ValueError(f"warm start has {init.channels} colour channels, the image {ch}")
    if init is not None:
        init.check_valid("warm start Gaussians")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    target = torch.from_numpy(target_np)
    min_log_scale = torch.log(torch.tensor([config.min_scale_px / w, config.min_scale_px / h]))
    max_log_scale = torch.log(torch.tensor([config.max_scale, config.max_scale])).maximum(min_log_scale)
    n_total = min(config.n_gaussians, h * w)
    lrs = (config.lr_xy, config.lr_scale, config.lr_rot, config.lr_color)

    if init is not None:
        if len(init) > n_total:  # evenly along the Morton curve: the subset still covers the whole picture
            init = init.take(morton_order(init.xy)).take(np.linspace(0, len(init) - 1, n_total).round().astype(int))
        warm = _prepare_warm_start(init, target_np, config, rng)
        params = _PackedParams(warm.xy, np.log(np.maximum(warm.scale, 1e-8)), warm.rot, warm.color, lrs)
        schedule: list[int] = []
    else:
        n0 = max(1, min(n_total, int(round(n_total * config.init_fraction))))
        weights = _gradient_magnitude(target_np)
        weights = (1 - config.random_fraction) * weights / max(weights.sum(), 1e-12) + config.random_fraction / weights.size
        xy, log_scale, color = _place(target_np, _sample_pixels(weights, n0, rng), np.zeros((0, 2)), rng, config.blend)
        rot = rng.uniform(0, math.pi, n0).astype(np.float32)
        params = _PackedParams(xy, log_scale, rot, color, lrs)
        remaining = n_total - n0
        schedule = [remaining * (k + 1) // config.add_steps - remaining * k // config.add_steps
                    for k in range(config.add_steps)] if remaining > 0 else []

    def activated(values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scale = torch.exp(torch.minimum(torch.maximum(values[:, 2:4], min_log_scale), max_log_scale))
        return values[:, 0:2], scale, values[:, 4], values[:, 5:]

    history: list[float] = []
    window_sum, window_count = 0.0, 0
    iteration = 0
    lr_scale = config.warm_lr_scale if init is not None else 1.0
    # short budgets still place the whole budget: the additions are squeezed in before the end
    add_every = max(1, min(config.add_every, config.max_iters // (config.add_steps + 1)))
    target_mse = 10.0 ** (-config.target_psnr / 10.0) if config.target_psnr is not None else None
    for iteration in range(1, config.max_iters + 1):
        frac = 0.5 * (1 + math.cos(math.pi * (iteration - 1) / config.max_iters))
        lr = lr_scale * (config.lr_final + (1 - config.lr_final) * frac)
        if init is not None and iteration <= config.warm_warmup:
            lr *= iteration / (config.warm_warmup + 1)  # Adam's first steps move every parameter by ~lr
        rendered = render_params(*activated(params.values()), h, w, blend=config.blend, threads=config.threads)
        if target_mse is not None and not schedule:
            with torch.no_grad():
                if float(((rendered.clamp(0, 1) - target) ** 2).mean()) <= target_mse:
                    iteration -= 1  # reached before this step's update
                    break
        loss = image_loss(rendered, target, config.ssim_weight, config.threads)
        loss.backward()
        params.step(lr)
        with torch.no_grad():
            params.raw[:, 0:2].clamp_(0.0, 1.0 / config.lr_xy)
        window_sum += loss.item()
        window_count += 1
        if progress is not None:
            progress(iteration, config.max_iters)

        if schedule and iteration % add_every == 0:
            count = schedule.pop(0)
            error = (rendered.detach() - target).abs().sum(-1).numpy() + 1e-6
            new_xy, new_log_scale, new_color = _place(target_np, _sample_pixels(error, count, rng),
                                                      params.values().detach()[:, 0:2].numpy(), rng, config.blend)
            new_rot = rng.uniform(0, math.pi, len(new_xy)).astype(np.float32)
            params.append(new_xy, new_log_scale, new_rot, new_color)
            window_sum, window_count = 0.0, 0  # the loss jumps when Gaussians arrive: restart the window
            continue
        if window_count == config.plateau_window:
            mean = window_sum / window_count
            window_sum, window_count = 0.0, 0
            previous = history[-1] if history else None
            history.append(mean)
            if (not schedule and previous is not None and iteration >= config.min_iters
                    and previous - mean < config.plateau_tol * previous):
                break

    with torch.no_grad():
        xy, scale, rot, color = (t.contiguous() for t in activated(params.values()))
        gaussians = Gaussians(xy.numpy().copy(), scale.numpy().copy(), torch.remainder(rot, math.pi).numpy().copy(),
                              color.numpy().copy(), blend=config.blend)
        rendered = render_params(xy, scale, rot, color, h, w, blend=config.blend,
                                 threads=config.threads).clamp(0, 1).numpy()
    quality_psnr = psnr(target_np, rendered)
    quality_ssim = ssim(target_np, rendered) if min(h, w) >= 7 else float("nan")
    return FitResult(gaussians, quality_psnr, quality_ssim, iteration, time.perf_counter() - start, h, w, history)
