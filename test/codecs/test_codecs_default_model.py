"""The VAE latent model shipped with the package: loadable safely, small, documented, and its latent
carries the picture (a decoded photo looks like that photo, not like another)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaussvae_ros.core import Gaussians, fit_image, render, resize_long_side, to_float_image
from gaussvae_ros.codecs import registry as codecs
from gaussvae_ros.codecs import latent as lc
from gaussvae_ros.codecs.latent import model_registry

PATH = lc.default_model_path()
pytestmark = pytest.mark.skipif(not PATH.exists(), reason="no model shipped in this build")


@pytest.fixture(scope="module")
def bundle():
    return lc.load_bundle(PATH)


@pytest.fixture(scope="module")
def fits():
    from skimage import data

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: (image, fit_image(image, n_gaussians=512, max_iters=80, seed=0, threads=1).gaussians)
                for name in ("astronaut", "coffee")
                for image in [resize_long_side(to_float_image(getattr(data, name)()), 96)]}
    finally:
        torch.set_num_threads(threads)


def test_shipped_model_is_small_safe_to_load_and_documented(bundle):
    assert PATH.stat().st_size <= 20 * 2**20
    obj = torch.load(PATH, weights_only=True)  # plain tensors and numbers: no pickled objects
    assert "entropy_model" in obj
    assert bundle.seq_len == 512 and bundle.transform.color_channels == 3 and bundle.entropy.dim == 512
    card = (PATH.parent / "MODEL_CARD.md").read_text()
    assert bundle.model_id in card  # the card describes this very file


def test_decoded_photo_resembles_its_own_photo(bundle, fits):
    def mse(a, b):
        return float(np.mean((a - b) ** 2))

    for name, other in (("astronaut", "coffee"), ("coffee", "astronaut")):
        image, gaussians = fits[name]
        payload = lc.encode_latent(bundle, gaussians)
        assert len(payload) < 1024
        decoded = render(lc.decode_latent(bundle, payload), *image.shape[:2])
        other_image = render(fits[other][1], *image.shape[:2])  # the other photo, at this one's size
        assert mse(decoded, image) < mse(decoded, other_image), name
        flat = np.broadcast_to(image.mean(axis=(0, 1)), image.shape)
        assert mse(decoded, image) < mse(flat, image), name  # more than the average colour


def test_recall_decodes_shipped_model_memories_without_registration(bundle, fits):
    payload, step = lc.encode_to_budget(bundle, fits["astronaut"][1], 256)
    assert len(payload) <= 256 and step > 0
    for model_id in list(model_registry._MODELS):
        lc.unregister_latent_model(model_id)
    model_registry._FILES.clear()
    image = codecs.render_memory(payload, "vae-latent", bundle.model_id, 64, 48)
    assert image.shape == (48, 64, 3) and image.std() > 1
    encoder = codecs.payload_encoder("vae-latent")
    assert encoder.model_id == bundle.model_id and encoder.n_gaussians == 512
    g = fits["coffee"][1]
    grey = Gaussians(g.xy, g.scale, g.rot, g.color.mean(axis=1, keepdims=True))
    payload = codecs.payload_encoder("vae-latent", max_bytes=200).encode(grey)
    assert len(payload) <= 200
    assert codecs.decode_payload(payload, "vae-latent", bundle.model_id).channels == 1
