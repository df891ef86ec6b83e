"""Cached fitted Gaussians for VAE training: the parameter-set file format and a Dataset over it.

Parameter-set file (``.npz``, written by :func:`save_param_set`, read by :func:`load_param_set`):

* ``params``: float32 ``[M, N, 5 + C]``, M images of N Gaussians each, rows
  ``(u, v, s1, s2, rot, colour...)`` as :meth:`gaussvae_ros.core.Gaussians.to_array` (normalized
  image coordinates; C = 3 for RGB, 1 for grayscale), each image's Gaussians in Morton order;
* ``format``: the string ``"gaussvae-params"``, ``version``: 1;
* optional extras (``kind``, ``seeds [M]``, ``image_height``, ``image_width``, ``blend`` ...)
  describing where the samples came from.

A directory holds any number of such files, also in sub-folders (e.g. one per source); they are
concatenated in path order and must agree on N and C. Hidden files (``.shard_*.tmp.npz``, shards
being written) are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gaussvae_ros.core import morton_order

from .features import ParamTransform

PARAM_SET_FORMAT = "gaussvae-params"
PARAM_SET_VERSION = 1


def check_params_array(params: np.ndarray, where: str = "params") -> np.ndarray:
    """``params`` as float32 ``[M, N, 5 + C]``; ValueError on wrong shape, NaN/inf or scales <= 0."""
    params = np.asarray(params)
    if params.ndim != 3 or params.shape[2] not in (6, 8) or params.shape[0] == 0 or params.shape[1] == 0:
        raise ValueError(f"{where}: expected Gaussian parameters [M, N, 8] (RGB) or [M, N, 6] (grayscale) "
                         f"with M, N > 0, got shape {params.shape}")
    params = params.astype(np.float32, copy=False)
    if not np.isfinite(params).all():
        bad = np.unique(np.nonzero(~np.isfinite(params))[0])
        raise ValueError(f"{where}: {bad.size} sample(s) contain NaN or inf (first: {bad[:5].tolist()})")
    if (params[..., 2:4] <= 0).any():
        bad = np.unique(np.nonzero((params[..., 2:4] <= 0).any(-1))[0])
        raise ValueError(f"{where}: {bad.size} sample(s) have non-positive scales (first: {bad[:5].tolist()})")
    return params


def save_param_set(path: str | Path, params: np.ndarray, **extras) -> Path:
    """Write a parameter-set file (format above); ``extras`` become extra arrays. Returns the path."""
    params = check_params_array(params)
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"parameter sets are .npz files, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    reserved = {"params", "format", "version"} & set(extras)
    if reserved:
        raise ValueError(f"extras may not be named {sorted(reserved)}")
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, params=params, format=np.array(PARAM_SET_FORMAT), version=np.array(PARAM_SET_VERSION),
                        **{k: np.asarray(v) for k, v in extras.items()})
    tmp.replace(path)
    return path


def _load_one(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            entries = {k: npz[k] for k in npz.files if k in ("params", "format", "version")}
    except Exception as exc:  # noqa: BLE001 -- zip, zlib, .npy header and pickle errors alike: a damaged file
        raise ValueError(f"{path}: not a readable parameter-set .npz ({type(exc).__name__}: {exc})") from exc
    if "params" not in entries:
        raise ValueError(f"{path}: no 'params' array")
    if "format" in entries and str(entries["format"]) != PARAM_SET_FORMAT:
        raise ValueError(f"{path}: format {str(entries['format'])!r} is not {PARAM_SET_FORMAT!r}")
    if "version" in entries and int(entries["version"]) > PARAM_SET_VERSION:
        raise ValueError(f"{path}: parameter-set version {int(entries['version'])} is newer than this "
                         f"reader ({PARAM_SET_VERSION})")
    return check_params_array(entries["params"], str(path))


def load_param_set(path: str | Path) -> np.ndarray:
    """Parameters ``[M, N, 5 + C]`` from an ``.npz`` file or a directory tree of them."""
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*.npz") if not f.name.startswith("."))  # not half-written shards
        if not files:
            raise ValueError(f"{path}: directory holds no .npz parameter sets")
        arrays = [_load_one(f) for f in files]
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"{path}: files disagree on [N, 5 + C]: {sorted(shapes)}")
        return np.concatenate(arrays)
    if not path.exists():
        raise FileNotFoundError(f"parameter set {path} does not exist")
    return _load_one(path)


def split_indices(count: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Deterministic shuffle of ``range(count)`` into ``train``/``val``/``test`` index arrays (sorted).

    Held-out splits get ``round(fraction * count)`` samples, at least 1 when the fraction is > 0.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1) "
                         f"and sum to less than 1")
    n_val = max(1, round(val_fraction * count)) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * count)) if test_fraction > 0 else 0
    if count - n_val - n_test < 1:
        raise ValueError(f"{count} samples are too few for a train split after {n_val} val and {n_test} test")
    order = np.random.default_rng(seed).permutation(count)
    return {"val": np.sort(order[:n_val]), "test": np.sort(order[n_val:n_val + n_test]),
            "train": np.sort(order[n_val + n_test:])}


#: Training-set augmentations (``data.augment``).
AUGMENTATIONS = ("none", "dihedral")


def dihedral_views(params: np.ndarray) -> np.ndarray:
    """The 8 mirror images and quarter turns of each fitted image: ``[M, N, 5 + C]`` -> ``[8 M, N, 5 + C]``.

    Exact and free: the Gaussians of a mirrored or transposed image are the mirrored or transposed
    Gaussians (``u -> 1 - u`` negates the angle, swapping ``u, v`` reflects it about 45 degrees),
    re-sorted along the Morton curve so that each view is a valid sample. View 0 is the input.
    """
    params = check_params_array(params)
    views = []
    for transpose in (False, True):
        for flip_u in (False, True):
            for flip_v in (False, True):
                p = params.copy()
                if transpose:
                    p[..., [0, 1]] = p[..., [1, 0]]
                    p[..., 4] = np.pi / 2 - p[..., 4]
                if flip_u:
                    p[..., 0] = 1.0 - p[..., 0]
                    p[..., 4] = -p[..., 4]
                if flip_v:
                    p[..., 1] = 1.0 - p[..., 1]
                    p[..., 4] = -p[..., 4]
                views.append(np.stack([s[morton_order(s[:, :2])] for s in p]))
    return np.concatenate(views)


class GaussianParamDataset(Dataset):
    """Standardized VAE inputs for a set of fitted images.

    ``dataset[i]`` is a float32 tensor ``[F, N]`` (features x Gaussians, channels first as the models
    expect); :attr:`features` holds all of them, ``[M, F, N]``, in memory.
    """

    def __init__(self, params: np.ndarray, transform: ParamTransform) -> None:
        params = check_params_array(params)
        self.params = params
        self.transform = transform
        self.features = transform.encode(params).transpose(1, 2).contiguous()

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.features[index]
