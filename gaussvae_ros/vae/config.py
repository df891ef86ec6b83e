"""Experiment configuration: dataclasses loaded from (and written back to) YAML.

A config file has four sections, ``model``, ``data``, ``loss`` and ``train``, each mapping onto
one dataclass below; a missing key takes the default, an unknown key is an error (so a typo
never silently trains the wrong thing). The resolved config (defaults filled in, ``in_channels``
and ``seq_len`` taken from the data) is written next to the checkpoints and stored inside them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelConfig:
    """Network architecture (see :mod:`gaussvae_ros.vae.networks` for what each field builds)."""

    name: str = "conv1d_vae"  #: registered model name
    latent_dim: int = 512  #: size of the latent vector z
    seq_len: int = 512  #: Gaussians (slots) per image; set from the data at training time
    in_channels: int = 8  #: features per Gaussian; set from the data representation at training time
    encoder_channels: list[int] = field(default_factory=lambda: [32, 64, 128])  #: filters per encoder layer/block
    encoder_strides: list[int] = field(default_factory=lambda: [4, 4, 4])  #: downsampling per encoder layer/block
    decoder_channels: list[int] = field(default_factory=lambda: [64, 32, 16])  #: filters per decoder layer/block
    decoder_strides: list[int] = field(default_factory=lambda: [4, 4, 4])  #: upsampling per decoder layer/block
    kernel_size: int = 8  #: convolution kernel length (slots)
    upsampling: str = "transposed"  #: decoder upsampling: transposed (ConvTranspose1d) | nearest (repeat + conv)
    norm_groups: int = 0  #: GroupNorm groups inside residual blocks (0 = no normalization layers)
    slot_bias: str = "none"  #: learned per-slot output offset: none | slot_mean | grid (its initial value)
    grid_input: bool = False  #: encoder also reads the input's rendering at the grid cells (RGB per slot)


@dataclass
class DataConfig:
    """Training data and its parameter-space representation (:mod:`gaussvae_ros.vae.features`)."""

    path: str = "experiments/data/delaunay_12k.npz"  #: npz file or directory of npz files of Gaussian parameters
    representation: str = "cholesky"  #: cholesky | doubled_angle | angle (the prototype's)
    log_scale: bool = False  #: features hold log(scale)
    canonical: bool = False  #: sort axes (s1 >= s2) and wrap angles before 'angle' features
    normalization: str = "channel"  #: none | channel | slot (statistics from the training split)
    val_fraction: float = 0.0435  #: share of samples held out for validation
    test_fraction: float = 0.0434  #: share of samples held out for testing
    split_seed: int = 0  #: seed of the train/val/test shuffle
    augment: str = "none"  #: none | dihedral (train on the 8 mirror images / quarter turns of each sample)


@dataclass
class LossConfig:
    """MSE reconstruction + beta-weighted KL (:class:`gaussvae_ros.vae.losses.VAELoss`)."""

    beta: float = 1.0  #: final KL weight (per-element KL; 2 = ELBO of a unit-variance decoder)
    kl_anneal_start: int = 0  #: step at which the KL weight starts rising from 0
    kl_anneal_steps: int = 10000  #: steps of linear rise to beta (0 = beta from the start)
    group_weights: dict[str, float] = field(default_factory=dict)  #: per-group MSE weight (default 1)
    param_weight: float = 1.0  #: weight of the parameter-space MSE (0 = train through the renderer only)
    image_weight: float = 0.0  #: weight of the rendered-image MSE (intensity units; 0 = off)
    image_size: int = 64  #: side (px) of the square renderings compared by the image loss


@dataclass
class TrainConfig:
    """Optimization, logging and checkpointing."""

    seed: int = 0  #: seed of weights init, sampling noise and data order
    batch_size: int = 64  #: global batch size (split over DDP processes)
    lr: float = 1.0e-3  #: AdamW learning rate
    weight_decay: float = 0.0  #: AdamW weight decay
    grad_clip: float = 1.0  #: max gradient norm (0 = no clipping)
    epochs: int = 100  #: passes over the training split
    max_steps: int = 0  #: stop after this many optimizer steps (0 = run all epochs)
    log_every: int = 50  #: steps between per-step TensorBoard scalars
    checkpoint_every: int = 1000  #: steps between mid-epoch checkpoints (0 = only at epoch ends)
    device: str = "auto"  #: auto | cpu | cuda


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def non_default_json(self) -> str:
        """JSON of the fields that differ from their defaults (sections kept): stable when a new
        field with a default is added, which is what model ids hash."""
        out = {}
        for name, cls in _SECTIONS.items():
            section, default = getattr(self, name), cls()
            out[name] = {f.name: getattr(section, f.name) for f in dataclasses.fields(cls)
                         if getattr(section, f.name) != getattr(default, f.name)}
        return json.dumps(out, sort_keys=True)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "loss": LossConfig, "train": TrainConfig}


def _coerce(section: str, fld: dataclasses.Field, value: Any) -> Any:
    """Check ``value`` against the field's default type (int/float/bool/str/list/dict)."""
    default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
    where = f"{section}.{fld.name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where} must be a list of integers, got {value!r}")
        return list(value)
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, (int, float)) for v in value.values()):
            raise ValueError(f"{where} must be a mapping of names to numbers, got {value!r}")
        return {str(k): float(v) for k, v in value.items()}
    raise AssertionError(f"unsupported config field type for {where}")


def config_from_dict(raw: dict | None) -> ExperimentConfig:
    """Build a config from nested dicts, validating names and types (ValueError on problems)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        raise ValueError(f"unknown config section(s) {sorted(unknown)}; expected {sorted(_SECTIONS)}")
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ValueError(f"config section {name!r} must be a mapping, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = set(values) - set(fields)
        if bad:
            raise ValueError(f"unknown key(s) {sorted(bad)} in config section {name!r}; known: {sorted(fields)}")
        sections[name] = cls(**{k: _coerce(name, fields[k], v) for k, v in values.items()})
    return ExperimentConfig(**sections)


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config and apply ``section.key=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config must be a mapping of sections")
    for item in overrides or []:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"override {item!r} must look like section.key=value")
        if not isinstance(raw.get(section, {}), dict):
            raise ValueError(f"config section {section!r} must be a mapping")
        raw.setdefault(section, {})
        if raw[section] is None:
            raw[section] = {}
        raw[section][name] = yaml.safe_load(text)
    return config_from_dict(raw)


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
