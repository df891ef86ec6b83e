"""Evaluation kept apart from the models: rate-distortion of Gaussians, the VAE latent codec and
standard image codecs at fixed byte budgets (``gaussvae eval``).

Beside the memory pipeline: may import :mod:`gaussvae_ros.core` and :mod:`gaussvae_ros.codecs`.
"""

from .methods import (DEFAULT_COUNTS, DEFAULT_PRESETS, PILLOW_FORMATS, SCALE_FACTORS, Encoded, FitOptions,
                      GaussianMethod, ImageContext, LatentMethod, Method, PillowCodec, RDGaussianMethod,
                      ScaledPillowCodec, load_latent_method, pillow_codecs, psnr_uint8)
from .rd import evaluate, format_table, list_images, load_image, plot_rd, prepare_image, ssim_uint8, summarize

__all__ = [
    "DEFAULT_COUNTS", "DEFAULT_PRESETS", "Encoded", "FitOptions", "GaussianMethod", "ImageContext", "LatentMethod",
    "Method", "PILLOW_FORMATS", "PillowCodec", "RDGaussianMethod", "SCALE_FACTORS", "ScaledPillowCodec", "evaluate", "format_table", "list_images", "load_image", "load_latent_method",
    "pillow_codecs", "plot_rd", "prepare_image", "psnr_uint8", "ssim_uint8", "summarize",
]
