"""VAE loss, kept outside the model (CompressAI style): MSE reconstruction + annealed beta * KL.

All terms are per element of the standardized feature tensor ``[B, F, N]``:

* ``mse``: mean squared error over all elements, with optional per-group weights
  (``sum_g w_g * F_g * mse_g / sum_g F_g``, i.e. the plain MSE when every weight is 1);
* ``kl``: KL(q(z|x) || N(0, I)) summed over latent dimensions, averaged over the batch, in nats
  per sample (logged as is);
* ``loss = mse + kl_weight(step) * kl / (F * N)``. With ``beta = 2`` this is the negative ELBO of
  a unit-variance Gaussian decoder in standardized units (up to constants and a factor 2 / (F N)).

Per-group MSEs (``group/xy``, ``group/scale``, ...) are returned for logging; a mean predictor
scores about 1.0 on each with ``channel`` normalization.

Training through the renderer (:class:`RenderedImageLoss`, ``loss.image_weight > 0``): the decoded
Gaussians and the input Gaussians are both rendered at ``image_size x image_size`` and compared
pixel by pixel (MSE in intensity units, 0..1). That loss is blind to the parametrization and to
which slot holds which Gaussian, and it is what a recalled memory is judged by. The total is then
``param_weight * mse + image_weight * image_mse + kl_weight(step) * kl / (F * N)``.
"""

from __future__ import annotations

import torch
from torch import nn


def kl_weight(step: int, beta: float, anneal_steps: int, anneal_start: int = 0) -> float:
    """Linear KL annealing: 0 before ``anneal_start``, rising linearly to ``beta`` over
    ``anneal_steps`` steps, ``beta`` afterwards (``beta`` throughout when ``anneal_steps == 0``)."""
    if anneal_steps < 0 or anneal_start < 0:
        raise ValueError("kl annealing steps and start must be >= 0")
    if not beta >= 0 or beta == float("inf"):  # NaN fails >= too
        raise ValueError(f"beta (the KL weight) must be a finite number >= 0, got {beta}")
    if anneal_steps == 0:
        return float(beta) if step >= anneal_start else 0.0
    progress = (step - anneal_start) / anneal_steps
    return float(beta) * min(1.0, max(0.0, progress))


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, ``[B]`` nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


class VAELoss(nn.Module):
    """Weighted MSE + annealed beta * KL; see the module docstring.

    Args:
        groups: feature-channel slices by group name (:func:`gaussvae_ros.vae.features.feature_groups`).
        beta, anneal_steps, anneal_start: KL schedule (:func:`kl_weight`).
        group_weights: optional per-group MSE weights (unknown names are an error).
    """

    def __init__(self, groups: dict[str, slice], beta: float = 1.0, anneal_steps: int = 0,
                 anneal_start: int = 0, group_weights: dict[str, float] | None = None,
                 param_weight: float = 1.0, image_loss: "RenderedImageLoss | None" = None,
                 image_weight: float = 0.0) -> None:
        super().__init__()
        group_weights = dict(group_weights or {})
        unknown = set(group_weights) - set(groups)
        if unknown:
            raise ValueError(f"group_weights names {sorted(unknown)} are not feature groups {sorted(groups)}")
        if any(not w >= 0 for w in group_weights.values()):
            raise ValueError("group weights must be >= 0")
        self.groups = dict(groups)
        self.weights = {g: float(group_weights.get(g, 1.0)) for g in groups}
        self.beta, self.anneal_steps, self.anneal_start = float(beta), int(anneal_steps), int(anneal_start)
        kl_weight(0, beta, anneal_steps, anneal_start)  # validates the schedule
        if not (param_weight >= 0 and image_weight >= 0):
            raise ValueError("param_weight and image_weight must be >= 0")
        if image_weight > 0 and image_loss is None:
            raise ValueError("image_weight > 0 needs an image loss (RenderedImageLoss)")
        self.param_weight, self.image_weight = float(param_weight), float(image_weight)
        self.image_loss = image_loss if image_weight > 0 else None

    def forward(self, output: dict[str, torch.Tensor], target: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """``output`` from a model's forward, ``target [B, F, N]``; returns ``loss``, ``mse``, ``kl``,
        ``kl_weight``, ``group/<name>`` and, with an image loss, ``image_mse`` and ``image_psnr`` (scalars)."""
        x_hat = output["x_hat"]
        if x_hat.shape != target.shape:
            raise ValueError(f"reconstruction {tuple(x_hat.shape)} and target {tuple(target.shape)} differ in shape")
        sq = (x_hat - target).pow(2)
        result: dict[str, torch.Tensor] = {}
        weighted = x_hat.new_zeros(())
        channels = 0
        for name, sl in self.groups.items():
            group_mse = sq[:, sl].mean()
            result[f"group/{name}"] = group_mse
            n = sl.stop - sl.start
            weighted = weighted + self.weights[name] * n * group_mse
            channels += n
        mse = weighted / channels
        kl = kl_divergence(output["mu"], output["logvar"]).mean()
        weight = kl_weight(step, self.beta, self.anneal_steps, self.anneal_start)
        elements = target.shape[1] * target.shape[2]
        loss = self.param_weight * mse + weight * kl / elements
        if self.image_loss is not None:
            image_mse = self.image_loss(x_hat, target)
            loss = loss + self.image_weight * image_mse
            result.update(image_mse=image_mse.detach(),
                          image_psnr=-10.0 * torch.log10(image_mse.detach().clamp(min=1e-10)))
        result.update(loss=loss, mse=mse, kl=kl, kl_weight=torch.tensor(weight, device=x_hat.device))
        return result


class RenderedImageLoss(nn.Module):
    """Mean squared pixel error between the renderings of decoded and input Gaussians.

    Both feature tensors ``[B, F, N]`` (standardized, as the model sees them) are decoded to
    covariances with ``transform`` (:meth:`~gaussvae_ros.vae.features.ParamTransform.decode_covariance`)
    and rendered at ``size x size`` with the ``blend`` the Gaussians were fitted for; the input's
    rendering is the target (no gradient). Every sample is rendered separately on the CPU kernel
    (one thread each: batches are small, images tiny). Colours are clamped to ``[0, 1]`` after
    rendering, as recall does.
    """

    def __init__(self, transform, size: int = 64, blend: str = "normalized") -> None:
        super().__init__()
        if size < 8:
            raise ValueError(f"image loss size must be at least 8 px, got {size}")
        self.transform, self.size, self.blend = transform, int(size), blend

    def render_batch(self, features: torch.Tensor) -> torch.Tensor:
        """Standardized features ``[B, F, N]`` -> images ``[B, size, size, C]`` in ``[0, 1]``."""
        return self.transform.render_features(features, self.size, self.size, self.blend)

    def forward(self, x_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            reference = self.render_batch(target)
        return (self.render_batch(x_hat) - reference).pow(2).mean()
