"""Renderer: the compiled kernel against the dense float64 PyTorch reference, forward and gradients;
the documented footprint (5-sigma support, 0.3 px^2 low-pass) pinned in numbers."""

import math

import numpy as np
import pytest
import torch

from gaussvae_ros.core import Gaussians, render, render_params
from gaussvae_ros.core import _native
from gaussvae_ros.core.render import _rasterize, count_pairs, min_support_px, project, rasterize

pytestmark = pytest.mark.skipif(_native.load() is None, reason="compiled rasterizer unavailable")


def random_params(n, channels, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 1.2 - 0.1  # some centres outside the image
    scale = torch.rand(n, 2, generator=g, dtype=dtype) * 0.08 + 0.004
    rot = torch.rand(n, generator=g, dtype=dtype) * 7 - 3.5
    color = torch.rand(n, channels, generator=g, dtype=dtype)
    return xy, scale, rot, color


@pytest.mark.parametrize("blend", ["normalized", "sum"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(37, 53), (5, 90)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rmin", [0.0, 6.0])
def test_forward_and_gradients_match_dense_float64_reference(blend, channels, size, threads, rmin):
    height, width = size
    xy, scale, rot, color = random_params(80, channels, seed=height * width + channels)
    means, conics = project(xy, scale, rot, height, width)
    ours = [t.float().detach().requires_grad_() for t in (means, conics, color)]
    ref = [t.detach().clone().requires_grad_() for t in (means, conics, color)]
    out = rasterize(*ours, height, width, blend=blend, threads=threads, rmin=rmin)
    expected = _rasterize(*ref, height, width, blend=blend, rmin=rmin)
    torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=1e-4)

    v = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = torch.autograd.grad((out * v.float()).sum(), ours)
    expected_grads = torch.autograd.grad((expected * v).sum(), ref)
    for name, got, want in zip(("means", "conics", "colors"), grads, expected_grads):
        scale_ = want.abs().max().clamp_min(1e-12)
        err = ((got.double() - want).abs().max() / scale_).item()
        assert err < 1e-4, f"{name}: relative error {err}"


def test_gradients_through_projection_match_finite_differences():
    """End to end on the normalized parameters: autograd through project() + the kernel vs central
    differences of the float64 reference."""
    height, width = 24, 31
    params = [t.detach() for t in random_params(12, 3, seed=3)]
    v = torch.randn(height, width, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def ref_loss(p):
        means, conics = project(p[0], p[1], p[2], height, width)
        rmin = min_support_px(len(p[0]), height, width)
        return (_rasterize(means, conics, p[3], height, width, rmin=rmin) * v).sum()

    ours = [t.float().requires_grad_() for t in params]
    loss = (render_params(*ours, height, width) * v.float()).sum()
    grads = torch.autograd.grad(loss, ours)
    eps = 1e-6
    for k, (param, grad) in enumerate(zip(params, grads)):
        flat = param.reshape(-1)
        for idx in range(0, flat.numel(), max(1, flat.numel() // 7)):
            plus = [p.clone() for p in params]
            minus = [p.clone() for p in params]
            plus[k].view(-1)[idx] += eps
            minus[k].view(-1)[idx] -= eps
            numeric = (ref_loss(plus) - ref_loss(minus)).item() / (2 * eps)
            analytic = grad.reshape(-1)[idx].item()
            assert abs(numeric - analytic) <= 2e-3 * max(1.0, abs(numeric)), (k, idx, numeric, analytic)


def _pixel_covariances(xy, scale, rot, height, width, lowpass):
    """``[N, 2, 2]`` pixel-space covariances D R diag(s^2) R^T D + lowpass I, in float64 numpy (written
    out independently of the renderer, D = diag(W, H))."""
    xy, scale, rot = (np.asarray(t, np.float64) for t in (xy, scale, rot))
    c, s = np.cos(rot), np.sin(rot)
    r = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # [N, 2, 2]
    cov = r @ (np.eye(2) * scale[:, None, :] ** 2) @ np.swapaxes(r, -1, -2)
    d = np.diag([width, height]).astype(np.float64)
    return d @ cov @ d + lowpass * np.eye(2)


def _support_pairs(g, height, width, cutoff, rmin, max_cutoff=170.0):
    """Brute force: pixels (centres at +0.5) with q <= max(cutoff, min(rmin^2 lambda_max, max_cutoff)),
    summed over the Gaussians: the work the renderer's documented support rule implies."""
    sigma = _pixel_covariances(g.xy, g.scale, g.rot, height, width, 0.3)
    conic = np.linalg.inv(sigma)
    lam_max = np.linalg.eigvalsh(conic)[:, -1]
    support = np.maximum(cutoff, np.minimum(rmin * rmin * lam_max, max_cutoff))
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    total = 0
    for i in range(len(g)):
        dx, dy = xs - g.xy[i, 0] * width, ys - g.xy[i, 1] * height
        q = conic[i, 0, 0] * dx * dx + 2 * conic[i, 0, 1] * dx * dy + conic[i, 1, 1] * dy * dy
        total += int((q <= support[i]).sum())
    return total


def test_work_is_bounded_by_support_not_pixels_times_gaussians():
    """The renderer's work (its (Gaussian, pixel) pairs) is exactly the documented support: the
    ellipse q <= 25 (5 sigma), enlarged to a disk of the mean spacing for thin Gaussians, clipped
    to the image, and nothing more: a tight bound both ways, far below pixels x Gaussians."""
    xy, scale, rot, color = random_params(512, 3, seed=4, dtype=torch.float32)
    g = Gaussians(xy.numpy(), (scale * 0.25).numpy(), rot.numpy(), color.numpy())
    pairs = count_pairs(g, 256, 256)
    expected = _support_pairs(g, 256, 256, 25.0, math.sqrt(256 * 256 / 512))
    assert abs(pairs - expected) <= 1e-3 * expected, (pairs, expected)
    assert pairs < 0.02 * 256 * 256 * 512
    # the sum blend has no minimum radius: the 5-sigma ellipses alone
    g_sum = Gaussians(g.xy, g.scale, g.rot, g.color, blend="sum")
    pairs_sum = count_pairs(g_sum, 256, 256)
    expected_sum = _support_pairs(g_sum, 256, 256, 25.0, 0.0)
    assert abs(pairs_sum - expected_sum) <= 1e-3 * expected_sum, (pairs_sum, expected_sum)
    assert pairs_sum < pairs


def test_support_is_the_five_sigma_ellipse():
    """Sum blend (no minimum radius): a Gaussian still reaches 4 sigma (exp(-8) of its colour) and
    stops past 5 sigma; its pairs are the area of the 5-sigma ellipse, pi * 25 * sigma1 * sigma2."""
    sigma_x, sigma_y = 4.0, 2.5  # pixels, axis-aligned, centre on a pixel centre
    conic = torch.tensor([[1 / sigma_x ** 2, 0.0, 1 / sigma_y ** 2]])
    mean = torch.tensor([[40.5, 30.5]])
    image = rasterize(mean, conic, torch.ones(1, 1), 61, 81, blend="sum")[..., 0].numpy()
    row, col = 30, 40
    for k, expected in ((0, 1.0), (1, math.exp(-0.5)), (4, math.exp(-8.0)), (5, math.exp(-12.5))):
        assert image[row, col + int(k * sigma_x)] == pytest.approx(expected, rel=1e-4), k  # along x
        assert image[row, col - int(k * sigma_x)] == pytest.approx(expected, rel=1e-4), k
    assert image[row, col + 21] == 0.0 and image[row, col + 20] > 0  # 5.25 sigma: outside
    assert image[row + 13, col] == 0.0 and image[row + 12, col] > 0  # 5.2 sigma along y: outside
    # the dense reference agrees on the footprint
    ref = _rasterize(mean.double(), conic.double(), torch.ones(1, 1, dtype=torch.float64), 61, 81, blend="sum")
    assert ((ref[..., 0].numpy() > 0) == (image > 0)).all()
    # the pairs a render costs: the 5-sigma ellipse (lattice count within 1 % of its area)
    sigma_s, sigma_l = 3.0, 7.0  # normalized-units scales for a 200 x 160 image, rotated
    g = Gaussians(np.array([[0.5, 0.5]]), np.array([[sigma_l / 200, sigma_s / 160]]), np.array([0.0]),
                  np.ones((1, 3)), blend="sum")
    area = math.pi * 25.0 * math.sqrt((sigma_l ** 2 + 0.3) * (sigma_s ** 2 + 0.3))
    assert count_pairs(g, 160, 200) == pytest.approx(area, rel=0.01)


def test_enlarged_support_reaches_q_170_in_kernel_and_reference():
    """A thin Gaussian's support is enlarged to the minimum radius up to q = 170 (exp(-85) is still a
    normal float): with the normalized blend a pixel at q = 144 takes its colour, one at q = 188 none,
    in the compiled kernel and the dense reference alike."""
    conic = torch.tensor([[1 / 0.34, 0.0, 1 / 0.34]])  # variance 0.34 px^2: 0.2 px scale + the low-pass
    mean = torch.tensor([[20.5, 20.5]])
    for raster, dtype in ((rasterize, torch.float32), (_rasterize, torch.float64)):
        image = raster(mean.to(dtype), conic.to(dtype), torch.ones(1, 1, dtype=dtype), 41, 41, rmin=8.0)[..., 0]
        assert image[20, 27] == 1.0 and image[27, 20] == 1.0, raster  # q = 49 / 0.34 = 144
        assert image[20, 28] == 0.0 and image[28, 20] == 0.0, raster  # q = 64 / 0.34 = 188 > 170


def test_projection_is_the_pixel_covariance_plus_the_low_pass():
    """project()'s conics are inv(Sigma_px + 0.3 I) and its means the pixel positions, on the compiled
    float32 path and the PyTorch one."""
    xy, scale, rot, _ = random_params(64, 3, seed=9, dtype=torch.float64)
    scale = scale * torch.linspace(0.01, 1.0, 64, dtype=torch.float64)[:, None]  # down to sub-pixel sizes
    height, width = 48, 80
    expected = np.linalg.inv(_pixel_covariances(xy, scale, rot, height, width, 0.3))
    expected_conics = np.stack([expected[:, 0, 0], expected[:, 0, 1], expected[:, 1, 1]], 1)
    for dtype, rtol in ((torch.float32, 2e-4), (torch.float64, 1e-9)):
        means, conics = project(xy.to(dtype), scale.to(dtype), rot.to(dtype), height, width)
        np.testing.assert_allclose(conics.double().numpy(), expected_conics, rtol=rtol,
                                   atol=rtol * np.abs(expected_conics).max())
        np.testing.assert_allclose(means.double().numpy(), xy.numpy() * (width, height), rtol=1e-6)


def test_sub_pixel_gaussians_render_as_the_low_pass_blob():
    """A Gaussian far smaller than a pixel is drawn with the low-pass's 0.3 px^2 variance, so it never
    falls between pixel centres: its neighbour one pixel away gets exp(-1 / 0.6) of the centre's."""
    g = Gaussians(np.array([[20.5 / 40, 10.5 / 20]]), np.array([[1e-4, 1e-4]]), np.array([0.0]), np.ones((1, 1)),
                  blend="sum")
    image = render(g, 20, 40)[..., 0]
    assert image[10, 20] == pytest.approx(1.0, rel=1e-4)
    assert image[10, 21] == pytest.approx(math.exp(-1 / 0.6), rel=1e-3)
    assert image[11, 20] == pytest.approx(math.exp(-1 / 0.6), rel=1e-3)
    assert image[11, 21] == pytest.approx(math.exp(-2 / 0.6), rel=1e-3)


def test_render_is_resolution_free():
    """The same Gaussians rendered at 2x the size and box-downsampled give (nearly) the 1x picture."""
    xy, scale, rot, color = random_params(60, 3, seed=5, dtype=torch.float32)
    g = Gaussians(xy.numpy(), (scale + 0.02).numpy(), rot.numpy(), color.numpy())
    small = render(g, 40, 60)
    large = render(g, 80, 120)
    down = large.reshape(40, 2, 60, 2, 3).mean(axis=(1, 3))
    assert small.shape == (40, 60, 3) and large.shape == (80, 120, 3)
    assert np.abs(small - down).mean() < 0.01


def test_normalized_blend_leaves_no_holes_between_thin_gaussians():
    """Thin Gaussians spread over the image (a jittered 8x8 grid, as a fit places them) with gaps of
    many standard deviations between them: every pixel still gets a colour (minimum support radius)."""
    rng = np.random.default_rng(7)
    grid = (np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2) + rng.uniform(0.35, 0.65, (64, 2))) / 8
    g = Gaussians(grid, np.full((64, 2), 0.012), rng.random(64), rng.uniform(0.2, 1.0, (64, 3)))
    image = render(g, 96, 128)
    assert (image.max(axis=2) > 0.1).all()


def test_empty_set_renders_black_and_bad_sizes_are_refused():
    g = Gaussians(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3)))
    assert render(g, 4, 5).shape == (4, 5, 3)
    assert not render(g, 4, 5).any()
    xy, scale, rot, color = random_params(3, 3, seed=6, dtype=torch.float32)
    with pytest.raises(ValueError, match="positive"):
        render_params(xy, scale, rot, color, 0, 10)
    with pytest.raises(ValueError, match="blend"):
        render_params(xy, scale, rot, color, 10, 10, blend="max")


def test_degenerate_gaussians_do_not_crash():
    """A NaN scale makes that Gaussian contribute nothing (the image is the one without it, finite
    everywhere); a zero scale is a point, drawn as the low-pass blob (not a crash, not NaN)."""
    xy = torch.tensor([[0.5, 0.5], [0.3, 0.3], [0.7, 0.7]])
    scale = torch.tensor([[0.0, 0.0], [float("nan"), 0.1], [0.1, 0.1]])
    color = torch.eye(3)  # one channel each: red the point, green the NaN one, blue the regular one
    for blend in ("normalized", "sum"):
        image = render_params(xy, scale, torch.zeros(3), color, 16, 16, blend=blend)
        assert image.shape == (16, 16, 3)
        assert torch.isfinite(image).all()
        assert not image[..., 1].any()  # the NaN-scaled Gaussian reaches no pixel
        keep = torch.tensor([0, 2])
        without = render_params(xy[keep], scale[keep], torch.zeros(2), color[keep], 16, 16, blend=blend)
        if blend == "sum":  # the normalized blend's minimum radius depends on the count: compare the sum only
            assert torch.equal(image, without)
        assert image[..., 2].max() > 0.5 and image[..., 0].max() > 0.4  # the other two are drawn
    point = render_params(xy[:1], scale[:1], torch.zeros(1), color[:1], 16, 16, blend="sum")[..., 0]
    assert point[7, 7] == pytest.approx(math.exp(-0.5 * (0.25 + 0.25) / 0.3), rel=1e-4)  # centre at (8, 8) px
    row = 2 * sum(math.exp(-0.5 * (i + 0.5) ** 2 / 0.3) for i in range(8))  # separable: rows x columns
    assert float(point.sum()) == pytest.approx(row * row, rel=1e-3)


def test_render_from_covariance_matches_scale_rotation_and_is_smooth_for_round_gaussians():
    from gaussvae_ros.core.render import render_covariance
    from gaussvae_ros.vae.features import covariance_entries, features_to_covariance, params_to_features

    xy, scale, rot, color = random_params(40, 3, seed=5, dtype=torch.float32)
    cov = torch.stack(covariance_entries(scale, rot), -1)
    expected = render_params(xy, scale, rot, color, 31, 45)
    assert torch.allclose(render_covariance(xy, cov, color, 31, 45), expected, atol=1e-5)
    # exactly round Gaussians: the angle is undefined, the Cholesky-to-covariance path still has
    # finite gradients (an eigen-decomposition would not)
    round_scale = torch.full_like(scale, 0.03)
    params = torch.cat([xy, round_scale, rot[:, None], color], -1)
    features = params_to_features(params, "cholesky").requires_grad_()
    mxy, mcov, mcolor = features_to_covariance(features, "cholesky")
    image = render_covariance(mxy, mcov, mcolor, 31, 45)
    assert torch.allclose(image, render_params(xy, round_scale, rot, color, 31, 45), atol=1e-5)
    image.pow(2).sum().backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_batched_covariance_renders_are_the_sets_rendered_one_by_one_with_or_without_autograd():
    from gaussvae_ros.core.render import render_covariance
    from gaussvae_ros.vae.features import covariance_entries

    sets = [random_params(30, 3, seed=seed, dtype=torch.float32) for seed in (1, 2, 3)]
    xy, cov, color = (torch.stack(parts) for parts in zip(*[(x, torch.stack(covariance_entries(s, r), -1), c)
                                                            for x, s, r, c in sets]))
    batched = render_covariance(xy, cov, color, 17, 23)
    assert batched.shape == (3, 17, 23, 3)
    for b in range(3):
        with torch.no_grad():  # the kernel without autograd bookkeeping ...
            plain = render_covariance(xy[b], cov[b], color[b], 17, 23)
        tracked = render_covariance(xy[b], cov[b], color[b].clone().requires_grad_(), 17, 23)  # ... and with it
        assert torch.equal(batched[b], plain) and torch.equal(plain, tracked.detach())


@pytest.mark.parametrize("channels, blend", [(3, "normalized"), (1, "normalized"), (3, "sum")])
def test_banded_uint8_render_is_the_whole_render(channels, blend):
    """Recall renders large images in bands to bound its memory: the bands join without seams."""
    from gaussvae_ros.core import to_uint8
    from gaussvae_ros.core.render import render_uint8

    xy, scale, rot, color = random_params(60, channels, seed=11, dtype=torch.float32)
    g = Gaussians(xy.numpy(), scale.numpy(), rot.numpy(), color.numpy(), blend=blend)
    whole = to_uint8(render(g, 97, 131))
    for band_pixels in (131 * 7, 131, 1):  # 7 rows, one row, and less than a row (still one row)
        banded = render_uint8(g, 97, 131, band_pixels=band_pixels)
        assert banded.shape == whole.shape and banded.dtype == np.uint8
        diff = np.abs(banded.astype(int) - whole.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # float rounding of the shifted centres at most
