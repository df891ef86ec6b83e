"""Tile grids: a picture coded as one VAE latent per tile, decoded into one set of Gaussians.

One latent of the shipped model carries 512 Gaussians and saturates near 20.4 dB on photographs
at long side 192 however many bytes it is given (BENCHMARKS.md). A grid of tiles spends a larger
budget on more Gaussians: each tile is fitted and encoded on its own, in the tile's own normalized
coordinates, and decoding maps every tile's Gaussians into the picture's, so recall renders one
:class:`~gaussvae_ros.core.Gaussians` set at any size, as for a single latent.

Geometry (normalized picture coordinates ``(u, v)``, :mod:`gaussvae_ros.core.gaussians`): tile ``t =
r * cols + c`` (row-major) of a ``rows x cols`` grid covers the cell ``u in [c / cols, (c + 1) /
cols]``, ``v in [r / rows, (r + 1) / rows]``, widened by ``overlap`` cells on every side that is not
the picture's border (clamped to ``[0, 1]``), so that neighbouring tiles cross-fade instead of
meeting at a seam. A point ``(u', v')`` of the tile lands at ``(u0 + u' du, v0 + v' dv)``, where
``(u0, v0)`` and ``(du, dv)`` are the tile's corner and size (:meth:`TileGrid.origins_sizes`); a
covariance ``S`` in tile coordinates becomes ``K S K`` with ``K = diag(du, dv)`` (scales and
rotation are re-derived from it; in pixels the ellipse is the one fitted in the tile). Pixels: tile
``t`` of an ``H x W`` image is the crop of rows ``v0 H .. (v0 + dv) H`` and columns ``u0 W .. (u0 +
du) W``, rounded half up (:meth:`TileGrid.crop`); where those are not whole,
:meth:`TileGrid.crop_to_tile` moves a fit of the crop into the tile's coordinates exactly.

:func:`grid_for` lays ``count`` tiles out for a picture (more columns than rows for a landscape
one). The payload format that holds a grid is in :mod:`.payload` (version 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gaussvae_ros.core import Gaussians
from gaussvae_ros.core.render import covariance_from_scale_rot

from gaussvae_ros.vae.features import scale_rot_from_covariance

__all__ = ["DEFAULT_OVERLAP", "MAX_TILES_PER_SIDE", "OVERLAP_UNITS", "TILE_COUNTS", "TileGrid", "grid_for"]

#: Largest number of rows or columns (a payload stores each in one byte; more is useless at robot sizes).
MAX_TILES_PER_SIDE = 16
#: The overlap is stored in these units of a tile's width / height (one byte).
OVERLAP_UNITS = 256
#: Overlap of neighbouring tiles laid out by :func:`grid_for`, as a fraction of a tile: enough for
#: the normalized blend to cross-fade tile borders (without it, busy pictures show seams).
DEFAULT_OVERLAP = 32 / OVERLAP_UNITS
#: Tile counts :func:`grid_for` lays out: (rows, cols) for a landscape picture.
TILE_COUNTS = {1: (1, 1), 2: (1, 2), 4: (2, 2), 8: (2, 4), 16: (4, 4)}


@dataclass(frozen=True)
class TileGrid:
    """A ``rows x cols`` grid of tiles over the picture, neighbours overlapping by ``overlap`` of a
    cell (a multiple of ``1 / OVERLAP_UNITS`` in ``[0, 1)``; see the module docstring)."""

    rows: int = 1
    cols: int = 1
    overlap: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            if not integer or not 1 <= value <= MAX_TILES_PER_SIDE:
                raise ValueError(f"tile grid {name} must be an integer in 1..{MAX_TILES_PER_SIDE}, got {value!r}")
        steps = float(self.overlap) * OVERLAP_UNITS
        if not (0 <= steps < OVERLAP_UNITS and steps == int(steps)):
            raise ValueError(f"tile overlap must be a multiple of 1/{OVERLAP_UNITS} in [0, 1), got {self.overlap!r}")

    @property
    def overlap_units(self) -> int:
        """The overlap in 1/:data:`OVERLAP_UNITS` of a tile (what a payload stores)."""
        return int(round(float(self.overlap) * OVERLAP_UNITS))

    @property
    def count(self) -> int:
        return int(self.rows * self.cols)

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"

    def origins_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(origin [T, 2], size [T, 2])`` of the tiles in normalized picture coordinates ``(u, v)``."""
        r, c = np.divmod(np.arange(self.count), self.cols)
        step = np.array([1.0 / self.cols, 1.0 / self.rows])
        lo = np.stack([c, r], -1) * step
        hi = lo + step
        lo = np.maximum(0.0, lo - self.overlap * step)
        hi = np.minimum(1.0, hi + self.overlap * step)
        return lo, hi - lo

    def crop_bounds(self, index: int, height: int, width: int) -> tuple[int, int, int, int]:
        """Pixel rows ``y0:y1`` and columns ``x0:x1`` of tile ``index`` in an ``height x width``
        image, as ``(y0, y1, x0, x1)`` (edges rounded half up: tiles of >= 1 px are never empty)."""
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} of a {self} grid")
        if height < self.rows or width < self.cols:
            raise ValueError(f"a {height}x{width} image is too small for a {self} tile grid")
        (u0, v0), (du, dv) = (a[index] for a in self.origins_sizes())

        def edge(x: float, n: int) -> int:
            return int(np.floor(x * n + 0.5))

        return edge(v0, height), edge(v0 + dv, height), edge(u0, width), edge(u0 + du, width)

    def crop(self, image: np.ndarray, index: int) -> np.ndarray:
        """Pixels of tile ``index`` of ``image [H, W, ...]`` (a view)."""
        y0, y1, x0, x1 = self.crop_bounds(index, *image.shape[:2])
        return image[y0:y1, x0:x1]

    def crop_to_tile(self, gaussians: Gaussians, index: int, height: int, width: int) -> Gaussians:
        """Gaussians fitted to :meth:`crop` of an ``height x width`` image (in the crop's normalized
        coordinates) -> the same Gaussians in tile ``index``'s normalized coordinates, which differ
        by a fraction of a pixel where the crop's edges were rounded (an exact shift and scale)."""
        y0, y1, x0, x1 = self.crop_bounds(index, height, width)
        (u0, v0), (du, dv) = (a[index] for a in self.origins_sizes())
        shift = np.array([(x0 / width - u0) / du, (y0 / height - v0) / dv])
        scale = np.array([(x1 - x0) / width / du, (y1 - y0) / height / dv])
        if np.allclose(shift, 0.0, atol=1e-12) and np.allclose(scale, 1.0, rtol=1e-12):
            return gaussians
        params = torch.from_numpy(gaussians.to_array().astype(np.float64))[None]
        mapped = _map_params(params, torch.from_numpy(shift)[None], torch.from_numpy(scale)[None])
        return Gaussians.from_array(mapped.numpy(), gaussians.blend)

    def covariance_to_picture(self, xy: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-tile means ``xy [T, N, 2]`` and covariances ``cov [T, N, 3]`` (``sxx, sxy, syy``) in tile
        coordinates -> ``([T * N, 2], [T * N, 3])`` in picture coordinates (differentiable)."""
        if xy.shape[0] != self.count or cov.shape[:2] != xy.shape[:2]:
            raise ValueError(f"expected [{self.count}, N, 2] means and [{self.count}, N, 3] covariances, got "
                             f"{tuple(xy.shape)} and {tuple(cov.shape)}")
        return _map_covariance(xy, cov, *(torch.as_tensor(a, dtype=xy.dtype, device=xy.device)
                                           for a in self.origins_sizes()))

    def params_to_picture(self, params: torch.Tensor) -> torch.Tensor:
        """Raw parameters ``[T, N, 5 + C]`` in tile coordinates -> ``[T * N, 5 + C]`` in picture
        coordinates (scales ``s1 >= s2``, rotation re-derived from the mapped covariance)."""
        if params.shape[0] != self.count:
            raise ValueError(f"expected [{self.count}, N, 5 + C] parameters, got {tuple(params.shape)}")
        return _map_params(params, *(torch.as_tensor(a, dtype=params.dtype) for a in self.origins_sizes()))


def _map_covariance(xy: torch.Tensor, cov: torch.Tensor, origin: torch.Tensor,
                    size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means ``xy [T, N, 2]`` and covariances ``cov [T, N, 3]`` of T boxes' own coordinates ->
    ``([T * N, 2], [T * N, 3])`` in the coordinates the boxes' ``origin [T, 2]`` and ``size [T, 2]``
    are given in: ``origin + xy * size`` and ``K S K`` with ``K = diag(size)`` (differentiable)."""
    origin, size = origin[:, None, :], size[:, None, :]
    du, dv = size[..., 0], size[..., 1]
    mapped_cov = torch.stack([cov[..., 0] * du * du, cov[..., 1] * du * dv, cov[..., 2] * dv * dv], -1)
    return (origin + xy * size).reshape(-1, 2), mapped_cov.reshape(-1, 3)


def _map_params(params: torch.Tensor, origin: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """:func:`_map_covariance` for raw parameters ``[T, N, 5 + C]`` -> ``[T * N, 5 + C]`` (scales
    ``s1 >= s2``, rotation re-derived from the mapped covariance)."""
    cov = covariance_from_scale_rot(params[..., 2:4], params[..., 4])
    xy, mapped = _map_covariance(params[..., 0:2], cov, origin, size)
    scale, rot = scale_rot_from_covariance(mapped[:, 0], mapped[:, 1], mapped[:, 2])
    return torch.cat([xy, scale, rot[:, None], params[..., 5:].reshape(xy.shape[0], -1)], -1)


def grid_for(count: int, height: int, width: int, overlap: float = DEFAULT_OVERLAP) -> TileGrid:
    """The grid of ``count`` tiles (a key of :data:`TILE_COUNTS`) for an ``height x width`` picture:
    more columns than rows for a landscape one, more rows for a portrait one."""
    if count not in TILE_COUNTS:
        raise ValueError(f"tile count must be one of {sorted(TILE_COUNTS)}, got {count!r}")
    rows, cols = TILE_COUNTS[count]
    overlap = overlap if count > 1 else 0.0  # a lone tile has no neighbour
    return TileGrid(cols, rows, overlap) if height > width else TileGrid(rows, cols, overlap)
