"""The memory pipeline: one settings object, the fit with its cold restart, the payload."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from gaussvae_ros.core import FitConfig
from gaussvae_ros.core.image import working_image
from gaussvae_ros.pipeline import DEFAULT_GAUSSIANS, DEFAULT_MAX_ITERS, DEFAULT_THREADS, MemorySettings, warm_start

from support.recordings import blocks

REPO = Path(__file__).resolve().parents[2]


def test_one_settings_object_reads_zero_and_none_once():
    default = MemorySettings()
    assert default == MemorySettings.make()
    assert (default.fit.n_gaussians, default.fit.max_iters, default.fit.threads) == (
        DEFAULT_GAUSSIANS, DEFAULT_MAX_ITERS, DEFAULT_THREADS)
    for own_budget in (0, None):  # 0 (a node parameter, a CLI flag) and None (replay options) mean the same
        settings = MemorySettings.make(max_iters=own_budget, threads=own_budget)
        assert settings.fit.max_iters == FitConfig().max_iters and settings.fit.threads is None
    settings = MemorySettings.make(n_gaussians=64, max_iters=7, threads=2, seed=4, fit_overrides={"min_iters": 5})
    assert (settings.n_gaussians, settings.fit.max_iters, settings.fit.threads, settings.fit.seed,
            settings.fit.min_iters) == (64, 7, 2, 4, 5)


def test_config_file_says_the_fitters_own_budget():
    """config/gaussvae.yaml documents max_iters 0 as the fitter's budget: the same figure as FitConfig."""
    text = (REPO / "config" / "gaussvae.yaml").read_text()
    said = re.search(r"max_iters:.*the fitter's own budget \((\d+)\)", text)
    assert said and int(said.group(1)) == FitConfig().max_iters
    params = yaml.safe_load(text)["/**/gaussvae_encoder"]["ros__parameters"]
    assert params["max_iters"] == DEFAULT_MAX_ITERS


def test_warm_start_only_from_a_similar_frame():
    settings = MemorySettings.make(warm_start_max_change=0.1)
    previous = object()
    assert warm_start(previous, 0.05, settings) is previous
    assert warm_start(previous, 0.1, settings) is None and warm_start(previous, None, settings) is None


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverged_warm_start_falls_back_to_a_cold_fit():
    from gaussvae_ros.core import Gaussians, decode_gaussians
    from gaussvae_ros.pipeline import fit_memory

    image = working_image(blocks(3, color=True), 32)
    n = 16
    broken = Gaussians(np.full((n, 2), 0.5), np.full((n, 2), 0.1), np.zeros(n), np.full((n, 3), np.nan))
    fitted = fit_memory(image, MemorySettings.make(n_gaussians=n, max_iters=10, threads=1), init=broken)
    result, payload = fitted.result, fitted.payload
    decoded = decode_gaussians(payload)
    assert 0 < len(decoded) <= n and np.isfinite(decoded.color).all()
    assert np.isfinite(result.psnr)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_frame_is_encoded_once_also_after_a_cold_restart():
    from gaussvae_ros.core import Gaussians, encode_gaussians
    from gaussvae_ros.codecs import PayloadEncoder
    from gaussvae_ros.pipeline import fit_memory

    image = working_image(blocks(3, color=True), 32)
    n = 16
    calls = []
    settings = MemorySettings.make(n_gaussians=n, max_iters=10, threads=1)

    def encode(gaussians, image=None, *, fit=None):
        calls.append((len(gaussians), image is not None, fit))
        return encode_gaussians(gaussians)

    broken = Gaussians(np.full((n, 2), 0.5), np.full((n, 2), 0.1), np.zeros(n), np.full((n, 3), np.nan))
    good = fit_memory(image, settings).result
    seeded = MemorySettings.make(n_gaussians=n, max_iters=10, threads=1, seed=3)
    for init in (None, good.gaussians, broken):  # cold, warm, and a warm start that must restart cold
        calls.clear()
        fit_memory(image, seeded, init=init, encoder=PayloadEncoder("gaussians-q", "", encode))
        assert calls == [(n, True, seeded.fit)], init  # the encoder gets the frame's fit settings

    def exactly_n(gaussians, image=None, *, fit=None):  # an encoder that takes exactly n Gaussians (a latent model)
        if len(gaussians) != n:
            raise ValueError(f"encodes {n} Gaussians, got {len(gaussians)}")
        return encode_gaussians(gaussians)

    fewer = good.gaussians.take(np.arange(n // 2))  # e.g. the last keyframe of a store made with fewer Gaussians
    fitted = fit_memory(image, settings, init=fewer, encoder=PayloadEncoder("gaussians-q", "", exactly_n))
    result, payload = fitted.result, fitted.payload
    assert len(result.gaussians) == n and payload  # the warm fit could not be encoded: refitted cold




@pytest.mark.parametrize("codec, memory_bytes", [("gaussians-rd", 500), ("gaussians-q", 0)])
def test_a_memorys_stored_quality_is_its_decoded_payloads(codec, memory_bytes):
    """What the store keeps (and db query / MemoryInfo / get_stats report) is the decoded payload
    rendered at the working size against the working image, not the fit before coding."""
    from skimage import data as skdata

    from gaussvae_ros.codecs import decode_payload
    from gaussvae_ros.core import psnr, render, ssim, to_float_image
    from gaussvae_ros.pipeline import fit_memory, stored_memory

    image = working_image(skdata.astronaut(), 64)
    settings = MemorySettings.make(n_gaussians=48, max_iters=60, threads=1, codec=codec, memory_bytes=memory_bytes)
    encoder = settings.payload_encoder()
    fitted = fit_memory(image, settings, encoder=encoder)
    memory = stored_memory(stamp_ns=1, topic="/cam", camera_frame_id="cam", width=512, height=512, encoding="rgb8",
                           fitted=fitted, encoder=encoder)
    target = to_float_image(image)
    decoded = render(decode_payload(memory.payload, memory.codec, memory.model_id), *target.shape[:2])
    assert memory.codec == codec and (not memory_bytes or len(memory.payload) <= memory_bytes)
    assert memory.psnr == pytest.approx(psnr(target, decoded), abs=1e-9)
    assert memory.ssim == pytest.approx(ssim(target, decoded), abs=1e-9)
    if codec == "gaussians-q":  # its fit's own PSNR is another (higher) figure: quantization costs something
        assert fitted.result.psnr > memory.psnr
