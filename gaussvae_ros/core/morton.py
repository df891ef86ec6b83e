"""Morton (Z-order) ordering of Gaussians by position.

The GaussVAE prototype reads the Gaussians as a 1-D sequence; sorting them along the Z-order curve
keeps spatial neighbours close in that sequence. Positions ``(u, v)`` in ``[0, 1]`` are quantized to
``bits`` bits per axis and their bits interleaved, ``u`` in the even positions and ``v`` in the odd
ones, so the curve starts at the top-left of the image.
"""

from __future__ import annotations

import numpy as np


def _spread_bits(x: np.ndarray) -> np.ndarray:
    """Insert a zero bit after each of the 16 low bits of ``x`` (uint64 in, uint64 out)."""
    x = x & np.uint64(0xFFFF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x00FF00FF)
    x = (x | (x << np.uint64(4))) & np.uint64(0x0F0F0F0F)
    x = (x | (x << np.uint64(2))) & np.uint64(0x33333333)
    x = (x | (x << np.uint64(1))) & np.uint64(0x55555555)
    return x


def morton_codes(xy: np.ndarray, bits: int = 16) -> np.ndarray:
    """Z-order codes ``[..., N]`` (uint64) of positions ``xy [..., N, 2]`` in normalized coordinates
    (leading dimensions: several sets at once).

    Positions outside ``[0, 1]`` are clamped; ``bits`` (1..16) is the resolution per axis.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim < 2 or xy.shape[-1] != 2:
        raise ValueError(f"expected positions of shape [N, 2] (or [..., N, 2]), got {xy.shape}")
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    if not np.isfinite(xy).all():
        raise ValueError("positions contain NaN or Inf")
    levels = (1 << bits) - 1
    q = np.clip(np.floor(np.clip(xy, 0.0, 1.0) * (levels + 1)), 0, levels).astype(np.uint64)
    return _spread_bits(q[..., 0]) | (_spread_bits(q[..., 1]) << np.uint64(1))


def morton_order(xy: np.ndarray, bits: int = 16) -> np.ndarray:
    """Indices ``[N]`` that sort ``xy [N, 2]`` along the Z-order curve (stable for equal codes);
    ``[..., N]`` for ``xy [..., N, 2]``, each set sorted on its own."""
    return np.argsort(morton_codes(xy, bits), axis=-1, kind="stable")
