"""VAE models, parameter representations and the loss: shapes, sizes, invariances, schedule."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gaussvae_ros.vae.config import ModelConfig, load_config
from gaussvae_ros.vae.losses import VAELoss, kl_divergence, kl_weight
from gaussvae_ros.vae.networks import MODEL_REGISTRY, build_model, count_parameters, register_model
from gaussvae_ros.vae.features import (REPRESENTATIONS, ParamTransform, canonicalize, feature_groups,
                                     features_to_params, num_features, params_to_features)

CONFIG_DIR = Path(__file__).parents[2] / "config"


def _random_params(m: int, n: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.random((m, n, 2))
    scale = np.exp(rng.uniform(np.log(0.002), np.log(0.2), (m, n, 2)))
    rot = rng.uniform(-4, 4, (m, n, 1))
    color = rng.random((m, n, channels))
    return np.concatenate([xy, scale, rot, color], -1).astype(np.float32)


@pytest.mark.parametrize("config_name, expected_params", [
    ("conv1d_512d.yaml", 1.6e6),  # write-up: 1.6M
    ("resnet_conv1d_512d.yaml", 16e6),  # write-up: ~16M
])
def test_shipped_configs_build_models_of_the_prototype_size_and_shape(config_name, expected_params):
    config = load_config(CONFIG_DIR / config_name)
    model = build_model(config.model)
    n = count_parameters(model)
    assert abs(n - expected_params) / expected_params < 0.2, n
    x = torch.randn(2, config.model.in_channels, config.model.seq_len)
    model.train()
    out = model(x)
    assert out["x_hat"].shape == x.shape
    assert torch.isfinite(out["x_hat"]).all() and out["x_hat"].std() > 0  # an output, not NaN or a constant
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (2, config.model.latent_dim)
    model.eval()
    assert torch.equal(model(x)["z"], model(x)["mu"])  # deterministic in eval mode


def test_prototype_layer_widths():
    conv = build_model(load_config(CONFIG_DIR / "conv1d_512d.yaml").model)
    widths = [m.out_channels for m in conv.encoder_body.modules() if isinstance(m, torch.nn.Conv1d)]
    assert widths == [32, 64, 128]
    widths = [m.out_channels for m in conv.decoder_body.modules()
              if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    assert widths == [64, 32, 16]
    resnet = build_model(load_config(CONFIG_DIR / "resnet_conv1d_512d.yaml").model)
    assert len(resnet.encoder_body) == len(resnet.decoder_body) == 5
    assert [b.main[-1].num_channels for b in resnet.encoder_body] == [32, 64, 128, 256, 256]
    assert [b.main[-1].num_channels for b in resnet.decoder_body] == [256, 128, 64, 32, 16]


def test_model_adapts_to_representation_and_rejects_wrong_input():
    config = ModelConfig(in_channels=num_features("doubled_angle", 3), latent_dim=64)
    model = build_model(config)
    assert model(torch.randn(3, 9, 512))["x_hat"].shape == (3, 9, 512)
    with pytest.raises(ValueError, match=r"\[B, 9, 512\]"):
        model(torch.randn(3, 8, 512))
    with pytest.raises(ValueError, match="divisible"):
        build_model(ModelConfig(seq_len=500))
    with pytest.raises(ValueError, match="upsamples"):
        build_model(ModelConfig(decoder_strides=[4, 4, 2]))


def test_registry_builds_by_name_and_refuses_unknown_or_duplicate_names():
    assert {"conv1d_vae", "resnet_conv1d_vae"} <= set(MODEL_REGISTRY)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model(ModelConfig(name="nope"))

    @register_model("test_tiny_vae")
    class Tiny(MODEL_REGISTRY["conv1d_vae"]):
        pass

    try:
        assert isinstance(build_model(ModelConfig(name="test_tiny_vae")), Tiny)
        with pytest.raises(ValueError, match="already registered"):
            register_model("test_tiny_vae")(type("Other", (torch.nn.Module,), {}))
    finally:
        MODEL_REGISTRY.pop("test_tiny_vae")


def test_kl_annealing_is_linear_from_start_to_beta():
    beta, start, steps = 0.5, 100, 400
    assert kl_weight(0, beta, steps, start) == 0.0
    assert kl_weight(start, beta, steps, start) == 0.0
    assert kl_weight(start + steps // 4, beta, steps, start) == pytest.approx(beta / 4)
    assert kl_weight(start + steps // 2, beta, steps, start) == pytest.approx(beta / 2)
    assert kl_weight(start + steps, beta, steps, start) == beta
    assert kl_weight(start + 10 * steps, beta, steps, start) == beta
    weights = [kl_weight(s, beta, steps, start) for s in range(0, start + 2 * steps, 7)]
    assert weights == sorted(weights)
    assert kl_weight(0, beta, 0) == beta
    with pytest.raises(ValueError):
        kl_weight(0, beta, -1)
    for bad in (-1.0, float("nan"), float("inf")):  # a negative weight would reward a large KL
        with pytest.raises(ValueError, match="beta"):
            kl_weight(0, bad, steps)


def test_loss_reports_groups_and_adds_annealed_kl():
    groups = feature_groups("angle", 3)
    loss = VAELoss(groups, beta=2.0, anneal_steps=10, group_weights={"rot": 3.0})
    target = torch.zeros(4, 8, 16)
    x_hat = torch.zeros_like(target)
    x_hat[:, 4] = 1.0  # error only in the rotation channel
    mu, logvar = torch.ones(4, 5), torch.zeros(4, 5)
    out = loss({"x_hat": x_hat, "mu": mu, "logvar": logvar}, target, step=5)
    assert out["group/rot"] == pytest.approx(1.0)
    assert out["group/xy"] == out["group/scale"] == out["group/color"] == 0.0
    assert out["mse"] == pytest.approx(3.0 / 8)  # rot weighs 3, one of 8 channels
    assert out["kl"] == pytest.approx(float(kl_divergence(mu, logvar).mean()))
    assert out["kl"] == pytest.approx(2.5)  # 5 dims x mu^2 / 2
    assert out["kl_weight"] == pytest.approx(1.0)
    assert out["loss"] == pytest.approx(3.0 / 8 + 1.0 * 2.5 / (8 * 16))
    with pytest.raises(ValueError, match="not feature groups"):
        VAELoss(groups, group_weights={"colour": 1.0})


@pytest.mark.parametrize("representation", REPRESENTATIONS)
@pytest.mark.parametrize("log_scale", [False, True])
def test_representations_round_trip_to_the_same_gaussians(representation, log_scale):
    params = torch.from_numpy(_random_params(2, 64))
    feats = params_to_features(params, representation, log_scale)
    assert feats.shape == (2, 64, num_features(representation, 3))
    back = canonicalize(features_to_params(feats, representation, log_scale))
    np.testing.assert_allclose(back[..., :4], canonicalize(params)[..., :4], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(back[..., 5:], params[..., 5:], atol=1e-6)
    d = torch.remainder(back[..., 4] - canonicalize(params)[..., 4] + math.pi / 2, math.pi) - math.pi / 2
    assert d.abs().max() < 1e-3


@pytest.mark.parametrize("representation", ["doubled_angle", "cholesky"])
def test_periodicity_and_swapped_axes_do_not_change_doubled_angle_or_cholesky_features(representation):
    params = torch.from_numpy(_random_params(1, 128, seed=1)).double()
    same = params.clone()  # the same Gaussians: axes swapped, angle + pi/2 + k pi
    same[..., 2:4] = params[..., 2:4].flip(-1)
    same[..., 4] = params[..., 4] + math.pi / 2 + math.pi * torch.randint(-3, 4, params[..., 4].shape)
    a, b = params_to_features(params, representation, True), params_to_features(same, representation, True)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    raw_a, raw_b = params_to_features(params, "angle"), params_to_features(same, "angle")
    assert (raw_a - raw_b).abs().max() > 1.0  # the prototype's raw angle sees different numbers


def test_transform_standardizes_with_training_statistics_and_decodes_back():
    train = _random_params(20, 32, seed=2)
    for normalization, stat_shape in (("channel", (8,)), ("slot", (32, 8)), ("none", (8,))):
        t = ParamTransform("cholesky", normalization=normalization).fit(train)
        assert t.mean.shape == t.std.shape == stat_shape
        feats = t.encode(train)
        if normalization != "none":
            axes = (0, 1) if normalization == "channel" else (0,)
            np.testing.assert_allclose(feats.mean(axes), 0, atol=1e-4)
            np.testing.assert_allclose(feats.std(axes, unbiased=False), 1, atol=1e-3)
        back = t.decode(feats)
        np.testing.assert_allclose(canonicalize(back)[..., :4], canonicalize(torch.from_numpy(train))[..., :4],
                                   rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="fit"):
        ParamTransform().encode(train)
    with pytest.raises(ValueError, match="representation"):
        ParamTransform("quaternion")
    with pytest.raises(ValueError, match="raw parameters"):
        ParamTransform("angle").fit(train[..., :7])


def test_grid_slot_bias_starts_the_decoder_from_a_picture_covering_the_image():
    from gaussvae_ros.core import Gaussians, render
    from gaussvae_ros.vae.networks import grid_layout, init_slot_bias

    layout = grid_layout(512)
    image = render(Gaussians.from_array(layout), 64, 96)
    assert np.abs(image - 0.5).max() < 1e-3  # mid-grey everywhere: no holes, no seams
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.uniform(0, 1, (6, 512, 2)), rng.uniform(0.01, 0.05, (6, 512, 2)),
                            rng.uniform(-3, 3, (6, 512, 1)), rng.uniform(0, 1, (6, 512, 3))], -1)
    transform = ParamTransform("cholesky").fit(train)
    torch.manual_seed(0)
    model = build_model(ModelConfig(slot_bias="grid")).eval()
    assert count_parameters(model) == 1_745_368 + 8 * 512
    init_slot_bias(model, transform, np.zeros((512, 8)))
    with torch.no_grad():
        decoded = transform.decode(model.decode(torch.randn(1, 512)).transpose(1, 2))[0].numpy()
    assert np.abs(decoded[:, :2] - layout[:, :2]).max() < 0.02  # the layout, whatever the latent
    slot_mean = rng.normal(size=(512, 8)).astype(np.float32)
    model = build_model(ModelConfig(slot_bias="slot_mean"))
    init_slot_bias(model, transform, slot_mean)
    np.testing.assert_array_equal(model.slot_bias.detach().numpy(), slot_mean.T)
    with pytest.raises(ValueError, match="slot_bias"):
        build_model(ModelConfig(slot_bias="sideways"))
