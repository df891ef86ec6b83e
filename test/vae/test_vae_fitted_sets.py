"""Training sets of fitted Gaussians from photographs and recordings: contents, resume, CLI."""

import json

import numpy as np
import pytest

from gaussvae_ros.cli.main import main
from gaussvae_ros.core import morton_codes
from gaussvae_ros.vae.data import load_param_set
from gaussvae_ros.vae.fitted_sets import build_fitted_set, photo_views

FAST = {"max_iters": 20}


def test_photo_views_are_distinct_deterministic_and_sized():
    a = list(photo_views(6, long_side=48, seed=1))
    b = list(photo_views(6, long_side=48, seed=1))
    assert [k for k, _ in a] == [k for k, _ in b]
    assert len({k for k, _ in a}) == 6
    for _, image in a:
        assert image.dtype == np.uint8 and image.ndim == 3 and max(image.shape[:2]) == 48


def test_build_resumes_without_refitting(tmp_path):
    views = list(photo_views(5, long_side=40, seed=2))
    first = build_fitted_set(views[:3], tmp_path, n_gaussians=32, shard_size=2, fit_overrides=FAST)
    assert first["fitted"] == 3 and first["shards"] == 2
    second = build_fitted_set(views, tmp_path, n_gaussians=32, shard_size=2, fit_overrides=FAST)
    assert second["skipped_existing"] == 3 and second["fitted"] == 2 and second["samples"] == 5
    params = load_param_set(tmp_path)
    assert params.shape == (5, 32, 8)
    codes = morton_codes(params[0, :, :2])
    assert (np.diff(codes.astype(np.int64)) >= 0).all()  # stored in Morton order


def test_an_interrupted_build_keeps_its_fits_and_small_images_are_not_refitted(tmp_path):
    views = list(photo_views(4, long_side=40, seed=3))
    tiny = ("tiny", np.zeros((2, 3, 3), np.uint8) + 128)  # 6 pixels: cannot hold 32 Gaussians

    def interrupted():
        yield from views[:3]
        yield tiny
        raise KeyboardInterrupt  # Ctrl-C before the shard of 64 is full

    with pytest.raises(KeyboardInterrupt):
        build_fitted_set(interrupted(), tmp_path, n_gaussians=32, fit_overrides=FAST)
    assert load_param_set(tmp_path).shape == (3, 32, 8)  # written on the way out
    again = build_fitted_set(views + [tiny], tmp_path, n_gaussians=32, fit_overrides=FAST)
    assert again["skipped_existing"] == 4 and again["fitted"] == 1 and again["skipped_small"] == 0
    assert again["samples"] == 4


def test_other_settings_or_a_damaged_shard_are_refused_clearly(tmp_path):
    views = list(photo_views(2, long_side=40, seed=4))
    build_fitted_set(views, tmp_path, n_gaussians=32, fit_overrides=FAST, settings={"long_side": 40})
    with pytest.raises(ValueError, match="n_gaussians=32.*n_gaussians=16"):
        build_fitted_set(views, tmp_path, n_gaussians=16, fit_overrides=FAST, settings={"long_side": 40})
    with pytest.raises(ValueError, match="long_side"):
        build_fitted_set(views, tmp_path, n_gaussians=32, fit_overrides=FAST, settings={"long_side": 64})
    shard = next(tmp_path.glob("shard_*.npz"))
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(ValueError, match="unreadable shard"):
        build_fitted_set(views, tmp_path, n_gaussians=32, fit_overrides=FAST, settings={"long_side": 40})


def test_a_shard_moved_out_as_advised_costs_no_other_shard(tmp_path):
    views = list(photo_views(6, long_side=40, seed=5))
    build_fitted_set(views, tmp_path, n_gaussians=32, shard_size=2, fit_overrides=FAST)  # shards 0, 1, 2
    (tmp_path / "shard_00001.npz").rename(tmp_path / "damaged.bin")  # "move it out of the folder and run again"
    again = build_fitted_set(views, tmp_path, n_gaussians=32, shard_size=2, fit_overrides=FAST)
    assert again["fitted"] == 2 and again["samples"] == 6  # its two samples refitted, shard 2 kept
    assert sorted(p.name for p in tmp_path.glob("shard_*.npz")) == ["shard_00000.npz", "shard_00002.npz",
                                                                    "shard_00003.npz"]


def test_settings_are_claimed_with_the_first_samples_and_older_folders_are_checked_for_their_count(tmp_path):
    views = list(photo_views(2, long_side=40, seed=6))

    def failing():
        raise KeyboardInterrupt  # e.g. a wrong bag path noticed at once
        yield

    with pytest.raises(KeyboardInterrupt):
        build_fitted_set(failing(), tmp_path / "a", n_gaussians=32, fit_overrides={"max_iters": 3})
    build_fitted_set(views, tmp_path / "a", n_gaussians=32, fit_overrides=FAST)  # other settings: fine, nothing made
    build_fitted_set(views, tmp_path / "b", n_gaussians=32, fit_overrides=FAST)
    (tmp_path / "b" / "settings.json").unlink()  # a folder from before settings.json
    with pytest.raises(ValueError, match="32 Gaussians"):
        build_fitted_set(views, tmp_path / "b", n_gaussians=16, fit_overrides=FAST)
    assert build_fitted_set(views, tmp_path / "b", n_gaussians=32, fit_overrides=FAST)["skipped_existing"] == 2


def test_from_bag_cli_on_a_real_recording(tmp_path, bag_path, capsys):
    bag = bag_path("kitti07_compressed_sqlite3")
    argv = ["dataset", "from-bag", str(bag), "--out", str(tmp_path / "set"), "--every", "20", "--gaussians", "64",
            "--long-side", "64", "--max-iters", "20"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fitted"] == 2  # 40 frames, every 20th
    params = load_param_set(tmp_path / "set")
    assert params.shape == (2, 64, 8)
    assert np.allclose(params[:, :, 5], params[:, :, 6])  # grey replicated to RGB
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["skipped_existing"] == 2
