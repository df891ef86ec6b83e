"""From a picture to a ``vae-latent`` payload: fit the tiles, encode them, keep the best tile grid.

:func:`encode_image` is the image-level encoder of the latent codec (the encoder node, ``gaussvae
replay`` and ``gaussvae eval`` call it). For each candidate tile count (:data:`.tiles.TILE_COUNTS`)
it fits ``seq_len`` Gaussians to every tile (or takes the whole picture's fit the caller already
has, for one tile), encodes them at the quantization step (or byte budget) asked for, refines the
latents against the picture when asked, decodes, renders and keeps the payload closest to the
picture (mean squared error) among those that fit the budget: per-image rate control over the
grid. One tile is the plain :func:`~.payload.encode_latent` / ``encode_to_budget``.

Cost per extra grid: ``count`` fits of a tile (~0.5 s each for 512 Gaussians on a 96 px tile, one
core) and the refinement of ``count`` latents against the whole picture (~``count`` times a single
latent's). Tiles are fitted on the picture downscaled (area) to a long side of
``refine.DEFAULT_LONG_SIDE`` per tile row or column (never enlarged), the size the refinement
compares at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gaussvae_ros.core import FitConfig, Gaussians, fit_image, render

from .bundle import LatentModelBundle
from .payload import DEFAULT_STEP, decode_latent, encode_latent, encode_to_budget
from . import refine
from .tiles import DEFAULT_OVERLAP, TILE_COUNTS, TileGrid, grid_for

__all__ = ["AUTO_TILES", "ImagePayload", "encode_image", "fit_tile", "tile_candidates"]

#: Tile counts chosen from per picture when a node or ``gaussvae replay`` is given 0 tiles.
AUTO_TILES = (1, 2, 4, 8)


@dataclass(frozen=True)
class ImagePayload:
    """A picture's ``vae-latent`` payload and how it was made (``error``: mean squared error of its
    rendering against the picture, pixel values in ``[0, 1]``, at the comparison size of the finest
    grid among the candidates;
    ``source``: the Gaussians it was encoded from, in picture coordinates, all tiles together)."""

    payload: bytes
    step: float
    grid: TileGrid
    error: float
    source: Gaussians


def fit_tile(pixels: np.ndarray, n_gaussians: int, fit: FitConfig | None = None) -> Gaussians:
    """The default tile fitter: :func:`gaussvae_ros.core.fit_image` of ``pixels`` (float ``[h, w, C]``
    in ``[0, 1]``) with ``n_gaussians`` and the settings ``fit`` (None: the fitter's defaults), in the
    tile's normalized coordinates."""
    return fit_image(pixels, n_gaussians=n_gaussians, config=fit).gaussians


def tile_candidates(tiles: int) -> tuple[int, ...]:
    """The tile counts a ``tiles`` setting means: ``(tiles,)``, or :data:`AUTO_TILES` for 0.
    ValueError for a count :func:`.tiles.grid_for` cannot lay out."""
    if isinstance(tiles, bool) or not float(tiles).is_integer():
        raise ValueError(f"tiles must be a whole number, got {tiles!r}")
    if tiles == 0:
        return AUTO_TILES
    if int(tiles) not in TILE_COUNTS:
        raise ValueError(f"tiles must be 0 (choose per picture among {', '.join(map(str, AUTO_TILES))}) or one of "
                         f"{', '.join(map(str, sorted(TILE_COUNTS)))}, got {tiles!r}")
    return (int(tiles),)


def encode_image(bundle: LatentModelBundle, image: np.ndarray, *, tiles: int | Sequence[int] = 1,
                 gaussians: Gaussians | None = None, max_bytes: int = 0, step: float = DEFAULT_STEP,
                 refine_iters: int = 0, fit: Callable[[np.ndarray], Gaussians] | None = None,
                 seed: int = 0, threads: int | None = None) -> ImagePayload:
    """Encode ``image`` (``[H, W]`` or ``[H, W, C]``, anything :func:`.refine.image_target` takes) as
    a ``vae-latent`` payload (see the module docstring).

    Args:
        tiles: tile count, or candidate counts to choose from (keys of :data:`.tiles.TILE_COUNTS`).
        gaussians: the whole picture's fit (``seq_len`` Gaussians), used for the one-tile grid
            instead of fitting again.
        max_bytes: byte budget (finest step of :data:`~.payload.DEFAULT_STEPS` that fits;
            0: encode at ``step``, one tile count only). When no candidate fits, the smallest
            payload is returned.
        refine_iters: refinement steps against the picture (:mod:`.refine`), 0 = off.
        fit: ``fit(pixels) -> Gaussians`` for a tile's float ``[h, w, C]`` pixels in ``[0, 1]``
            (default :func:`fit_tile` with ``seed`` and ``threads``).

    Tile counts whose tiles would have fewer pixels than the model has Gaussians per latent are
    left out; when that leaves none, the picture is coded as one latent (a small camera never
    loses a memory to its tile setting; the payload's grid says what was used).

    Tiles overlap by :data:`.tiles.DEFAULT_OVERLAP` (none for sum-blend ``gaussians``, whose
    colours would add up where tiles overlap).

    Raises:
        ValueError: an unknown tile count, several counts without a byte budget, Gaussians the
            model cannot encode.
    """
    counts = sorted({int(tiles)} if isinstance(tiles, (int, np.integer)) else {int(t) for t in tiles})
    if not counts:
        raise ValueError("at least one tile count is needed")
    if len(counts) > 1 and not max_bytes:
        raise ValueError("choosing among tile counts needs a byte budget (max_bytes): without one the most "
                         "tiles always decode closest")
    height, width = np.shape(image)[:2]
    # summed colours would add up where tiles overlap: sum-blend fits get edge-to-edge tiles
    overlap = 0.0 if gaussians is not None and gaussians.blend == "sum" else DEFAULT_OVERLAP
    channels = 1 if np.ndim(image) == 2 or np.shape(image)[2] in (1, 2) else 3  # as the picture is (grey + alpha: grey)
    grids = [grid_for(count, height, width, overlap) for count in counts] + [TileGrid()]
    # each grid's tiles are fitted at the size its refinement compares at
    workings = {g: refine.image_target(image, channels, refine.long_side_for(g)) for g in grids}
    # a tile needs a pixel per Gaussian: grids of smaller tiles are left out; one latent always fits
    grids = [g for g in grids[:-1] if g.count == 1 or _smallest_tile(g, workings[g]) >= bundle.seq_len] or grids[-1:]
    # every candidate is judged at the size the finest grid refines at
    target = workings[max(grids, key=refine.long_side_for)]
    fit = fit or (lambda pixels: fit_tile(pixels, bundle.seq_len, FitConfig(seed=seed, threads=threads)))
    best: ImagePayload | None = None
    for grid in grids:
        if grid.count == 1 and gaussians is not None:
            sets: Gaussians | list[Gaussians] = gaussians
        else:
            working = workings[grid].numpy()
            sets = [grid.crop_to_tile(fit(np.ascontiguousarray(grid.crop(working, t))), t, *working.shape[:2])
                    for t in range(grid.count)]
            sets = sets[0] if grid.count == 1 else sets
        refine_args = {"image": image, "refine_iters": refine_iters, "grid": grid}
        if max_bytes:
            payload, used_step = encode_to_budget(bundle, sets, max_bytes, or_smallest=True, **refine_args)
        else:
            payload, used_step = encode_latent(bundle, sets, step, **refine_args), float(step)
        candidate = ImagePayload(payload, float(used_step), grid, _error(bundle, payload, target), _source(grid, sets))
        if best is None or _better(candidate, best, max_bytes):
            best = candidate
    return best


def _source(grid: TileGrid, sets) -> Gaussians:
    """The Gaussians of all tiles in picture coordinates."""
    if isinstance(sets, Gaussians):
        return sets
    params = torch.from_numpy(np.stack([g.to_array() for g in sets])).double()
    return Gaussians.from_array(grid.params_to_picture(params).float().numpy(), sets[0].blend)


def _smallest_tile(grid: TileGrid, working: torch.Tensor) -> int:
    """Pixels of the grid's smallest tile crop of ``working [h, w, C]`` (0 if it has fewer rows or
    columns than the grid)."""
    if working.shape[0] < grid.rows or working.shape[1] < grid.cols:
        return 0
    bounds = (grid.crop_bounds(t, *working.shape[:2]) for t in range(grid.count))
    return min((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in bounds)


def _error(bundle: LatentModelBundle, payload: bytes, target: torch.Tensor) -> float:
    """Mean squared error of the decoded payload rendered at ``target``'s size against it."""
    decoded = decode_latent(bundle, payload)
    rendered = torch.from_numpy(render(decoded, int(target.shape[0]), int(target.shape[1]), threads=1))
    if rendered.shape[2] != target.shape[2]:  # grey Gaussians against a colour picture, or the reverse
        rendered, target = rendered.mean(2, keepdim=True), target.mean(2, keepdim=True)
    return float(((rendered - target) ** 2).mean())


def _better(candidate: ImagePayload, best: ImagePayload, max_bytes: int) -> bool:
    """Within the budget, lower error wins; over it (when nothing fits), the smaller payload."""
    fits, best_fits = (not max_bytes or len(p.payload) <= max_bytes for p in (candidate, best))
    if fits != best_fits:
        return fits
    if fits:
        return candidate.error < best.error
    return len(candidate.payload) < len(best.payload)
