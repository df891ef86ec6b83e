"""The mean-predictor and linear (PCA) baselines that tell whether a VAE learned anything."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gaussvae_ros.vae.delaunay import make_delaunay_param_set
from gaussvae_ros.vae.reconstruction import evaluate_against_mean, features_of, pca_errors, slot_mean_of
from gaussvae_ros.vae.features import ParamTransform


class SlotMeanModel(nn.Module):
    """A 'VAE' that ignores its input and outputs fixed per-slot features."""

    def __init__(self, slot_mean: np.ndarray) -> None:
        super().__init__()
        self.out = nn.Parameter(torch.from_numpy(slot_mean.T.copy()))

    def forward(self, x):
        return {"x_hat": self.out.expand(x.shape[0], -1, -1)}


@pytest.fixture(scope="module")
def delaunay_split():
    params, _ = make_delaunay_param_set(60, seed=3, n_gaussians=128, max_points=50)
    return params[:48], params[48:]


@pytest.mark.parametrize("representation", ["angle", "doubled_angle", "cholesky"])
def test_a_model_that_outputs_the_slot_mean_scores_exactly_the_slot_mean_baseline(delaunay_split, representation):
    train, heldout = delaunay_split
    transform = ParamTransform(representation, log_scale=True).fit(train)
    slot_mean = slot_mean_of(features_of(train, transform))
    report = evaluate_against_mean(SlotMeanModel(slot_mean), transform, slot_mean, heldout, per_slot=True)
    assert report["samples"] == len(heldout)
    for group, row in report["groups"].items():
        assert row["model_over_slot_mean"] == pytest.approx(1.0)
        assert report["per_slot"]["model"][group].shape == (128,)
    for metric, row in report["natural"].items():
        assert row["model"] == pytest.approx(row["slot_mean"]), metric
    # Morton order makes a slot's position predictable from its index alone.
    assert report["groups"]["xy"]["slot_mean"] < 0.5 * report["groups"]["xy"]["global_mean"]


def test_pca_baseline_interpolates_between_slot_mean_and_exact(delaunay_split):
    train, heldout = delaunay_split
    transform = ParamTransform("cholesky").fit(train)
    a, b = features_of(train, transform), features_of(heldout, transform)
    slot_mean = slot_mean_of(a)
    report = evaluate_against_mean(SlotMeanModel(slot_mean), transform, slot_mean, heldout)
    zero = pca_errors(a, b, 0, transform.groups)
    for group in transform.groups:
        assert zero[group] == pytest.approx(report["groups"][group]["slot_mean"], rel=1e-4)
    errors = [pca_errors(a, b, k, transform.groups) for k in (4, 16, 40)]
    for group in transform.groups:
        values = [zero[group]] + [e[group] for e in errors]
        assert values == sorted(values, reverse=True), (group, values)
    on_train = pca_errors(a, a, len(a), transform.groups)
    assert max(on_train.values()) < 1e-8  # as many components as samples reproduce the training set
