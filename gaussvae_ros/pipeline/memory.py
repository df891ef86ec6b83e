"""One frame's way to a memory, shared by the encoder node and ``gaussvae replay``:

frame -> :func:`prepare_frame` (working image, thumbnail) -> keyframe decision (the caller's
:class:`~gaussvae_ros.bag.keyframes.KeyframePolicy`, one per camera) -> :func:`warm_start`
(the previous keyframe's Gaussians, when the scene still looks alike) -> :func:`fit_memory` (fit,
payload) -> :func:`stored_memory` (the store's record; the node publishes a message instead).
Every step takes the one :class:`~gaussvae_ros.pipeline.settings.MemorySettings`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gaussvae_ros.bag.keyframes import image_thumbnail
from gaussvae_ros.codecs import PayloadEncoder, decode_payload, payload_encoder
from gaussvae_ros.core import FitResult, Gaussians, fit_image, psnr, render, ssim, to_float_image
from gaussvae_ros.core.image import working_image
from gaussvae_ros.store.records import CameraIntrinsics, Memory, Pose

from .settings import MemorySettings

__all__ = ["FittedMemory", "fit_memory", "prepare_frame", "stored_memory", "warm_start"]


def prepare_frame(image: np.ndarray, settings: MemorySettings) -> tuple[np.ndarray, np.ndarray]:
    """``(working image, thumbnail)`` of a decoded frame: its long side shrunk to
    ``settings.long_side`` (area-averaged, never enlarged) and the keyframe policy's thumbnail of it.

    ValueError for a frame too thin to fit: one whose working image would be under
    :data:`MIN_WORKING_SIDE` pixels on a side (a 2x1000 frame at long side 64 is 64x1).
    """
    work = working_image(image, settings.long_side)
    if min(work.shape[:2]) < MIN_WORKING_SIDE:
        h, w = image.shape[:2]
        raise ValueError(f"frame of {w}x{h} pixels is too thin to fit: its working image (long side "
                         f"{settings.long_side}) would be {work.shape[1]}x{work.shape[0]} pixels, under "
                         f"{MIN_WORKING_SIDE} on a side")
    return work, image_thumbnail(work)


#: Fewest pixels on each side of a working image that the fitter accepts.
MIN_WORKING_SIDE = 4


def warm_start(previous: Gaussians | None, image_change: float | None, settings: MemorySettings):
    """The Gaussians to warm-start a keyframe's fit from: the camera's previous keyframe when the
    frames' thumbnails differ by less than ``settings.warm_start_max_change``, else None (the scene
    moved on: a cold start fits it better)."""
    if image_change is None or image_change >= settings.warm_start_max_change:
        return None
    return previous


@dataclass(frozen=True)
class FittedMemory:
    """A fitted frame: the fit, its payload, whether the warm start was used (False after a cold
    restart or without one), and the quality of the payload itself: ``psnr`` (dB) and ``ssim`` of
    the decoded payload rendered at the working size against the working image (what recall gives
    back, not the fit before coding; ``result.psnr`` is the fit's)."""

    result: FitResult
    payload: bytes
    warm: bool
    psnr: float
    ssim: float


def fit_memory(image: np.ndarray, settings: MemorySettings, init: Gaussians | None = None,
               encoder: PayloadEncoder | None = None) -> FittedMemory:
    """Fit a working-resolution image with ``settings.fit``, warm-started from ``init`` when its
    channels match, and encode it with ``encoder`` (default: quantized Gaussians), which gets the same
    ``settings.fit`` for any fitting of its own (tiles). A codec that fits the frame itself
    (``encoder.encode_frame``, e.g. ``gaussians-rd`` to its byte budget) does the fit instead.

    When the warm-started fit fails (it diverged: non-finite parameters or scales, found before
    encoding it) or cannot be encoded, the frame is fitted again from scratch: a bad previous
    keyframe never costs the next one. The payload is decoded once more to measure what is stored.

    Raises:
        ValueError: the image cannot be fitted or encoded even from scratch.
    """
    encoder = encoder or payload_encoder()  # quantized Gaussians
    channels = 1 if image.ndim == 2 else image.shape[2]
    if init is not None and init.channels != channels:
        init = None
    if init is not None:
        try:
            result, payload = _fit_and_encode(image, settings, init, encoder)
            return _measured(image, result, payload, True, encoder, settings.fit.threads)
        except (ValueError, RuntimeError):  # diverged, or a fit the codec cannot take (e.g. fewer Gaussians)
            pass
    result, payload = _fit_and_encode(image, settings, None, encoder)
    return _measured(image, result, payload, False, encoder, settings.fit.threads)


def _fit_and_encode(image, settings: MemorySettings, init, encoder: PayloadEncoder) -> tuple[FitResult, bytes]:
    if encoder.encode_frame is not None:
        started = time.perf_counter()
        payload, gaussians = encoder.encode_frame(image, init, fit=settings.fit)
        h, w = image.shape[:2]
        return FitResult(gaussians, math.nan, math.nan, 0, time.perf_counter() - started, h, w), payload
    result = fit_image(image, n_gaussians=settings.n_gaussians, init=init, config=settings.fit)
    if init is not None:
        result.gaussians.check_valid("warm-started fit")  # diverged: start cold without encoding it
    return result, encoder.encode(result.gaussians, image, fit=settings.fit)


def _measured(image, result: FitResult, payload: bytes, warm: bool, encoder: PayloadEncoder,
              threads: int | None) -> FittedMemory:
    """The fitted memory with its payload's quality at the working size."""
    target = to_float_image(image)
    h, w = target.shape[:2]
    decoded = decode_payload(payload, encoder.codec_id, encoder.model_id)
    picture = render(decoded, h, w, threads=threads)
    if picture.shape[2] != target.shape[2]:  # a grey frame through an RGB model comes back RGB
        picture = picture.mean(axis=2, keepdims=True) if target.shape[2] == 1 else np.repeat(picture, 3, axis=2)
    quality_ssim = ssim(target, picture) if min(h, w) >= 7 else math.nan
    return FittedMemory(result, payload, warm, psnr(target, picture), quality_ssim)


def stored_memory(*, stamp_ns: int, topic: str, camera_frame_id: str, width: int, height: int, encoding: str,
                  fitted: FittedMemory, encoder: PayloadEncoder, pose: Pose | None = None, pose_frame_id: str = "",
                  intrinsics: CameraIntrinsics | None = None) -> Memory:
    """The store's record of a fitted frame (``width x height``: the original frame's size; ``psnr`` /
    ``ssim``: the payload's at the working size)."""
    return Memory(
        stamp_ns=stamp_ns, topic=topic, camera_frame_id=camera_frame_id, payload=fitted.payload,
        codec=encoder.codec_id, model_id=encoder.model_id, width=width, height=height, encoding=encoding,
        pose=pose, pose_frame_id=pose_frame_id if pose is not None else "", intrinsics=intrinsics,
        psnr=float(fitted.psnr), ssim=None if not math.isfinite(fitted.ssim) else float(fitted.ssim))
