"""The ``vae-latent`` codec: a memory stored as its entropy-coded VAE latent (torch).

* :mod:`.bundle`: the model bundle (VAE + feature transform + entropy model) and its model file;
* :mod:`.payload`: the payload format, encoding (at a step or within a byte budget) and decoding;
* :mod:`.entropy`: the latent's entropy model and range coder;
* :mod:`.tiles`: one latent per tile of a picture (payload version 2);
* :mod:`.refine`: encoder-side refinement of a latent against its picture;
* :mod:`.image_encoder`: from a picture to a payload (tiles fitted, best grid kept);
* :mod:`.entropy_fit`: fitting the entropy model of a trained VAE (``python -m gaussvae_ros.codecs.latent``);
* :mod:`.model_registry`: which models this process decodes with (shipped, registered, ``$GAUSSVAE_LATENT_MODELS``).

May import :mod:`gaussvae_ros.core` and :mod:`gaussvae_ros.vae` (the models), never a room above.
"""

from .bundle import LatentModelBundle, attach_entropy_model, load_bundle, make_bundle, model_fingerprint, save_bundle
from .entropy import EntropyModel, check_step
from .entropy_fit import build_bundle_file, fit_entropy_model, main
from .model_registry import (DEFAULT_MODEL_FILE, ENV_MODELS, decode_memory, default_model_path, find_latent_model,
                             load_default_bundle, model_files, register_latent_model, unregister_latent_model)
from .payload import (CODEC_ID, DEFAULT_STEP, DEFAULT_STEPS, ENCODE_STEP_RANGE, MAGIC, decode_latent, encode_latent,
                      encode_to_budget, latent_of, payload_info)

__all__ = [
    "CODEC_ID", "DEFAULT_MODEL_FILE", "DEFAULT_STEP", "DEFAULT_STEPS", "ENCODE_STEP_RANGE", "ENV_MODELS", "MAGIC",
    "EntropyModel", "LatentModelBundle", "attach_entropy_model", "build_bundle_file", "check_step", "decode_latent",
    "decode_memory", "default_model_path", "encode_latent", "encode_to_budget", "find_latent_model",
    "fit_entropy_model", "latent_of", "load_bundle", "load_default_bundle", "main", "make_bundle",
    "model_files", "model_fingerprint", "payload_info", "register_latent_model", "save_bundle",
    "unregister_latent_model",
]
