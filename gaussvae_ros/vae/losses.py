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
"""

from __future__ import annotations

import torch
from torch import nn


def kl_weight(step: int, beta: float, anneal_steps: int, anneal_start: int = 0) -> float:
    """Linear KL annealing: 0 before ``anneal_start``, rising linearly to ``beta`` over
    ``anneal_steps`` steps, ``beta`` afterwards (``beta`` throughout when ``anneal_steps == 0``)."""
    if anneal_steps < 0 or anneal_start < 0:
        raise ValueError("kl annealing steps and start must be >= 0")
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
        groups: feature-channel slices by group name (:func:`gaussvae_ros.vae.params.feature_groups`).
        beta, anneal_steps, anneal_start: KL schedule (:func:`kl_weight`).
        group_weights: optional per-group MSE weights (unknown names are an error).
    """

    def __init__(self, groups: dict[str, slice], beta: float = 1.0, anneal_steps: int = 0,
                 anneal_start: int = 0, group_weights: dict[str, float] | None = None) -> None:
        super().__init__()
        group_weights = dict(group_weights or {})
        unknown = set(group_weights) - set(groups)
        if unknown:
            raise ValueError(f"group_weights names {sorted(unknown)} are not feature groups {sorted(groups)}")
        if any(w < 0 for w in group_weights.values()):
            raise ValueError("group weights must be >= 0")
        self.groups = dict(groups)
        self.weights = {g: float(group_weights.get(g, 1.0)) for g in groups}
        self.beta, self.anneal_steps, self.anneal_start = float(beta), int(anneal_steps), int(anneal_start)
        kl_weight(0, beta, anneal_steps, anneal_start)  # validates the schedule

    def forward(self, output: dict[str, torch.Tensor], target: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """``output`` from a model's forward, ``target [B, F, N]``; returns ``loss``, ``mse``, ``kl``,
        ``kl_weight`` and ``group/<name>`` (scalars)."""
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
        result.update(loss=mse + weight * kl / elements, mse=mse, kl=kl,
                      kl_weight=torch.tensor(weight, device=x_hat.device))
        return result
