"""One frame's way to a memory, shared by the encoder node and ``gaussvae replay``:

frame -> :func:`prepare_frame` (working image, thumbnail) -> keyframe decision (the caller's
:class:`~gaussvae_ros.bag.keyframes.KeyframePolicy`, one per camera) -> :func:`warm_start`
(the previous keyframe's Gaussians, when the scene still looks alike) -> :func:`fit_memory` (fit,
payload) -> :func:`stored_memory` (the store's record; the node publishes a message instead).
Every step takes the one :class:`~gaussvae_ros.pipeline.settings.MemorySettings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gaussvae_ros.bag.keyframes import image_thumbnail
from gaussvae_ros.codecs import PayloadEncoder, payload_encoder
from gaussvae_ros.core import FitResult, Gaussians, fit_image
from gaussvae_ros.core.image import working_image
from gaussvae_ros.store.records import CameraIntrinsics, Memory, Pose

from .settings import MemorySettings

__all__ = ["FittedMemory", "fit_memory", "prepare_frame", "stored_memory", "warm_start"]


def prepare_frame(image: np.ndarray, settings: MemorySettings) -> tuple[np.ndarray, np.ndarray]:
    """``(working image, thumbnail)`` of a decoded frame: its long side shrunk to
    ``settings.long_side`` (area-averaged, never enlarged) and the keyframe policy's thumbnail of it."""
    work = working_image(image, settings.long_side)
    return work, image_thumbnail(work)


def warm_start(previous: Gaussians | None, image_change: float | None, settings: MemorySettings):
    """The Gaussians to warm-start a keyframe's fit from: the camera's previous keyframe when the
    frames' thumbnails differ by less than ``settings.warm_start_max_change``, else None (the scene
    moved on: a cold start fits it better)."""
    if image_change is None or image_change >= settings.warm_start_max_change:
        return None
    return previous


@dataclass(frozen=True)
class FittedMemory:
    """A fitted frame: the fit, its payload, and whether the warm start was used (False after a cold
    restart or without one)."""

    result: FitResult
    payload: bytes
    warm: bool


def fit_memory(image: np.ndarray, settings: MemorySettings, init: Gaussians | None = None,
               encoder: PayloadEncoder | None = None) -> FittedMemory:
    """Fit a working-resolution image with ``settings.fit``, warm-started from ``init`` when its
    channels match, and encode it with ``encoder`` (default: quantized Gaussians), which gets the same
    ``settings.fit`` for any fitting of its own (tiles).

    When the warm-started fit fails (it diverged: non-finite parameters or scales, found before
    encoding it) or cannot be encoded, the frame is fitted again from scratch: a bad previous
    keyframe never costs the next one.

    Raises:
        ValueError: the image cannot be fitted or encoded even from scratch.
    """
    encoder = encoder or payload_encoder()  # quantized Gaussians
    channels = 1 if image.ndim == 2 else image.shape[2]
    if init is not None and init.channels != channels:
        init = None
    if init is not None:
        try:
            warm = fit_image(image, n_gaussians=settings.n_gaussians, init=init, config=settings.fit)
            warm.gaussians.check_valid("warm-started fit")  # diverged: start cold without encoding it
            return FittedMemory(warm, encoder.encode(warm.gaussians, image, fit=settings.fit), True)
        except (ValueError, RuntimeError):  # diverged, or a fit the codec cannot take (e.g. fewer Gaussians)
            pass
    result = fit_image(image, n_gaussians=settings.n_gaussians, config=settings.fit)
    return FittedMemory(result, encoder.encode(result.gaussians, image, fit=settings.fit), False)


def stored_memory(*, stamp_ns: int, topic: str, camera_frame_id: str, width: int, height: int, encoding: str,
                  fitted: FittedMemory, encoder: PayloadEncoder, pose: Pose | None = None, pose_frame_id: str = "",
                  intrinsics: CameraIntrinsics | None = None) -> Memory:
    """The store's record of a fitted frame (``width x height``: the original frame's size)."""
    result = fitted.result
    return Memory(
        stamp_ns=stamp_ns, topic=topic, camera_frame_id=camera_frame_id, payload=fitted.payload,
        codec=encoder.codec_id, model_id=encoder.model_id, width=width, height=height, encoding=encoding,
        pose=pose, pose_frame_id=pose_frame_id if pose is not None else "", intrinsics=intrinsics,
        psnr=float(result.psnr), ssim=None if not math.isfinite(result.ssim) else float(result.ssim))
