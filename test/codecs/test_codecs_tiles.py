"""Tile grids (``gaussvae_ros.codecs.latent.tiles``) and the image-level latent encoder (``.image_encoder``)."""

import numpy as np
import pytest
import torch
from PIL import Image

from gaussvae_ros.core import FitConfig, Gaussians, render
from gaussvae_ros.codecs import latent as lc
from gaussvae_ros.codecs.latent import image_encoder, refine
from gaussvae_ros.codecs.latent.image_encoder import AUTO_TILES, encode_image
from gaussvae_ros.codecs.latent.tiles import DEFAULT_OVERLAP, TileGrid, grid_for


def test_grids_are_laid_out_for_the_picture_and_validated():
    assert grid_for(1, 48, 64) == TileGrid(1, 1)  # no overlap without a neighbour
    assert grid_for(2, 48, 64) == TileGrid(1, 2, DEFAULT_OVERLAP) and grid_for(2, 64, 48, 0.0) == TileGrid(2, 1)
    assert grid_for(8, 48, 64, 0.0) == TileGrid(2, 4) and grid_for(8, 64, 48, 0.0) == TileGrid(4, 2)
    assert grid_for(4, 50, 50).count == 4 and str(grid_for(16, 9, 9)) == "4x4"
    for overlap in (-1 / 256, 1.0, 0.3):  # a payload stores it in 1/256 of a cell
        with pytest.raises(ValueError, match="overlap"):
            TileGrid(1, 2, overlap)
    assert TileGrid(1, 2, 48 / 256).overlap_units == 48
    for bad in (3, 0, 32):
        with pytest.raises(ValueError, match="tile count"):
            grid_for(bad, 48, 64)
    for rows, cols in ((0, 1), (1, 17), (1.5, 1), (True, 1)):
        with pytest.raises(ValueError, match="1..16"):
            TileGrid(rows, cols)


def test_crops_cover_the_image_once():
    image = np.arange(37 * 53).reshape(37, 53)
    for grid in (TileGrid(2, 3), TileGrid(4, 4), TileGrid(1, 1)):
        seen = np.zeros(image.shape, int)
        for t in range(grid.count):
            crop = grid.crop(image, t)
            seen[np.isin(image, crop)] += 1
        assert (seen == 1).all()
    overlapping = TileGrid(2, 3, 64 / 256)  # a quarter of a 24 x 20 cell: 6 and 5 px each side
    picture = np.arange(40 * 72).reshape(40, 72)
    assert [overlapping.crop(picture, t).shape for t in range(3)] == [(25, 30), (25, 36), (25, 30)]
    np.testing.assert_array_equal(overlapping.crop(picture, 4), picture[15:40, 18:54])
    with pytest.raises(ValueError, match="too small"):
        TileGrid(4, 4).crop(np.zeros((3, 3)), 0)
    with pytest.raises(IndexError):
        TileGrid(1, 2).crop(image, 2)


def test_a_fit_of_a_rounded_crop_lands_where_the_crop_was():
    """Where tile edges fall between pixels, the crop is rounded; moving its fit into the tile's
    coordinates puts every Gaussian back on the crop's pixels in the picture."""
    grid, height, width = TileGrid(2, 3, 32 / 256), 37, 53
    for t in range(grid.count):
        y0, y1, x0, x1 = grid.crop_bounds(t, height, width)
        fitted = _inside_tile_gaussians(t)  # "fitted" to the crop, in the crop's normalized coordinates
        in_tile = grid.crop_to_tile(fitted, t, height, width)
        params = torch.from_numpy(np.stack([in_tile.to_array()] * grid.count)).double()
        mapped = grid.params_to_picture(params).numpy()[t * len(fitted):(t + 1) * len(fitted)]
        picture = render(Gaussians.from_array(mapped, blend="sum"), height, width)
        np.testing.assert_allclose(picture[y0:y1, x0:x1], render(fitted, y1 - y0, x1 - x0), atol=2e-5)
    whole = TileGrid(1, 2)  # edges on whole pixels: nothing to move
    fitted = _inside_tile_gaussians(0)
    assert whole.crop_to_tile(fitted, 1, 10, 20) is fitted


def _inside_tile_gaussians(seed: int, n: int = 12) -> Gaussians:
    """Small rotated Gaussians well inside [0, 1]^2, so none reaches the tile's border within the
    renderer's support (5 sigma)."""
    rng = np.random.default_rng(seed)
    return Gaussians(rng.uniform(0.3, 0.7, (n, 2)), rng.uniform(0.01, 0.03, (n, 2)), rng.uniform(-3, 3, n),
                     rng.uniform(0, 1, (n, 3)), blend="sum")


def test_tile_gaussians_render_in_their_tile_exactly_as_alone():
    """Mapped into the picture and rendered at the picture's size, a tile's Gaussians draw in its
    crop what they draw rendered alone at the crop's size, and nothing outside it: the mapping keeps
    each ellipse in pixels (with and without overlapping tiles)."""
    cell_h, cell_w = 20, 24
    for grid in (TileGrid(2, 3), TileGrid(2, 3, 64 / 256)):
        tiles = [_inside_tile_gaussians(seed) for seed in range(grid.count)]
        params = torch.from_numpy(np.stack([g.to_array() for g in tiles])).double()
        mapped = grid.params_to_picture(params).numpy()
        n = len(tiles[0])
        for t, g in enumerate(tiles):
            picture = render(Gaussians.from_array(mapped[t * n:(t + 1) * n], blend="sum"),
                             grid.rows * cell_h, grid.cols * cell_w)
            crop = grid.crop(picture, t)
            np.testing.assert_allclose(crop, render(g, *crop.shape[:2]), atol=2e-5)
            assert crop.sum() == pytest.approx(picture.sum(), rel=1e-4)  # all of it inside the crop


def test_covariance_mapping_is_differentiable_and_agrees_with_the_parameter_mapping():
    grid = TileGrid(1, 2)
    params = torch.from_numpy(np.stack([_inside_tile_gaussians(s).to_array() for s in (0, 1)])).double()
    from gaussvae_ros.core.render import covariance_from_scale_rot

    xy = params[..., :2].clone().requires_grad_(True)
    cov = covariance_from_scale_rot(params[..., 2:4], params[..., 4])
    mapped_xy, mapped_cov = grid.covariance_to_picture(xy, cov)
    picture = grid.params_to_picture(params)
    np.testing.assert_allclose(mapped_xy.detach(), picture[:, :2], atol=1e-12)
    np.testing.assert_allclose(mapped_cov, covariance_from_scale_rot(picture[:, 2:4], picture[:, 4]), atol=1e-12)
    mapped_xy.sum().backward()
    np.testing.assert_allclose(xy.grad, np.broadcast_to([0.5, 1.0], xy.shape))  # du = 1/2, dv = 1
    with pytest.raises(ValueError, match="expected"):
        grid.covariance_to_picture(xy[:1], cov[:1])


# ------------------------------------------------------------------------------------ with the shipped model


@pytest.fixture(scope="module")
def bundle(shipped_bundle):
    return shipped_bundle


@pytest.fixture(scope="module")
def photo():
    """A real photograph (scikit-image's astronaut, outside the held-out set) at 48 x 64, uint8 RGB."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((64, 48), Image.LANCZOS))


def _fit(pixels: np.ndarray) -> Gaussians:
    from gaussvae_ros.core import fit_image

    return fit_image(pixels, n_gaussians=512, max_iters=40, seed=0, threads=1).gaussians


def test_tiles_refined_together_beat_one_latent_at_a_larger_budget(bundle, photo):
    """At a budget one latent cannot use, two tiles refined against the whole picture decode closer
    to it; the encoder keeps the better grid, within the budget, and recall decodes it as usual."""
    one = encode_image(bundle, photo, tiles=1, max_bytes=900, refine_iters=20, fit=_fit)
    two = encode_image(bundle, photo, tiles=2, max_bytes=900, refine_iters=20, fit=_fit)
    assert one.grid == TileGrid(1, 1) and two.grid == TileGrid(1, 2, DEFAULT_OVERLAP)
    assert len(one.payload) < 700 < len(two.payload) <= 900  # one latent saturates below the budget
    assert two.error < one.error, (one.error, two.error)  # (held-out photographs: BENCHMARKS.md)
    best = encode_image(bundle, photo, tiles=(1, 2), max_bytes=900, refine_iters=20, fit=_fit)
    assert best.payload == two.payload and best.grid == two.grid
    assert len(best.source) == 2 * bundle.seq_len and len(one.source) == bundle.seq_len  # what was encoded
    from gaussvae_ros.codecs.registry import decode_payload

    decoded = decode_payload(best.payload, lc.CODEC_ID, bundle.model_id)
    assert len(decoded) == 2 * bundle.seq_len
    # in picture coordinates, half per tile, and its rendering is the picture the encoder scored
    assert 0.4 < (decoded.xy[:, 0] < 0.5).mean() < 0.6
    rendered = render(decoded, *photo.shape[:2])
    assert np.mean((rendered - photo / 255.0) ** 2) == pytest.approx(best.error, rel=1e-3)
    assert np.mean((rendered - photo[:, ::-1] / 255.0) ** 2) > 4 * best.error  # not any picture: this one
    # nothing fits: the smallest payload of the candidates
    tiny = encode_image(bundle, photo, tiles=(1, 2), max_bytes=20, fit=_fit)  # under the 24-byte header
    assert tiny.grid == TileGrid(1, 1) and len(tiny.payload) > 20


def test_refinement_of_several_tiles_lowers_the_whole_pictures_error(bundle, photo):
    grid = grid_for(2, *photo.shape[:2])
    target = refine.image_target(photo, 3)
    tiles = [_fit(np.ascontiguousarray(grid.crop(target.numpy(), t))) for t in range(grid.count)]
    mu = lc.latent_of(bundle, tiles)
    assert mu.shape == (2, bundle.entropy.dim)
    refined = refine.refine_latent(bundle, mu, target, 1.0, iters=15, grid=grid)
    assert refined.shape == mu.shape
    before, after = (refine.latent_error(bundle, z, target, grid=grid) for z in (mu, refined))
    assert after < before
    with pytest.raises(ValueError, match="2 finite latent"):
        refine.refine_latent(bundle, mu[0], target, 1.0, iters=1, grid=grid)


def test_grey_frames_stay_grey_through_tiles(bundle, photo):
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    grey_alpha = np.stack([grey, np.full_like(grey, 255)], -1)
    for frame in (grey, grey_alpha):
        encoded = encode_image(bundle, frame, tiles=2, step=2.0, fit=_fit)
        decoded = lc.decode_latent(bundle, encoded.payload)
        assert lc.payload_info(encoded.payload)["channels"] == 1 and decoded.channels == 1
        assert encoded.step == 2.0 and np.isfinite(encoded.error)
    with pytest.raises(ValueError, match="byte budget"):
        encode_image(bundle, grey, tiles=(1, 2), fit=_fit)


def test_payload_encoder_codes_frames_as_tiles(bundle, photo, monkeypatch):
    from gaussvae_ros.codecs.registry import LATENT_TILE_SETTINGS, payload_encoder
    from gaussvae_ros.codecs.latent.tiles import TILE_COUNTS

    assert set(LATENT_TILE_SETTINGS) == {0, *TILE_COUNTS}
    gaussians = _fit(photo)
    fit = FitConfig(max_iters=40, threads=1)
    encoder = payload_encoder("vae-latent", max_bytes=900, tiles=2)
    assert "tiles 2" in encoder.description
    payload = encoder.encode(gaussians, photo, fit=fit)
    assert len(payload) <= 900 and lc.payload_info(payload)["grid"] == TileGrid(1, 2, DEFAULT_OVERLAP)
    chosen = payload_encoder("vae-latent", max_bytes=300, tiles=0).encode(gaussians, photo, fit=fit)
    assert len(chosen) <= 300 and lc.payload_info(chosen)["grid"].count in AUTO_TILES
    with pytest.raises(ValueError, match="needs the frame"):
        encoder.encode(gaussians, None)
    fits = []
    real_fit = image_encoder.fit_tile
    spy = lambda pixels, n, fit: fits.append(fit) or real_fit(pixels, n, fit)  # noqa: E731
    monkeypatch.setattr(image_encoder, "fit_tile", spy)
    spied = payload_encoder("vae-latent", max_bytes=900, tiles=2)
    spied.encode(gaussians, photo, fit=FitConfig(max_iters=40, threads=1, seed=5))  # tiles fitted as the frame was
    assert [(f.max_iters, f.threads, f.seed) for f in fits] == [(40, 1, 5)] * 2
    fits.clear()
    spied.encode(gaussians, photo, fit=FitConfig(max_iters=20, threads=1, seed=6))  # (a node's settings now)
    assert [(f.max_iters, f.threads, f.seed) for f in fits] == [(20, 1, 6)] * 2
    small = payload_encoder("vae-latent", tiles=8).encode(gaussians, photo, fit=fit)  # 24 x 16 px tiles
    assert lc.payload_info(small)["grid"] == TileGrid(1, 1)  # < 512 Gaussians each: one latent instead
    with pytest.raises(ValueError, match="tiles must be"):
        payload_encoder("vae-latent", tiles=3)
    with pytest.raises(ValueError, match="whole number"):
        payload_encoder("vae-latent", tiles=1.5)
    for step in (1e-12, 1e-50, 1e5):  # refused when the encoder is made, not by every frame's encode
        with pytest.raises(ValueError, match="step"):
            payload_encoder("vae-latent", step=step)
    with pytest.raises(ValueError, match="byte budget"):  # "the best grid" without a budget is always the most tiles
        payload_encoder("vae-latent", tiles=0)
    with pytest.raises(ValueError, match="tiles"):
        payload_encoder("gaussians-q", tiles=2)
