"""Codec ``gaussians-rd``: payload round trips, budgets, damaged payloads, quantization-aware fitting."""

import zlib
from dataclasses import replace

import numpy as np
import pytest
from skimage import data as skdata

from gaussvae_ros.codecs import decode_payload
from gaussvae_ros.codecs.gaussians_rd import RDConfig, encode_image
from gaussvae_ros.codecs.gaussians_rd import format as fmt
from gaussvae_ros.core import BitDepths, Gaussians, decode_gaussians, encode_gaussians, fit_image, render, to_uint8
from gaussvae_ros.core.image import resize_long_side
from gaussvae_ros.eval.methods import psnr_uint8

FAST = RDConfig(fit_iters=60, refine_iters=40, prune_refine_iters=10, threads=1)


@pytest.fixture(scope="module")
def photo():
    """scikit-image's astronaut at long side 96 (a real colour photograph), uint8 [64, 96, 3]-ish."""
    return resize_long_side(skdata.astronaut(), 96)


def _random_gaussians(n, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return Gaussians(rng.uniform(0, 1, (n, 2)), np.exp(rng.normal(np.log(0.04), 0.5, (n, 2))),
                     rng.uniform(0, np.pi, n), rng.uniform(0, 1, (n, channels)))


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_bit_exact_and_deterministic(channels):
    g = _random_gaussians(300, channels)
    codes = fmt.StepCodes().with_cell(1.5)
    symbols = fmt.symbolize(g, 160, 120, codes.steps())
    payload = fmt.encode(symbols, codes, 160, 120)
    again = fmt.encode(fmt.symbolize(g, 160, 120, codes.steps()), codes, 160, 120)
    assert payload == again
    decoded = fmt.decode(payload)
    for name in ("qx", "qy", "ls", "an", "fx", "fy", "color"):
        np.testing.assert_array_equal(getattr(decoded.symbols, name), getattr(symbols, name), err_msg=name)
    coded_angle = fmt.rotation_levels(symbols.an, codes.steps()) > 1
    np.testing.assert_array_equal(decoded.symbols.rot[coded_angle], symbols.rot[coded_angle])
    assert (decoded.width, decoded.height, decoded.codes) == (160, 120, codes)
    # the decoded Gaussians are a fixed point: quantizing them again gives the same payload
    assert fmt.encode(fmt.symbolize(decoded.gaussians, 160, 120, codes.steps()), codes, 160, 120) == payload


def test_quantization_error_is_bounded_by_the_steps():
    g = _random_gaussians(200)
    rng = np.random.default_rng(3)  # positions 10 x 20 apart on a jittered grid: matched unambiguously
    cols, rows = np.meshgrid(np.arange(20), np.arange(10))
    g.xy = ((np.stack([cols.ravel(), rows.ravel()], 1) + 0.5 + rng.uniform(-0.3, 0.3, (200, 2))) / (20, 10)).astype(
        np.float32)
    codes = fmt.StepCodes().with_cell(2.0)
    steps = codes.steps()
    decoded = fmt.decode(fmt.encode(fmt.symbolize(g, 200, 100, steps), codes, 200, 100)).gaussians
    # matched by position (the payload is Morton-sorted)
    order = np.argsort(((decoded.xy[:, None, :] - g.xy[None]) ** 2 * (200, 100)).sum(-1), axis=1)[:, 0]
    px_error = np.abs((decoded.xy - g.xy[order]) * (200, 100))
    assert px_error.max() <= steps.cell / 2 + 1e-4
    xy, ls, an, phi, color = fmt.to_canonical(g.take(order), 200, 100)
    _, ls2, an2, _, color2 = fmt.to_canonical(decoded, 200, 100)
    assert np.abs(ls2 - ls).max() <= steps.ls / 2 + 1e-4
    assert np.abs(an2 - an).max() <= steps.an / 2 + 1e-4
    ycc_err = np.abs(fmt.ycocg(color2) - fmt.ycocg(color))
    assert ycc_err[:, 0].max() <= steps.y / 2 + 1e-5 and ycc_err[:, 1:].max() <= steps.chroma / 2 + 1e-5


def test_canonical_form_round_trips_the_renderer(photo):
    g = _random_gaussians(80)
    h, w = 60, 90
    back = fmt.from_canonical(*fmt.to_canonical(g, w, h), w, h)
    np.testing.assert_allclose(render(back, h, w), render(g, h, w), atol=2e-4)


@pytest.mark.parametrize("budget, floor_db", [(160, 13.0), (400, 17.0), (900, 20.0)])
def test_payload_fits_its_budget_and_decodes_through_the_registry(photo, budget, floor_db):
    """Floors: the short test settings measured 14.3 / 18.2 / 21.6 dB (WebP, resolution chosen:
    15.9 / 19.7 / 23.0 dB; the shipped settings 16.0 / 19.8 / 22.5 dB)."""
    result = encode_image(photo, budget, FAST)
    assert len(result.payload) <= budget
    assert len(result.payload) >= 0.85 * budget  # rate control fills the budget
    g = decode_payload(result.payload, "gaussians-rd", "")
    assert abs(result.estimated_bytes - len(result.payload)) <= 0.05 * len(result.payload)
    picture = to_uint8(render(g, *photo.shape[:2]))
    assert psnr_uint8(photo, picture) > floor_db
    np.testing.assert_array_equal(picture, to_uint8(render(result.gaussians, *photo.shape[:2])))


def test_more_bytes_give_a_better_picture(photo):
    scores = [psnr_uint8(photo, to_uint8(render(encode_image(photo, b, FAST).gaussians, *photo.shape[:2])))
              for b in (200, 800)]
    assert scores[1] > scores[0] + 1.5


def test_quantization_aware_fit_beats_fit_then_quantize_at_equal_bytes():
    """The same number of Gaussians fitted for as many iterations without the quantizer, then quantized
    to the payload's steps (post-training quantization), decode worse at no fewer bytes (measured on
    astronaut / coffee at long side 128, 800 B: 21.5 / 26.0 dB against 19.4 / 24.9 dB)."""
    photo = resize_long_side(skdata.astronaut(), 128)
    h, w = photo.shape[:2]
    config = RDConfig(threads=1)  # the shipped settings
    aware = encode_image(photo, 800, config)
    fitted = fit_image(photo, n_gaussians=len(aware.gaussians), max_iters=config.fit_iters + config.refine_iters,
                       threads=1).gaussians
    codes = fmt.decode(aware.payload).codes
    ptq = fmt.encode(fmt.symbolize(fitted, w, h, codes.steps()), codes, w, h)
    psnr_aware = psnr_uint8(photo, to_uint8(render(aware.gaussians, h, w)))
    psnr_ptq = psnr_uint8(photo, to_uint8(render(fmt.decode(ptq).gaussians, h, w)))
    assert len(ptq) >= len(aware.payload)
    assert psnr_aware > psnr_ptq + 1.0


def test_gray_frames_stay_gray():
    gray = resize_long_side(skdata.camera(), 80)
    result = encode_image(gray, 300, FAST)
    assert result.gaussians.channels == 1
    assert len(result.payload) <= 300


def test_a_budget_below_the_header_is_refused(photo):
    with pytest.raises(ValueError, match="needs more than"):
        encode_image(photo, 20, FAST)


@pytest.fixture(scope="module")
def payload():
    g = _random_gaussians(120)
    codes = fmt.StepCodes().with_cell(1.0)
    return fmt.encode(fmt.symbolize(g, 96, 64, codes.steps()), codes, 96, 64)


def test_truncated_payloads_are_refused(payload):
    for cut in (0, 1, 5, 20, len(payload) // 2, len(payload) - 1):
        with pytest.raises(fmt.PayloadError):
            fmt.decode(payload[:cut])


def test_damaged_payloads_are_refused(payload):
    rng = np.random.default_rng(0)
    for _ in range(200):
        damaged = bytearray(payload)
        damaged[rng.integers(len(damaged))] ^= 1 << int(rng.integers(8))
        with pytest.raises(fmt.PayloadError):
            fmt.decode(bytes(damaged))


def test_random_bytes_under_a_valid_checksum_give_a_clear_error_or_valid_gaussians(payload):
    """A damaged body with a recomputed checksum must never crash the decoder or yield NaN."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        body = bytearray(payload[:-2])
        start = int(rng.integers(15, len(body)))
        body[start:] = rng.integers(0, 256, len(body) - start, dtype=np.uint8).tobytes()
        forged = bytes(body) + (zlib.crc32(bytes(body)) & 0xFFFF).to_bytes(2, "little")
        try:
            g = fmt.decode(forged).gaussians
        except fmt.PayloadError:
            continue
        g.check_valid()


def test_foreign_payloads_are_refused():
    other = encode_gaussians(_random_gaussians(10), BitDepths())
    with pytest.raises(fmt.PayloadError, match="magic"):
        fmt.decode(other)
    with pytest.raises(ValueError):
        decode_gaussians(fmt.encode(fmt.symbolize(_random_gaussians(10), 50, 50, fmt.StepCodes().steps()),
                                    fmt.StepCodes(), 50, 50))


def test_the_codec_takes_no_model(payload):
    from gaussvae_ros.codecs import ModelMismatchError

    with pytest.raises(ModelMismatchError):
        decode_payload(payload, "gaussians-rd", "21bbf364fb101197")


def test_step_codes_out_of_range_are_refused():
    with pytest.raises(ValueError, match="1..255"):
        fmt.StepCodes(cell=0)


def _grid_gaussians(minor_px, major_px, width=200, height=100, seed=3):
    """200 Gaussians on a jittered 20 x 10 grid of a ``width x height`` frame (matched unambiguously after
    decoding), with the given standard deviations in pixels ([N] each) and random angles."""
    rng = np.random.default_rng(seed)
    cols, rows = np.meshgrid(np.arange(20), np.arange(10))
    xy = (np.stack([cols.ravel(), rows.ravel()], 1) + 0.5 + rng.uniform(-0.3, 0.3, (200, 2))) / (20, 10)
    phi = rng.uniform(0, np.pi, 200)
    ls, an = 0.5 * (np.log(major_px) + np.log(minor_px)), 0.5 * (np.log(major_px) - np.log(minor_px))
    return fmt.from_canonical(xy * (width, height), ls, an, phi, rng.uniform(0, 1, (200, 3)), width, height)


def _decoded_in_input_order(g, codes, width=200, height=100):
    decoded = fmt.decode(fmt.encode(fmt.symbolize(g, width, height, codes.steps()), codes, width, height)).gaussians
    order = np.argsort(((g.xy[:, None, :] - decoded.xy[None]) ** 2 * (width, height)).sum(-1), axis=1)[:, 0]
    assert len(set(order.tolist())) == len(g)
    return decoded.take(order)


def test_position_refinement_follows_the_documented_rule():
    """Thin Gaussians get extra position bits: refine = clip(ceil(log2(cell / (pos_kappa sigma_minor))), 0, 6)
    of the coded size, and each decoded position lies within half a refined cell, cell / 2^(refine + 1)."""
    minor = np.geomspace(0.02, 6.0, 200)  # pixels: from far below the cell to above it
    g = _grid_gaussians(minor, minor * 3.0)
    codes = fmt.StepCodes().with_cell(2.0)
    steps = codes.steps()
    decoded = _decoded_in_input_order(g, codes)
    _, ls, an, _, _ = fmt.to_canonical(decoded, 200, 100)  # the coded (quantized) sizes
    coded_minor = np.exp(ls - an)
    # (1e-6: the decoded float32 sizes sit within rounding of powers of two where the ls and an symbols are equal)
    refine = np.clip(np.ceil(np.log2(np.maximum(steps.cell / (steps.pos_kappa * coded_minor), 1.0)) - 1e-6), 0, 6)
    symbols = fmt.symbolize(g, 200, 100, steps)
    np.testing.assert_array_equal(np.sort(fmt.refine_bits(symbols.ls, symbols.an, steps)), np.sort(refine))
    assert refine.min() == 0 and refine.max() == 6 and len(set(refine.tolist())) >= 5
    error = np.abs((decoded.xy - g.xy) * (200, 100)).max(axis=1)
    bound = steps.cell / 2.0 ** (refine + 1)
    assert (error <= bound * (1 + 1e-4) + 1e-4).all(), np.max(error / bound)


def test_angle_precision_grows_with_the_elongation():
    """Angle levels L = 2^ceil(log2(rot_kappa pi e^(2 an))) (at most 256) of the coded anisotropy: the
    decoded major axis is within pi / (2 L) of the input's; a round Gaussian codes no angle (1 level)."""
    minor = np.full(200, 1.5)
    g = _grid_gaussians(minor, minor * np.geomspace(1.3, 60.0, 200))
    codes = fmt.StepCodes().with_cell(2.0)
    steps = codes.steps()
    decoded = _decoded_in_input_order(g, codes)
    _, _, an_in, phi_in, _ = fmt.to_canonical(g, 200, 100)
    _, _, an, phi, _ = fmt.to_canonical(decoded, 200, 100)
    levels = np.clip(2.0 ** np.ceil(np.log2(steps.rot_kappa * np.pi * np.exp(2 * an)) - 1e-6), 2, 256)
    assert levels.min() <= 8 and levels.max() == 256
    diff = np.abs(np.mod(phi - phi_in + np.pi / 2, np.pi) - np.pi / 2)
    assert (diff <= np.pi / (2 * levels) + 1e-4).all(), np.max(diff * 2 * levels / np.pi)
    np.testing.assert_array_equal(fmt.rotation_levels(np.array([0, 1, 5]), steps)[0], 1)
    symbols = fmt.symbolize(g, 200, 100, steps)
    np.testing.assert_array_equal(np.sort(fmt.rotation_levels(symbols.an, steps)), np.sort(levels))


def test_size_prediction_is_the_spacing_of_the_three_nearest_positions():
    """The size symbol is predicted from the mean squared distance to the 3 nearest coarse positions,
    round(ln(sqrt(mean d^2) cell) / ls): on a 2 x 3 cell lattice that is sqrt((4 + 4 + 9) / 3) cells."""
    steps = fmt.StepCodes().with_cell(1.5).steps()
    qx, qy = (a.ravel() for a in np.meshgrid(np.arange(0, 40, 2), np.arange(0, 30, 3)))
    inner = (qx > 0) & (qx < 38) & (qy > 0) & (qy < 27)
    expected = np.floor(np.log(np.sqrt(17 / 3) * steps.cell) / steps.ls + 0.5)
    np.testing.assert_array_equal(fmt.size_prediction(qx, qy, steps)[inner], expected)
    rng = np.random.default_rng(4)  # any set: against brute force
    qx, qy = rng.integers(0, 60, 150), rng.integers(0, 40, 150)
    pts = np.stack([qx, qy], 1).astype(float)
    d2 = np.sort(((pts[:, None] - pts[None]) ** 2).sum(-1), axis=1)[:, 1:4].mean(axis=1)
    brute = np.floor(np.log(np.sqrt(np.maximum(d2, 0.25)) * steps.cell) / steps.ls + 0.5)
    np.testing.assert_array_equal(fmt.size_prediction(qx, qy, steps), brute)


def test_the_quantizer_is_straight_through():
    """The refinement's quantizer: the forward pass sees the payload's values (sizes, anisotropies and
    colours on their steps, positions at the centres of their refined cells), the gradient passes as
    if rounding were the identity."""
    import torch

    from gaussvae_ros.codecs.gaussians_rd.fit import canonical_tensors, quantized

    g = _random_gaussians(60)
    codes = fmt.StepCodes().with_cell(1.5)
    steps = codes.steps()
    params = [p.requires_grad_() for p in canonical_tensors(g, 96, 64)]
    q = quantized(params, steps, 96, 64)
    for name, value, step in (("ls", q[1], steps.ls), ("an", q[2], steps.an)):
        np.testing.assert_allclose(value.detach().numpy() / step, np.round(value.detach().numpy() / step), atol=1e-4,
                                   err_msg=name)
    cstep = fmt.colour_steps(steps, 3)
    np.testing.assert_allclose(q[4].detach().numpy() / cstep, np.round(q[4].detach().numpy() / cstep), atol=1e-3)
    assert not torch.allclose(q[1], params[1]) and not torch.allclose(q[0], params[0])
    # the forward values are what the payload decodes to
    decoded = fmt.decode(fmt.encode(fmt.symbolize(g, 96, 64, steps), codes, 96, 64)).gaussians
    xy = q[0].detach().numpy()
    order = np.argsort(((xy[:, None, :] - decoded.xy[None] * (96, 64)) ** 2).sum(-1), axis=1)[:, 0]
    np.testing.assert_allclose(decoded.xy[order] * (96, 64), xy, atol=1e-3)
    np.testing.assert_allclose(fmt.to_canonical(decoded, 96, 64)[1][order], q[1].detach().numpy(), atol=1e-5)
    weights = [torch.randn_like(t) for t in q]
    grads = torch.autograd.grad(sum((t * w).sum() for t, w in zip(q, weights)), params)
    for k, (grad, w) in enumerate(zip(grads, weights)):
        if k == 2:  # an = |an|: the sign of the input's anisotropy
            w = w * torch.sign(params[2].detach())
        np.testing.assert_allclose(grad.numpy(), w.numpy(), rtol=1e-6, atol=1e-6, err_msg=str(k))


def test_the_last_check_on_the_real_bytes_keeps_the_budget(photo, monkeypatch):
    """Rate control trusts its size estimate only so far: with an estimate that undershoots by 20 %,
    the final check on the written payload drops Gaussians until the real bytes fit."""
    real_estimate = fmt.estimate_size
    monkeypatch.setattr(fmt, "estimate_size", lambda s, steps: 0.8 * real_estimate(s, steps))
    result = encode_image(photo, 300, FAST)
    assert len(result.payload) <= 300
    assert len(result.payload) >= 0.85 * 300


def test_rate_control_prunes_down_to_the_budget_from_a_low_first_guess(photo):
    """A first guess of half the real cost per Gaussian fits twice too many: rate control prunes the
    weakest until the estimate fits, and the payload still fills its budget."""
    config = replace(FAST, bits_per_gaussian=15.0)
    result = encode_image(photo, 400, config)
    header = fmt._HEADER.size + 2 * (3 + 3) + 2  # header, model parameters of 3 colour channels, CRC
    first_count = int((400 - header) * 8 / 15.0)  # what the first pass fits
    assert len(result.gaussians) < 0.8 * first_count
    assert 0.85 * 400 <= len(result.payload) <= 400
