"""The 2D Gaussian image model: a set of anisotropic Gaussians in normalized image coordinates.

Coordinate convention (used everywhere in the package and in the binary format):

* Normalized image coordinates ``(u, v)``: ``u = x / W`` to the right, ``v = y / H`` down, where
  ``(x, y)`` are pixel coordinates with the image's top-left corner at ``(0, 0)`` and pixel
  ``(i, j)`` (column ``i``, row ``j``) centred at ``(i + 0.5, j + 0.5)``. The image spans
  ``[0, 1] x [0, 1]`` whatever its size or aspect ratio.
* Each Gaussian has a mean ``xy = (u, v)``, standard deviations ``scale = (s1, s2)`` along its own
  axes, and a rotation ``rot`` (radians) of its first axis from the ``u`` axis towards ``v``, all in
  normalized coordinates. Its covariance is ``R(rot) diag(s1^2, s2^2) R(rot)^T``.
* Rendering at ``H x W`` maps ``(u, v) -> (u W, v H)``: the pixel-space covariance is
  ``D Sigma D`` with ``D = diag(W, H)``. One set of Gaussians therefore renders the same picture at
  any output size (and stretches with the aspect ratio when that changes).
* ``color`` holds C values per Gaussian (C = 3 for RGB, 1 for grayscale), in image intensity units
  where 0 is black and 1 is white; their meaning depends on the blend mode (see
  :mod:`gaussvae_ros.core.render`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Number of Gaussians when nothing else is said.
DEFAULT_NUM_GAUSSIANS = 512

#: Attribute groups as laid out in a flat ``[N, 5 + C]`` parameter array (see :meth:`Gaussians.to_array`).
PARAM_GROUPS = {"xy": slice(0, 2), "scale": slice(2, 4), "rot": slice(4, 5), "color": slice(5, None)}


@dataclass
class Gaussians:
    """N 2D Gaussians in normalized image coordinates (see the module docstring).

    Attributes:
        xy: ``[N, 2]`` float32, means ``(u, v)`` in ``[0, 1]``.
        scale: ``[N, 2]`` float32, standard deviations along the Gaussian's axes, normalized units, > 0.
        rot: ``[N]`` float32, rotation in radians (any value; periodic with period pi).
        color: ``[N, C]`` float32, C in {1, 3}.
        blend: blend mode the colours were fitted for (``"normalized"`` or ``"sum"``).
    """

    xy: np.ndarray
    scale: np.ndarray
    rot: np.ndarray
    color: np.ndarray
    blend: str = "normalized"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xy = np.ascontiguousarray(self.xy, dtype=np.float32).reshape(-1, 2)
        n = self.xy.shape[0]
        self.scale = np.ascontiguousarray(self.scale, dtype=np.float32).reshape(n, 2)
        self.rot = np.ascontiguousarray(self.rot, dtype=np.float32).reshape(n)
        color = np.ascontiguousarray(self.color, dtype=np.float32)
        self.color = color.reshape(n, -1) if n else color.reshape(0, color.shape[-1] if color.ndim == 2 else 3)
        if self.color.shape[1] not in (1, 3):
            raise ValueError(f"Gaussians need 1 or 3 colour channels, got {self.color.shape[1]}")
        if self.blend not in ("normalized", "sum"):
            raise ValueError(f"unknown blend mode {self.blend!r}")

    def __len__(self) -> int:
        return self.xy.shape[0]

    @property
    def channels(self) -> int:
        return self.color.shape[1]

    def to_array(self) -> np.ndarray:
        """Flat ``[N, 5 + C]`` float32 array: u, v, s1, s2, rot, colour..."""
        return np.concatenate([self.xy, self.scale, self.rot[:, None], self.color], axis=1)

    @classmethod
    def from_array(cls, params: np.ndarray, blend: str = "normalized") -> "Gaussians":
        """Inverse of :meth:`to_array`; ``params`` is ``[N, 5 + C]``."""
        params = np.asarray(params, dtype=np.float32)
        if params.ndim != 2 or params.shape[1] not in (6, 8):
            raise ValueError(f"expected a [N, 6] or [N, 8] parameter array, got shape {params.shape}")
        return cls(params[:, 0:2], params[:, 2:4], params[:, 4], params[:, 5:], blend=blend)

    def take(self, index: np.ndarray) -> "Gaussians":
        """The Gaussians at ``index`` (an index array or boolean mask), same blend mode."""
        return Gaussians(self.xy[index], self.scale[index], self.rot[index], self.color[index], self.blend,
                         dict(self.meta))

    def copy(self) -> "Gaussians":
        return self.take(np.arange(len(self)))

    def check_valid(self, what: str = "Gaussians") -> None:
        """ValueError unless every parameter is finite and every scale positive (what a diverged
        fit breaks, and what every codec and a warm start need)."""
        if not np.isfinite(self.to_array()).all():
            raise ValueError(f"{what} contain NaN or Inf values")
        if (self.scale <= 0).any():
            raise ValueError(f"{what} need positive scales")

    def covariance(self) -> np.ndarray:
        """``[N, 2, 2]`` covariance matrices in normalized coordinates."""
        c, s = np.cos(self.rot), np.sin(self.rot)
        r = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # [N, 2, 2]
        return r @ (self.scale[:, :, None] ** 2 * np.transpose(r, (0, 2, 1)))
