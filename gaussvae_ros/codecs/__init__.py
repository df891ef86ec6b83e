"""The codec room (ROS-free): everything that turns Gaussians or a frame into bytes and back.

* :mod:`.registry`: the payload registry by codec id (``decode_payload``, ``render_memory``,
  ``register_codec``) and the encoders of new memories (``payload_encoder`` -> ``PayloadEncoder``);
* :mod:`.errors`: ``UnknownCodecError``, ``ModelMismatchError``;
* :mod:`.latent`: the ``vae-latent`` codec (model bundle, payload format, entropy coding, tiles,
  refinement, model registry and discovery; ``python -m gaussvae_ros.codecs.latent`` makes a model
  file). The ``gaussians-q`` payload format itself is :mod:`gaussvae_ros.core.codec`.

May import: :mod:`gaussvae_ros.core`, :mod:`gaussvae_ros.vae` (the trained models) and
:mod:`gaussvae_ros.store.records` (the default codec id). Never the pipeline, nodes or applications.
"""

from .errors import ModelMismatchError, UnknownCodecError
from .registry import (ENCODABLE_CODECS, LATENT_TILE_SETTINGS, PayloadCodec, PayloadEncoder, decode_payload,
                       known_codecs, payload_encoder, register_codec, render_memory, unregister_codec)

__all__ = [
    "ENCODABLE_CODECS", "LATENT_TILE_SETTINGS", "ModelMismatchError", "PayloadCodec", "PayloadEncoder",
    "UnknownCodecError", "decode_payload", "known_codecs", "payload_encoder", "register_codec", "render_memory",
    "unregister_codec",
]
