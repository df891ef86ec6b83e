"""Camera messages to numpy arrays, without ROS.

The functions read plain attributes only (``height``, ``width``, ``encoding``, ``step``,
``is_bigendian``, ``data`` for ``sensor_msgs/Image``; ``format``, ``data`` for
``sensor_msgs/CompressedImage``), so they accept the message classes of ``rosbags`` and of
``rclpy`` alike, or any object carrying those attributes.

Output convention (used by the rest of the package): a ``uint8`` or ``uint16`` array, ``[H, W]``
for single-channel images or ``[H, W, 3]`` in RGB order for colour images. Alpha is dropped and
BGR is swapped to RGB. Row ``0`` is the top of the image, as in the message.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ImageDecodeError",
    "SUPPORTED_ENCODINGS",
    "compressed_image_to_numpy",
    "image_message_to_numpy",
    "message_to_numpy",
]


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels (truncated, empty, unknown encoding...)."""


# encoding -> (numpy dtype of one channel, channels in the message, channel order to output RGB / gray)
# The order tuple picks message channels for the output: (0,) gray, (0, 1, 2) RGB, (2, 1, 0) BGR -> RGB.
_ENCODINGS: dict[str, tuple[np.dtype, int, tuple[int, ...]]] = {
    "mono8": (np.dtype(np.uint8), 1, (0,)),
    "8uc1": (np.dtype(np.uint8), 1, (0,)),
    "mono16": (np.dtype(np.uint16), 1, (0,)),
    "16uc1": (np.dtype(np.uint16), 1, (0,)),
    "rgb8": (np.dtype(np.uint8), 3, (0, 1, 2)),
    "bgr8": (np.dtype(np.uint8), 3, (2, 1, 0)),
    # 8UC3 carries no colour order; OpenCV (its usual producer) stores BGR, so it is read as BGR.
    "8uc3": (np.dtype(np.uint8), 3, (2, 1, 0)),
    "rgba8": (np.dtype(np.uint8), 4, (0, 1, 2)),
    "bgra8": (np.dtype(np.uint8), 4, (2, 1, 0)),
    "rgb16": (np.dtype(np.uint16), 3, (0, 1, 2)),
    "bgr16": (np.dtype(np.uint16), 3, (2, 1, 0)),
}

#: Encodings accepted by :func:`image_message_to_numpy` (matched case-insensitively).
SUPPORTED_ENCODINGS = tuple(sorted(_ENCODINGS))


def bytes_per_pixel(encoding: str) -> int | None:
    """Bytes per pixel of a raw image in ``encoding`` (a ``sensor_msgs/Image`` encoding, or a
    ``CompressedImage`` format string whose part before ``;`` names one); None when unknown."""
    spec = _ENCODINGS.get(encoding.strip().lower())
    if spec is None:
        spec = _ENCODINGS.get(encoding.split(";")[0].strip().lower())
    if spec is None:
        return None
    dtype, channels, _ = spec
    return dtype.itemsize * channels


def _as_uint8_buffer(data, what: str) -> np.ndarray:
    """The message ``data`` field (bytes, bytearray, array.array, numpy array, list) as a flat uint8 view."""
    if data is None:
        raise ImageDecodeError(f"{what} has no data")
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            data = data.astype(np.uint8) if data.dtype.kind in "iu" else data.view(np.uint8)
        return data.reshape(-1)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError as exc:
        raise ImageDecodeError(f"{what} data of type {type(data).__name__} is not a byte buffer") from exc


def image_message_to_numpy(msg) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image``-like message.

    Honours ``step`` (bytes per row, rows may be padded) and ``is_bigendian`` (for 16-bit data).

    Returns:
        ``uint8`` / ``uint16`` array, ``[H, W]`` (mono) or ``[H, W, 3]`` (RGB; alpha dropped, BGR swapped).
        The array owns its memory (it does not alias the message).

    Raises:
        ImageDecodeError: zero sizes, unknown encoding, ``step`` too small, or data shorter than
            ``height * step``.
    """
    height, width = int(msg.height), int(msg.width)
    encoding = str(msg.encoding)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image has zero size ({width}x{height})")
    spec = _ENCODINGS.get(encoding.strip().lower())
    if spec is None:
        raise ImageDecodeError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    dtype, channels, order = spec
    row_bytes = width * channels * dtype.itemsize
    step = int(msg.step)
    if step < row_bytes:
        raise ImageDecodeError(
            f"image step {step} is smaller than width x pixel size = {row_bytes} bytes ({encoding}, width {width})")
    buffer = _as_uint8_buffer(msg.data, "image")
    needed = height * step
    if buffer.size < needed:
        raise ImageDecodeError(
            f"truncated image data: {buffer.size} bytes, expected height x step = {height} x {step} = {needed} "
            f"({width}x{height} {encoding})")
    rows = buffer[:needed].reshape(height, step)[:, :row_bytes]
    if dtype.itemsize > 1:
        wire = dtype.newbyteorder(">" if bool(msg.is_bigendian) else "<")
        pixels = np.ascontiguousarray(rows).view(wire).astype(dtype)
    else:
        pixels = rows
    pixels = pixels.reshape(height, width, channels)
    if channels == 1:
        return np.array(pixels[:, :, 0], order="C", copy=True)
    return np.ascontiguousarray(pixels[:, :, list(order)])  # fancy indexing copies


def compressed_image_to_numpy(msg) -> np.ndarray:
    """Pixels of a ``sensor_msgs/CompressedImage``-like message (PNG or JPEG, decoded with Pillow).

    The ``format`` field (``"jpeg"``, ``"png"``, ``"bgr8; jpeg compressed bgr8"``...) is informative
    only: the payload's own header decides how it is decoded, and the decoded pixels are already
    in RGB order whatever the original encoding was.

    Returns:
        ``uint8`` ``[H, W]`` / ``[H, W, 3]``, or ``uint16`` ``[H, W]`` for 16-bit grayscale PNG.

    Raises:
        ImageDecodeError: empty, truncated or undecodable payload, or a ``compressedDepth`` image.
    """
    fmt = str(getattr(msg, "format", "") or "")
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(f"compressedDepth images are not camera images (format {fmt!r})")
    buffer = _as_uint8_buffer(msg.data, "compressed image")
    if buffer.size == 0:
        raise ImageDecodeError(f"compressed image ({fmt or 'no format'}) has no data")
    try:
        with Image.open(io.BytesIO(buffer.tobytes())) as img:
            img.load()
            return _pil_to_numpy(img)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(
            f"cannot decode compressed image ({fmt or 'no format'}, {buffer.size} bytes): {exc}") from exc


def _pil_to_numpy(img) -> np.ndarray:
    """A loaded Pillow image as uint8 gray / RGB, or uint16 gray for 16-bit images."""
    mode = img.mode
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16)
    if mode == "I":  # 16-bit PNGs decode to 32-bit "I" in some Pillow versions
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    gray = mode in ("1", "L", "LA") or (mode == "P" and _palette_is_gray(img))
    return np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8).copy()


def _palette_is_gray(img) -> bool:
    rgb = np.asarray(img.getpalette() or [0, 0, 0], dtype=np.uint8).reshape(-1, 3)
    return bool(np.all(rgb[:, 0] == rgb[:, 1]) and np.all(rgb[:, 1] == rgb[:, 2]))


def message_to_numpy(msg) -> np.ndarray:
    """Pixels of either message kind: a ``CompressedImage`` (has ``format``) or an ``Image``."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_image_to_numpy(msg)
    return image_message_to_numpy(msg)
