"""Codec ``gaussians-rd``: rate-distortion-optimized, entropy-coded 2D Gaussians.

* :mod:`.format`: the payload (canonical pixel-space attributes, per-memory quantization steps,
  adaptive precision, Morton-gap positions, range coding with per-memory geometric models): bytes
  in, bytes out; numpy, scipy and constriction only;
* :mod:`.fit`: quantization-aware, rate-aware fitting of a frame to a byte budget
  (:func:`encode_image`); torch.

No model: a memory's model id is empty. Decoding is deterministic and bit-exact.
"""

from .fit import RDConfig, RDResult, encode_image
from .format import Decoded, PayloadError, StepCodes, decode, encode, estimate_size, symbolize

CODEC_ID = "gaussians-rd"
#: Byte budgets a memory may be given (the header and checksum take 29 bytes for RGB; 1 MiB holds ~250,000 Gaussians).
MIN_BUDGET, MAX_BUDGET = 64, 1 << 20

__all__ = ["CODEC_ID", "MAX_BUDGET", "MIN_BUDGET", "Decoded", "PayloadError", "RDConfig", "RDResult", "StepCodes", "decode", "encode",
           "encode_image", "estimate_size", "symbolize"]
