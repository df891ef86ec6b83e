"""The VAE stage: compress a fitted image's Morton-sorted Gaussians ``[N, 5 + C]`` into a latent vector.

Modules:

* :mod:`.features`: raw Gaussian parameters <-> standardized features (rotation representations,
  training-set normalization statistics);
* :mod:`.networks`: the registered Conv1D VAEs (``conv1d_vae``, ``resnet_conv1d_vae``);
* :mod:`.losses`: MSE + annealed beta-KL with per-group terms, outside the model;
* :mod:`.data`: the cached-parameter file format and a Dataset over it;
* :mod:`.delaunay`: Delaunay abstract-art generator and its near-exact triangle-derived fit;
* :mod:`.checkpoint`: model files and resumable training checkpoints (tensors + JSON only);
* :mod:`.train`: the training loop (TensorBoard, resume, DDP under torchrun);
* :mod:`.reconstruction`: model vs mean-predictor errors, per group and per slot (training's
  validation; the codecs' rate-distortion is :mod:`gaussvae_ros.eval`);
* :mod:`.fitted_sets`: training sets of fitted Gaussians from photographs or recordings.

The models and their training only: the latent codec built on them is :mod:`gaussvae_ros.codecs.latent`.
May import :mod:`gaussvae_ros.core` and :mod:`gaussvae_ros.bag` (recordings), nothing above.
"""

from .checkpoint import load_checkpoint, load_model, save_model
from .config import DataConfig, ExperimentConfig, LossConfig, ModelConfig, TrainConfig, load_config
from .data import GaussianParamDataset, load_param_set, save_param_set, split_indices
from .reconstruction import evaluate_against_mean
from .losses import VAELoss, kl_weight
from .networks import MODEL_REGISTRY, build_model, count_parameters, register_model
from .features import ParamTransform, feature_groups, features_to_params, params_to_features

__all__ = [
    "DataConfig", "ExperimentConfig", "GaussianParamDataset", "LossConfig", "MODEL_REGISTRY", "ModelConfig",
    "ParamTransform", "TrainConfig", "VAELoss", "build_model", "count_parameters", "evaluate_against_mean",
    "feature_groups", "features_to_params", "kl_weight", "load_checkpoint", "load_config", "load_model",
    "load_param_set", "params_to_features", "register_model", "save_model", "save_param_set", "split_indices",
]
