"""The ``vae-latent`` payload codec: a memory stored as its entropy-coded VAE latent.

Encoding: Morton-sort the Gaussians, standardize them (:class:`~gaussvae_ros.vae.ParamTransform`),
run the VAE encoder, take the posterior mean ``mu`` as the latent, quantize it with the step
``step`` and entropy-code the symbols with the model's :class:`~gaussvae_ros.vae.entropy.EntropyModel`
(constriction range coder). Decoding reverses that and runs the VAE decoder: the result is the
model's reconstruction from the quantized latent (lossy; the latent symbols themselves round-trip
exactly).

Payload layout (little-endian), version 1::

    offset size  field
    0      2     magic b"GL"
    2      1     format version (1)
    3      1     flags: bit 0 blend (0 normalized, 1 sum); bit 1 colour channels (0 -> 1, 1 -> 3)
    4      8     model id: the first 8 bytes of the model's SHA-256 fingerprint (:func:`model_fingerprint`)
    12     4     quantization step (float32)
    16     2     latent dimensions D (uint16)
    18     2     Gaussians N (uint16)
    20     ...   range-coded symbols (constriction's 32-bit words, little-endian, up to 3 trailing
                 zero bytes dropped; see :mod:`.entropy`)
    end-4  4     CRC-32 of everything before it

Overhead is 24 bytes. Version 2 holds one latent per tile of a picture (:mod:`.tiles`): the same
fields, then at offset 20 the grid's rows, columns and overlap (in 1/256 of a cell; one byte each),
then the symbols of the ``rows * cols`` latents (row-major) in one range-coded stream, then the
CRC-32 (27 bytes of overhead in all). It decodes into ``rows * cols * N`` Gaussians in picture coordinates. One
latent is always written as version 1.

The memory's ``model_id`` string is the model id in hex (16 characters,
:attr:`LatentModelBundle.model_id`).

Model files: a normal VAE model file (:func:`gaussvae_ros.vae.save_model`) plus an
``"entropy_model"`` entry (plain tensors, ``torch.load(..., weights_only=True)``), written by
:func:`save_bundle` / :func:`attach_entropy_model` / :func:`build_bundle_file` (also
``python -m gaussvae_ros.vae.latent_codec MODEL [--params SET] [--out FILE]``, which prints the
model id) and read by :func:`load_bundle`. The fingerprint hashes what decoding depends on
(config, transform settings and statistics, weights, entropy parameters), not the file bytes, so
re-saving a model keeps its id.

Recall: ``gaussvae_ros.nodes.codecs`` registers codec id ``vae-latent`` and decodes through
:func:`decode_memory`, which looks the memory's model id up among the models registered with
:func:`register_latent_model` or listed (files or directories of ``*.pt``) in the environment
variable ``GAUSSVAE_LATENT_MODELS`` (``os.pathsep``-separated), and refuses unknown ids with
:class:`~gaussvae_ros.nodes.codecs.ModelMismatchError`.

Rate control: a larger ``step`` gives fewer bytes and a coarser latent; :func:`encode_to_budget`
picks the finest step of a ladder whose payload fits a byte budget; the tile grid is chosen by the
image-level encoder (:mod:`.image_encoder`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import sys
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gaussvae_ros.core import Gaussians, morton_order

from .checkpoint import MODEL_FORMAT, CHECKPOINT_FORMAT, VERSION as MODEL_VERSION
from .checkpoint import _atomic_save, _check_format, _model_entries, _rebuild, _safe_load, hash_tensor
from .config import ExperimentConfig
from . import refine
from .entropy import EntropyModel, check_step
from .params import ParamTransform
from .tiles import OVERLAP_UNITS, TileGrid

__all__ = [
    "CODEC_ID", "DEFAULT_STEP", "DEFAULT_STEPS", "LatentModelBundle", "attach_entropy_model", "build_bundle_file",
    "decode_latent", "decode_memory", "default_model_path", "encode_latent", "encode_to_budget",
    "find_latent_model", "fit_entropy_model", "load_default_bundle",
    "latent_of", "load_bundle", "make_bundle", "model_fingerprint", "payload_info", "register_latent_model",
    "save_bundle",
]

CODEC_ID = "vae-latent"
#: File name of the shipped model in ``gaussvae_ros/models/`` (:func:`default_model_path`).
DEFAULT_MODEL_FILE = "gaussvae_latent_default.pt"
MAGIC = b"GL"
FORMAT_VERSION = 1
TILED_VERSION = 2
_HEADER = struct.Struct("<2sBB8sfHH")
_HEADER_V2 = struct.Struct("<2sBB8sfHHBBB")  # version 1 + tile grid rows, cols, overlap
_CRC = struct.Struct("<I")
ENV_MODELS = "GAUSSVAE_LATENT_MODELS"

#: Default quantization step (in units of the per-dimension posterior std, see :mod:`.entropy`).
DEFAULT_STEP = 1.0
#: Quantization steps an encoder may be asked for: finer ones make symbols too large to code, coarser
#: ones code every latent as zeros.
ENCODE_STEP_RANGE = (2.0 ** -10, 2.0 ** 10)
#: Step ladder of :func:`encode_to_budget`, finest first: 2^(k/2) for k = -8..12 (1/16 .. 64).
DEFAULT_STEPS = tuple(float(np.float32(2.0 ** (k / 2))) for k in range(-8, 13))


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


# ---------------------------------------------------------------------------------------- model files


def save_bundle(path: str | Path, model: nn.Module, config: ExperimentConfig, transform: ParamTransform,
                slot_mean: np.ndarray, entropy: EntropyModel) -> Path:
    """Write a model file with an ``"entropy_model"`` entry (loadable by :func:`load_model` too)."""
    path = Path(path)
    _atomic_save({"format": MODEL_FORMAT, "version": MODEL_VERSION,
                  **_model_entries(model, config, transform, slot_mean), "entropy_model": entropy.state()}, path)
    return path


def attach_entropy_model(model_path: str | Path, entropy: EntropyModel, out_path: str | Path | None = None) -> Path:
    """Add (or replace) the entropy model of an existing model file or training checkpoint; the
    result (``out_path``, default: in place) is a model file (optimizer and RNG state dropped)."""
    model_path = Path(model_path)
    obj = _safe_load(model_path)
    _check_format(obj, model_path, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    model, config, _, _ = _rebuild(obj, model_path)
    if entropy.dim != config.model.latent_dim:
        raise ValueError(f"entropy model is {entropy.dim}-D, {model_path} has a {config.model.latent_dim}-D latent")
    keep = ("config", "transform", "state_dict", "norm_mean", "norm_std", "slot_mean")
    out = Path(out_path) if out_path is not None else model_path
    _atomic_save({"format": MODEL_FORMAT, "version": MODEL_VERSION, **{k: obj[k] for k in keep},
                  "entropy_model": entropy.state()}, out)
    return out


def load_bundle(path: str | Path) -> LatentModelBundle:
    """Read a model file with an entropy model (ValueError if corrupt or without one)."""
    path = Path(path)
    obj = _safe_load(path)
    _check_format(obj, path, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    model, config, transform, slot_mean = _rebuild(obj, path)
    if "entropy_model" not in obj:
        raise ValueError(f"{path}: model file has no entropy model (fit one with fit_entropy_model and "
                         f"attach_entropy_model)")
    entropy = EntropyModel.from_state(obj["entropy_model"])
    bundle = LatentModelBundle(model, config, transform, entropy, slot_mean)
    bundle.path = path
    return bundle


# ---------------------------------------------------------------------------------------- encoding


def _features(bundle: LatentModelBundle, params: np.ndarray) -> torch.Tensor:
    """Raw parameters ``[M, N, 5 + C]`` -> model input ``[M, F, N]``."""
    return bundle.transform.encode(params).transpose(1, 2).contiguous()


def _check_gaussians(bundle: LatentModelBundle, gaussians: Gaussians) -> None:
    if len(gaussians) != bundle.seq_len:
        raise ValueError(f"model {bundle.model_id} encodes {bundle.seq_len} Gaussians, got {len(gaussians)}")
    model_channels = bundle.transform.color_channels
    if gaussians.channels != model_channels and not (gaussians.channels == 1 and model_channels == 3):
        raise ValueError(f"model {bundle.model_id} encodes {model_channels} colour channel(s), "
                         f"got {gaussians.channels}")
    if len(gaussians) > 0xFFFF or bundle.entropy.dim > 0xFFFF:
        raise ValueError("payload holds at most 65535 Gaussians and latent dimensions")
    gaussians.check_valid()


def _tile_sets(bundle: LatentModelBundle, gaussians, grid: TileGrid | None) -> tuple[list[Gaussians], TileGrid]:
    """``gaussians`` (one set, or one per tile of ``grid``, row-major) checked against the model and grid."""
    sets = [gaussians] if isinstance(gaussians, Gaussians) else list(gaussians)
    grid = grid or TileGrid()
    if len(sets) != grid.count:
        raise ValueError(f"a {grid} tile grid needs {grid.count} Gaussian set(s), got {len(sets)}")
    if len({g.blend for g in sets}) != 1:
        raise ValueError("the tiles' Gaussian sets differ in blend mode")
    if grid.count > 1 and grid.overlap and sets[0].blend == "sum":
        raise ValueError("overlapping tiles need the normalized blend (summed colours would add up where "
                         "tiles overlap); use a grid without overlap")
    return sets, grid  # each set is checked against the model, and their channels, by latent_of


def latent_of(bundle: LatentModelBundle, gaussians) -> np.ndarray:
    """The unquantized latent (posterior mean, float64) of a set of Gaussians: ``[D]``; of a
    sequence of T sets (the tiles of a :class:`~gaussvae_ros.vae.tiles.TileGrid`): ``[T, D]``."""
    sets = [gaussians] if isinstance(gaussians, Gaussians) else list(gaussians)
    for g in sets:
        _check_gaussians(bundle, g)
    if len({g.channels for g in sets}) != 1:
        raise ValueError("the Gaussian sets of one payload must have the same colour channels")
    params = np.stack([g.to_array() for g in sets])  # [T, N, 5 + C]
    if sets[0].channels < bundle.transform.color_channels:  # grey Gaussians through an RGB model: grey = R = G = B
        params = np.concatenate([params] + [params[..., 5:6]] * (bundle.transform.color_channels - 1), axis=-1)
    params = np.take_along_axis(params, morton_order(params[..., :2])[..., None], axis=1)  # each set on its own
    with torch.inference_mode():
        mu, _ = bundle.model.encode(_features(bundle, params))
    mu = mu.double().numpy()
    return mu[0] if isinstance(gaussians, Gaussians) else mu


def _pack(bundle: LatentModelBundle, mu: np.ndarray, step: float, blend: str, channels: int,
          grid: TileGrid | None = None) -> bytes:
    """Payload of latent(s) ``mu`` (``[D]``, or ``[T, D]`` for the T tiles of ``grid``) at ``step``:
    version 1 for one latent, version 2 with the grid for several."""
    step = check_step(step)
    grid = grid or TileGrid()
    symbols = bundle.entropy.quantize(np.reshape(mu, (grid.count, -1)), step, "symbols")
    coded = bundle.entropy.compress(symbols, step)
    flags = (1 if blend == "sum" else 0) | (2 if channels == 3 else 0)
    fields = (flags, bundle.model_hash, step, bundle.entropy.dim, bundle.seq_len)
    if grid.count == 1:
        body = _HEADER.pack(MAGIC, FORMAT_VERSION, *fields) + coded
    else:
        body = _HEADER_V2.pack(MAGIC, TILED_VERSION, *fields, grid.rows, grid.cols, grid.overlap_units) + coded
    return body + _CRC.pack(zlib.crc32(body))


def encode_latent(bundle: LatentModelBundle, gaussians, step: float = DEFAULT_STEP, *,
                  image: np.ndarray | None = None, refine_iters: int = 0, grid: TileGrid | None = None) -> bytes:
    """Encode ``gaussians`` (exactly ``seq_len`` of them, the model's colour channels) to a payload.

    With a tile ``grid`` (:mod:`.tiles`), ``gaussians`` is a sequence of ``grid.count`` sets, each
    fitted to its tile and in the tile's normalized coordinates (row-major); the payload holds one
    latent per tile (format version 2) and decodes into one set in picture coordinates.

    With ``image`` (the picture the Gaussians were fitted to, the whole picture for a grid, see
    :func:`~gaussvae_ros.vae.refine.image_target`) and ``refine_iters > 0``, the latent(s) are
    refined against the image first (:mod:`.refine`); the refined payload is kept only when its
    rendering is closer to the image than the plain one's.
    """
    sets, grid = _tile_sets(bundle, gaussians, grid)
    mu = latent_of(bundle, sets)
    style = (sets[0].blend, sets[0].channels, grid)
    plain = _pack(bundle, mu, step, *style)
    if image is None or refine_iters <= 0:
        return plain
    return _refined(bundle, style, mu, image, refine_iters, (plain, step), [check_step(step)], None)[0]


def encode_to_budget(bundle: LatentModelBundle, gaussians, max_bytes: int,
                     steps=DEFAULT_STEPS, or_smallest: bool = False, *, image: np.ndarray | None = None,
                     refine_iters: int = 0, grid: TileGrid | None = None) -> tuple[bytes, float]:
    """``(payload, step)`` for the finest step in ``steps`` whose payload has at most ``max_bytes``
    bytes (the encoder runs once; each step costs one entropy coding, ~0.1 ms). With
    ``or_smallest``, the smallest payload of the ladder when none fits. ``image``,
    ``refine_iters`` and ``grid`` as in :func:`encode_latent` (the refined latent may move to a
    coarser step of the ladder to stay within ``max_bytes``).

    Raises:
        ValueError: not even the coarsest step fits (and not ``or_smallest``).
    """
    sets, grid = _tile_sets(bundle, gaussians, grid)
    mu = latent_of(bundle, sets)
    style = (sets[0].blend, sets[0].channels, grid)
    ladder = sorted(check_step(s) for s in steps)
    smallest: tuple[bytes, float] | None = None
    chosen: tuple[bytes, float] | None = None
    for step in ladder:
        payload = _pack(bundle, mu, step, *style)
        if len(payload) <= max_bytes:
            chosen = (payload, step)
            break
        if smallest is None or len(payload) < len(smallest[0]):
            smallest = (payload, step)
    if chosen is None:
        if not (or_smallest and smallest is not None):
            raise ValueError(f"no step fits {max_bytes} bytes (smallest payload: "
                             f"{len(smallest[0]) if smallest else '-'} bytes)")
        chosen = smallest
    if image is None or refine_iters <= 0:
        return chosen
    payload, step = chosen
    coarser = [s for s in ladder if s >= step]
    budget = max(max_bytes, len(payload))  # the smallest plain payload bounds an over-budget refinement
    return _refined(bundle, style, mu, image, refine_iters, chosen, coarser, budget)


def _refined(bundle: LatentModelBundle, style: tuple[str, int, TileGrid], mu: np.ndarray, image: np.ndarray,
             iters: int, plain: tuple[bytes, float], steps: list[float], max_bytes: int | None) -> tuple[bytes, float]:
    """``(payload, step)`` of the latent(s) refined at ``plain``'s step (coded at the first of
    ``steps`` that fits ``max_bytes``), or ``plain`` (``mu``'s payload and step) when no refined
    payload fits or the plain one renders closer to the image. ``style``: blend, channels, grid."""
    step = plain[1]
    blend, _, grid = style
    target = refine.image_target(image, bundle.transform.color_channels, refine.long_side_for(grid))
    z = refine.refine_latent(bundle, mu, target, step, iters=iters, blend=blend, grid=grid)
    for refined_step in steps:
        payload = _pack(bundle, z, refined_step, *style)
        if max_bytes is None or len(payload) <= max_bytes:
            break
    else:
        return plain
    entropy = bundle.entropy
    refined_error = refine.latent_error(bundle, entropy.quantize(z, refined_step), target, blend, grid)
    plain_error = refine.latent_error(bundle, entropy.quantize(mu, step), target, blend, grid)
    return (payload, refined_step) if refined_error < plain_error else plain


# ---------------------------------------------------------------------------------------- decoding


def payload_info(data: bytes) -> dict:
    """Check a payload's framing (size, magic, CRC, version) and return its header fields:
    ``model_id`` (hex), ``step``, ``latent_dim``, ``n`` (Gaussians per latent), ``channels``,
    ``blend``, ``grid`` (:class:`~gaussvae_ros.vae.tiles.TileGrid`, 1x1 for version 1),
    ``header_bytes``, ``coded_bytes``. ValueError if it is not an intact ``vae-latent`` payload."""
    data = bytes(data)
    if len(data) < _HEADER.size + _CRC.size:
        raise ValueError(f"vae-latent payload too short ({len(data)} bytes)")
    if data[:2] != MAGIC:
        raise ValueError("not a vae-latent payload (bad magic)")
    (crc,) = _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise ValueError("corrupt vae-latent payload (CRC mismatch)")
    version = data[2]
    if version == FORMAT_VERSION:
        header, grid = _HEADER, TileGrid()
        _, _, flags, model_hash, step, dim, n = header.unpack_from(data)
    elif version == TILED_VERSION:
        header = _HEADER_V2
        if len(data) < header.size + _CRC.size:
            raise ValueError(f"vae-latent payload too short ({len(data)} bytes)")
        _, _, flags, model_hash, step, dim, n, rows, cols, overlap = header.unpack_from(data)
        try:
            grid = TileGrid(rows, cols, overlap / OVERLAP_UNITS)
        except ValueError as exc:
            raise ValueError(f"corrupt vae-latent payload: {exc}") from None
        if grid.count == 1:
            raise ValueError("corrupt vae-latent payload: a version-2 payload with a single tile")
    else:
        raise ValueError(f"vae-latent payload version {version} is not supported (this build reads "
                         f"{FORMAT_VERSION} and {TILED_VERSION})")
    return {"model_id": model_hash.hex(), "step": float(step), "latent_dim": int(dim), "n": int(n),
            "channels": 3 if flags & 2 else 1, "blend": "sum" if flags & 1 else "normalized", "grid": grid,
            "header_bytes": header.size, "coded_bytes": len(data) - header.size - _CRC.size}


def _model_mismatch(message: str) -> ValueError:
    from gaussvae_ros.nodes.codecs import ModelMismatchError

    return ModelMismatchError(message)


def decode_latent(bundle: LatentModelBundle, data: bytes) -> Gaussians:
    """Inverse of :func:`encode_latent` (the VAE's reconstruction of the quantized latent): ``seq_len``
    Gaussians, or ``grid.count * seq_len`` in picture coordinates for a tiled payload.

    Raises:
        ModelMismatchError (a ValueError): the payload was encoded with another model.
        ValueError: corrupt, truncated or inconsistent payload.
    """
    data = bytes(data)
    info = payload_info(data)
    if info["model_id"] != bundle.model_id:
        raise _model_mismatch(f"vae-latent payload was encoded with model {info['model_id']}, "
                              f"not with model {bundle.model_id}")
    model_channels = bundle.transform.color_channels
    if ((info["latent_dim"], info["n"]) != (bundle.entropy.dim, bundle.seq_len)
            or info["channels"] not in ((1, 3) if model_channels == 3 else (1,))):
        raise ValueError(f"vae-latent payload header (D={info['latent_dim']}, N={info['n']}, "
                         f"C={info['channels']}) does not match model {bundle.model_id}")
    step, grid = check_step(info["step"]), info["grid"]
    symbols = bundle.entropy.decompress(data[info["header_bytes"]:-_CRC.size], step, grid.count)
    z = torch.from_numpy(bundle.entropy.dequantize(symbols, step)).float().reshape(grid.count, -1)
    with torch.inference_mode():
        params = bundle.transform.decode(bundle.model.decode(z).transpose(1, 2))
        params = (params[0] if grid.count == 1 else grid.params_to_picture(params.double())).float().numpy()
    if not np.isfinite(params).all():
        raise ValueError("vae-latent payload decodes to non-finite Gaussians (corrupt latent?)")
    if info["channels"] < model_channels:  # a grey memory: its luma
        params = np.concatenate([params[:, :5], params[:, 5:].mean(axis=1, keepdims=True)], axis=1)
    return Gaussians.from_array(params, blend=info["blend"])


# ---------------------------------------------------------------------------------------- fitting


def fit_entropy_model(model: nn.Module, transform: ParamTransform, params: np.ndarray, *, unit: str = "posterior",
                      batch_size: int = 256, **kwargs) -> EntropyModel:
    """Fit an :class:`EntropyModel` on the latents of training parameters ``[M, N, 5 + C]``
    (Morton-sorted, as in training). Returns it updated."""
    model = getattr(model, "module", model).eval()
    params = np.asarray(params, dtype=np.float32)
    mus, logvars = [], []
    with torch.inference_mode():
        for start in range(0, params.shape[0], batch_size):
            x = transform.encode(params[start:start + batch_size]).transpose(1, 2).contiguous()
            mu, logvar = model.encode(x)
            mus.append(mu.double())
            logvars.append(logvar.double())
    return EntropyModel.fit(torch.cat(mus), torch.cat(logvars), unit=unit, **kwargs).update()


def build_bundle_file(model_path: str | Path, params_path: str | Path | None = None,
                      out_path: str | Path | None = None, *, max_samples: int | None = None,
                      unit: str = "posterior", seed: int = 0) -> LatentModelBundle:
    """Fit an entropy model on the training split (the model config's split) of ``params_path``
    (default: the config's ``data.path``), at most ``max_samples`` of them drawn at random, and
    write the model file with it to ``out_path`` (default: in place). Returns the loaded bundle."""
    from .data import load_param_set, split_indices
    from .checkpoint import load_model

    model_path = Path(model_path)
    model, config, transform, _ = load_model(model_path)
    params = load_param_set(params_path or config.data.path)
    train = split_indices(len(params), config.data.val_fraction, config.data.test_fraction,
                          config.data.split_seed)["train"]
    if max_samples is not None and max_samples < len(train):
        train = np.sort(np.random.default_rng(seed).choice(train, max_samples, replace=False))
    entropy = fit_entropy_model(model, transform, params[train], unit=unit)
    out = attach_entropy_model(model_path, entropy, out_path)
    return load_bundle(out)


# ---------------------------------------------------------------------------------------- recall registry

_MODELS: dict[str, LatentModelBundle] = {}
_MODELS_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FileRead:
    """A model file as last read: its ``(mtime_ns, size)`` then (None: missing) and the bundle, or
    why it could not be loaded. A file is read again once its state changes (deployed after
    start-up, repaired, replaced in place), never otherwise."""

    state: tuple[int, int] | None
    bundle: LatentModelBundle | None = None
    error: str = ""


_FILES: dict[Path, _FileRead] = {}


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _read_model_file(path: Path) -> LatentModelBundle:
    """The bundle of model file ``path`` (resolved), read again only if the file changed since it was
    last read; registered. ValueError / OSError (remembered until the file changes) if it cannot load."""
    state = _file_state(path)
    with _MODELS_LOCK:
        read = _FILES.get(path)
    if read is None or read.state != state:
        try:
            read = _FileRead(state, load_bundle(path))
        except (ValueError, OSError) as exc:
            read = _FileRead(state, error=str(exc))
        with _MODELS_LOCK:
            _FILES[path] = read
    if read.bundle is None:
        raise ValueError(read.error)
    with _MODELS_LOCK:
        _MODELS[read.bundle.model_id] = read.bundle
    return read.bundle


def register_latent_model(bundle: LatentModelBundle | str | Path) -> LatentModelBundle:
    """Make a model (bundle or model file) available to :func:`decode_memory`; returns the bundle.
    A file already loaded in this process is not read again unless it changed since (then the new
    contents are loaded and registered too; the old model id stays decodable in this process)."""
    if isinstance(bundle, LatentModelBundle):
        with _MODELS_LOCK:
            _MODELS[bundle.model_id] = bundle
        return bundle
    path = Path(bundle).expanduser().resolve()
    if _file_state(path) is None:
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return _read_model_file(path)


def unregister_latent_model(model_id: str) -> None:
    """Forget a model id and that its file was read (no-op if unknown): a later lookup loads the
    file again if it is listed."""
    with _MODELS_LOCK:
        _MODELS.pop(model_id, None)
        for path in [p for p, read in _FILES.items() if read.bundle is not None and read.bundle.model_id == model_id]:
            del _FILES[path]


def model_files(entry: str | Path) -> list[Path]:
    """The model files an entry of ``$GAUSSVAE_LATENT_MODELS`` or of the recall node's
    ``latent_models`` names: the file, or every ``*.pt`` in a folder."""
    path = Path(entry).expanduser()
    return sorted(path.glob("*.pt")) if path.is_dir() else [path]


def _env_model_files() -> list[Path]:
    return [f for entry in os.environ.get(ENV_MODELS, "").split(os.pathsep) if entry.strip()
            for f in model_files(entry.strip())]


def default_model_path() -> Path:
    """The model file shipped with the package (its model card is ``MODEL_CARD.md`` beside it)."""
    return Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_FILE


def load_default_bundle() -> LatentModelBundle:
    """The shipped model, loaded once per process and registered for recall."""
    return register_latent_model(default_model_path())


def find_latent_model(model_id: str) -> LatentModelBundle:
    """The registered model of ``model_id``, loading on demand the shipped model, the models named by
    ``$GAUSSVAE_LATENT_MODELS`` and model files read before that changed since (a model file rewritten
    in place, e.g. by the entropy fitter); a file that cannot be loaded is logged, and tried again
    once it changes. Raises ModelMismatchError if no model has that id."""
    with _MODELS_LOCK:
        if model_id in _MODELS:
            return _MODELS[model_id]
        known_files = list(_FILES)
    candidates = [p.expanduser().resolve() for p in [default_model_path()] + _env_model_files()] + known_files
    for path in dict.fromkeys(candidates):
        state = _file_state(path)
        with _MODELS_LOCK:
            unchanged = path in _FILES and _FILES[path].state == state
        if unchanged:
            continue
        try:
            _read_model_file(path)
        except (ValueError, OSError) as exc:
            if state is not None or path != default_model_path():  # a build without a shipped model is normal
                _log.warning("cannot load VAE latent model %s: %s", path, exc)
        with _MODELS_LOCK:
            if model_id in _MODELS:
                return _MODELS[model_id]
    with _MODELS_LOCK:
        known = ", ".join(sorted(_MODELS)) or "none"
        failed = "; ".join(f"{p}: {read.error}" for p, read in sorted(_FILES.items()) if read.error)
    raise _model_mismatch(f"no VAE latent model with id {model_id!r} is loaded (known: {known}); register it "
                          f"with register_latent_model() or list its file in ${ENV_MODELS}"
                          + (f" (could not load: {failed})" if failed else ""))


def decode_memory(payload: bytes, model_id: str) -> Gaussians:
    """Registry entry point (``decode(payload, model_id)``): decode with the model named by the memory."""
    if not model_id:
        raise _model_mismatch(f"codec {CODEC_ID!r} needs a model id, the memory names none")
    return decode_latent(find_latent_model(model_id), payload)


def main(argv=None) -> int:
    """``python -m gaussvae_ros.vae.latent_codec MODEL [--params SET] [--out FILE]``: fit and attach
    the entropy model, print the model id (the ``model_id`` of ``vae-latent`` memories)."""
    import argparse

    ap = argparse.ArgumentParser(description="fit a VAE model's latent entropy model and store it in the model file")
    ap.add_argument("model", help="model file or training checkpoint")
    ap.add_argument("--params", help="parameter set (default: the config's data.path)")
    ap.add_argument("--out", help="output model file (default: rewrite MODEL)")
    ap.add_argument("--max-samples", type=int, default=None, help="training samples to fit on (default: all)")
    ap.add_argument("--unit", default="posterior", choices=["posterior", "latent"])
    args = ap.parse_args(argv)
    try:
        bundle = build_bundle_file(args.model, args.params, args.out, max_samples=args.max_samples, unit=args.unit)
    except (ValueError, OSError) as exc:  # a damaged or missing model or parameter set: said, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(bundle.model_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
