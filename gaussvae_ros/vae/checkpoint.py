"""Model files and training checkpoints: plain tensors + JSON, never arbitrary pickled objects.

Both are ``torch.save`` of a dict holding only tensors, strings, numbers, lists and dicts, read back
with ``torch.load(..., weights_only=True)`` (PyTorch's restricted unpickler), so loading a file
cannot run code. Writes go to a temporary file renamed into place, so a crash never leaves a
half-written file under the real name. Every file written since 2026-12-02 carries ``sha256``, a
digest of all its other entries, checked on reading: a damaged file is refused, never loaded with
other weights. A file without one (written earlier) is verified only against a pinned SHA-256 of the
whole file (:func:`pin_file_digest`; the shipped model's is pinned by the codec room); an unverified
file is refused unless the caller opts in (``allow_unverified=True``, or the environment variable
``GAUSSVAE_ALLOW_UNVERIFIED_MODELS=1``: then its entries are still checked one by one).

Model file (``model.pt``), everything needed to rebuild and use a trained VAE::

    {"format": "gaussvae-vae-model", "version": 1,
     "config": <ExperimentConfig as JSON>, "transform": <ParamTransform settings as JSON>,
     "state_dict": {name: tensor}, "norm_mean": tensor, "norm_std": tensor,
     "slot_mean": tensor [N, F]}   # training-set mean of each slot's standardized features

Training checkpoint (``checkpoint.pt``): the model file's entries plus ``optimizer`` (its state
dict), ``progress`` (``step``, ``epoch``, ``batch_in_epoch``, ``world_size``) and ``rng``
(per-rank torch CPU/CUDA states, numpy's and Python's global states).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import ExperimentConfig, config_from_dict
from .networks import build_model
from .features import ParamTransform

MODEL_FORMAT = "gaussvae-vae-model"
CHECKPOINT_FORMAT = "gaussvae-vae-checkpoint"
VERSION = 1


#: Entry holding the digest of all other entries (:func:`content_digest`).
DIGEST_KEY = "sha256"


def hash_tensor(h, tensor: torch.Tensor) -> None:
    """Feed ``tensor`` to hash ``h`` bit for bit, with its dtype and shape (0-d tensors too): the one
    tensor encoding of :func:`content_digest` and of the latent models' ids."""
    h.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def content_digest(obj: dict) -> str:
    """SHA-256 (hex) of a file's entries but :data:`DIGEST_KEY`: tensors bit for bit with their
    dtype and shape, strings, numbers, lists and dicts (keys sorted) by value."""
    h = hashlib.sha256()

    def add(value) -> None:
        if torch.is_tensor(value):
            h.update(b"T")
            hash_tensor(h, value)
        elif isinstance(value, dict):
            h.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                h.update(repr(key).encode() + b"\0")
                add(value[key])
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}".encode())
            for item in value:
                add(item)
        else:
            h.update(f"V{type(value).__name__}:{value!r}".encode())
        h.update(b"\0")

    add({k: v for k, v in obj.items() if k != DIGEST_KEY})
    return h.hexdigest()


def atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({**obj, DIGEST_KEY: content_digest(obj)}, tmp)
    os.replace(tmp, path)


#: Environment variable that, set to 1, lets :func:`safe_load` read files it cannot verify.
ENV_ALLOW_UNVERIFIED = "GAUSSVAE_ALLOW_UNVERIFIED_MODELS"
_PINS: dict[Path, str] = {}


def pin_file_digest(path: str | Path, sha256: str) -> None:
    """Pin the SHA-256 (hex) of the whole file at ``path``: :func:`safe_load` refuses it unless it matches."""
    _PINS[Path(path).resolve()] = str(sha256).lower()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes (what :func:`pin_file_digest` pins)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _allow_unverified(allow: bool | None) -> bool:
    if allow is not None:
        return bool(allow)
    return os.environ.get(ENV_ALLOW_UNVERIFIED, "").strip().lower() in ("1", "yes", "true", "on")


def safe_load(path: str | Path, *, allow_unverified: bool | None = None) -> dict:
    """``torch.load`` with ``weights_only=True``; any unreadable file becomes a ValueError.

    The file must be verified: by its ``sha256`` entry, or, for a pinned path, by the SHA-256 of its
    bytes (:func:`pin_file_digest`). A file that is neither is refused (ValueError) unless
    ``allow_unverified`` (default: ``$GAUSSVAE_ALLOW_UNVERIFIED_MODELS`` is 1).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    pinned = _PINS.get(path.resolve())
    if pinned is not None and hashlib.sha256(data).hexdigest() != pinned:
        raise ValueError(f"{path}: checksum mismatch: the file is not the one shipped (its SHA-256 differs from "
                         f"the pinned {pinned[:16]}...); reinstall it, or point to another model file")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, AttributeError,
            TypeError, KeyError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable GaussVAE checkpoint (corrupt or truncated?): "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a GaussVAE checkpoint (top level is {type(obj).__name__})")
    if DIGEST_KEY in obj and obj[DIGEST_KEY] != content_digest(obj):
        raise ValueError(f"{path}: checksum mismatch: the file is damaged (its entries do not match the digest "
                         f"it was written with)")
    if DIGEST_KEY not in obj and pinned is None and not _allow_unverified(allow_unverified):
        raise ValueError(f"{path}: unverified model file (no {DIGEST_KEY!r} entry and no pinned digest): refused; "
                         f"set {ENV_ALLOW_UNVERIFIED}=1 to load it anyway, or write it again with this version")
    return obj


def model_entries(model: nn.Module, config: ExperimentConfig, transform: ParamTransform,
                   slot_mean: np.ndarray) -> dict:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {
        "config": config.to_json(),
        "transform": json.dumps(transform.to_dict(), sort_keys=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "norm_mean": torch.from_numpy(np.asarray(transform.mean, dtype=np.float32)),
        "norm_std": torch.from_numpy(np.asarray(transform.std, dtype=np.float32)),
        "slot_mean": torch.as_tensor(np.asarray(slot_mean, dtype=np.float32)),
    }


def save_model(path: str | Path, model: nn.Module, config: ExperimentConfig, transform: ParamTransform,
               slot_mean: np.ndarray) -> Path:
    """Write a model file (format in the module docstring)."""
    path = Path(path)
    atomic_save({"format": MODEL_FORMAT, "version": VERSION, **model_entries(model, config, transform, slot_mean)},
                 path)
    return path


def rebuild_model(obj: dict, path: Path) -> tuple[nn.Module, ExperimentConfig, ParamTransform, np.ndarray]:
    for key, kind in (("config", str), ("transform", str), ("state_dict", dict), ("norm_mean", torch.Tensor),
                      ("norm_std", torch.Tensor), ("slot_mean", torch.Tensor)):
        if not isinstance(obj.get(key), kind):
            raise ValueError(f"{path}: checkpoint entry {key!r} is missing or not a {kind.__name__}")
    try:
        config = config_from_dict(json.loads(obj["config"]))
        transform = ParamTransform(**json.loads(obj["transform"]))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path}: stored config is unreadable: {exc}") from exc
    features = config.model.in_channels
    stats = (config.model.seq_len, features) if transform.normalization == "slot" else (features,)
    for key, shape in (("norm_mean", stats), ("norm_std", stats),
                       ("slot_mean", (config.model.seq_len, features))):
        if tuple(obj[key].shape) != shape:
            raise ValueError(f"{path}: checkpoint entry {key!r} has shape {tuple(obj[key].shape)}, the model's "
                             f"config needs {shape}")
    transform.mean, transform.std = obj["norm_mean"].numpy(), obj["norm_std"].numpy()
    model = build_model(config.model)
    model.attach_transform(transform)
    try:
        model.load_state_dict(obj["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit model {config.model.name!r}: {str(exc).splitlines()[0]}") from exc
    return model, config, transform, obj["slot_mean"].numpy()


def check_format(obj: dict, path: Path, formats: tuple[str, ...]) -> None:
    if obj.get("format") not in formats:
        raise ValueError(f"{path}: format {obj.get('format')!r} is not one of {formats}")
    if not isinstance(obj.get("version"), int) or obj["version"] > VERSION:
        raise ValueError(f"{path}: version {obj.get('version')!r} is not supported (this reader: {VERSION})")


def load_model(path: str | Path) -> tuple[nn.Module, ExperimentConfig, ParamTransform, np.ndarray]:
    """Rebuild ``(model in eval mode, config, transform with statistics, slot_mean [N, F])`` from a
    model file or a training checkpoint. ValueError if the file is corrupt or inconsistent."""
    path = Path(path)
    obj = safe_load(path)
    check_format(obj, path, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    model, config, transform, slot_mean = rebuild_model(obj, path)
    return model.eval(), config, transform, slot_mean


def capture_rng() -> dict:
    """This process's RNG states as tensors and plain numbers."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gauss": float(np_state[4])},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: ExperimentConfig,
                    transform: ParamTransform, slot_mean: np.ndarray, progress: dict, rng_states: list[dict]) -> Path:
    """Write a training checkpoint; ``rng_states`` holds one :func:`capture_rng` per DDP rank."""
    path = Path(path)
    atomic_save({"format": CHECKPOINT_FORMAT, "version": VERSION,
                  **model_entries(model, config, transform, slot_mean),
                  "optimizer": optimizer.state_dict(), "progress": dict(progress), "rng": list(rng_states)}, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint: the raw dict plus ``model``, ``config``, ``transform`` and
    ``slot_mean`` rebuilt (ValueError if corrupt, truncated or not a training checkpoint)."""
    path = Path(path)
    obj = safe_load(path)
    check_format(obj, path, (CHECKPOINT_FORMAT,))
    for key in ("optimizer", "progress", "rng"):
        if key not in obj:
            raise ValueError(f"{path}: training checkpoint lacks {key!r}")
    progress, rng = obj["progress"], obj["rng"]
    counters = ("step", "epoch", "batch_in_epoch")
    if not isinstance(progress, dict) or not all(isinstance(progress.get(k), int) and progress[k] >= 0
                                                 for k in counters):
        raise ValueError(f"{path}: checkpoint progress must hold non-negative {', '.join(counters)}, got {progress!r}")
    if not isinstance(rng, list) or not rng or not all(isinstance(r, dict) and "torch" in r for r in rng):
        raise ValueError(f"{path}: checkpoint rng must be one saved random state per process, got "
                         f"{type(rng).__name__} of {len(rng) if isinstance(rng, list) else '?'}")
    obj["model"], obj["config"], obj["transform"], obj["slot_mean"] = rebuild_model(obj, path)
    return obj

