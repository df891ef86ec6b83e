"""The ``vae-latent`` model bundle: the VAE, its feature transform and its entropy model, as one
value (:class:`LatentModelBundle`) and as one model file (a VAE model file of
:mod:`gaussvae_ros.vae.checkpoint` plus an ``"entropy_model"`` entry).

The bundle's id (:attr:`LatentModelBundle.model_id`, 16 hex characters) is 8 bytes of
:func:`model_fingerprint`: it hashes what decoding depends on (config, transform settings and
statistics, weights, entropy parameters), not the file bytes, so re-saving a model keeps its id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gaussvae_ros.vae.checkpoint import CHECKPOINT_FORMAT, MODEL_FORMAT, VERSION as MODEL_VERSION
from gaussvae_ros.vae.checkpoint import (atomic_save, check_format, hash_tensor, model_entries, rebuild_model,
                                         safe_load)
from gaussvae_ros.vae.config import ExperimentConfig
from gaussvae_ros.vae.features import ParamTransform

from .entropy import EntropyModel

__all__ = ["LatentModelBundle", "attach_entropy_model", "load_bundle", "make_bundle", "model_fingerprint",
           "save_bundle"]


@dataclass
class LatentModelBundle:
    """Everything a ``vae-latent`` payload needs: the VAE, its feature transform and entropy model.

    ``model_id`` is the hex of ``model_hash`` (8 bytes of :func:`model_fingerprint`).
    """

    model: nn.Module
    config: ExperimentConfig
    transform: ParamTransform
    entropy: EntropyModel
    slot_mean: np.ndarray | None = None
    path: Path | None = None
    model_hash: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self.model = getattr(self.model, "module", self.model).eval()
        if self.entropy.dim != self.config.model.latent_dim:
            raise ValueError(f"entropy model is {self.entropy.dim}-D, the VAE latent {self.config.model.latent_dim}-D")
        if not self.entropy.updated:
            self.entropy.update()
        if not self.model_hash:
            self.model_hash = model_fingerprint(self.model, self.config, self.transform, self.entropy)[:8]

    @property
    def model_id(self) -> str:
        return self.model_hash.hex()

    @property
    def seq_len(self) -> int:
        return int(self.config.model.seq_len)


def model_fingerprint(model: nn.Module, config: ExperimentConfig, transform: ParamTransform,
                      entropy: EntropyModel) -> bytes:
    """SHA-256 over what decoding depends on (config fields that differ from their defaults,
    transform, weights, entropy parameters)."""
    h = hashlib.sha256(b"gaussvae-vae-latent-fingerprint-v2\0")

    def add(name: str, value) -> None:
        h.update(name.encode() + b"\0")
        if torch.is_tensor(value):
            hash_tensor(h, value)
        elif isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value)
            h.update(f"{value.dtype}{value.shape}".encode() + value.tobytes())
        else:
            h.update(repr(value).encode())
        h.update(b"\0")

    add("config", config.non_default_json())  # new config fields with defaults keep old ids
    add("transform", str(sorted(transform.to_dict().items())))
    add("norm_mean", np.asarray(transform.mean, dtype=np.float32))
    add("norm_std", np.asarray(transform.std, dtype=np.float32))
    state = getattr(model, "module", model).state_dict()
    for name in sorted(state):
        add("w:" + name, state[name])
    es = entropy.state()
    for name in sorted(es):
        add("e:" + name, es[name])
    return h.digest()


def make_bundle(model: nn.Module, config: ExperimentConfig, transform: ParamTransform, entropy: EntropyModel,
                slot_mean: np.ndarray | None = None) -> LatentModelBundle:
    """A bundle from in-memory parts (e.g. right after training)."""
    return LatentModelBundle(model, config, transform, entropy, slot_mean)


def save_bundle(path: str | Path, model: nn.Module, config: ExperimentConfig, transform: ParamTransform,
                slot_mean: np.ndarray, entropy: EntropyModel) -> Path:
    """Write a model file with an ``"entropy_model"`` entry (loadable by :func:`load_model` too)."""
    path = Path(path)
    atomic_save({"format": MODEL_FORMAT, "version": MODEL_VERSION,
                  **model_entries(model, config, transform, slot_mean), "entropy_model": entropy.state()}, path)
    return path


def attach_entropy_model(model_path: str | Path, entropy: EntropyModel, out_path: str | Path | None = None) -> Path:
    """Add (or replace) the entropy model of an existing model file or training checkpoint; the
    result (``out_path``, default: in place) is a model file (optimizer and RNG state dropped)."""
    model_path = Path(model_path)
    obj = safe_load(model_path)
    check_format(obj, model_path, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    model, config, _, _ = rebuild_model(obj, model_path)
    if entropy.dim != config.model.latent_dim:
        raise ValueError(f"entropy model is {entropy.dim}-D, {model_path} has a {config.model.latent_dim}-D latent")
    keep = ("config", "transform", "state_dict", "norm_mean", "norm_std", "slot_mean")
    out = Path(out_path) if out_path is not None else model_path
    atomic_save({"format": MODEL_FORMAT, "version": MODEL_VERSION, **{k: obj[k] for k in keep},
                  "entropy_model": entropy.state()}, out)
    return out


def load_bundle(path: str | Path) -> LatentModelBundle:
    """Read a model file with an entropy model (ValueError if corrupt or without one)."""
    path = Path(path)
    obj = safe_load(path)
    check_format(obj, path, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    model, config, transform, slot_mean = rebuild_model(obj, path)
    if "entropy_model" not in obj:
        raise ValueError(f"{path}: model file has no entropy model (fit one with fit_entropy_model and "
                         f"attach_entropy_model)")
    entropy = EntropyModel.from_state(obj["entropy_model"])
    bundle = LatentModelBundle(model, config, transform, entropy, slot_mean)
    bundle.path = path
    return bundle
