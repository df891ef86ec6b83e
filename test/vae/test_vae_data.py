"""Delaunay abstract art, its triangle-derived Gaussian fit, and the cached-parameter files."""

from __future__ import annotations

import numpy as np
import pytest

from gaussvae_ros.core import morton_order, psnr, render, to_float_image
from gaussvae_ros.vae.data import GaussianParamDataset, load_param_set, save_param_set, split_indices
from gaussvae_ros.vae.delaunay import (delaunay_gaussians, make_delaunay_param_set, random_delaunay_art,
                                       subdivide_triangles, triangle_gaussians)
from gaussvae_ros.vae.features import ParamTransform


def test_art_is_deterministic_and_each_pixel_has_its_triangles_colour():
    a, b = random_delaunay_art(7, 48, 64), random_delaunay_art(7, 48, 64)
    assert np.array_equal(a.image, b.image) and a.image.shape == (48, 64, 3)
    assert not np.array_equal(a.image, random_delaunay_art(8, 48, 64).image)
    palette = {tuple(c) for c in np.round(a.colors * 255).astype(np.uint8)}
    assert {tuple(p) for p in a.image.reshape(-1, 3)} <= palette


def test_triangle_gaussian_has_the_triangles_centroid_and_second_moments():
    vertices = np.array([[0.1, 0.2], [0.9, 0.35], [0.3, 0.85]])
    g = triangle_gaussians(vertices, np.array([[0, 1, 2]]), np.array([[0.2, 0.4, 0.6]]))
    # Moments of the pixel centres inside the triangle on a fine grid.
    n = 800
    c = (np.arange(n) + 0.5) / n
    pts = np.stack(np.meshgrid(c, c), -1).reshape(-1, 2)
    from scipy.spatial import Delaunay
    inside = pts[Delaunay(vertices).find_simplex(pts) >= 0]
    np.testing.assert_allclose(g.xy[0], inside.mean(0), atol=1e-3)
    np.testing.assert_allclose(g.covariance()[0], np.cov(inside.T), rtol=2e-2, atol=1e-5)
    assert g.scale[0, 0] >= g.scale[0, 1]


def test_subdivision_reaches_the_count_and_keeps_area_and_colours():
    art = random_delaunay_art(3)
    verts, tris, cols = subdivide_triangles(art.vertices, art.triangles, art.colors, 300)
    assert len(tris) == len(cols) == 300

    def area(v, t):
        p = v[t]
        d1, d2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        return 0.5 * np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])

    assert area(verts, tris).sum() == pytest.approx(1.0)  # still tiles the unit square
    assert {tuple(c) for c in cols} == {tuple(c) for c in art.colors}
    with pytest.raises(ValueError, match="fewer"):
        subdivide_triangles(art.vertices, art.triangles, art.colors, len(art.triangles) - 1)


def test_starting_fit_is_morton_sorted_and_renders_close_to_the_art():
    art = random_delaunay_art(11, 96, 96)
    g = delaunay_gaussians(art, 512)
    assert len(g) == 512 and g.blend == "normalized"
    assert np.array_equal(morton_order(g.xy), np.arange(512))
    target = to_float_image(art.image)
    fit_psnr = psnr(target, render(g, 96, 96))
    shuffled = g.copy()
    shuffled.color = shuffled.color[np.random.default_rng(0).permutation(512)]
    flat = np.broadcast_to(target.mean((0, 1)), target.shape)
    assert fit_psnr > psnr(target, render(shuffled, 96, 96)) + 6
    assert fit_psnr > psnr(target, flat) + 6


def test_param_set_file_round_trip_and_directory_concatenation(tmp_path):
    params, seeds = make_delaunay_param_set(3, seed=5, n_gaussians=64, max_points=20)
    assert params.shape == (3, 64, 8) and seeds.tolist() == [5, 6, 7]
    save_param_set(tmp_path / "a.npz", params, seeds=seeds)
    save_param_set(tmp_path / "b.npz", params[:1])
    assert np.array_equal(load_param_set(tmp_path / "a.npz"), params)
    assert np.array_equal(load_param_set(tmp_path), np.concatenate([params, params[:1]]))
    ds = GaussianParamDataset(params, ParamTransform("doubled_angle").fit(params))
    assert len(ds) == 3 and ds[0].shape == (9, 64)


def test_bad_param_sets_are_rejected_with_clear_errors(tmp_path):
    good, _ = make_delaunay_param_set(2, n_gaussians=32, max_points=10)
    bad = good.copy()
    bad[1, 3, 2] = -0.1
    with pytest.raises(ValueError, match="non-positive scales"):
        save_param_set(tmp_path / "x.npz", bad)
    bad[1, 3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_param_set(tmp_path / "x.npz", bad)
    with pytest.raises(ValueError, match=r"\[M, N, 8\]"):
        save_param_set(tmp_path / "x.npz", good[..., :7])
    path = save_param_set(tmp_path / "good.npz", good)
    intact = path.read_bytes()
    path.write_bytes(intact[:100])
    with pytest.raises(ValueError, match="not a readable"):
        load_param_set(path)
    for offset in range(0, len(intact) - 40, 97):  # damaged bytes anywhere: a clear error or the same numbers
        path.write_bytes(intact[:offset] + bytes(40) + intact[offset + 40:])
        try:
            loaded = load_param_set(path)
        except ValueError:
            continue
        assert np.array_equal(loaded, good)
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="no 'params'"):
        load_param_set(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        load_param_set(tmp_path / "missing.npz")
    save_param_set(tmp_path / "d" / "a.npz", good)
    save_param_set(tmp_path / "d" / "b.npz", good[:, :16])
    with pytest.raises(ValueError, match="disagree"):
        load_param_set(tmp_path / "d")


def test_splits_are_disjoint_deterministic_and_sized():
    s = split_indices(1000, 0.05, 0.1, seed=3)
    assert len(s["val"]) == 50 and len(s["test"]) == 100 and len(s["train"]) == 850
    assert sorted(np.concatenate(list(s.values())).tolist()) == list(range(1000))
    assert all(np.array_equal(s[k], split_indices(1000, 0.05, 0.1, seed=3)[k]) for k in s)
    assert not np.array_equal(s["val"], split_indices(1000, 0.05, 0.1, seed=4)["val"])
    with pytest.raises(ValueError, match="too few"):
        split_indices(2, 0.4, 0.4, seed=0)


def test_dihedral_views_render_as_the_mirrored_and_turned_image():
    from gaussvae_ros.core import Gaussians, morton_order, render
    from gaussvae_ros.vae.data import dihedral_views

    rng = np.random.default_rng(3)
    n = 40
    params = np.concatenate([rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.02, 0.12, (n, 2)),
                             rng.uniform(-3, 3, (n, 1)), rng.uniform(0, 1, (n, 3))], 1).astype(np.float32)
    params = params[morton_order(params[:, :2])]
    views = dihedral_views(params[None])
    assert views.shape == (8, n, 8)
    np.testing.assert_array_equal(views[0], params)
    image = render(Gaussians.from_array(params), 32, 32)
    expected = []
    for transpose in (False, True):
        base = image.transpose(1, 0, 2) if transpose else image
        for flip_u in (False, True):
            for flip_v in (False, True):
                expected.append(base[::-1 if flip_v else 1, ::-1 if flip_u else 1])
    for view, want in zip(views, expected):
        assert np.array_equal(morton_order(view[:, :2]), np.arange(n))  # each view is Morton-sorted
        np.testing.assert_allclose(render(Gaussians.from_array(view), 32, 32), want, atol=1e-4)
