"""Conv1D VAEs over Morton-sorted Gaussians, registered by name.

Every model maps standardized features ``x [B, F, N]`` (channels first: F features per Gaussian,
N = 512 Gaussians in Morton order treated as a 1-D sequence) to a diagonal-Gaussian posterior
``q(z | x) = N(mu, exp(logvar))`` with ``mu, logvar [B, latent_dim]`` and decodes ``z`` back to
``x_hat [B, F, N]``. Losses live outside the model (:mod:`gaussvae_ros.vae.losses`).

Shared design choices (the prototype write-up is silent on them):

* Downsampling convolutions use stride ``s`` with ``kernel_size - s`` zero padding split
  left/right, so a length-L input gives exactly ``L / s``. Upsampling by ``s`` is, per
  ``ModelConfig.upsampling``, a transposed convolution (``transposed``, the default for
  ``conv1d_vae``: each of the ``s`` output phases has its own weights) or nearest-neighbour
  repetition + stride-1 convolution (``nearest``; always used inside residual blocks).
* Bottleneck: the last encoder feature map ``[C_last, N / prod(strides)]`` is flattened and a
  linear layer gives ``mu`` and ``logvar``; the decoder starts with a linear layer + ReLU back to
  that shape.
* Output head: a 1x1 convolution to F channels with no activation (features are standardized,
  so unbounded).
* ``logvar`` is clamped to ``[-30, 20]``. In ``eval()`` mode ``forward`` decodes ``z = mu``.
* ``slot_bias`` (not in the prototype; off by default): a learned offset ``[F, N]`` added to the
  output, one per slot and feature, so the decoder predicts departures from a per-slot layout.
  Its start (:func:`init_slot_bias`) is the training set's slot means (``slot_mean``) or a uniform
  grid of round Gaussians covering the image (``grid``): a decoder trained through the renderer
  then starts from a picture (a flat mosaic) instead of Gaussians piled on the mean Morton curve.
* ``grid_input`` (not in the prototype; off by default): the encoder also reads, per slot, the
  colour of the input Gaussians' own rendering at that slot's grid cell (:meth:`grid_colours`), so
  what the decoder must put in slot k arrives at slot k instead of being routed from wherever the
  adaptive fit placed its Gaussians. Still a function of the Gaussians alone.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from gaussvae_ros.core import morton_order

from .config import ModelConfig

#: Registered model classes by name (see :func:`register_model`).
MODEL_REGISTRY: dict[str, type[nn.Module]] = {}

UPSAMPLING_MODES = ("transposed", "nearest")
SLOT_BIASES = ("none", "slot_mean", "grid")


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a model buildable by ``name`` from a :class:`ModelConfig`."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODEL_REGISTRY and MODEL_REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {MODEL_REGISTRY[name].__name__}")
        MODEL_REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return decorate


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialized model of ``config.name`` (ValueError if unknown or inconsistent)."""
    if config.name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {config.name!r}; registered: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[config.name](config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _strided_conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    """Conv1d mapping length L to L / stride (padding ``kernel - stride`` split left/right)."""
    if kernel < stride:
        raise ValueError(f"kernel_size {kernel} must be >= stride {stride}")
    total = kernel - stride
    return nn.Sequential(nn.ConstantPad1d((total // 2, total - total // 2), 0.0),
                         nn.Conv1d(c_in, c_out, kernel, stride))


def _upsampling_conv(c_in: int, c_out: int, kernel: int, stride: int, mode: str) -> nn.Module:
    """Conv mapping length L to L * stride: a transposed convolution (``transposed``: every output
    phase has its own weights) or nearest-neighbour repetition + stride-1 convolution (``nearest``)."""
    if mode not in UPSAMPLING_MODES:
        raise ValueError(f"unknown upsampling {mode!r}; choose one of {UPSAMPLING_MODES}")
    if stride == 1:
        return _strided_conv(c_in, c_out, kernel, 1)
    if mode == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=stride, mode="nearest"), _strided_conv(c_in, c_out, kernel, 1))
    if kernel < stride:
        raise ValueError(f"kernel_size {kernel} must be >= stride {stride}")
    padding = (kernel - stride + 1) // 2
    return nn.ConvTranspose1d(c_in, c_out, kernel, stride, padding=padding,
                              output_padding=2 * padding - (kernel - stride))


def _norm(groups: int, channels: int) -> nn.Module:
    if groups <= 0:
        return nn.Identity()
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class _Conv1dVAEBase(nn.Module):
    """Bottleneck, reparameterization and shape checks shared by the registered models."""

    registered_name = ""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if not config.encoder_channels or not config.decoder_channels:
            raise ValueError("a model needs at least one encoder and one decoder layer")
        for label, channels, strides in (("encoder", config.encoder_channels, config.encoder_strides),
                                         ("decoder", config.decoder_channels, config.decoder_strides)):
            if len(channels) != len(strides):
                raise ValueError(f"{label}_channels and {label}_strides need the same length, "
                                 f"got {channels} and {strides}")
            if any(c <= 0 for c in channels) or any(s <= 0 for s in strides):
                raise ValueError(f"{label} channels and strides must be positive")
        down, up = math.prod(config.encoder_strides), math.prod(config.decoder_strides)
        if down != up:
            raise ValueError(f"encoder downsamples by {down} but decoder upsamples by {up}")
        if config.seq_len % down:
            raise ValueError(f"seq_len {config.seq_len} is not divisible by the total stride {down}")
        if config.latent_dim <= 0 or config.in_channels <= 0:
            raise ValueError("latent_dim and in_channels must be positive")
        if config.grid_input and config.in_channels < 8:
            raise ValueError("grid_input needs RGB features (8 or 9 channels)")
        #: channels the encoder body reads: the features, plus the RGB of the Gaussians' own
        #: rendering at the grid's cells with ``grid_input``
        self.encoder_in_channels = config.in_channels + (3 if config.grid_input else 0)
        self._grid = grid_cells(config.seq_len) if config.grid_input else None  # (rows, cols, cells)
        self._transform = None
        self.bottleneck_channels = config.encoder_channels[-1]
        self.bottleneck_length = config.seq_len // down
        flat = self.bottleneck_channels * self.bottleneck_length
        self.to_posterior = nn.Linear(flat, 2 * config.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, flat), nn.ReLU())
        self.head = nn.Conv1d(config.decoder_channels[-1], config.in_channels, 1)
        if config.slot_bias not in SLOT_BIASES:
            raise ValueError(f"unknown slot_bias {config.slot_bias!r}; choose one of {SLOT_BIASES}")
        self.slot_bias = (nn.Parameter(torch.zeros(config.in_channels, config.seq_len))
                          if config.slot_bias != "none" else None)

    # Subclasses set self.encoder_body ([B, F, N] -> [B, C_last, N / down]) and
    # self.decoder_body ([B, C_last, N / down] -> [B, C_dec_last, N]).
    encoder_body: nn.Module
    decoder_body: nn.Module

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.config.in_channels, self.config.seq_len)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects input [B, {expected[0]}, {expected[1]}] "
                             f"(features x Gaussians), got {tuple(x.shape)}")

    def attach_transform(self, transform) -> None:
        """Give a ``grid_input`` model the feature transform it renders its input with (training
        and model loading do this; a no-op for other models)."""
        if self.config.grid_input and transform.color_channels != 3:
            raise ValueError("grid_input models read RGB Gaussians")
        self._transform = transform

    @torch.no_grad()
    def grid_colours(self, x: torch.Tensor) -> torch.Tensor:
        """The input Gaussians ``x [B, F, N]`` rendered at the grid's cells (:func:`grid_cells`), as
        ``[B, 3, N]`` in slot order, centred (``(rgb - 0.5) / 0.25``)."""
        if self._transform is None:
            raise RuntimeError("a grid_input model needs attach_transform(transform) before encoding")
        rows, cols, cells = self._grid
        images = self._transform.render_features(x, rows, cols)
        picked = images.reshape(x.shape[0], rows * cols, 3)[:, torch.from_numpy(cells).to(x.device)]
        return ((picked - 0.5) / 0.25).transpose(1, 2).to(x.dtype)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, F, N]`` -> ``(mu, logvar)``, each ``[B, latent_dim]``."""
        self._check_input(x)
        if self.config.grid_input:
            x = torch.cat([x, self.grid_colours(x)], 1)
        h = self.encoder_body(x).flatten(1)
        mu, logvar = self.to_posterior(h).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, latent_dim]`` -> ``x_hat [B, F, N]``."""
        h = self.from_latent(z).view(z.shape[0], self.bottleneck_channels, self.bottleneck_length)
        out = self.head(self.decoder_body(h))
        return out if self.slot_bias is None else out + self.slot_bias

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``x_hat``, ``mu``, ``logvar`` and the decoded ``z`` (sampled in training, ``mu`` in eval)."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return {"x_hat": self.decode(z), "mu": mu, "logvar": logvar, "z": z}


@register_model("conv1d_vae")
class Conv1dVAE(_Conv1dVAEBase):
    """The prototype's baseline: three strided Conv1D + ReLU encoder layers (32 -> 64 -> 128 filters),
    linear bottleneck, three upsampling Conv1D + ReLU decoder layers (64 -> 32 -> 16 filters),
    1x1 output head. With kernel 8 and strides 4 (512 -> 128 -> 32 -> 8 slots) and latent 512 it has
    1,745,368 parameters for 8 input features."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        k = config.kernel_size
        layers: list[nn.Module] = []
        c_in = self.encoder_in_channels
        for c_out, stride in zip(config.encoder_channels, config.encoder_strides):
            layers += [_strided_conv(c_in, c_out, k, stride), nn.ReLU()]
            c_in = c_out
        self.encoder_body = nn.Sequential(*layers)
        layers = []
        for c_out, stride in zip(config.decoder_channels, config.decoder_strides):
            layers += [_upsampling_conv(c_in, c_out, k, stride, config.upsampling), nn.ReLU()]
            c_in = c_out
        self.decoder_body = nn.Sequential(*layers)


class ResidualBlock1d(nn.Module):
    """Two convolutions (kernel k) with optional GroupNorm and a residual connection.

    ``stride > 0`` downsamples by ``stride`` in the first convolution; ``upsample > 1`` repeats
    each slot ``upsample`` times before the block. The skip path is a 1x1 convolution (strided
    when downsampling) whenever the shape changes, else the identity.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: int = 1,
                 norm_groups: int = 0) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=upsample, mode="nearest") if upsample > 1 else nn.Identity()
        self.main = nn.Sequential(
            _strided_conv(c_in, c_out, kernel, stride), _norm(norm_groups, c_out), nn.ReLU(),
            _strided_conv(c_out, c_out, kernel, 1), _norm(norm_groups, c_out))
        if c_in != c_out or stride != 1:
            self.skip: nn.Module = nn.Conv1d(c_in, c_out, 1, stride)
        else:
            self.skip = nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        return self.act(self.main(x) + self.skip(x))


@register_model("resnet_conv1d_vae")
class ResNetConv1dVAE(_Conv1dVAEBase):
    """The prototype's larger model: five residual encoder blocks (32 -> 256 filters), linear
    bottleneck to a 512-D latent, five residual decoder blocks (256 -> 16 filters), 1x1 head.
    With the shipped config (kernel 7, encoder 32/64/128/256/256 with strides 1/2/2/2/2, decoder
    256/128/64/32/16 with upsampling 2/2/2/2/1, GroupNorm 8) it has 15,957,048 parameters for 8
    input features."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        k, g = config.kernel_size, config.norm_groups
        blocks: list[nn.Module] = []
        c_in = self.encoder_in_channels
        for c_out, stride in zip(config.encoder_channels, config.encoder_strides):
            blocks.append(ResidualBlock1d(c_in, c_out, k, stride=stride, norm_groups=g))
            c_in = c_out
        self.encoder_body = nn.Sequential(*blocks)
        blocks = []
        for c_out, stride in zip(config.decoder_channels, config.decoder_strides):
            blocks.append(ResidualBlock1d(c_in, c_out, k, upsample=stride, norm_groups=g))
            c_in = c_out
        self.decoder_body = nn.Sequential(*blocks)


def grid_cells(n: int, aspect: float = 1.5) -> tuple[int, int, np.ndarray]:
    """The grid of ``n`` slots: ``(rows, cols, cells)`` with about ``aspect`` times more columns than
    rows (a landscape image) and ``cells [n]`` the row-major cell index of each slot, slots in
    Morton order of the cell centres (the first ``n`` cells are used)."""
    rows = max(1, round(math.sqrt(n / aspect)))
    cols = math.ceil(n / rows)
    index = np.arange(n)
    centres = np.stack([(index % cols + 0.5) / cols, (index // cols + 0.5) / rows], 1)
    return rows, cols, index[morton_order(centres)]


def grid_layout(n: int, color_channels: int = 3, aspect: float = 1.5) -> np.ndarray:
    """``n`` round-ish Gaussians on the uniform grid of :func:`grid_cells`, in its slot order: raw
    parameters ``[n, 5 + C]`` (mid-grey); each Gaussian's standard deviation is 0.6 of its cell
    along each axis."""
    rows, cols, cells = grid_cells(n, aspect)
    params = np.zeros((n, 5 + color_channels), dtype=np.float32)
    params[:, 0], params[:, 1] = (cells % cols + 0.5) / cols, (cells // cols + 0.5) / rows
    params[:, 2], params[:, 3] = 0.6 / cols, 0.6 / rows
    params[:, 5:] = 0.5
    return params


@torch.no_grad()
def init_slot_bias(model: nn.Module, transform, slot_mean: np.ndarray) -> None:
    """Set a fresh model's ``slot_bias`` as its config says (no-op without one): the slot means
    ``[N, F]`` of the standardized training features, or the standardized :func:`grid_layout`. With
    ``grid`` the output head's weights are scaled by 0.1 and its bias zeroed, so the first decodes
    stay near the grid."""
    mode = model.config.slot_bias
    if mode == "none":
        return
    if mode == "slot_mean":
        start = np.asarray(slot_mean, dtype=np.float32).T
    else:
        layout = grid_layout(model.config.seq_len, transform.color_channels)
        start = transform.encode(layout[None])[0].T.numpy()
        model.head.weight.mul_(0.1)
        model.head.bias.zero_()
    model.slot_bias.copy_(torch.from_numpy(np.ascontiguousarray(start)))
