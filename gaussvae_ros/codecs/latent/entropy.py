"""Factorized entropy model for VAE latents (CompressAI style, kept apart from the VAE).

A latent vector ``z [D]`` (the encoder's posterior mean ``mu``) is quantized per dimension with
a step ``delta_d = step * unit_d`` around the dimension's training mean ``m_d``::

    q_d = round((z_d - m_d) / delta_d)          # integer symbol
    z_hat_d = m_d + q_d * delta_d               # dequantized latent

``step`` is the rate-control knob (one number per payload, written to its header); ``unit_d`` is
a fixed per-dimension scale fitted with the model: the geometric mean over the training set of the
posterior standard deviation ``exp(logvar / 2)`` (``unit="posterior"``: a step of 1 then adds
uniform noise of 0.29 posterior standard deviations, noise the decoder was trained to tolerate,
and inactive dimensions, whose posterior is the prior, cost nothing), or 1 (``unit="latent"``).

The prior of each symbol is a per-dimension Gaussian fitted to the training latents
(``N(0, s_d)`` with ``s_d = sqrt((std_d / delta_d)^2 + min_std^2)`` in symbol units), quantized
to unit bins: :class:`constriction.stream.model.QuantizedGaussian` over ``[-R, R]``
(``R = max_symbol``, leaky, so every symbol of the range stays encodable). The symbols are coded
with constriction's range coder (``queue.RangeEncoder``), one batch call per vector. The coded
bytes are its 32-bit words, little-endian, with up to three trailing zero bytes dropped (the
decoder pads to whole words again).

Escapes: a symbol with ``|q| >= R`` is coded as ``±R`` (the range ends carry the clipped tail
mass), followed, after all ``D`` main symbols, by its excess ``|q| - R`` as an Elias-gamma code
(a ``Uniform(32)`` bit count, then the bits in 16-bit ``Uniform(65536)`` chunks). The round
trip is exact for any finite symbol up to ``2^31``; larger values raise ``ValueError``.

Life cycle (as in CompressAI): :meth:`EntropyModel.fit` (or :meth:`from_state`) sets the
parameters, :meth:`EntropyModel.update` freezes them into the float64 arrays the coder uses;
:meth:`quantize` (except ``mode="noise"``), :meth:`compress` and :meth:`decompress` raise
``RuntimeError`` until ``update()`` ran. :meth:`state` gives plain tensors + numbers, stored in the
model file under ``"entropy_model"`` and read back with ``torch.load(..., weights_only=True)``.

Determinism: encoder and decoder compute the symbol distributions from the same float32
parameters, the float32 step of the header and the same constriction version (pure Rust, no
platform libm in the coder); a model file therefore decodes identically wherever it is loaded.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from constriction import stream as _stream  # constriction.stream is an attribute, not an importable submodule

cmodel, cqueue = _stream.model, _stream.queue

ENTROPY_FORMAT = "gaussvae-latent-entropy"
ENTROPY_VERSION = 1
UNITS = ("posterior", "latent")
QUANTIZE_MODES = ("noise", "symbols", "dequantize")

#: Default symbol range ``[-R, R]`` (larger magnitudes escape).
DEFAULT_MAX_SYMBOL = 1 << 15
#: Smallest symbol-unit standard deviation of the prior (keeps dead dimensions at ~0 bits while a
#: stray +-1 costs ~21 bits instead of the leaky floor's 24).
DEFAULT_MIN_STD = 0.1
#: Bounds of a fitted per-dimension unit (posterior std).
_UNIT_RANGE = (1e-4, 1e4)
_MAX_ESCAPE = (1 << 31) - 1


def _as_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def check_step(step: float) -> float:
    """``step`` as the float32 value both sides use; ValueError unless finite and > 0."""
    try:
        value = float(np.float32(step))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"quantization step must be a number, got {step!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"quantization step must be finite and > 0, got {step!r}")
    return value


class EntropyModel:
    """Per-dimension Gaussian prior over quantized latents (module docstring).

    Attributes:
        means, stds, units: float32 ``[D]`` fitted parameters.
        min_std: floor of the symbol-unit standard deviation.
        max_symbol: R, the coded symbol range is ``[-R, R]`` (escapes beyond).
    """

    def __init__(self, means, stds, units=None, *, min_std: float = DEFAULT_MIN_STD,
                 max_symbol: int = DEFAULT_MAX_SYMBOL) -> None:
        means = np.asarray(_as_numpy(means), dtype=np.float32).reshape(-1)
        stds = np.asarray(_as_numpy(stds), dtype=np.float32).reshape(-1)
        units = np.ones_like(means) if units is None else np.asarray(_as_numpy(units), dtype=np.float32).reshape(-1)
        if not (means.shape == stds.shape == units.shape) or means.size == 0:
            raise ValueError(f"entropy model parameters need one shape [D], D > 0; got means {means.shape}, "
                             f"stds {stds.shape}, units {units.shape}")
        if not (np.isfinite(means).all() and np.isfinite(stds).all() and np.isfinite(units).all()):
            raise ValueError("entropy model parameters contain NaN or inf")
        if (stds < 0).any() or (units <= 0).any():
            raise ValueError("entropy model stds must be >= 0 and units > 0")
        if not (isinstance(max_symbol, int) and 1 <= max_symbol <= (1 << 20)):
            raise ValueError(f"max_symbol must be an integer in 1..2^20, got {max_symbol!r}")
        if not (math.isfinite(min_std) and min_std > 0):
            raise ValueError(f"min_std must be > 0, got {min_std!r}")
        self.means, self.stds, self.units = means, stds, units
        self.min_std = float(min_std)
        self.max_symbol = int(max_symbol)
        self._frozen: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ fitting and storage

    @classmethod
    def fit(cls, latents, logvar=None, *, unit: str = "posterior", min_std: float = DEFAULT_MIN_STD,
            max_symbol: int = DEFAULT_MAX_SYMBOL) -> "EntropyModel":
        """Fit to training latents ``[M, D]`` (posterior means); ``logvar [M, D]`` gives the
        per-dimension unit when ``unit="posterior"`` (without it the unit is 1). Not yet updated."""
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; choose one of {UNITS}")
        z = _as_numpy(latents)
        if z.ndim != 2 or z.shape[0] < 1:
            raise ValueError(f"fit needs latents [M, D] with M >= 1, got shape {z.shape}")
        if not np.isfinite(z).all():
            raise ValueError("training latents contain NaN or inf")
        units = None
        if unit == "posterior" and logvar is not None:
            lv = _as_numpy(logvar)
            if lv.shape != z.shape:
                raise ValueError(f"logvar shape {lv.shape} differs from latents {z.shape}")
            units = np.clip(np.exp(0.5 * lv.mean(0)), *_UNIT_RANGE)  # geometric mean of the posterior std
        return cls(z.mean(0), z.std(0), units, min_std=min_std, max_symbol=max_symbol)

    @property
    def dim(self) -> int:
        return int(self.means.size)

    @property
    def updated(self) -> bool:
        return self._frozen is not None

    def update(self) -> "EntropyModel":
        """Freeze the parameters for coding (call after fitting, loading or editing them); returns self."""
        self._frozen = (self.means.astype(np.float64), self.stds.astype(np.float64), self.units.astype(np.float64))
        return self

    def state(self) -> dict:
        """Plain tensors and numbers (``torch.load(weights_only=True)``-safe)."""
        return {"format": ENTROPY_FORMAT, "version": ENTROPY_VERSION, "kind": "gaussian",
                "means": torch.from_numpy(self.means.copy()), "stds": torch.from_numpy(self.stds.copy()),
                "units": torch.from_numpy(self.units.copy()), "min_std": self.min_std,
                "max_symbol": self.max_symbol}

    @classmethod
    def from_state(cls, state: dict) -> "EntropyModel":
        """Inverse of :meth:`state` (ValueError if malformed). Returns an updated model."""
        if not isinstance(state, dict) or state.get("format") != ENTROPY_FORMAT:
            raise ValueError("not a GaussVAE latent entropy model")
        if not isinstance(state.get("version"), int) or state["version"] > ENTROPY_VERSION:
            raise ValueError(f"entropy model version {state.get('version')!r} is not supported "
                             f"(this reader: {ENTROPY_VERSION})")
        if state.get("kind") != "gaussian":
            raise ValueError(f"unknown entropy model kind {state.get('kind')!r}")
        for key in ("means", "stds", "units"):
            if not torch.is_tensor(state.get(key)):
                raise ValueError(f"entropy model entry {key!r} is missing or not a tensor")
        try:
            model = cls(state["means"], state["stds"], state["units"], min_std=float(state["min_std"]),
                        max_symbol=int(state["max_symbol"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"entropy model is malformed: {exc}") from exc
        return model.update()

    # ------------------------------------------------------------------ quantization

    def _require_update(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._frozen is None:
            raise RuntimeError("entropy model is not updated: call update() after fit() or loading")
        return self._frozen

    def _check_dim(self, z: np.ndarray) -> None:
        if z.shape[-1] != self.dim:
            raise ValueError(f"entropy model is for {self.dim}-D latents, got shape {tuple(z.shape)}")

    def quantize(self, z, step: float, mode: str = "dequantize"):
        """Quantize latents ``[..., D]`` (tensor or array; same kind returned).

        ``noise``: ``z + U(-1/2, 1/2) * delta`` (differentiable training proxy, works before
        ``update()``); ``symbols``: integer symbols ``q`` (int64); ``dequantize``: ``m + q * delta``.
        """
        if mode not in QUANTIZE_MODES:
            raise ValueError(f"unknown quantize mode {mode!r}; choose one of {QUANTIZE_MODES}")
        step = check_step(step)
        if mode == "noise":
            delta = torch.as_tensor(self.units * step, dtype=torch.float32)
            zt = torch.as_tensor(z) if not torch.is_tensor(z) else z
            self._check_dim(zt)
            noise = (torch.rand_like(zt, dtype=zt.dtype) - 0.5) * delta.to(zt.device, zt.dtype)
            out = zt + noise
            return out if torch.is_tensor(z) else out.numpy()
        means, _, units = self._require_update()
        arr = _as_numpy(z)
        self._check_dim(arr)
        delta = units * step
        q = np.rint((arr - means) / delta)
        if mode == "symbols":
            if not np.isfinite(q).all() or np.abs(q).max(initial=0) > _MAX_ESCAPE:
                raise ValueError("latent is not finite or too large for the quantization step")
            q = q.astype(np.int64)
            return torch.from_numpy(q) if torch.is_tensor(z) else q
        out = means + q * delta
        return torch.as_tensor(out, dtype=z.dtype, device=z.device) if torch.is_tensor(z) else out

    def dequantize(self, symbols, step: float) -> np.ndarray:
        """Symbols ``[..., D]`` -> latents (float64 array)."""
        means, _, units = self._require_update()
        q = np.asarray(_as_numpy(symbols))
        self._check_dim(q)
        return means + q * (units * check_step(step))

    def symbol_stds(self, step: float) -> np.ndarray:
        """Prior standard deviation of each dimension's symbol (symbol units, float64 ``[D]``)."""
        _, stds, units = self._require_update()
        return np.sqrt((stds / (units * check_step(step))) ** 2 + self.min_std ** 2)

    def estimated_bits(self, z: torch.Tensor, step: float) -> torch.Tensor:
        """Differentiable estimate of the coded size (bits) of latents ``z [..., D]`` at ``step``:
        ``-log2`` of each dimension's prior mass over the unit bin around ``(z - m) / delta``,
        summed over the last axis (shape ``[...]``). Pair with ``quantize(z, step, "noise")``
        for the training-time proxy of the coder; escapes are not modelled."""
        means, _, units = self._require_update()
        self._check_dim(z)
        delta = torch.as_tensor(units * check_step(step), dtype=z.dtype, device=z.device)
        scale = torch.as_tensor(self.symbol_stds(step), dtype=z.dtype, device=z.device)
        y = (z - torch.as_tensor(means, dtype=z.dtype, device=z.device)) / delta
        normal = torch.distributions.Normal(torch.zeros((), dtype=z.dtype), torch.ones((), dtype=z.dtype))
        mass = normal.cdf((y + 0.5) / scale) - normal.cdf((y - 0.5) / scale)
        return -torch.log2(mass.clamp_min(1e-9)).sum(-1)

    # ------------------------------------------------------------------ entropy coding

    def _family(self):
        r = self.max_symbol
        return cmodel.QuantizedGaussian(-r, r)

    def compress(self, symbols, step: float) -> bytes:
        """Entropy-code integer symbols ``[D]`` or ``[T, D]`` (from ``quantize(..., "symbols")``; T
        latents in one stream, row by row) at ``step``."""
        self._require_update()
        q = np.asarray(symbols)
        if q.ndim not in (1, 2) or q.shape[-1] != self.dim or not q.size or not np.issubdtype(q.dtype, np.integer):
            raise ValueError(f"compress takes integer symbols [{self.dim}] or [T, {self.dim}], got {q.dtype} {q.shape}")
        q = q.astype(np.int64).ravel()
        if np.abs(q).max(initial=0) > _MAX_ESCAPE:
            raise ValueError(f"symbol magnitude exceeds {_MAX_ESCAPE}")
        r = self.max_symbol
        main = np.clip(q, -r, r).astype(np.int32)
        stds = np.tile(self.symbol_stds(step), q.size // self.dim)
        encoder = cqueue.RangeEncoder()
        encoder.encode(main, self._family(), np.zeros(q.size), stds)
        escaped = np.abs(q[np.abs(q) >= r]) - r
        if escaped.size:
            _encode_excess(encoder, escaped)
        data = encoder.get_compressed().astype("<u4").tobytes()
        trimmed = data.rstrip(b"\0")
        return data[:max(len(trimmed), len(data) - 3)]  # up to 3 zero bytes of the last word: refilled on decode

    def decompress(self, data: bytes, step: float, count: int = 1) -> np.ndarray:
        """Inverse of :meth:`compress`: int64 symbols ``[D]`` (``count`` 1) or ``[count, D]`` (``count``
        > 1). ValueError on malformed data, or when the data holds more than ``count`` latents."""
        self._require_update()
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        data = bytes(data)
        data += b"\0" * (-len(data) % 4)
        stds = np.tile(self.symbol_stds(step), count)
        try:
            decoder = cqueue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
            q = np.asarray(decoder.decode(self._family(), np.zeros(stds.size), stds), dtype=np.int64)
            r = self.max_symbol
            esc = np.nonzero(np.abs(q) >= r)[0]
            if esc.size:
                excess = _decode_excess(decoder, esc.size)
                q[esc] = np.sign(q[esc]) * (r + excess)
            exhausted = decoder.maybe_exhausted()
        except (ValueError, RuntimeError, OverflowError, AssertionError) as exc:  # constriction asserts on some
            raise ValueError(f"coded latent is corrupt: {str(exc) or type(exc).__name__}") from exc
        if not exhausted:  # more was coded than `count` latents: another count, or not a latent at all
            raise ValueError(f"coded latent is corrupt: data left after {count} latent(s)")
        return q if count == 1 else q.reshape(count, self.dim)


def _encode_excess(encoder, values: np.ndarray) -> None:
    """Elias-gamma-like code of non-negative ints: bit count of ``v + 1`` then its low bits in 16-bit chunks."""
    v = values.astype(np.int64) + 1
    nbits = np.array([int(x).bit_length() - 1 for x in v], dtype=np.int32)  # 0..31
    encoder.encode(nbits, cmodel.Uniform(32))
    chunks = []
    for x, n in zip(v.tolist(), nbits.tolist()):
        low = x - (1 << n)
        while n > 0:
            take = min(16, n)
            chunks.append(low & ((1 << take) - 1))
            low >>= take
            n -= take
    if chunks:
        encoder.encode(np.asarray(chunks, dtype=np.int32), cmodel.Uniform(1 << 16))


def _decode_excess(decoder, count: int) -> np.ndarray:
    nbits = np.asarray(decoder.decode(cmodel.Uniform(32), count), dtype=np.int64)
    total_chunks = int(sum((n + 15) // 16 for n in nbits.tolist()))
    chunks = (np.asarray(decoder.decode(cmodel.Uniform(1 << 16), total_chunks), dtype=np.int64).tolist()
              if total_chunks else [])
    out, pos = [], 0
    for n in nbits.tolist():
        low, shift, left = 0, 0, n
        while left > 0:
            take = min(16, left)
            low |= (chunks[pos] & ((1 << take) - 1)) << shift
            pos += 1
            shift += take
            left -= take
        out.append((1 << n) + low - 1)
    return np.asarray(out, dtype=np.int64)
