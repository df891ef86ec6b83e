"""Quantization of Gaussians into a compact, versioned binary format.

Layout (little-endian), version 1::

    offset size  field
    0      2     magic b"GS"
    2      1     format version (1)
    3      1     flags: bit 0 blend (0 normalized, 1 sum); bit 1 colour channels (0 -> 1, 1 -> 3)
    4      2     N, number of Gaussians (uint16)
    6      4     bit depths of the groups xy, scale, rot, color (uint8 each, 1..16)
    10     16    float32 ranges: log-scale min, max; colour min, max
    26     ...   payload: for each value column (u, v, log s1, log s2, rot, colour...) in that order,
                 N unsigned integers of the group's bit depth, bit-packed MSB first, Gaussians in
                 Morton order (see :mod:`gaussvae_ros.core.morton`); zero-padded to a whole byte
    end-4  4     CRC-32 of everything before it

Quantization is uniform with reconstruction at the bin centre:

* ``u, v`` on ``[0, 1]``: error <= 2^-(bits+1);
* ``log s`` on ``[min, max]`` of the set: relative scale error <= exp((max-min) 2^-(bits+1)) - 1;
* ``rot`` on ``[0, pi)`` (a Gaussian is symmetric under a half turn): error <= pi 2^-(bits+1);
* colour on ``[min, max]`` of the set: error <= (max-min) 2^-(bits+1).

Positions and scales are in normalized image coordinates, so the payload renders at any size; the
original image size is metadata kept by whoever stores the payload.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .gaussians import Gaussians
from .morton import morton_order

MAGIC = b"GS"
VERSION = 1
_HEADER = struct.Struct("<2sBBH4B4f")
_CRC = struct.Struct("<I")
GROUPS = ("xy", "scale", "rot", "color")


@dataclass(frozen=True)
class BitDepths:
    """Bits per value for each attribute group (1..16)."""

    xy: int = 12
    scale: int = 8
    rot: int = 8
    color: int = 8

    def __post_init__(self) -> None:
        for name in GROUPS:
            bits = getattr(self, name)
            if not isinstance(bits, int) or not 1 <= bits <= 16:
                raise ValueError(f"bit depth of {name} must be an integer in 1..16, got {bits!r}")

    def bits_per_gaussian(self, channels: int) -> int:
        return 2 * self.xy + 2 * self.scale + self.rot + channels * self.color


def encoded_size(n: int, channels: int = 3, depths: BitDepths = BitDepths()) -> int:
    """Size in bytes of :func:`encode_gaussians`' output for ``n`` Gaussians."""
    return _HEADER.size + math.ceil(n * depths.bits_per_gaussian(channels) / 8) + _CRC.size


def _quantize(values: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    levels = (1 << bits) - 1
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint32)
    q = np.floor((values.astype(np.float64) - lo) / (hi - lo) * (levels + 1))
    return np.clip(q, 0, levels).astype(np.uint32)


def _dequantize(q: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    if hi <= lo:
        return np.full(q.shape, lo, dtype=np.float32)
    return (lo + (q.astype(np.float64) + 0.5) * (hi - lo) / (1 << bits)).astype(np.float32)


def _pack(columns: list[tuple[np.ndarray, int]]) -> bytes:
    bits = [((col[:, None] >> np.arange(depth - 1, -1, -1, dtype=np.uint32)) & 1).astype(np.uint8).ravel()
            for col, depth in columns]
    return np.packbits(np.concatenate(bits) if bits else np.zeros(0, np.uint8)).tobytes()


def _unpack(data: bytes, n: int, depths: list[int]) -> list[np.ndarray]:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    out, pos = [], 0
    for depth in depths:
        chunk = bits[pos:pos + n * depth].reshape(n, depth).astype(np.uint32)
        out.append((chunk << np.arange(depth - 1, -1, -1, dtype=np.uint32)).sum(axis=1, dtype=np.uint32))
        pos += n * depth
    return out


def encode_gaussians(gaussians: Gaussians, depths: BitDepths = BitDepths()) -> bytes:
    """Quantize and serialize ``gaussians`` (reordered along the Morton curve) to bytes."""
    n = len(gaussians)
    if n > 0xFFFF:
        raise ValueError(f"the format holds at most 65535 Gaussians, got {n}")
    gaussians.check_valid()
    g = gaussians.take(morton_order(gaussians.xy)) if n else gaussians
    log_scale = np.log(g.scale.astype(np.float64))
    s_lo, s_hi = (float(log_scale.min()), float(log_scale.max())) if n else (0.0, 0.0)
    c_lo, c_hi = (float(g.color.min()), float(g.color.max())) if n else (0.0, 0.0)
    # float32 ranges must still contain every value once rounded
    s_lo, s_hi = float(np.nextafter(np.float32(s_lo), -np.inf)), float(np.nextafter(np.float32(s_hi), np.inf))
    c_lo, c_hi = float(np.nextafter(np.float32(c_lo), -np.inf)), float(np.nextafter(np.float32(c_hi), np.inf))
    columns = [(_quantize(g.xy[:, k], 0.0, 1.0, depths.xy), depths.xy) for k in range(2)]
    columns += [(_quantize(log_scale[:, k], s_lo, s_hi, depths.scale), depths.scale) for k in range(2)]
    columns += [(_quantize(np.mod(g.rot.astype(np.float64), math.pi), 0.0, math.pi, depths.rot), depths.rot)]
    columns += [(_quantize(g.color[:, k], c_lo, c_hi, depths.color), depths.color) for k in range(g.channels)]
    flags = (1 if g.blend == "sum" else 0) | (2 if g.channels == 3 else 0)
    header = _HEADER.pack(MAGIC, VERSION, flags, n, depths.xy, depths.scale, depths.rot, depths.color,
                          s_lo, s_hi, c_lo, c_hi)
    body = header + _pack(columns)
    return body + _CRC.pack(zlib.crc32(body))


def payload_channels(head: bytes) -> int | None:
    """Colour channels (1 or 3) a payload says it holds, from its first 4 bytes; None when they are
    not the header of a payload of this format."""
    head = bytes(head)
    if len(head) < 4 or head[:2] != MAGIC:
        return None
    return 3 if head[3] & 2 else 1


def decode_gaussians(data: bytes) -> Gaussians:
    """Inverse of :func:`encode_gaussians`. Raises ValueError on anything that is not an intact payload,
    also on one whose CRC was recomputed over damaged ranges (NaN / Inf / reversed scale or colour
    ranges in the header, decoded values out of the format's ranges)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"Gaussian payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEADER.size + _CRC.size:
        raise ValueError(f"Gaussian payload too short ({len(data)} bytes)")
    if data[:2] != MAGIC:
        raise ValueError("not a Gaussian payload (bad magic)")
    (crc,) = _CRC.unpack(data[-_CRC.size:])
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise ValueError("corrupt Gaussian payload (CRC mismatch)")
    _, version, flags, n, bxy, bscale, brot, bcolor, s_lo, s_hi, c_lo, c_hi = _HEADER.unpack_from(data)
    if version != VERSION:
        raise ValueError(f"Gaussian payload version {version} is not supported (this build reads {VERSION})")
    for name, lo, hi in (("scale", s_lo, s_hi), ("colour", c_lo, c_hi)):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"corrupt Gaussian payload: {name} range [{lo}, {hi}] is not a finite interval")
    if s_hi > 80.0:  # exp() of the log scale would overflow float32
        raise ValueError(f"corrupt Gaussian payload: log scale range up to {s_hi} is out of range")
    depths = BitDepths(bxy, bscale, brot, bcolor)
    channels = 3 if flags & 2 else 1
    expected = encoded_size(n, channels, depths)
    if len(data) != expected:
        raise ValueError(f"Gaussian payload has {len(data)} bytes, its header implies {expected}")
    cols = _unpack(data[_HEADER.size:-_CRC.size], n,
                   [bxy] * 2 + [bscale] * 2 + [brot] + [bcolor] * channels)
    xy = np.stack([_dequantize(cols[k], 0.0, 1.0, bxy) for k in range(2)], 1)
    scale = np.exp(np.stack([_dequantize(cols[2 + k], s_lo, s_hi, bscale) for k in range(2)], 1))
    rot = _dequantize(cols[4], 0.0, math.pi, brot)
    color = np.stack([_dequantize(cols[5 + k], c_lo, c_hi, bcolor) for k in range(channels)], 1)
    gaussians = Gaussians(xy, scale, rot, color, blend="sum" if flags & 1 else "normalized")
    gaussians.check_valid("corrupt Gaussian payload: the decoded Gaussians")
    return gaussians
