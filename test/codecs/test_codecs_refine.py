"""Encoder-side latent refinement (``gaussvae_ros.codecs.latent.refine``) through the shipped model."""

import numpy as np
import pytest
import torch
from PIL import Image

from gaussvae_ros.core import fit_image
from gaussvae_ros.codecs import latent as lc
from gaussvae_ros.codecs.latent import refine

ITERS = 40  # enough to show the effect on a 48 x 64 image; the product default is 150


@pytest.fixture(scope="module")
def bundle(shipped_bundle):
    return shipped_bundle


@pytest.fixture(scope="module")
def photo():
    """A real photograph (scikit-image's coffee) at 48 x 64, uint8 RGB, and its 512-Gaussian fit."""
    from skimage import data

    pixels = np.asarray(Image.fromarray(data.coffee()).resize((64, 48), Image.LANCZOS))
    torch.manual_seed(0)
    return pixels, fit_image(pixels, n_gaussians=512, max_iters=60, seed=0, threads=1).gaussians


def test_refinement_brings_the_decoded_image_closer_and_is_deterministic(bundle, photo):
    pixels, gaussians = photo
    target = refine.image_target(pixels, 3)
    mu = lc.latent_of(bundle, gaussians)
    step = lc.DEFAULT_STEP
    refined = refine.refine_latent(bundle, mu, target, step, iters=ITERS)
    assert refined.shape == mu.shape and np.isfinite(refined).all()
    quantized = [bundle.entropy.quantize(z, step) for z in (mu, refined)]
    before, after = (refine.latent_error(bundle, z, target) for z in quantized)
    assert after < 0.8 * before, (before, after)  # > 1 dB better after quantization
    again = refine.refine_latent(bundle, mu, target, step, iters=ITERS)
    np.testing.assert_array_equal(refined, again)
    np.testing.assert_array_equal(refine.refine_latent(bundle, mu, target, step, iters=0), mu.astype(np.float32))


def test_refined_payloads_fit_the_budget_decode_anywhere_and_are_never_worse(bundle, photo):
    pixels, gaussians = photo
    target = refine.image_target(pixels, 3)

    def error(payload: bytes) -> float:
        decoded = lc.decode_latent(bundle, payload)  # the ordinary decoder: the format is unchanged
        image = torch.from_numpy(np.asarray(Image.fromarray(pixels)).astype(np.float32) / 255)
        from gaussvae_ros.core import render
        return float(((torch.from_numpy(render(decoded, 48, 64)) - image) ** 2).mean())

    for budget in (200, 300):
        plain, plain_step = lc.encode_to_budget(bundle, gaussians, budget)
        refined, step = lc.encode_to_budget(bundle, gaussians, budget, image=pixels, refine_iters=ITERS)
        assert len(refined) <= budget and step >= plain_step
        assert lc.payload_info(refined)["step"] == pytest.approx(step)
        assert error(refined) <= error(plain) + 1e-6
    assert error(refined) < error(plain)  # at 300 B the refinement wins
    fixed = lc.encode_latent(bundle, gaussians, 2.0, image=pixels, refine_iters=ITERS)
    assert lc.payload_info(fixed)["step"] == pytest.approx(2.0)
    assert lc.encode_latent(bundle, gaussians, 2.0, image=pixels, refine_iters=0) == lc.encode_latent(
        bundle, gaussians, 2.0)


def test_estimated_bits_track_the_coded_size(bundle, photo):
    _, gaussians = photo
    mu = lc.latent_of(bundle, gaussians)
    for step in (0.5, 1.0, 4.0):
        coded = len(bundle.entropy.compress(bundle.entropy.quantize(mu, step, "symbols"), step)) * 8
        z = torch.from_numpy(bundle.entropy.quantize(mu, step)).float()
        estimate = float(bundle.entropy.estimated_bits(z, step))
        assert abs(estimate - coded) <= 0.05 * coded + 64, (step, estimate, coded)


def test_image_target_converts_and_downscales():
    grey = np.full((30, 40), 128, np.uint8)
    target = refine.image_target(grey, 3)
    assert target.shape == (30, 40, 3) and torch.allclose(target, torch.full_like(target, 128 / 255))
    deep = np.full((300, 400, 3), 65535, np.uint16)
    big = refine.image_target(deep, 3, long_side=100)
    assert big.shape == (75, 100, 3) and torch.allclose(big, torch.ones_like(big))
    colour = np.zeros((8, 8, 3), np.float32)
    colour[..., 0] = 0.9
    assert torch.allclose(refine.image_target(colour, 1), torch.full((8, 8, 1), 0.3))
    for bad in (np.zeros((4, 4, 5), np.uint8), np.zeros((4,), np.uint8), np.full((4, 4), np.nan, np.float32)):
        with pytest.raises(ValueError):
            refine.image_target(bad, 3)


def test_bad_refinement_arguments_are_refused(bundle, photo):
    pixels, gaussians = photo
    target = refine.image_target(pixels, 3)
    mu = lc.latent_of(bundle, gaussians)
    with pytest.raises(ValueError, match="dimensions"):
        refine.refine_latent(bundle, mu[:10], target, 1.0, iters=1)
    with pytest.raises(ValueError, match="finite"):
        refine.refine_latent(bundle, np.full_like(mu, np.nan), target, 1.0, iters=1)
    with pytest.raises(ValueError, match="iters"):
        refine.refine_latent(bundle, mu, target, 1.0, iters=-1)


def test_payload_encoder_refines_against_the_frame_colour_and_grey(bundle, photo):
    from gaussvae_ros.codecs.registry import decode_payload, payload_encoder

    pixels, gaussians = photo
    encoder = payload_encoder("vae-latent", step=2.0, refine_iters=ITERS)
    assert "refined" in encoder.description
    assert encoder.encode(gaussians, pixels) == lc.encode_latent(bundle, gaussians, 2.0, image=pixels,
                                                                 refine_iters=ITERS)
    assert encoder.encode(gaussians, None) == lc.encode_latent(bundle, gaussians, 2.0)  # no frame: plain
    grey_pixels = np.asarray(Image.fromarray(pixels).convert("L"))
    grey = fit_image(grey_pixels, n_gaussians=512, max_iters=30, seed=0, threads=1).gaussians
    payload = payload_encoder("vae-latent", max_bytes=300, refine_iters=ITERS).encode(grey, grey_pixels)
    assert len(payload) <= 300 and decode_payload(payload, "vae-latent", bundle.model_id).channels == 1
    with pytest.raises(ValueError, match="refinement"):
        payload_encoder("gaussians-q", refine_iters=5)
    with pytest.raises(ValueError, match="refine_iters"):
        payload_encoder("vae-latent", refine_iters=-1)
