"""Payload decoding for recall: one registry keyed by the memory's codec id (ROS-free).

Every stored memory names the format of its payload (``codec_id``) and, when the format needs a
trained model to decode, the model or checkpoint (``model_id``). Recall goes through
:func:`decode_payload` only, which looks the codec up here and refuses what it cannot decode
with a clear error instead of guessing:

* an unknown codec id raises :class:`UnknownCodecError` (listing the codecs this process knows);
* a model id the codec does not accept raises :class:`ModelMismatchError`;
* a corrupt payload raises ``ValueError`` from the codec itself.

Built in: ``gaussians-q`` (:data:`gaussvae_ros.store.DEFAULT_CODEC`), quantized Gaussians from
:func:`gaussvae_ros.core.encode_gaussians`; it needs no model, so its model id must be empty.
``vae-latent``: an entropy-coded VAE latent (:mod:`gaussvae_ros.codecs.latent`), decoded with the
model whose id (hash) the memory names.

Adding a codec (e.g. VAE latents decoded by a checkpoint)::

    from gaussvae_ros.codecs.registry import register_codec

    def decode_latent(payload: bytes, model_id: str) -> Gaussians:
        model = load_checkpoint_by_id(model_id)   # raise ModelMismatchError for an unknown id
        return model.decode(payload)

    register_codec("vae-latent-v1", decode_latent, model_ids=None)  # None: the decoder checks ids

The recall node imports the modules named in its ``codec_modules`` parameter at start-up, so a
module that calls :func:`register_codec` at import time plugs a codec in without touching the node.

``gaussians-rd``: rate-distortion-optimized, entropy-coded Gaussians
(:mod:`gaussvae_ros.codecs.gaussians_rd`), no model.

Encoding (the encoder node and ``gaussvae replay``): :func:`payload_encoder` returns a
:class:`PayloadEncoder` for a codec id: ``gaussians-rd`` (a byte budget per memory; it fits the
frame itself), ``gaussians-q`` (no model) or ``vae-latent`` with a model file (default: the model
shipped in ``gaussvae_ros/models/``, registered for recall in the same process), at a fixed
quantization step or at the finest step that fits a byte budget.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from gaussvae_ros.core import FitConfig, decode_gaussians, encode_gaussians, encoded_size
from gaussvae_ros.core.render import render_uint8
from gaussvae_ros.store.records import DEFAULT_CODEC

from . import gaussians_rd as rd
from . import latent as lc
from .errors import ModelMismatchError, UnknownCodecError
from .latent import image_encoder

__all__ = [
    "ENCODABLE_CODECS", "LATENT_TILE_SETTINGS", "ModelMismatchError", "PayloadCodec", "PayloadEncoder",
    "UnknownCodecError", "decode_payload", "known_codecs", "payload_encoder", "register_codec", "render_memory",
    "unregister_codec",
]


@dataclass(frozen=True)
class PayloadCodec:
    """A registered payload format.

    Attributes:
        codec_id: the id stored with each memory (``MemoryRecord.codec_id``).
        decode: ``decode(payload, model_id) -> Gaussians``; raises ``ValueError`` on corrupt data.
        model_ids: model ids accepted; ``frozenset({""})`` for a codec that needs no model; ``None``
            to let ``decode`` check the id itself (raising :class:`ModelMismatchError`).
        description: one line for error messages and logs.
    """

    codec_id: str
    decode: Callable
    model_ids: frozenset | None
    description: str = ""


_REGISTRY: dict[str, PayloadCodec] = {}
_LOCK = threading.Lock()


def register_codec(codec_id: str, decode: Callable, *, model_ids: Iterable[str] | None = ("",),
                   description: str = "", replace: bool = False) -> PayloadCodec:
    """Register ``decode`` for payloads of ``codec_id`` (see the module docstring).

    Raises:
        ValueError: empty codec id, or the id is registered already and ``replace`` is false.
    """
    if not isinstance(codec_id, str) or not codec_id:
        raise ValueError(f"codec id must be a non-empty string, got {codec_id!r}")
    if not callable(decode):
        raise ValueError(f"decoder of codec {codec_id!r} is not callable")
    codec = PayloadCodec(codec_id, decode, None if model_ids is None else frozenset(model_ids), description)
    with _LOCK:
        if codec_id in _REGISTRY and not replace:
            raise ValueError(f"codec {codec_id!r} is registered already")
        _REGISTRY[codec_id] = codec
    return codec


def unregister_codec(codec_id: str) -> None:
    """Remove a codec (tests; a no-op for an unknown id)."""
    with _LOCK:
        _REGISTRY.pop(codec_id, None)


def known_codecs() -> list[str]:
    """Registered codec ids, sorted."""
    with _LOCK:
        return sorted(_REGISTRY)


def decode_payload(payload: bytes, codec_id: str, model_id: str = ""):
    """Decode a stored payload into :class:`~gaussvae_ros.core.Gaussians` through its codec.

    Raises:
        UnknownCodecError: ``codec_id`` is not registered.
        ModelMismatchError: the codec does not accept ``model_id``.
        ValueError: the payload is corrupt: not bytes (a row stored with another SQLite type, e.g.
            TEXT), undecodable, or decoding to values outside the format's ranges (NaN, Inf,
            non-positive scales), whatever the codec's own checks let through.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        kinds = {str: "TEXT", int: "INTEGER", float: "REAL", type(None): "NULL"}
        kind = kinds.get(type(payload), type(payload).__name__)
        raise ValueError(f"corrupt payload: stored as {kind}, not as bytes (BLOB)")
    with _LOCK:
        codec = _REGISTRY.get(codec_id)
    if codec is None:
        raise UnknownCodecError(f"unknown codec id {codec_id!r}; this process decodes: "
                                f"{', '.join(known_codecs()) or 'nothing'}")
    if codec.model_ids is not None and model_id not in codec.model_ids:
        if codec.model_ids == frozenset({""}):
            raise ModelMismatchError(f"codec {codec_id!r} takes no model, but the memory names model {model_id!r}")
        wanted = ", ".join(repr(m) for m in sorted(codec.model_ids))
        raise ModelMismatchError(f"codec {codec_id!r} cannot decode with model {model_id!r} (accepts {wanted})")
    try:
        gaussians = codec.decode(bytes(payload), model_id)
    except (TypeError, IndexError, KeyError, OverflowError, struct.error, zlib.error) as exc:
        raise ValueError(f"corrupt {codec_id} payload ({type(exc).__name__}: {exc})") from exc
    check_valid = getattr(gaussians, "check_valid", None)
    if check_valid is not None:
        check_valid(f"corrupt {codec_id} payload: the decoded Gaussians")
    return gaussians


def render_memory(payload: bytes, codec_id: str, model_id: str, width: int, height: int, *,
                  threads: int | None = None, device: str = "cpu") -> np.ndarray:
    """Decode a payload and render it at ``width x height`` pixels.

    Returns:
        uint8 ``[H, W]`` for a gray memory, ``[H, W, 3]`` RGB for a colour one.
    """
    gaussians = decode_payload(payload, codec_id, model_id)
    return render_uint8(gaussians, int(height), int(width), threads=threads, device=device)  # bounded memory


#: Codec ids :func:`payload_encoder` can encode with.
ENCODABLE_CODECS = ("gaussians-rd", "gaussians-q", "vae-latent")
#: ``tiles`` settings of :func:`payload_encoder`: 0 (per frame) or a count of
#: :data:`gaussvae_ros.codecs.latent.tiles.TILE_COUNTS` (listed here so that checking a setting needs no torch).
LATENT_TILE_SETTINGS = (0, 1, 2, 4, 8, 16)


@dataclass(frozen=True)
class PayloadEncoder:
    """How new memories are encoded: ``encode(gaussians, image=None, *, fit=None) -> bytes``
    (``image``: the picture the Gaussians were fitted to, ``[H, W]`` or ``[H, W, C]``, or None;
    codecs that do not look at it ignore it; ``fit``: the :class:`~gaussvae_ros.core.FitConfig` the
    Gaussians were fitted with, used for any fitting the codec does itself (tiles; None: the
    fitter's defaults)), stored with ``codec_id`` and ``model_id`` so that recall finds the decoder.
    ``n_gaussians``: the count the codec needs (0: any). ``payload_bytes(n_gaussians)``: the
    typical payload size of a memory (bytes, for RGB frames; ``None``: unknown), which sizes a new
    store's pages (:func:`gaussvae_ros.store.page_size_for_payload`).

    ``encode_frame``: set for codecs that fit the frame themselves (``gaussians-rd``: the number of
    Gaussians follows from the byte budget): ``encode_frame(image, init=None, *, fit=None) ->
    (payload, decoded Gaussians)``, ``init`` a warm start; the pipeline then skips its own fit."""

    codec_id: str
    model_id: str
    encode: Callable
    description: str = ""
    n_gaussians: int = 0
    payload_bytes: Callable[[int], int | None] = lambda n_gaussians: None
    encode_frame: Callable | None = None

    def check_count(self, n_gaussians: int) -> None:
        """ValueError unless memories of ``n_gaussians`` Gaussians can be encoded."""
        if self.n_gaussians and int(n_gaussians) != self.n_gaussians:
            raise ValueError(f"{self.description} encodes {self.n_gaussians} Gaussians per memory, "
                             f"n_gaussians is {n_gaussians}")


def payload_encoder(codec_id: str = "gaussians-q", model: str = "", step: float = 0.0,
                    max_bytes: int = 0, refine_iters: int = 0, tiles: int = 1) -> PayloadEncoder:
    """An encoder for ``codec_id`` (one of :data:`ENCODABLE_CODECS`).

    ``vae-latent`` options: ``model`` the model file (``""``: the shipped one,
    :func:`gaussvae_ros.codecs.latent.default_model_path`); ``max_bytes > 0`` encodes each memory
    at the finest quantization step whose payload fits (the coarsest step when none does: a memory
    is never dropped for its size); otherwise ``step`` (``0``: the codec's default);
    ``refine_iters > 0`` refines each latent against the image it was fitted to
    (:mod:`gaussvae_ros.codecs.latent.refine`: ~10 ms per iteration on one core, better pictures for the same
    bytes). ``tiles > 1`` codes each frame as that many tiles, one latent each
    (:mod:`gaussvae_ros.codecs.latent.tiles`: more Gaussians for larger budgets; each tile is fitted
    again with the ``fit`` settings ``encode`` is given, those of the frame's own fit); ``tiles = 0``
    chooses per frame among :data:`gaussvae_ros.codecs.latent.image_encoder.AUTO_TILES` the grid whose
    decoding is closest to the frame within ``max_bytes`` (required then;
    :func:`gaussvae_ros.codecs.latent.image_encoder.encode_image`). Tiled encoding needs the frame. Grey
    Gaussians go through an RGB model as R = G = B and come back grey.

    Raises:
        UnknownCodecError: a codec id that cannot be encoded.
        ValueError: options that do not fit the codec, an unreadable model file.
    """
    if codec_id == rd.CODEC_ID:
        return _rd_encoder(max_bytes, model, step, refine_iters, tiles)
    if codec_id == "gaussians-q":
        if model or step or max_bytes or refine_iters or tiles != 1:
            raise ValueError("codec 'gaussians-q' takes no model, step, byte budget, refinement or tiles")

        def encode_quantized(gaussians, image=None, *, fit: FitConfig | None = None) -> bytes:
            return encode_gaussians(gaussians)  # no fitting of its own

        return PayloadEncoder(codec_id, "", encode_quantized,
                              "quantized Gaussians (12/8/8/8 bits)",
                              payload_bytes=lambda n_gaussians: encoded_size(int(n_gaussians), 3))
    if codec_id != "vae-latent":
        raise UnknownCodecError(f"cannot encode with codec {codec_id!r}; choose one of {', '.join(ENCODABLE_CODECS)}")
    if step < 0 or max_bytes < 0 or refine_iters < 0:
        raise ValueError(f"step, max_bytes and refine_iters must be >= 0, got {step}, {max_bytes}, {refine_iters}")
    candidates = image_encoder.tile_candidates(tiles)
    if len(candidates) > 1 and not max_bytes:
        raise ValueError("choosing the tile count per frame (tiles 0) needs a byte budget (max_bytes > 0)")

    try:
        bundle = lc.register_latent_model(model or lc.default_model_path())
    except FileNotFoundError as exc:
        raise ValueError(f"VAE latent model file not found: {exc.filename or model}") from None
    step = lc.check_step(step or lc.DEFAULT_STEP)
    low, high = lc.ENCODE_STEP_RANGE  # refused here, not by every frame's encode
    if not low <= step <= high:
        raise ValueError(f"vae-latent step must be 0 (the default) or in [{low:g}, {high:g}] (units of the latent's "
                         f"posterior standard deviation), got {step:g}")

    def encode(gaussians, image=None, *, fit: FitConfig | None = None) -> bytes:
        # without an image (or iterations) nothing is refined
        if candidates != (1,):
            if image is None:
                raise ValueError("tiled vae-latent encoding needs the frame (each tile is fitted on its own)")
            fit_tile = lambda pixels: image_encoder.fit_tile(pixels, bundle.seq_len, fit)  # noqa: E731
            return image_encoder.encode_image(bundle, image, tiles=candidates, gaussians=gaussians,
                                              max_bytes=max_bytes, step=step, refine_iters=refine_iters,
                                              fit=fit_tile).payload
        if not max_bytes:
            return lc.encode_latent(bundle, gaussians, step, image=image, refine_iters=refine_iters)
        return lc.encode_to_budget(bundle, gaussians, max_bytes, or_smallest=True, image=image,
                                   refine_iters=refine_iters)[0]

    rate = f"<= {max_bytes} B" if max_bytes else f"step {step:g}"
    if refine_iters:
        rate += f", refined {refine_iters} iterations"
    if candidates != (1,):
        rate += f", tiles {'/'.join(map(str, candidates))}"
    return PayloadEncoder(codec_id, bundle.model_id, encode, f"VAE latent (model {bundle.model_id}, {rate})",
                          bundle.seq_len, payload_bytes=lambda n_gaussians: max_bytes or None)


def _rd_encoder(max_bytes: int, model: str, step: float, refine_iters: int, tiles: int) -> PayloadEncoder:
    """``gaussians-rd`` at ``max_bytes`` per memory (see :func:`payload_encoder`)."""
    if model or step or refine_iters or tiles != 1:
        raise ValueError(f"codec {rd.CODEC_ID!r} takes a byte budget only (no model, step, refinement or tiles)")
    if not rd.MIN_BUDGET <= max_bytes <= rd.MAX_BUDGET:
        raise ValueError(f"codec {rd.CODEC_ID!r} needs a byte budget per memory in {rd.MIN_BUDGET}..{rd.MAX_BUDGET}, "
                         f"got {max_bytes}")

    def encode_frame(image, init=None, *, fit: FitConfig | None = None):
        config = rd.RDConfig.from_fit(fit)
        result = rd.encode_image(image, max_bytes, config, init=init)
        return result.payload, result.gaussians

    def encode(gaussians, image=None, *, fit: FitConfig | None = None) -> bytes:
        if image is None:
            raise ValueError(f"codec {rd.CODEC_ID!r} fits the frame itself: it needs the image")
        return encode_frame(image, gaussians, fit=fit)[0]

    return PayloadEncoder(rd.CODEC_ID, "", encode, f"entropy-coded Gaussians (<= {max_bytes} B)",
                          payload_bytes=lambda n_gaussians: max_bytes, encode_frame=encode_frame)


def _decode_quantized_gaussians(payload: bytes, model_id: str):
    return decode_gaussians(payload)


def _decode_rd_gaussians(payload: bytes, model_id: str):
    return rd.decode(payload).gaussians


def _register_builtins() -> None:
    register_codec(DEFAULT_CODEC, _decode_quantized_gaussians, model_ids=("",), replace=True,
                   description="quantized 2D Gaussians (gaussvae_ros.core.codec), no model")
    register_codec(rd.CODEC_ID, _decode_rd_gaussians, model_ids=("",), replace=True,
                   description="entropy-coded 2D Gaussians (gaussvae_ros.codecs.gaussians_rd), no model")
    register_codec(lc.CODEC_ID, lc.decode_memory, model_ids=None, replace=True,
                   description="entropy-coded VAE latent (gaussvae_ros.codecs.latent), model id = its hash")


_register_builtins()
