"""Differentiable rendering of 2D Gaussians (see :mod:`gaussvae_ros.core.gaussians` for conventions).

Layers, from the bottom:

* :func:`rasterize` takes pixel-space means ``[N, 2]``, conics ``[N, 3]`` and colours ``[N, C]`` and
  returns an image ``[H, W, C]``. On the CPU it runs the compiled kernel (``_raster.c``: bounded
  elliptical support, hand-written backward, no ``pixels x Gaussians`` tensor). :func:`_rasterize`
  is the pure-torch implementation with the same signature; it is the reference for the tests and
  the path used on CUDA tensors (chunked over rows so memory stays bounded; it is dense per chunk,
  which a GPU handles well at robot-camera sizes). No GPU was available to tune that path: it is
  kept deliberately thin and is tested on the CPU for parity.
* :func:`project` maps normalized Gaussians to pixel space for a given output size, adding a
  low-pass of :data:`LOWPASS_VARIANCE` pixels^2 so that Gaussians smaller than a pixel never fall
  between pixel centres (rendering below the fitted size stays alias-free).
* :func:`render_params` = :func:`project` + :func:`rasterize`, differentiable w.r.t. all parameters;
  :func:`render_covariance` the same from covariances (:func:`project_covariance`, smooth for round
  Gaussians: what a network predicting covariances trains through).
* :func:`render` renders a :class:`~gaussvae_ros.core.gaussians.Gaussians` to a numpy image at any
  size: resolution-free recall.

Blend modes (chosen by measurement, see BENCHMARKS.md):

* ``"normalized"``: ``I(p) = sum_i w_i(p) c_i / sum_i w_i(p)``, a weighted average of the colours of
  the Gaussians reaching ``p`` (Image-GS normalizes its top-K weights the same way); 0 where none does.
* ``"sum"``: ``I(p) = sum_i w_i(p) c_i`` (GaussianImage's accumulated sum; colours carry opacity).

with ``w_i(p) = exp(-q_i(p) / 2)`` inside the support and 0 outside. The support is the ellipse
``q_i <= cutoff`` (default 25, i.e. 5 sigma), enlarged for thin Gaussians until it holds a disk of
``rmin`` pixels (capped at q = 170, where exp(-q/2) is still a normal float: so the rule holds for Gaussians no thinner than rmin / 13). For the normalized blend :func:`render_params` sets
``rmin = RMIN_SPACING * sqrt(H W / N)``, a fraction of the mean spacing between Gaussians, so every
pixel is reached by some Gaussian (no black holes between thin ones) and the rule scales with the
output size (resolution-free); the sum blend uses ``rmin = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _native
from .gaussians import Gaussians
from .image import to_uint8

#: Variance (pixels^2) added to every Gaussian's pixel-space covariance.
LOWPASS_VARIANCE = 0.3
#: Default support: pixels with q = Mahalanobis distance^2 <= CUTOFF (5 standard deviations: with the normalized blend a pixel then takes the colour of nearby Gaussians instead of going black).
CUTOFF = 25.0
#: Minimum support radius of the normalized blend, as a fraction of the mean Gaussian spacing.
RMIN_SPACING = 1.0
#: Largest support a Gaussian is enlarged to (squared Mahalanobis distance).
MAX_CUTOFF = 170.0

BLEND_MODES = {"normalized": 0, "sum": 1}


def _check_mode(blend: str) -> int:
    try:
        return BLEND_MODES[blend]
    except KeyError:
        raise ValueError(f"unknown blend mode {blend!r}; expected one of {sorted(BLEND_MODES)}") from None


def _check_size(height: int, width: int) -> tuple[int, int]:
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    if height * width > 100_000_000:
        raise ValueError(f"output size {width}x{height} is over the 100-megapixel limit")
    return height, width


def project(xy: torch.Tensor, scale: torch.Tensor, rot: torch.Tensor, height: int, width: int,
            lowpass: float = LOWPASS_VARIANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized Gaussians to pixel-space means and conics for an ``height x width`` image.

    Args:
        xy: ``[N, 2]`` means (u, v) in normalized coordinates.
        scale: ``[N, 2]`` standard deviations (normalized units), > 0.
        rot: ``[N]`` rotations in radians.
        lowpass: variance in pixels^2 added to the pixel-space covariance.
    Returns:
        means ``[N, 2]`` in pixels (x, y) and conics ``[N, 3]`` = (a, b, c) of the inverse pixel-space
        covariance ``[[a, b], [b, c]]``.
    """
    if (xy.device.type == "cpu" and all(t.dtype == torch.float32 for t in (xy, scale, rot))
            and _native.load() is not None):
        return _ProjectCPU.apply(xy.contiguous(), scale.contiguous(), rot.contiguous(), int(height), int(width),
                                 float(lowpass))
    return _project(xy, scale, rot, height, width, lowpass)


def _project(xy: torch.Tensor, scale: torch.Tensor, rot: torch.Tensor, height: int, width: int,
             lowpass: float = LOWPASS_VARIANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch implementation of :func:`project` (any device and dtype)."""
    return project_covariance(xy, covariance_from_scale_rot(scale, rot), height, width, lowpass)


def covariance_from_scale_rot(scale: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """``cov [..., 3] = (sxx, sxy, syy)`` of ``R(rot) diag(s1^2, s2^2) R(rot)^T`` for ``scale [..., 2]``,
    ``rot [...]`` (any units; normalized ones here)."""
    cos, sin = torch.cos(rot), torch.sin(rot)
    v1, v2 = scale[..., 0] ** 2, scale[..., 1] ** 2
    return torch.stack([v1 * cos * cos + v2 * sin * sin, (v1 - v2) * cos * sin, v1 * sin * sin + v2 * cos * cos], -1)


def project_covariance(xy: torch.Tensor, cov: torch.Tensor, height: int, width: int,
                       lowpass: float = LOWPASS_VARIANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`project` from covariances instead of scales and rotations (PyTorch, any device and dtype).

    ``cov [N, 3]`` holds ``(sxx, sxy, syy)`` of each normalized covariance ``[[sxx, sxy], [sxy, syy]]``
    (positive definite). Smooth everywhere, also for round Gaussians, where the rotation of
    :func:`project` is undefined: the path for networks that predict covariances (VAE decoders).
    """
    sxx, sxy, syy = cov.unbind(-1)
    pxx = sxx * (width * width) + lowpass
    pxy = sxy * (width * height)
    pyy = syy * (height * height) + lowpass
    det = pxx * pyy - pxy * pxy
    conics = torch.stack([pyy / det, -pxy / det, pxx / det], dim=-1)
    means = xy * xy.new_tensor([width, height])
    return means, conics


class _ProjectCPU(torch.autograd.Function):
    """autograd wrapper of the compiled projection (float32, CPU, contiguous)."""

    @staticmethod
    def forward(ctx, xy, scale, rot, height, width, lowpass):
        n = xy.shape[0]
        means = torch.empty(n, 2, dtype=torch.float32)
        conics = torch.empty(n, 3, dtype=torch.float32)
        _native.load().gs_project(n, height, width, lowpass, xy.data_ptr(), scale.data_ptr(), rot.data_ptr(),
                                  means.data_ptr(), conics.data_ptr())
        ctx.save_for_backward(scale, rot, conics)
        ctx.config = (height, width, lowpass)
        return means, conics

    @staticmethod
    def backward(ctx, grad_means, grad_conics):
        scale, rot, conics = ctx.saved_tensors
        height, width, lowpass = ctx.config
        n = scale.shape[0]
        grad_means = torch.zeros(n, 2) if grad_means is None else grad_means.float().contiguous()
        grad_conics = torch.zeros(n, 3) if grad_conics is None else grad_conics.float().contiguous()
        grad_xy, grad_scale, grad_rot = torch.empty(n, 2), torch.empty(n, 2), torch.empty(n)
        _native.load().gs_project_backward(n, height, width, lowpass, scale.data_ptr(), rot.data_ptr(),
                                           conics.data_ptr(), grad_means.data_ptr(), grad_conics.data_ptr(),
                                           grad_xy.data_ptr(), grad_scale.data_ptr(), grad_rot.data_ptr())
        return grad_xy, grad_scale, grad_rot, None, None, None


def _forward_cpu(means, conics, colors, height, width, cutoff, rmin, mode, threads) -> tuple[torch.Tensor, torch.Tensor]:
    """The compiled forward kernel (float32, CPU, contiguous): ``(image [H, W, C], wsum [H, W])``."""
    lib = _native.load()
    n, ch = colors.shape
    image = torch.empty(height, width, ch, dtype=torch.float32)
    wsum = torch.empty(height, width, dtype=torch.float32)
    status = lib.gs_forward(n, ch, height, width, means.data_ptr(), conics.data_ptr(), colors.data_ptr(),
                            float(cutoff), float(rmin), mode, threads, image.data_ptr(), wsum.data_ptr())
    if status != 0:
        raise RuntimeError(f"gs_forward failed with status {status}")
    return image, wsum


class _RasterizeCPU(torch.autograd.Function):
    """autograd wrapper of the compiled kernels (float32, CPU, contiguous)."""

    @staticmethod
    def forward(ctx, means, conics, colors, height, width, cutoff, rmin, mode, threads):
        image, wsum = _forward_cpu(means, conics, colors, height, width, cutoff, rmin, mode, threads)
        ctx.save_for_backward(means, conics, colors, image, wsum)
        ctx.config = (height, width, cutoff, rmin, mode, threads)
        ctx.mark_non_differentiable(wsum)
        return image, wsum

    @staticmethod
    def backward(ctx, grad_image, _grad_wsum):
        means, conics, colors, image, wsum = ctx.saved_tensors
        height, width, cutoff, rmin, mode, threads = ctx.config
        lib = _native.load()
        n, ch = colors.shape
        grad_image = grad_image.to(torch.float32).contiguous()
        grad_means = torch.empty_like(means)
        grad_conics = torch.empty_like(conics)
        grad_colors = torch.empty_like(colors)
        status = lib.gs_backward(n, ch, height, width, means.data_ptr(), conics.data_ptr(), colors.data_ptr(),
                                 float(cutoff), float(rmin), mode, threads, grad_image.data_ptr(), image.data_ptr(),
                                 wsum.data_ptr(), grad_means.data_ptr(), grad_conics.data_ptr(),
                                 grad_colors.data_ptr())
        if status != 0:
            raise RuntimeError(f"gs_backward failed with status {status}")
        return grad_means, grad_conics, grad_colors, None, None, None, None, None, None


def _check_inputs(means: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor) -> None:
    n = means.shape[0]
    assert means.shape == (n, 2), means.shape
    assert conics.shape == (n, 3), conics.shape
    assert colors.ndim == 2 and colors.shape[0] == n and colors.shape[1] in (1, 3), colors.shape


def rasterize(means: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor, height: int, width: int, *,
              blend: str = "normalized", cutoff: float = CUTOFF, rmin: float = 0.0,
              threads: int | None = None) -> torch.Tensor:
    """Render pixel-space Gaussians into an image (differentiable).

    Args:
        means: ``[N, 2]`` (x, y) in pixels; pixel (i, j) is centred at (i + 0.5, j + 0.5).
        conics: ``[N, 3]`` (a, b, c), the inverse covariance ``[[a, b], [b, c]]`` in pixels^-2.
        colors: ``[N, C]`` with C in {1, 3}.
        blend: ``"normalized"`` or ``"sum"`` (module docstring).
        cutoff: support radius as a squared Mahalanobis distance.
        rmin: minimum support radius in pixels (thin Gaussians' supports are enlarged to hold it).
        threads: CPU threads for the compiled kernel (default: ``torch.get_num_threads()``).
    Returns:
        ``[H, W, C]`` image, same dtype as ``colors`` on the CPU kernel's float32 path.
    """
    height, width = _check_size(height, width)
    mode = _check_mode(blend)
    _check_inputs(means, conics, colors)
    if means.device.type == "cpu" and colors.dtype == torch.float32 and _native.load() is not None:
        threads = torch.get_num_threads() if threads is None else int(threads)
        args = (means.float().contiguous(), conics.float().contiguous(), colors.contiguous(), height, width,
                float(cutoff), float(rmin), mode, threads)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (means, conics, colors)):
            return _RasterizeCPU.apply(*args)[0]
        return _forward_cpu(*args)[0]  # nothing to differentiate: no autograd bookkeeping
    return _rasterize(means, conics, colors, height, width, blend=blend, cutoff=cutoff, rmin=rmin)


def _rasterize(means: torch.Tensor, conics: torch.Tensor, colors: torch.Tensor, height: int, width: int, *,
               blend: str = "normalized", cutoff: float = CUTOFF, rmin: float = 0.0, threads: int | None = None,
               max_pairs: int = 1 << 23) -> torch.Tensor:
    """PyTorch implementation of :func:`rasterize` (dense per chunk of rows; any device and dtype).

    ``threads`` is accepted for signature parity and ignored. Rows are processed in chunks of at most
    ``max_pairs`` (pixel, Gaussian) pairs to bound memory.
    """
    height, width = _check_size(height, width)
    mode = _check_mode(blend)
    _check_inputs(means, conics, colors)
    n = means.shape[0]
    xs = torch.arange(width, device=means.device, dtype=means.dtype) + 0.5
    rows_per_chunk = max(1, max_pairs // max(1, n * width))
    out = []
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    lambda_max = 0.5 * (a + c) + torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    support = torch.clamp(rmin * rmin * lambda_max, max=MAX_CUTOFF).clamp(min=cutoff)  # [N]
    for y0 in range(0, height, rows_per_chunk):
        ys = torch.arange(y0, min(height, y0 + rows_per_chunk), device=means.device, dtype=means.dtype) + 0.5
        dx = xs[None, :, None] - means[:, 0]  # [1, W, N]
        dy = ys[:, None, None] - means[:, 1]  # [R, 1, N]
        q = a * dx * dx + 2 * b * dx * dy + c * dy * dy  # [R, W, N]
        w = torch.where(q <= support, torch.exp(-0.5 * q), torch.zeros((), dtype=q.dtype, device=q.device))
        acc = w @ colors  # [R, W, C]
        if mode == 0:
            wsum = w.sum(-1, keepdim=True)
            acc = torch.where(wsum > 0, acc / torch.where(wsum > 0, wsum, torch.ones_like(wsum)), torch.zeros_like(acc))
        out.append(acc)
    return torch.cat(out, dim=0)


def render_params(xy: torch.Tensor, scale: torch.Tensor, rot: torch.Tensor, color: torch.Tensor, height: int,
                  width: int, *, blend: str = "normalized", cutoff: float = CUTOFF,
                  threads: int | None = None) -> torch.Tensor:
    """Render normalized Gaussian parameters to an ``[H, W, C]`` image (differentiable).

    Shapes: ``xy [N, 2]``, ``scale [N, 2]``, ``rot [N]``, ``color [N, C]``; conventions as in
    :mod:`gaussvae_ros.core.gaussians`.
    """
    height, width = _check_size(height, width)
    means, conics = project(xy, scale, rot, height, width)
    rmin = min_support_px(xy.shape[0], height, width, blend)
    return rasterize(means, conics, color, height, width, blend=blend, cutoff=cutoff, rmin=rmin, threads=threads)


def min_support_px(n: int, height: int, width: int, blend: str = "normalized") -> float:
    """Minimum support radius (pixels) for ``n`` Gaussians at ``height x width``: the normalized
    blend's (no holes between thin Gaussians), 0 for the sum blend."""
    return RMIN_SPACING * math.sqrt(height * width / max(n, 1)) if blend == "normalized" else 0.0


def render_covariance(xy: torch.Tensor, cov: torch.Tensor, color: torch.Tensor, height: int, width: int, *,
                      blend: str = "normalized", cutoff: float = CUTOFF, threads: int | None = None) -> torch.Tensor:
    """:func:`render_params` from covariances ``cov [N, 3]`` (see :func:`project_covariance`).
    With a leading batch dimension (``xy [B, N, 2]``, ``cov [B, N, 3]``, ``color [B, N, C]``),
    ``B`` images ``[B, H, W, C]``, each set rendered on its own."""
    height, width = _check_size(height, width)
    means, conics = project_covariance(xy, cov, height, width)  # elementwise: every set at once
    rmin = min_support_px(xy.shape[-2], height, width, blend)
    if xy.ndim == 2:
        return rasterize(means, conics, color, height, width, blend=blend, cutoff=cutoff, rmin=rmin, threads=threads)
    return torch.stack([rasterize(means[b], conics[b], color[b], height, width, blend=blend, cutoff=cutoff, rmin=rmin,
                                  threads=threads) for b in range(xy.shape[0])])


def render(gaussians: Gaussians, height: int, width: int, *, threads: int | None = None,
           device: str | torch.device = "cpu") -> np.ndarray:
    """Render to a float32 numpy image ``[H, W, C]`` clipped to ``[0, 1]``, at any output size."""
    height, width = _check_size(height, width)
    with torch.no_grad():
        t = [torch.from_numpy(a).to(device) for a in (gaussians.xy, gaussians.scale, gaussians.rot, gaussians.color)]
        image = render_params(*t, height, width, blend=gaussians.blend, threads=threads)
    return image.clamp_(0.0, 1.0).cpu().numpy()


#: Pixels per band of :func:`render_uint8`: its float buffers stay near 40 MB whatever the size.
BAND_PIXELS = 1 << 20


def render_uint8(gaussians: Gaussians, height: int, width: int, *, threads: int | None = None,
                 device: str | torch.device = "cpu", band_pixels: int = BAND_PIXELS) -> np.ndarray:
    """:func:`render` as 8-bit pixels (:func:`~gaussvae_ros.core.image.to_uint8`: uint8 ``[H, W]``
    for one colour channel, ``[H, W, 3]`` for three), rendered in horizontal bands of at most
    ``band_pixels`` pixels: large outputs (recall at 8192 x 8192) need the uint8 image and one
    band's float buffers, not float buffers of the whole image. Each band is rendered with the whole
    image's projection and support radius, so the bands join without seams."""
    height, width = _check_size(height, width)
    channels = gaussians.channels
    out = np.empty((height, width) if channels == 1 else (height, width, channels), dtype=np.uint8)
    rows = max(1, int(band_pixels) // width)
    with torch.no_grad():
        t = [torch.from_numpy(a).to(device) for a in (gaussians.xy, gaussians.scale, gaussians.rot, gaussians.color)]
        means, conics = project(t[0], t[1], t[2], height, width)
        rmin = min_support_px(len(gaussians), height, width, gaussians.blend)
        for y0 in range(0, height, rows):
            band = min(rows, height - y0)
            shifted = means - means.new_tensor([0.0, float(y0)])  # the band's own pixel rows
            image = rasterize(shifted, conics, t[3], band, width, blend=gaussians.blend, rmin=rmin, threads=threads)
            out[y0:y0 + band] = to_uint8(image.clamp_(0.0, 1.0).cpu().numpy())
    return out


def count_pairs(gaussians: Gaussians, height: int, width: int, cutoff: float = CUTOFF) -> int:
    """Number of (Gaussian, pixel) pairs a render evaluates: the renderer's work measure."""
    lib = _native.load()
    if lib is None:
        raise RuntimeError(f"compiled rasterizer unavailable: {_native.load_error()}")
    with torch.no_grad():
        means, conics = project(torch.from_numpy(gaussians.xy), torch.from_numpy(gaussians.scale),
                                torch.from_numpy(gaussians.rot), height, width)
    means, conics = means.contiguous(), conics.contiguous()
    rmin = min_support_px(len(gaussians), height, width, gaussians.blend)
    return int(lib.gs_count_pairs(len(gaussians), height, width, means.data_ptr(), conics.data_ptr(), float(cutoff),
                                  float(rmin)))
