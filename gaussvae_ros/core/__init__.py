"""The ROS-free core: 2D Gaussian image model, renderer, fitter, Morton order, binary format, metrics.

Imports in a plain Python shell (numpy, torch, scipy, scikit-image; no ROS)::

    from gaussvae_ros.core import fit_image, render, encode_gaussians, decode_gaussians
    result = fit_image(image)                      # image: [H, W] or [H, W, C] array
    payload = encode_gaussians(result.gaussians)   # bytes
    picture = render(decode_gaussians(payload), 480, 640)  # [480, 640, C] float32, any size

Holds the ``gaussians-q`` payload format (:mod:`.codec`) and the one working-size function
(:func:`.image.working_image`). The ground floor: imports nothing else of the package.
"""

from .codec import BitDepths, decode_gaussians, encode_gaussians, encoded_size
from .fit import FitConfig, FitResult, fit_image
from .gaussians import DEFAULT_NUM_GAUSSIANS, PARAM_GROUPS, Gaussians
from .image import psnr, resize_long_side, ssim, to_float_image, to_uint8
from .morton import morton_codes, morton_order
from .render import project, rasterize, render, render_params

__all__ = [
    "BitDepths", "DEFAULT_NUM_GAUSSIANS", "FitConfig", "FitResult", "Gaussians", "PARAM_GROUPS",
    "decode_gaussians", "encode_gaussians", "encoded_size", "fit_image", "morton_codes", "morton_order",
    "project", "psnr", "rasterize", "render", "render_params", "resize_long_side", "ssim", "to_float_image",
    "to_uint8",
]
