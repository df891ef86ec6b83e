"""Payload format of codec ``gaussians-rd``: entropy-coded Gaussians with per-memory quantization steps.

Bytes in, bytes out, ROS-free and torch-free (numpy, scipy, constriction). The fitting that makes the
Gaussians fit these steps and a byte budget lives in :mod:`.fit`.

What is coded (a Gaussian in the *canonical* form of :func:`to_canonical`, pixel units of the memory's
working size ``W x H``)::

    position   x, y (pixels)          coarse cell index on a grid of ``cell`` pixels, Morton-sorted: the
                                      set's order costs nothing (gaps between sorted Z-order codes are
                                      coded, Elias-gamma style: bucket k = floor(log2 gap) by a two-sided
                                      geometric model, then k raw bits), plus per-axis refinement bits
                                      where the Gaussian is thin (its minor standard deviation below the
                                      cell): ``refine = clip(ceil(log2(cell / (pos_kappa sigma_minor))), 0, 6)``
    size       ls = (ln sa + ln sb)/2  step ``ls``, predicted from the distance to the 3 nearest coarse
                                      positions (the density of the set), residual coded geometrically
    anisotropy an = (ln sa - ln sb)/2  step ``an``, >= 0, geometric around the set's median
    angle      phi of the major axis  in [0, pi), ``L`` levels where ``L`` grows with the elongation
                                      (``L = 2^ceil(log2(rot_kappa pi e^(2 an)))``, at most 256; none when
                                      the Gaussian is round), uniform
    colour     Y, Co, Cg (RGB) or Y   steps ``y`` and ``chroma``, geometric around the set's median

All model parameters (medians, geometric ratios) are chosen per memory by the encoder and sent in
the header; the decoder derives everything else from already-decoded symbols. Probability tables
are built from exact dyadic rationals by repeated multiplication (no transcendental function), so a
payload decodes to the same symbols on any IEEE-754 machine; the adaptive precisions above use
``exp``/``log2`` of decoded integers and differ between platforms only for values within one
rounding error of a power of two.

Layout (little-endian), version 1::

    offset size  field
    0      1     magic 0xA7
    1      1     version (high nibble, 1) | flags (bit 0 sum blend, bit 1 three colour channels)
    2      2     N, number of Gaussians (uint16)
    4      3     working width and height, 12 bits each (1..4095 pixels)
    7      8     step codes: cell (/16 px), ls (/256), an (/256), rot_kappa (/16), pos_kappa (/16),
                 y (/1024), chroma (/1024), reserved (0)
    15     6+2C  model parameters: gap bucket median and ratio code, size-prediction offset (int8) and
                 ratio code, anisotropy median and ratio code, per colour channel median offset (int8)
                 and ratio code
    ..     ..    range-coded symbols (constriction RangeEncoder, 32-bit words little-endian, trailing
                 zero bytes dropped)
    end-2  2     low 16 bits of the CRC-32 of everything before
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import constriction
import numpy as np
from scipy.spatial import cKDTree

from gaussvae_ros.core import Gaussians

MAGIC = 0xA7
VERSION = 1
_HEADER = struct.Struct("<BBH3s8B")
_CRC_BYTES = 2
MAX_SIDE = 4095          # pixels, the header's 12-bit fields
MAX_GAUSSIANS = 0xFFFF
MAX_REFINE_BITS = 6
MAX_ROT_LEVELS = 256
_HALF = {"k": 64, "ls": 512, "an": 512, "color": 2048}   # symbol ranges of the geometric tables
_MODEL = constriction.stream.model
_QUEUE = constriction.stream.queue


class PayloadError(ValueError):
    """A payload that is not an intact ``gaussians-rd`` payload (corrupt, truncated, foreign)."""


@dataclass(frozen=True)
class Steps:
    """Quantization steps of one memory, in the units of :func:`to_canonical`."""

    cell: float       # pixels, coarse position grid
    ls: float         # natural-log units of the geometric-mean standard deviation
    an: float         # natural-log units of sqrt(major / minor)
    rot_kappa: float  # angular precision factor (levels ~ rot_kappa * pi * elongation)
    pos_kappa: float  # position refinement factor (refine until cell / 2^r <= pos_kappa * sigma_minor)
    y: float          # luma step, intensity units
    chroma: float     # Co / Cg step, intensity units


@dataclass(frozen=True)
class StepCodes:
    """The header's byte codes of :class:`Steps` (what the decoder sees, so what the encoder must use)."""

    cell: int = 16
    ls: int = 38
    an: int = 38
    rot_kappa: int = 16
    pos_kappa: int = 8
    y: int = 26
    chroma: int = 51

    def __post_init__(self) -> None:
        for name in ("cell", "ls", "an", "rot_kappa", "pos_kappa", "y", "chroma"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= 255:
                raise ValueError(f"step code {name} must be an integer in 1..255, got {value!r}")

    def steps(self) -> Steps:
        return Steps(self.cell / 16, self.ls / 256, self.an / 256, self.rot_kappa / 16, self.pos_kappa / 16,
                     self.y / 1024, self.chroma / 1024)

    def with_cell(self, cell_px: float) -> "StepCodes":
        """The same codes with the coarse grid closest to ``cell_px`` pixels."""
        return StepCodes(int(np.clip(round(cell_px * 16), 1, 255)), self.ls, self.an, self.rot_kappa,
                         self.pos_kappa, self.y, self.chroma)


@dataclass
class Symbols:
    """Integer symbols of one memory, in coded (Morton) order; ``[N]`` each, ``color [N, C]``."""

    qx: np.ndarray      # coarse cell column
    qy: np.ndarray      # coarse cell row
    ls: np.ndarray
    an: np.ndarray      # >= 0
    rot: np.ndarray     # 0 .. rotation_levels - 1
    fx: np.ndarray      # refinement within the cell, 0 .. 2^refine - 1
    fy: np.ndarray
    color: np.ndarray   # YCoCg (3 channels) or Y

    def __len__(self) -> int:
        return len(self.qx)


# ------------------------------------------------------------------ canonical form

def ycocg(rgb: np.ndarray) -> np.ndarray:
    """``[N, 3]`` RGB -> Y, Co, Cg (lossless-invertible linear transform, :func:`rgb`)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    return np.stack([(r + 2 * g + b) / 4, (r - b) / 2, (-r + 2 * g - b) / 4], 1)


def rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ycocg`."""
    y, co, cg = ycc[:, 0], ycc[:, 1], ycc[:, 2]
    t = y - cg
    return np.stack([t + co, y + cg, t - co], 1)


def to_canonical(g: Gaussians, width: int, height: int):
    """Pixel-space form of ``g`` at ``width x height``: ``xy [N, 2]`` pixels, ``ls [N]``, ``an [N] >= 0``
    (natural logs of the geometric-mean standard deviation and of sqrt(major / minor)), ``phi [N]`` angle
    of the major axis in ``[0, pi)`` from +x towards +y, colour ``[N, C]`` (float64 all)."""
    cov = g.covariance().astype(np.float64)
    a = cov[:, 0, 0] * width * width
    b = cov[:, 0, 1] * width * height
    c = cov[:, 1, 1] * height * height
    major, minor, phi = _eigen(a, b, c)
    ls = 0.25 * (np.log(major) + np.log(minor))
    an = 0.25 * (np.log(major) - np.log(minor))
    return g.xy.astype(np.float64) * (width, height), ls, an, phi, g.color.astype(np.float64)


def from_canonical(xy, ls, an, phi, color, width: int, height: int, blend: str = "normalized") -> Gaussians:
    """Inverse of :func:`to_canonical`: normalized :class:`Gaussians`."""
    v1, v2 = np.exp(2 * (ls + an)), np.exp(2 * (ls - an))
    cos, sin = np.cos(phi), np.sin(phi)
    a = (v1 * cos * cos + v2 * sin * sin) / (width * width)
    b = (v1 - v2) * cos * sin / (width * height)
    c = (v1 * sin * sin + v2 * cos * cos) / (height * height)
    major, minor, rot = _eigen(a, b, c)
    scale = np.sqrt(np.stack([major, minor], 1))
    return Gaussians((np.asarray(xy) / (width, height)).astype(np.float32), scale.astype(np.float32),
                     rot.astype(np.float32), np.asarray(color).astype(np.float32), blend=blend)


def _eigen(a, b, c):
    """Eigenvalues (major, minor > 0) and major-axis angle in [0, pi) of ``[[a, b], [b, c]]``."""
    mid = (a + c) / 2
    rad = np.sqrt(((a - c) / 2) ** 2 + b ** 2)
    return mid + rad, np.maximum(mid - rad, 1e-30), np.mod(0.5 * np.arctan2(2 * b, a - c), math.pi)


# ------------------------------------------------------------------ adaptive precisions

def grid_size(width: int, height: int, cell: float) -> tuple[int, int]:
    """Columns and rows of the coarse position grid."""
    return max(1, math.ceil(width / cell)), max(1, math.ceil(height / cell))


def rotation_levels(q_an: np.ndarray, steps: Steps) -> np.ndarray:
    """Angle levels per Gaussian (1: round, no angle coded), from its quantized anisotropy."""
    x = steps.rot_kappa * math.pi * np.exp(2.0 * q_an * steps.an)
    levels = np.exp2(np.ceil(np.log2(np.maximum(x, 1.0)))).astype(np.int64)
    return np.where(q_an > 0, np.clip(levels, 2, MAX_ROT_LEVELS), 1)


def refine_bits(q_ls: np.ndarray, q_an: np.ndarray, steps: Steps) -> np.ndarray:
    """Extra position bits per axis, from the quantized minor standard deviation."""
    minor = np.exp(q_ls * steps.ls - q_an * steps.an)
    r = np.ceil(np.log2(np.maximum(steps.cell / (steps.pos_kappa * minor), 1.0)))
    return np.clip(r, 0, MAX_REFINE_BITS).astype(np.int64)


def size_prediction(qx: np.ndarray, qy: np.ndarray, steps: Steps) -> np.ndarray:
    """Predicted size symbol of each Gaussian from the spacing of the coarse positions (exact integer
    distances to the 3 nearest others)."""
    n = len(qx)
    if n < 2:
        return np.zeros(n, np.int64)
    pts = np.stack([qx, qy], 1).astype(np.float64)
    _, idx = cKDTree(pts).query(pts, k=min(4, n))
    d2 = ((pts[:, None, :] - pts[idx[:, 1:]]) ** 2).sum(-1).mean(axis=1)
    spacing = np.sqrt(np.maximum(d2, 0.25)) * steps.cell
    return np.floor(np.log(spacing) / steps.ls + 0.5).astype(np.int64)


# ------------------------------------------------------------------ symbols

def _spread(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & np.uint64(0xFFFF)
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def _compact(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & np.uint64(0x55555555)
    for shift, mask in ((1, 0x33333333), (2, 0x0F0F0F0F), (4, 0x00FF00FF), (8, 0x0000FFFF)):
        x = (x | (x >> np.uint64(shift))) & np.uint64(mask)
    return x


def colour_steps(steps: Steps, channels: int) -> np.ndarray:
    """Quantization step of each coded colour channel ``[C]``: Y, Co, Cg (or Y alone)."""
    return np.array([steps.y, steps.chroma, steps.chroma] if channels == 3 else [steps.y])


def symbolize(g: Gaussians, width: int, height: int, steps: Steps) -> Symbols:
    """Quantize ``g`` (fitted at ``width x height``) to the symbols of ``steps``, Morton-sorted."""
    xy, ls, an, phi, color = to_canonical(g, width, height)
    gx, gy = grid_size(width, height, steps.cell)
    q_ls = np.round(ls / steps.ls).astype(np.int64)
    q_an = np.round(an / steps.an).astype(np.int64)
    r = refine_bits(q_ls, q_an, steps)
    fine = np.floor(xy / steps.cell * np.exp2(r)[:, None]).astype(np.int64)
    limit = np.stack([gx << r, gy << r], 1) - 1
    fine = np.clip(fine, 0, limit)
    qx, qy = fine[:, 0] >> r, fine[:, 1] >> r
    levels = rotation_levels(q_an, steps)
    q_rot = np.round(phi / math.pi * levels).astype(np.int64) % levels
    ycc = ycocg(color) if color.shape[1] == 3 else color
    q_col = np.round(ycc / colour_steps(steps, color.shape[1])).astype(np.int64)
    code = _spread(qx) | (_spread(qy) << np.uint64(1))
    order = np.lexsort((np.arange(len(code)), code))
    mask = (1 << r) - 1
    s = Symbols(qx, qy, q_ls, q_an, q_rot, fine[:, 0] & mask, fine[:, 1] & mask, q_col)
    return Symbols(*(getattr(s, f)[order] for f in ("qx", "qy", "ls", "an", "rot", "fx", "fy", "color")))


def desymbolize(s: Symbols, width: int, height: int, steps: Steps, blend: str = "normalized") -> Gaussians:
    """The Gaussians the symbols stand for (normalized coordinates)."""
    r = refine_bits(s.ls, s.an, steps)
    scale = np.exp2(-r.astype(np.float64))
    x = (s.qx + (s.fx + 0.5) * scale) * steps.cell
    y = (s.qy + (s.fy + 0.5) * scale) * steps.cell
    levels = rotation_levels(s.an, steps)
    phi = s.rot * math.pi / levels
    col = s.color * colour_steps(steps, s.color.shape[1])
    col = rgb(col) if s.color.shape[1] == 3 else col
    return from_canonical(np.stack([x, y], 1), s.ls * steps.ls, s.an * steps.an, phi, col, width, height, blend)


# ------------------------------------------------------------------ entropy models

def ratio(code: int) -> float:
    """Geometric ratio of a model code 0..255 (exact dyadic rational, fine near 1)."""
    return 1.0 - (256 - int(code)) ** 2 / 65536.0


_RATIOS = np.clip(np.array([ratio(c) for c in range(256)]), 1e-9, 1 - 1e-12)


def _geometric_bits(r: np.ndarray) -> np.ndarray:
    """``[256]`` ideal bits of integer residuals ``r`` under the two-sided geometric model of each code."""
    a = np.abs(np.asarray(r, np.float64))
    th = _RATIOS
    return -(len(a) * np.log2((1 - th) / (1 + th)) + a.sum() * np.log2(th))


def _choose(r: np.ndarray) -> tuple[int, float]:
    """Best ratio code for residuals ``r`` and its cost in bits."""
    if len(r) == 0:
        return 128, 0.0
    bits = _geometric_bits(r)
    code = int(np.argmin(bits))
    return code, float(bits[code])


def _table(code: int, half: int) -> np.ndarray:
    """Unnormalized two-sided geometric probabilities over ``-half .. half``."""
    powers = np.cumprod(np.concatenate([[1.0], np.full(half, ratio(code))]))
    return np.concatenate([powers[:0:-1], powers])


def _gaps(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaps (>= 1) between consecutive sorted Z-order codes and their buckets floor(log2 gap)."""
    code = (_spread(qx) | (_spread(qy) << np.uint64(1))).astype(np.int64)
    gaps = np.diff(np.concatenate([[0], code])) + 1
    return gaps, np.floor(np.log2(gaps)).astype(np.int64)


def _clip_byte(value, lo, hi) -> int:
    return int(np.clip(np.round(value), lo, hi))


@dataclass
class _Streams:
    """Everything the coder writes, derived from symbols: residual arrays and their model parameters."""

    k: np.ndarray
    gaps: np.ndarray
    ls_residual: np.ndarray
    params: list[tuple[int, int]]  # (offset, ratio code) per stream: k, ls, an, colour channels
    bits: float                    # ideal size of the coded symbols


def _streams(s: Symbols, steps: Steps) -> _Streams:
    gaps, k = _gaps(s.qx, s.qy)
    ls_residual = s.ls - size_prediction(s.qx, s.qy, steps)
    bits = float(k.sum())  # raw mantissa bits of the gaps
    params = []
    for values, lo, hi in ((k, 0, 255), (ls_residual, -128, 127), (s.an, 0, 255)):
        offset = _clip_byte(np.median(values), lo, hi) if len(values) else 0
        code, cost = _choose(values - offset)
        params.append((offset, code))
        bits += cost
    for ch in range(s.color.shape[1]):
        values = s.color[:, ch] - _colour_centre(ch, steps)
        offset = _clip_byte(np.median(values), -128, 127) if len(values) else 0
        code, cost = _choose(values - offset)
        params.append((offset, code))
        bits += cost
    levels = rotation_levels(s.an, steps)
    refine = refine_bits(s.ls, s.an, steps)
    bits += float(np.log2(levels).sum() + 2 * refine.sum())
    return _Streams(k, gaps, ls_residual, params, bits)


def _colour_centre(channel: int, steps: Steps) -> int:
    """Symbol of mid-grey luma (the colour medians are sent relative to it)."""
    return int(round(0.5 / steps.y)) if channel == 0 else 0


def estimate_size(s: Symbols, steps: Steps) -> float:
    """Bytes :func:`encode` will write for ``s``, from the ideal code lengths (within ~1 %)."""
    header = _HEADER.size + 2 * (3 + s.color.shape[1]) + _CRC_BYTES
    return header + _streams(s, steps).bits / 8


# ------------------------------------------------------------------ coding

def _put_geometric(encoder, residual, offset, code, half):
    symbols = residual - offset + half
    if len(symbols) and (symbols.min() < 0 or symbols.max() > 2 * half):
        raise ValueError("a quantized value is outside the format's range (diverged Gaussians?)")
    encoder.encode(symbols.astype(np.int32), _MODEL.Categorical(_table(code, half), perfect=False))


def _get_geometric(decoder, n, offset, code, half):
    return decoder.decode(_MODEL.Categorical(_table(code, half), perfect=False), n).astype(np.int64) - half + offset


def _put_uniform(encoder, values, sizes):
    sel = sizes > 1
    if sel.any():
        encoder.encode(values[sel].astype(np.int32), _MODEL.Uniform(), sizes[sel].astype(np.int32))


def _get_uniform(decoder, sizes):
    out = np.zeros(len(sizes), np.int64)
    sel = sizes > 1
    if sel.any():
        out[sel] = decoder.decode(_MODEL.Uniform(), sizes[sel].astype(np.int32))
    return out


def encode(s: Symbols, codes: StepCodes, width: int, height: int, blend: str = "normalized") -> bytes:
    """Serialize symbols quantized with ``codes.steps()`` (see the module docstring for the layout)."""
    n, channels = len(s), s.color.shape[1]
    if not 1 <= width <= MAX_SIDE or not 1 <= height <= MAX_SIDE:
        raise ValueError(f"working size {width}x{height} is outside 1..{MAX_SIDE} pixels")
    if n > MAX_GAUSSIANS:
        raise ValueError(f"the format holds at most {MAX_GAUSSIANS} Gaussians, got {n}")
    steps = codes.steps()
    streams = _streams(s, steps)
    flags = (1 if blend == "sum" else 0) | (2 if channels == 3 else 0)
    size = (width | (height << 12)).to_bytes(3, "little")
    head = _HEADER.pack(MAGIC, (VERSION << 4) | flags, n, size, codes.cell, codes.ls, codes.an, codes.rot_kappa,
                        codes.pos_kappa, codes.y, codes.chroma, 0)
    head += bytes(b for offset, code in streams.params for b in (offset & 0xFF, code))
    encoder = _QUEUE.RangeEncoder()
    if n:
        (k_off, k_code), (ls_off, ls_code), (an_off, an_code) = streams.params[:3]
        _put_geometric(encoder, streams.k, k_off, k_code, _HALF["k"])
        mantissa = streams.gaps - (1 << streams.k)
        for low in (0, 12, 24):  # the Uniform model takes at most 2^24 values: 12-bit pieces
            bits = np.clip(streams.k - low, 0, 12)
            _put_uniform(encoder, (mantissa >> low) & ((1 << bits) - 1), 1 << bits)
        _put_geometric(encoder, streams.ls_residual, ls_off, ls_code, _HALF["ls"])
        _put_geometric(encoder, s.an, an_off, an_code, _HALF["an"])
        _put_uniform(encoder, s.rot, rotation_levels(s.an, steps))
        refine = 1 << refine_bits(s.ls, s.an, steps)
        _put_uniform(encoder, s.fx, refine)
        _put_uniform(encoder, s.fy, refine)
        for ch in range(channels):
            offset, code = streams.params[3 + ch]
            _put_geometric(encoder, s.color[:, ch] - _colour_centre(ch, steps), offset, code, _HALF["color"])
    body = head + encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")
    return body + (zlib.crc32(body) & 0xFFFF).to_bytes(_CRC_BYTES, "little")


@dataclass
class Decoded:
    """A decoded payload: the Gaussians, their symbols and the header's settings."""

    gaussians: Gaussians
    symbols: Symbols
    codes: StepCodes
    width: int
    height: int


def decode(data: bytes) -> Decoded:
    """Inverse of :func:`encode`. Raises :class:`PayloadError` on anything that is not an intact payload."""
    data = bytes(data)
    if len(data) < _HEADER.size + _CRC_BYTES:
        raise PayloadError(f"gaussians-rd payload too short ({len(data)} bytes)")
    if data[0] != MAGIC:
        raise PayloadError("not a gaussians-rd payload (bad magic)")
    if (zlib.crc32(data[:-_CRC_BYTES]) & 0xFFFF) != int.from_bytes(data[-_CRC_BYTES:], "little"):
        raise PayloadError("corrupt gaussians-rd payload (checksum mismatch)")
    _, vf, n, size, *step_bytes, _reserved = _HEADER.unpack_from(data)
    if vf >> 4 != VERSION:
        raise PayloadError(f"gaussians-rd payload version {vf >> 4} is not supported (this build reads {VERSION})")
    channels = 3 if vf & 2 else 1
    width, height = int.from_bytes(size, "little") & 0xFFF, int.from_bytes(size, "little") >> 12
    try:
        codes = StepCodes(*step_bytes)
    except ValueError as err:
        raise PayloadError(f"corrupt gaussians-rd payload ({err})") from None
    if width < 1 or height < 1:
        raise PayloadError("corrupt gaussians-rd payload (zero working size)")
    params_end = _HEADER.size + 2 * (3 + channels)
    if len(data) < params_end + _CRC_BYTES:
        raise PayloadError("truncated gaussians-rd payload")
    raw = data[_HEADER.size:params_end]
    params = [(raw[2 * i] - 256 if i > 0 and i != 2 and raw[2 * i] >= 128 else raw[2 * i], raw[2 * i + 1])
              for i in range(3 + channels)]
    words = data[params_end:-_CRC_BYTES]
    words += b"\0" * (-len(words) % 4)
    try:
        symbols = _decode_symbols(np.frombuffer(words, "<u4").astype(np.uint32), n, channels, params, codes.steps(),
                                  width, height)
    except (ValueError, AssertionError, OverflowError) as err:
        raise PayloadError(f"corrupt gaussians-rd payload ({err})") from None
    gaussians = desymbolize(symbols, width, height, codes.steps(), "sum" if vf & 1 else "normalized")
    return Decoded(gaussians, symbols, codes, width, height)


def _decode_symbols(words, n, channels, params, steps: Steps, width, height) -> Symbols:
    decoder = _QUEUE.RangeDecoder(words)
    (k_off, k_code), (ls_off, ls_code), (an_off, an_code) = params[:3]
    k = _get_geometric(decoder, n, k_off, k_code, _HALF["k"])
    gx, gy = grid_size(width, height, steps.cell)
    if n and (k.min() < 0 or k.max() > 2 * max(1, math.ceil(math.log2(max(gx, gy)))) + 1):
        raise ValueError("position gap out of range")
    mantissa = np.zeros(n, np.int64)
    for low in (0, 12, 24):
        bits = np.clip(k - low, 0, 12)
        mantissa |= _get_uniform(decoder, 1 << bits) << low
    code = np.cumsum((1 << k) + mantissa - 1).astype(np.uint64)
    qx, qy = _compact(code).astype(np.int64), _compact(code >> np.uint64(1)).astype(np.int64)
    if n and (qx.max() >= gx or qy.max() >= gy):
        raise ValueError("position outside the grid")
    q_ls = _get_geometric(decoder, n, ls_off, ls_code, _HALF["ls"]) + size_prediction(qx, qy, steps)
    q_an = _get_geometric(decoder, n, an_off, an_code, _HALF["an"])
    if n and q_an.min() < 0:
        raise ValueError("negative anisotropy")
    rot = _get_uniform(decoder, rotation_levels(q_an, steps))
    refine = 1 << refine_bits(q_ls, q_an, steps)
    fx, fy = _get_uniform(decoder, refine), _get_uniform(decoder, refine)
    colour = np.stack([_get_geometric(decoder, n, *params[3 + ch], _HALF["color"]) + _colour_centre(ch, steps)
                       for ch in range(channels)], 1) if n else np.zeros((0, channels), np.int64)
    return Symbols(qx, qy, q_ls, q_an, rot, fx, fy, colour)
