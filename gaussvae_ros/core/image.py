"""Image conversion and quality metrics.

Images inside the package are float32 numpy arrays ``[H, W, C]`` with C in {1, 3} and values in
``[0, 1]`` (row 0 at the top). :func:`to_float_image` is the one documented conversion from whatever
a user or a camera hands us.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import structural_similarity

#: Largest image accepted, in pixels (a 64-megapixel frame); larger input is refused, not resized.
MAX_PIXELS = 64_000_000


def to_float_image(image: np.ndarray) -> np.ndarray:
    """Convert an image array to float32 ``[H, W, C]`` in ``[0, 1]``, C in {1, 3}.

    Accepted input and the conversion applied:

    * dtype uint8 (/255), uint16 (/65535), bool, other integer types with values in 0..255, or float
      (assumed already in ``[0, 1]``; values outside are clipped).
    * ``[H, W]`` -> 1 channel; ``[H, W, 1]`` gray; ``[H, W, 2]`` gray + alpha -> gray (alpha dropped);
      ``[H, W, 3]`` RGB; ``[H, W, 4]`` RGBA -> RGB (alpha dropped).

    Raises:
        ValueError: on empty images, other shapes or channel counts, NaN/Inf values, unsupported
            dtypes, or more than :data:`MAX_PIXELS` pixels.
    """
    array = np.asarray(image)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"unsupported image dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError("complex images are not supported")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"expected an image of shape [H, W] or [H, W, C], got {array.shape}")
    h, w, c = array.shape
    if h == 0 or w == 0:
        raise ValueError(f"empty image ({w}x{h})")
    if h * w > MAX_PIXELS:
        raise ValueError(f"image of {w}x{h} pixels is over the {MAX_PIXELS}-pixel limit; resize it first")
    if c == 2:
        array = array[:, :, :1]
    elif c == 4:
        array = array[:, :, :3]
    elif c not in (1, 3):
        raise ValueError(f"expected 1, 2, 3 or 4 channels, got {c}")
    if array.dtype == np.uint8:
        out = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        out = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        out = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"integer image of dtype {array.dtype} has values outside 0..255; pass uint16 "
                             "for 16-bit data or a float image in [0, 1]")
        out = array.astype(np.float32) / 255.0
    else:
        out = array.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("image contains NaN or Inf values")
        out = np.clip(out, 0.0, 1.0)
    return np.ascontiguousarray(out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``[H, W, C]`` in [0, 1] -> uint8 ``[H, W]`` (C = 1) or ``[H, W, 3]``, rounded."""
    out = np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    return out[:, :, 0] if out.ndim == 3 and out.shape[2] == 1 else out


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two float images in [0, 1] (peak 1); ``inf`` if identical."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity (scikit-image's default 7x7 window, data range 1) of float images [H, W, C]."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(test, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if min(a.shape[:2]) < 7:
        raise ValueError(f"SSIM needs images of at least 7x7 pixels, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a float ``[H, W, C]`` image to ``width x height`` (Lanczos, per channel in float, via Pillow)."""
    h, w, c = image.shape
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    if (width, height) == (w, h):
        return image
    return np.clip(_pillow_planes(image, (width, height), Image.LANCZOS), 0.0, 1.0).astype(np.float32)


def long_side_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """``(height, width)`` of a ``height x width`` picture scaled so its long side is ``long_side``
    (aspect kept, each side at least one pixel)."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


#: Resampling filters of :func:`working_image`.
RESAMPLING = ("box", "lanczos", "area")


def working_image(image: np.ndarray, long_side: int, *, resample: str = "box", enlarge: bool = False) -> np.ndarray:
    """``image`` with its long side at ``long_side`` pixels: THE working-size function of the package.

    ``image``: ``[H, W]`` or ``[H, W, C]``, uint8, uint16 or float (in ``[0, 1]``); the result has
    the same dtype and channels (float comes back float32, clipped to ``[0, 1]``; other integer
    types are rounded and clipped to their range). Never enlarged unless ``enlarge``; the input
    itself is returned when its size is already right. The callers keep the filter they were
    measured with, so their pictures stay bit-identical:

    * ``"box"`` (area average, Pillow BOX; default): the memory pipeline's working image of a camera
      frame (encoder node, ``gaussvae replay``, fitted training sets);
    * ``"lanczos"`` (Pillow LANCZOS): :func:`resize_long_side` (benchmarks, ``gaussvae fit``) and the
      rate-distortion evaluation's images (``enlarge=True``);
    * ``"area"`` (torch ``interpolate(mode="area")`` on float32): the latent refinement's target.
    """
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}, got {resample!r}")
    if long_side <= 0:
        raise ValueError(f"long side must be positive, got {long_side}")
    h, w = image.shape[:2]
    if max(h, w) <= long_side and not (enlarge and max(h, w) < long_side):
        return image
    height, width = long_side_size(h, w, long_side)
    if (height, width) == (h, w):
        return image
    if resample == "area":
        planes = torch.from_numpy(np.ascontiguousarray(image if image.ndim == 3 else image[:, :, None],
                                                       dtype=np.float32))
        out = F.interpolate(planes.permute(2, 0, 1)[None], size=(height, width), mode="area")[0].permute(1, 2, 0)
        out = out.contiguous().numpy()
        return out if image.ndim == 3 else out[:, :, 0]
    method = Image.BOX if resample == "box" else Image.LANCZOS
    if image.dtype == np.uint8:  # Pillow resamples 8-bit pictures itself (its rounding, kept)
        return np.asarray(Image.fromarray(image).resize((width, height), method))
    channels = image[:, :, None] if image.ndim == 2 else image
    out = _pillow_planes(channels, (width, height), method)
    if np.issubdtype(image.dtype, np.integer):
        out = np.clip(np.rint(out), 0, np.iinfo(image.dtype).max).astype(image.dtype)
    else:
        out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out[:, :, 0] if image.ndim == 2 else out


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resize a float ``[H, W, C]`` image so its longer side is ``long_side`` (aspect kept, Lanczos,
    up or down): :func:`working_image` with ``resample="lanczos", enlarge=True``."""
    return working_image(image, long_side, resample="lanczos", enlarge=True)


def _pillow_planes(image: np.ndarray, size: tuple[int, int], method) -> np.ndarray:
    """``[H, W, C]`` resampled channel by channel in float32 (Pillow mode ``F``) to ``size`` (w, h)."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, k], dtype=np.float32), mode="F")
                                .resize(size, method)) for k in range(image.shape[2])], axis=2)
