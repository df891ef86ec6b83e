"""Is the VAE better than predicting the average? Per-group errors of a model vs mean predictors.

The prototype's rotation and colour losses sat at ~1.0 in standardized units, which is exactly what
predicting the training mean scores. This module makes that comparison explicit on held-out
data, group by group and slot by slot (slot k = the k-th Gaussian in Morton order):

* ``slot_mean``: predict every slot's training-set mean feature vector (after Morton sorting a
  slot's position is partly known from its index alone, so this is the honest baseline);
* ``global_mean``: predict the mean over all slots (standardized: ~1.0 per group);
* optionally ``pca``: the best *linear* code of the same size (:func:`pca_errors`: PCA fitted on
  the training features, held-out samples projected on the top-k components). A VAE that does
  not beat it has learned nothing a linear 8:1 code could not; if PCA itself barely beats the
  slot mean, the parameters hold little shared structure to compress.

Errors are reported in two spaces:

* ``groups``: MSE of standardized features, per feature group (what the training loss sees;
  depends on the representation);
* ``natural``: representation-independent errors of the decoded Gaussians, so runs with different
  representations compare: position RMSE (normalized image units), log-scale RMSE, rotation error
  in degrees modulo 180 (median, and mean weighted by the target's anisotropy ``1 - s2/s1`` since
  a round Gaussian's angle does not matter), relative covariance error ``|S' - S|_F / |S|_F``
  (mean) and colour RMSE (intensity units 0..1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .features import ParamTransform, canonicalize, covariance_entries


def features_of(params: np.ndarray, transform: ParamTransform) -> torch.Tensor:
    """Standardized model inputs ``[M, F, N]`` of raw parameters ``[M, N, 5 + C]``."""
    return transform.encode(params).transpose(1, 2).contiguous()


def slot_mean_of(features: torch.Tensor) -> np.ndarray:
    """Training-set mean of each slot's standardized features: ``[M, F, N]`` -> ``[N, F]``."""
    return features.double().mean(0).T.float().numpy()


@torch.no_grad()
def reconstruct(model: nn.Module, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Deterministic reconstructions (``z = mu``) of ``features [M, F, N]``, same shape, on the CPU."""
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        out = [model(features[i:i + batch_size].to(device))["x_hat"].cpu()
               for i in range(0, features.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def _group_mse(pred: torch.Tensor, target: torch.Tensor, groups: dict[str, slice]) -> tuple[dict, dict]:
    """Per-group MSE overall and per slot (``[N]``) for ``[M, F, N]`` tensors."""
    sq = (pred - target).double().pow(2)
    overall = {g: float(sq[:, sl].mean()) for g, sl in groups.items()}
    per_slot = {g: sq[:, sl].mean(dim=(0, 1)).float().numpy() for g, sl in groups.items()}
    return overall, per_slot


def natural_errors(pred_params: torch.Tensor, target_params: torch.Tensor) -> dict[str, float]:
    """Representation-independent errors between raw parameter tensors ``[M, N, 5 + C]``."""
    p, t = canonicalize(pred_params.double()), canonicalize(target_params.double())
    d_rot = torch.remainder(p[..., 4] - t[..., 4] + math.pi / 2, math.pi) - math.pi / 2
    rot_deg = d_rot.abs() * 180 / math.pi
    anisotropy = 1 - t[..., 3] / t[..., 2]
    cov_p = torch.stack(covariance_entries(p[..., 2:4], p[..., 4]), -1)
    cov_t = torch.stack(covariance_entries(t[..., 2:4], t[..., 4]), -1)
    weights = torch.tensor([1.0, 2.0, 1.0], dtype=cov_t.dtype)  # off-diagonal counts twice in |.|_F
    frob = lambda m: torch.sqrt((m.pow(2) * weights).sum(-1))  # noqa: E731
    return {
        "xy_rmse": float((p[..., 0:2] - t[..., 0:2]).pow(2).mean().sqrt()),
        "log_scale_rmse": float((torch.log(p[..., 2:4].clamp(min=1e-9)) - torch.log(t[..., 2:4])).pow(2).mean().sqrt()),
        "rot_error_deg_median": float(rot_deg.median()),
        "rot_error_deg_anisotropy_weighted": float((rot_deg * anisotropy).sum() / anisotropy.sum().clamp(min=1e-12)),
        "cov_rel_error": float((frob(cov_p - cov_t) / frob(cov_t)).mean()),
        "color_rmse": float((p[..., 5:] - t[..., 5:]).pow(2).mean().sqrt()),
    }


def rendered_psnr(pred: torch.Tensor, target: torch.Tensor, transform: ParamTransform, size: int = 64) -> float:
    """Mean over samples of the PSNR (dB, peak 1) between the renderings at ``size x size`` of
    predicted and target features ``[M, F, N]``: how close a decoded memory looks to the Gaussians
    it was encoded from, whatever slot holds which Gaussian."""
    values = []
    with torch.no_grad():
        for i in range(0, target.shape[0], 64):
            a, b = (transform.render_features(f[i:i + 64], size, size) for f in (pred, target))
            mse = (a - b).pow(2).flatten(1).mean(1).clamp(min=1e-10)
            values += (-10.0 * torch.log10(mse)).tolist()
    return float(np.mean(values))


def evaluate_against_mean(model: nn.Module, transform: ParamTransform, slot_mean: np.ndarray, params: np.ndarray,
                          batch_size: int = 256, per_slot: bool = False, image_size: int = 0) -> dict:
    """Compare ``model`` with the slot-mean and global-mean predictors on raw parameters ``[M, N, 5 + C]``.

    Returns ``{"samples", "groups": {g: {model, slot_mean, global_mean, model_over_slot_mean}},
    "natural": {metric: {model, slot_mean}}}``; with ``image_size`` also ``"image_psnr": {model,
    slot_mean}`` (:func:`rendered_psnr`), with ``per_slot`` also ``"per_slot": {"model": {g: [N]},
    "slot_mean": {g: [N]}}`` (numpy arrays).
    """
    target = features_of(params, transform)
    n_slots = target.shape[2]
    slot_mean = np.asarray(slot_mean, dtype=np.float32)
    if slot_mean.shape != (n_slots, target.shape[1]):
        raise ValueError(f"slot means are {slot_mean.shape}, data has {n_slots} slots of {target.shape[1]} features")
    pred = reconstruct(model, target, batch_size)
    slot_pred = torch.from_numpy(slot_mean.T.copy()).expand_as(target)
    global_pred = torch.from_numpy(slot_mean.mean(0)).view(1, -1, 1).expand_as(target)
    groups = transform.groups
    model_mse, model_slots = _group_mse(pred, target, groups)
    slot_mse, slot_slots = _group_mse(slot_pred, target, groups)
    global_mse, _ = _group_mse(global_pred, target, groups)
    report = {
        "samples": int(target.shape[0]),
        "groups": {g: {"model": model_mse[g], "slot_mean": slot_mse[g], "global_mean": global_mse[g],
                       "model_over_slot_mean": model_mse[g] / max(slot_mse[g], 1e-12)} for g in groups},
    }
    raw_target = torch.as_tensor(params, dtype=torch.float32)
    decoded = {"model": transform.decode(pred.transpose(1, 2)),
               "slot_mean": transform.decode(slot_pred.transpose(1, 2))}
    natural = {name: natural_errors(p, raw_target) for name, p in decoded.items()}
    report["natural"] = {k: {name: natural[name][k] for name in natural} for k in natural["model"]}
    if image_size:
        report["image_psnr"] = {name: rendered_psnr(p, target, transform, image_size)
                                for name, p in (("model", pred), ("slot_mean", slot_pred))}
        report["image_size"] = int(image_size)
    if per_slot:
        report["per_slot"] = {"model": model_slots, "slot_mean": slot_slots}
    return report


def pca_errors(train_features: torch.Tensor, heldout_features: torch.Tensor, components: int,
               groups: dict[str, slice]) -> dict[str, float]:
    """Per-group MSE of reconstructing ``heldout_features [M, F, N]`` from its projection on the
    top ``components`` principal components of ``train_features [M', F, N]`` (flattened to F * N)."""
    if components < 0:
        raise ValueError(f"components must be >= 0, got {components}")
    a = train_features.double().flatten(1)
    b = heldout_features.double().flatten(1)
    mean = a.mean(0)
    _, _, vh = torch.linalg.svd(a - mean, full_matrices=False)
    basis = vh[:components]
    centred = b - mean
    residual = (centred - (centred @ basis.T) @ basis).view_as(heldout_features)
    return {g: float(residual[:, sl].pow(2).mean()) for g, sl in groups.items()}
