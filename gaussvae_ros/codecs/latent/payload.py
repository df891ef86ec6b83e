"""The ``vae-latent`` payload codec: a memory stored as its entropy-coded VAE latent.

Encoding: Morton-sort the Gaussians, standardize them (:class:`~gaussvae_ros.vae.ParamTransform`),
run the VAE encoder, take the posterior mean ``mu`` as the latent, quantize it with the step
``step`` and entropy-code the symbols with the model's :class:`~gaussvae_ros.codecs.latent.entropy.EntropyModel`
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

Model files (:mod:`.bundle`): a normal VAE model file (:func:`gaussvae_ros.vae.save_model`) plus an
``"entropy_model"`` entry (plain tensors, ``torch.load(..., weights_only=True)``), written by
:func:`~.bundle.save_bundle` / :func:`~.bundle.attach_entropy_model` /
:func:`~.entropy_fit.build_bundle_file` (also
``python -m gaussvae_ros.codecs.latent MODEL [--params SET] [--out FILE]``, which prints the
model id) and read by :func:`~.bundle.load_bundle`. The fingerprint hashes what decoding depends on
(config, transform settings and statistics, weights, entropy parameters), not the file bytes, so
re-saving a model keeps its id.

Recall: :mod:`gaussvae_ros.codecs.registry` registers codec id ``vae-latent`` and decodes through
:func:`~.model_registry.decode_memory`, which looks the memory's model id up among the models
registered with :func:`~.model_registry.register_latent_model` or listed (files or directories of
``*.pt``) in the environment variable ``GAUSSVAE_LATENT_MODELS`` (``os.pathsep``-separated), and
refuses unknown ids with :class:`~gaussvae_ros.codecs.errors.ModelMismatchError`.

Rate control: a larger ``step`` gives fewer bytes and a coarser latent; :func:`encode_to_budget`
picks the finest step of a ladder whose payload fits a byte budget; the tile grid is chosen by the
image-level encoder (:mod:`.image_encoder`).
"""


from __future__ import annotations

import struct
import zlib

import numpy as np
import torch

from gaussvae_ros.core import Gaussians, morton_order

from ..errors import ModelMismatchError
from . import refine
from .bundle import LatentModelBundle
from .entropy import check_step
from .tiles import OVERLAP_UNITS, TileGrid

__all__ = [
    "CODEC_ID", "DEFAULT_STEP", "DEFAULT_STEPS", "ENCODE_STEP_RANGE", "decode_latent", "encode_latent",
    "encode_to_budget", "latent_of", "payload_info",
]

CODEC_ID = "vae-latent"
MAGIC = b"GL"
FORMAT_VERSION = 1
TILED_VERSION = 2
_HEADER = struct.Struct("<2sBB8sfHH")
_HEADER_V2 = struct.Struct("<2sBB8sfHHBBB")  # version 1 + tile grid rows, cols, overlap
_CRC = struct.Struct("<I")

#: Default quantization step (in units of the per-dimension posterior std, see :mod:`.entropy`).
DEFAULT_STEP = 1.0
#: Quantization steps an encoder may be asked for: finer ones make symbols too large to code, coarser
#: ones code every latent as zeros.
ENCODE_STEP_RANGE = (2.0 ** -10, 2.0 ** 10)
#: Step ladder of :func:`encode_to_budget`, finest first: 2^(k/2) for k = -8..12 (1/16 .. 64).
DEFAULT_STEPS = tuple(float(np.float32(2.0 ** (k / 2))) for k in range(-8, 13))


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
    sequence of T sets (the tiles of a :class:`~gaussvae_ros.codecs.latent.tiles.TileGrid`): ``[T, D]``."""
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
    :func:`~gaussvae_ros.codecs.latent.refine.image_target`) and ``refine_iters > 0``, the latent(s) are
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
    ``blend``, ``grid`` (:class:`~gaussvae_ros.codecs.latent.tiles.TileGrid`, 1x1 for version 1),
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
        raise ModelMismatchError(f"vae-latent payload was encoded with model {info['model_id']}, "
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

