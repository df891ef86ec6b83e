"""Gaussian parameters <-> the feature vectors the VAE sees.

A fitted image is ``N`` Gaussians (``N = 512`` by default), Morton-sorted, each a raw parameter
row ``(u, v, s1, s2, rot, colour...)`` as in :meth:`gaussvae_ros.core.Gaussians.to_array`
(normalized image coordinates, see :mod:`gaussvae_ros.core.gaussians`). The VAE works on a
*feature* row per Gaussian, chosen by a representation of the shape (scale + rotation):

``angle`` (the prototype): ``u, v, s1, s2, rot, colour`` as stored. The angle is periodic
    (``rot`` and ``rot + pi`` are the same Gaussian) and ambiguous (swapping ``s1, s2`` and adding
    ``pi / 2`` is the same Gaussian again), and meaningless for round Gaussians, so an MSE on it
    punishes predictions that are geometrically right.
``doubled_angle``: axes sorted so ``s1 >= s2``, then ``u, v, s1, s2, cos 2rot, sin 2rot, colour``.
    Continuous and unique except for round Gaussians, where it is still arbitrary.
``cholesky``: ``u, v, log L11, L21, log L22, colour`` with ``L`` the lower Cholesky factor of the
    covariance ``R diag(s1^2, s2^2) R^T``. Unique and continuous everywhere (a round Gaussian has
    ``L21 = 0``), no periodicity, no axis ambiguity.

``log_scale`` stores ``log s`` instead of ``s`` (``angle`` and ``doubled_angle``; ``cholesky``
always takes logs of the diagonal). Scales span decades, so logs make their errors relative.

Features are then standardized with statistics computed on the training set only
(:class:`ParamTransform`): per channel (``channel``), per slot and channel (``slot``: then a
normalized error of 1 is exactly the slot-mean predictor), or not at all (``none``).

Feature groups (for per-group losses): ``xy``, ``scale``, ``rot``, ``color`` for ``angle`` and
``doubled_angle``; ``xy``, ``cov`` (the whole shape), ``color`` for ``cholesky``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gaussvae_ros.core.render import covariance_from_scale_rot, render_covariance

REPRESENTATIONS = ("angle", "doubled_angle", "cholesky")
NORMALIZATIONS = ("none", "channel", "slot")

#: Smallest standard deviation used for standardizing; constant channels are divided by 1.
_MIN_STD = 1e-8
#: Floor on scales before taking logs (normalized units: 1e-6 of the image side).
_MIN_SCALE = 1e-6


def feature_groups(representation: str, color_channels: int) -> dict[str, slice]:
    """Channel slices of each feature group, in feature-row order."""
    _check_representation(representation)
    if representation == "angle":
        return {"xy": slice(0, 2), "scale": slice(2, 4), "rot": slice(4, 5),
                "color": slice(5, 5 + color_channels)}
    if representation == "doubled_angle":
        return {"xy": slice(0, 2), "scale": slice(2, 4), "rot": slice(4, 6),
                "color": slice(6, 6 + color_channels)}
    return {"xy": slice(0, 2), "cov": slice(2, 5), "color": slice(5, 5 + color_channels)}


def num_features(representation: str, color_channels: int) -> int:
    """Feature channels per Gaussian: 8 / 9 / 8 for RGB, 6 / 7 / 6 for grayscale."""
    return max(s.stop for s in feature_groups(representation, color_channels).values())


def _check_representation(representation: str) -> None:
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown rotation representation {representation!r}; choose one of {REPRESENTATIONS}")


def _check_params(params: torch.Tensor) -> int:
    if params.ndim < 1 or params.shape[-1] not in (6, 8):
        raise ValueError(f"expected raw Gaussian parameters [..., 6] or [..., 8] (u, v, s1, s2, rot, colour), "
                         f"got shape {tuple(params.shape)}")
    return params.shape[-1] - 5


def canonicalize(params: torch.Tensor) -> torch.Tensor:
    """Same Gaussians with ``s1 >= s2`` and ``rot`` in ``[-pi/2, pi/2)``.

    ``params`` is ``[..., 5 + C]`` raw parameters; returns a new tensor of the same shape.
    """
    _check_params(params)
    s1, s2, rot = params[..., 2], params[..., 3], params[..., 4]
    swap = s2 > s1
    rot = torch.where(swap, rot + math.pi / 2, rot)
    rot = torch.remainder(rot + math.pi / 2, math.pi) - math.pi / 2
    out = params.clone()
    out[..., 2] = torch.where(swap, s2, s1)
    out[..., 3] = torch.where(swap, s1, s2)
    out[..., 4] = rot
    return out


def covariance_entries(scale: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a, b, c)`` of the covariance ``[[a, b], [b, c]] = R diag(s1^2, s2^2) R^T``."""
    return covariance_from_scale_rot(scale, rot).unbind(-1)


def scale_rot_from_covariance(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`covariance_entries`: ``scale [..., 2]`` (``s1 >= s2``) and ``rot`` in ``(-pi/2, pi/2]``."""
    half_trace = (a + c) / 2
    radius = torch.sqrt(((a - c) / 2) ** 2 + b ** 2)
    lam1 = half_trace + radius
    lam2 = torch.clamp(half_trace - radius, min=0.0)
    rot = 0.5 * torch.atan2(2 * b, a - c)
    return torch.stack([torch.sqrt(lam1), torch.sqrt(lam2)], -1), rot


def params_to_features(params: torch.Tensor, representation: str, log_scale: bool = False,
                       canonical: bool = False) -> torch.Tensor:
    """Raw parameters ``[..., 5 + C]`` -> unnormalized features ``[..., F]`` (see the module docstring).

    ``canonical`` sorts the axes and wraps the angle first (:func:`canonicalize`); ``doubled_angle``
    always does. Scales are floored at 1e-6 before logs.
    """
    color_channels = _check_params(params)
    _check_representation(representation)
    params = params.float()
    if canonical or representation == "doubled_angle":
        params = canonicalize(params)
    xy, scale, rot, color = params[..., 0:2], params[..., 2:4], params[..., 4], params[..., 5:]
    if representation == "cholesky":
        scale = scale.clamp(min=_MIN_SCALE)
        a, b, _ = covariance_entries(scale, rot)
        l11 = torch.sqrt(a)
        l21 = b / l11
        l22 = scale[..., 0] * scale[..., 1] / l11  # det(L) = l11 l22 = s1 s2, exact for thin Gaussians
        shape = torch.stack([torch.log(l11), l21, torch.log(l22)], -1)
        return torch.cat([xy, shape, color], -1)
    if log_scale:
        scale = torch.log(scale.clamp(min=_MIN_SCALE))
    if representation == "angle":
        rot_feat = rot[..., None]
    else:
        rot_feat = torch.stack([torch.cos(2 * rot), torch.sin(2 * rot)], -1)
    assert rot_feat.shape[-1] + 4 + color_channels == num_features(representation, color_channels)
    return torch.cat([xy, scale, rot_feat, color], -1)


def features_to_params(features: torch.Tensor, representation: str, log_scale: bool = False) -> torch.Tensor:
    """Inverse of :func:`params_to_features`: ``[..., F]`` -> raw parameters ``[..., 5 + C]``.

    Differentiable (decoders can be trained through it). ``doubled_angle`` and ``cholesky`` give
    canonical Gaussians (``s1 >= s2``); decoded scales are positive except for ``angle`` without
    ``log_scale``, which returns whatever the network predicted (clamped at 1e-6).
    """
    _check_representation(representation)
    groups = {"angle": 5, "doubled_angle": 6, "cholesky": 5}
    color_channels = features.shape[-1] - groups[representation]
    if color_channels not in (1, 3):
        raise ValueError(f"{representation} features have {groups[representation]} + 1 or 3 channels, "
                         f"got {features.shape[-1]}")
    xy, color = features[..., 0:2], features[..., groups[representation]:]
    if representation == "cholesky":
        shape = features[..., 2:5].double()  # eigen-decomposition of tiny covariances needs the precision
        l11, l21, l22 = torch.exp(shape[..., 0]), shape[..., 1], torch.exp(shape[..., 2])
        scale, rot = scale_rot_from_covariance(l11 ** 2, l11 * l21, l21 ** 2 + l22 ** 2)
        return torch.cat([xy, scale.to(xy.dtype), rot[..., None].to(xy.dtype), color], -1)
    scale = features[..., 2:4]
    scale = torch.exp(scale) if log_scale else scale.clamp(min=_MIN_SCALE)
    if representation == "angle":
        rot = features[..., 4]
    else:
        rot = 0.5 * torch.atan2(features[..., 5], features[..., 4])
    return torch.cat([xy, scale, rot[..., None], color], -1)


def features_to_covariance(features: torch.Tensor, representation: str,
                           log_scale: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unnormalized features ``[..., F]`` -> ``(xy [..., 2], cov [..., 3], colour [..., C])`` with
    ``cov = (sxx, sxy, syy)`` of the normalized covariance (what :func:`gaussvae_ros.core.render.
    render_covariance` draws).

    Differentiable everywhere for ``cholesky`` (``L L^T`` is a polynomial in the features; no
    eigen-decomposition, so round Gaussians have finite gradients): the path for training a
    decoder through the renderer. Other representations go through their scales and angle.
    """
    if representation == "cholesky":
        _check_representation(representation)
        color_channels = features.shape[-1] - 5
        if color_channels not in (1, 3):
            raise ValueError(f"cholesky features have 5 + 1 or 3 channels, got {features.shape[-1]}")
        l11, l21, l22 = torch.exp(features[..., 2]), features[..., 3], torch.exp(features[..., 4])
        cov = torch.stack([l11 * l11, l11 * l21, l21 * l21 + l22 * l22], -1)
        return features[..., 0:2], cov, features[..., 5:]
    params = features_to_params(features, representation, log_scale)
    cov = covariance_from_scale_rot(params[..., 2:4], params[..., 4])
    return params[..., 0:2], cov, params[..., 5:]


@dataclass
class ParamTransform:
    """Raw Gaussian parameters <-> standardized VAE features, with its training-set statistics.

    Attributes:
        representation: shape representation (module docstring).
        log_scale: features hold ``log s`` (ignored by ``cholesky``, which always uses logs).
        canonical: sort axes / wrap angles before ``angle`` features (implied by ``doubled_angle``).
        normalization: ``none``, ``channel`` (mean/std ``[F]``) or ``slot`` (mean/std ``[N, F]``).
        color_channels: C, 1 or 3.
        mean, std: float32 statistics (``[F]``, ``[N, F]``; ``None`` until :meth:`fit`).
    """

    representation: str = "angle"
    log_scale: bool = False
    canonical: bool = False
    normalization: str = "channel"
    color_channels: int = 3
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_representation(self.representation)
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}; choose one of {NORMALIZATIONS}")
        if self.color_channels not in (1, 3):
            raise ValueError(f"color_channels must be 1 or 3, got {self.color_channels}")

    @property
    def num_features(self) -> int:
        return num_features(self.representation, self.color_channels)

    @property
    def groups(self) -> dict[str, slice]:
        return feature_groups(self.representation, self.color_channels)

    def raw_features(self, params) -> torch.Tensor:
        """Unnormalized features ``[..., N, F]`` of raw parameters ``[..., N, 5 + C]`` (array or tensor)."""
        params = torch.as_tensor(np.asarray(params) if not torch.is_tensor(params) else params)
        if params.shape[-1] != 5 + self.color_channels:
            raise ValueError(f"transform expects {5 + self.color_channels} raw parameters per Gaussian, "
                             f"got shape {tuple(params.shape)}")
        return params_to_features(params, self.representation, self.log_scale, self.canonical)

    def fit(self, train_params) -> "ParamTransform":
        """Compute mean/std on training parameters ``[M, N, 5 + C]``; returns self."""
        feats = self.raw_features(train_params).double()
        if feats.ndim != 3 or feats.shape[0] < 1:
            raise ValueError(f"fit needs training parameters [M, N, {5 + self.color_channels}], "
                             f"got {tuple(feats.shape)}")
        n, f = feats.shape[1], feats.shape[2]
        if self.normalization == "none":
            mean, std = np.zeros(f), np.ones(f)
        elif self.normalization == "channel":
            flat = feats.reshape(-1, f)
            mean, std = flat.mean(0).numpy(), flat.std(0, unbiased=False).numpy()
        else:
            mean, std = feats.mean(0).numpy(), feats.std(0, unbiased=False).numpy()
        std = np.where(std < _MIN_STD, 1.0, std)
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        if self.normalization == "slot":
            assert self.mean.shape == (n, f)
        return self

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.std is None:
            raise ValueError("ParamTransform has no statistics: call fit() on the training set first")
        mean = torch.as_tensor(self.mean, dtype=like.dtype, device=like.device)
        std = torch.as_tensor(self.std, dtype=like.dtype, device=like.device)
        if mean.ndim == 2 and (like.ndim < 2 or like.shape[-2] != mean.shape[0]):
            raise ValueError(f"slot statistics are for {mean.shape[0]} Gaussians, data has shape {tuple(like.shape)}")
        return mean, std

    def encode(self, params) -> torch.Tensor:
        """Raw parameters ``[..., N, 5 + C]`` -> standardized features ``[..., N, F]`` (float32)."""
        feats = self.raw_features(params)
        mean, std = self._stats(feats)
        return (feats - mean) / std

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Standardized features ``[..., N, F]`` -> raw parameters ``[..., N, 5 + C]``."""
        mean, std = self._stats(features)
        return features_to_params(features * std + mean, self.representation, self.log_scale)

    def decode_covariance(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standardized features ``[..., N, F]`` -> ``(xy, cov, colour)`` (:func:`features_to_covariance`)."""
        mean, std = self._stats(features)
        return features_to_covariance(features * std + mean, self.representation, self.log_scale)

    def render_features(self, features: torch.Tensor, height: int, width: int,
                        blend: str = "normalized", grid=None) -> torch.Tensor:
        """Standardized features in the models' layout ``[B, F, N]`` -> images ``[B, height, width, C]``
        in ``[0, 1]`` (clamped, as recall does), each sample on the CPU kernel with one thread;
        differentiable in ``features``. With a tile ``grid`` (:class:`~gaussvae_ros.codecs.latent.tiles.TileGrid`
        of B tiles), the B samples are the tiles of one picture: ``[1, height, width, C]``."""
        xy, cov, colour = self.decode_covariance(features.transpose(1, 2))
        if grid is not None:
            xy, cov = (t[None] for t in grid.covariance_to_picture(xy, cov))
            colour = colour.reshape(1, -1, colour.shape[-1])
        images = render_covariance(xy.float(), cov.float(), colour.float(), height, width, blend=blend, threads=1)
        return images.clamp(0.0, 1.0)

    def to_dict(self) -> dict:
        """JSON-able settings (no statistics)."""
        return {"representation": self.representation, "log_scale": self.log_scale, "canonical": self.canonical,
                "normalization": self.normalization, "color_channels": self.color_channels}
