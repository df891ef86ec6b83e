"""Per-image latent refinement: the encoder-side search that fits a latent to the image itself.

The VAE's encoder maps Gaussians to a latent in one pass (amortized inference); its guess is
good on average and loose on any one image. When the encoder side still has the image (the
encoder node, replay, evaluation), :func:`refine_latent` improves that guess by gradient descent
on the latent through the frozen decoder and the renderer::

    loss(z) = mean_pixels (render(decode(z + u)) - image)^2 + rate_weight * bits(z + u) / pixels

``u`` is uniform noise of the quantization step the payload will use (the coder's training-time
proxy, :meth:`~gaussvae_ros.codecs.latent.entropy.EntropyModel.quantize` ``"noise"``) and ``bits`` the
entropy model's differentiable size estimate, so the search stays inside the byte budget and
finds latents that survive quantization. Only the latent moves: the payload format, the model and
the decoder are unchanged, and a refined payload decodes anywhere the plain one does.

Images are compared in ``[0, 1]`` at the image's size, downscaled (area) to ``long_side`` pixels
first when larger: the decoder's Gaussians live in normalized coordinates, so the latent found at
a small size holds at any size. Costs ``iters`` decoder + render passes, forward and backward
(about 10 ms each at 192 x 128 px, 512 Gaussians, one CPU thread). Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import torch

from gaussvae_ros.core.image import to_float_image, working_image

from .tiles import TileGrid

__all__ = ["DEFAULT_LONG_SIDE", "DEFAULT_LR", "DEFAULT_RATE_WEIGHT", "DEFAULT_REFINE_ITERS", "image_target",
           "latent_error", "long_side_for", "refine_latent"]

#: Adam steps of an encoder-side refinement when asked for without a count (~1.5 s on one core).
DEFAULT_REFINE_ITERS = 150
#: Adam learning rate on the latent (latent units: the posterior is ~N(0, 1) per dimension).
DEFAULT_LR = 0.05
#: Weight of the estimated bits per pixel against the mean squared error (pixel values in [0, 1]).
DEFAULT_RATE_WEIGHT = 0.01
#: Long side (px) the image is compared at, at most.
DEFAULT_LONG_SIDE = 192


def image_target(image: np.ndarray, channels: int, long_side: int = DEFAULT_LONG_SIDE) -> torch.Tensor:
    """The comparison target: float32 ``[h, w, channels]`` in ``[0, 1]``, area-downscaled so its
    long side is at most ``long_side``.

    ``image`` is anything :func:`~gaussvae_ros.core.image.to_float_image` accepts (uint8, uint16 or
    float in ``[0, 1]``; ``[H, W]`` or ``[H, W, 1..4]``). A grey image against a colour model is
    stacked to R = G = B; a colour image against a grey model becomes its mean.
    """
    if long_side < 8:
        raise ValueError(f"long_side must be at least 8 px, got {long_side}")
    pixels = to_float_image(image)
    if pixels.shape[2] != channels:
        pixels = np.repeat(pixels, channels, axis=2) if pixels.shape[2] == 1 else pixels.mean(2, keepdims=True)
    pixels = working_image(np.ascontiguousarray(pixels, dtype=np.float32), long_side, resample="area")
    return torch.from_numpy(np.ascontiguousarray(pixels))


def long_side_for(grid: TileGrid | None) -> int:
    """Long side (px) the picture is compared at for a tile ``grid``: :data:`DEFAULT_LONG_SIDE` per
    tile row or column (more tiles carry more Gaussians, which resolve more pixels)."""
    grid = grid or TileGrid()
    return DEFAULT_LONG_SIDE * max(grid.rows, grid.cols)


def _render_latent(bundle, z: torch.Tensor, height: int, width: int, blend: str,
                   grid: TileGrid | None = None) -> torch.Tensor:
    """Latents ``[T, D]`` (one per tile of ``grid``, default one for the whole picture) -> image
    ``[height, width, C]`` in ``[0, 1]`` (clamped, as recall does; differentiable in ``z``)."""
    return bundle.transform.render_features(bundle.model.decode(z), height, width, blend, grid or TileGrid())[0]


def _latents(bundle, z, grid: TileGrid | None) -> tuple[torch.Tensor, TileGrid]:
    """``z`` (``[D]``, or ``[T, D]`` with a grid of T tiles) as a float32 ``[T, D]`` tensor, and the grid."""
    grid, dim = grid or TileGrid(), bundle.entropy.dim
    latents = np.asarray(z, dtype=np.float32)
    shapes = [(grid.count, dim)] + ([(dim,)] if grid.count == 1 else [])
    if latents.shape not in shapes or not np.isfinite(latents).all():
        raise ValueError(f"need {grid.count} finite latent(s) of {dim} dimensions for a {grid} grid, "
                         f"got shape {latents.shape}")
    latents = torch.from_numpy(latents.reshape(grid.count, dim))
    return latents, grid


def latent_error(bundle, z: np.ndarray, target: torch.Tensor, blend: str = "normalized",
                 grid: TileGrid | None = None) -> float:
    """Mean squared error of the rendering of latent ``z [D]`` (or ``[T, D]``, one per tile of
    ``grid``) against ``target`` (:func:`image_target`)."""
    latents, grid = _latents(bundle, z, grid)
    with torch.no_grad():
        image = _render_latent(bundle, latents, target.shape[0], target.shape[1], blend, grid)
        return float((image - target).pow(2).mean())


def refine_latent(bundle, z: np.ndarray, target: torch.Tensor, step: float, *, iters: int = DEFAULT_REFINE_ITERS,
                  lr: float = DEFAULT_LR, rate_weight: float = DEFAULT_RATE_WEIGHT, blend: str = "normalized",
                  seed: int = 0, grid: TileGrid | None = None) -> np.ndarray:
    """Refine latent ``z [D]`` toward ``target`` (:func:`image_target`) for a payload at
    quantization ``step`` (see the module docstring); returns the refined latent (float64, the
    shape of ``z``), unquantized. With a tile ``grid``, ``z`` is ``[T, D]`` (one latent per tile,
    row-major) and all tiles are refined together against the whole picture, so their seams are
    refined too. ``bundle`` is a :class:`~gaussvae_ros.codecs.latent.bundle.LatentModelBundle`."""
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    if not (lr > 0 and rate_weight >= 0):
        raise ValueError(f"need lr > 0 and rate_weight >= 0, got {lr}, {rate_weight}")
    entropy = bundle.entropy
    start, grid = _latents(bundle, z, grid)
    height, width = int(target.shape[0]), int(target.shape[1])
    delta = torch.as_tensor(entropy.units * step, dtype=torch.float32)
    generator = torch.Generator().manual_seed(int(seed))
    latent = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    for _ in range(iters):
        noisy = latent + (torch.rand(latent.shape, generator=generator) - 0.5) * delta
        loss = (_render_latent(bundle, noisy, height, width, blend, grid) - target).pow(2).mean()
        if rate_weight:
            loss = loss + rate_weight * entropy.estimated_bits(noisy, step).sum() / (height * width)
        (grad,) = torch.autograd.grad(loss, latent)  # the model's weights get no gradient
        latent.grad = grad
        optimizer.step()
    return latent.detach().double().numpy().reshape(np.shape(z))
