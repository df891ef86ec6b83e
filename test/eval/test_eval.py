"""``gaussvae eval``: rate-distortion evaluation of Gaussians vs JPEG / WebP / AVIF at byte budgets."""

import json

import numpy as np
import pytest
from PIL import Image

from gaussvae_ros.cli import eval_commands
from gaussvae_ros.cli.main import build_parser
from gaussvae_ros.core import BitDepths, encoded_size
from gaussvae_ros.eval import (FitOptions, GaussianMethod, ImageContext, LatentMethod, PillowCodec, evaluate,
                               load_latent_method, pillow_codecs, prepare_image)
from gaussvae_ros.eval.methods import LATENT_CODEC_MODULE, psnr_uint8

#: The Pillow codecs of this Pillow build (AVIF from Pillow 11.2 on; the compat venv has Pillow 9.3).
CODECS = tuple(n for n in ("jpeg", "webp", "avif") if n not in pillow_codecs()[1])
TINY = ["--long-side", "48", "--gaussians-counts", "16", "32", "--max-iters", "20", "--quiet",
        "--methods", "gaussians", *CODECS]


def _photo(kind: str) -> np.ndarray:
    from skimage import data

    return {"chelsea": data.chelsea, "coffee": data.coffee, "camera": data.camera}[kind]()


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval_images")
    Image.fromarray(_photo("chelsea")).save(folder / "chelsea.png")
    Image.fromarray(_photo("coffee")).save(folder / "coffee.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _run(capsys, argv) -> dict:
    assert eval_commands.main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def tiny_report(image_dir, tmp_path_factory):
    """One tiny run shared by the structure / budget / quality / plot checks."""
    plot = tmp_path_factory.mktemp("eval_plot") / "rd.png"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = eval_commands.main(["--images", str(image_dir), "--budgets", "512", "1024", "--json", "--per-image",
                                   "--plot", str(plot), *TINY])
    assert code == 0
    return json.loads(out.getvalue()), plot


def test_json_structure(tiny_report):
    report, _ = tiny_report
    assert set(report["budgets"]) == {"512", "1024"}
    for entry in report["budgets"].values():
        assert set(entry) == {"gaussians", *CODECS}
        for row in entry.values():
            assert set(row) == {"psnr", "ssim", "bytes", "over_budget"}
            assert isinstance(row["over_budget"], int)
            assert 5 < row["psnr"] < 100 and 0 < row["ssim"] <= 1 and row["bytes"] > 0
    assert [im["name"] for im in report["images"]] == ["chelsea", "coffee"]
    assert all(max(im["width"], im["height"]) == 48 for im in report["images"])


def test_ours_defaults_to_the_shipped_model_and_says_why_when_there_is_none(tmp_path, monkeypatch):
    from gaussvae_ros.codecs import latent as latent_codec

    if latent_codec.default_model_path().exists():
        method, reason = load_latent_method(None)
        assert reason is None and method.n_gaussians == 512
        assert method.bundle.path.resolve() == latent_codec.default_model_path()
    monkeypatch.setattr(latent_codec, "default_model_path", lambda: tmp_path / "none.pt")
    method, reason = load_latent_method(None)
    assert method is None and "--model" in reason


def test_bytes_within_budget_unless_counted(tiny_report):
    report, _ = tiny_report
    for budget, entry in report["per_image"].items():
        for method, rows in entry.items():
            assert len(rows) == 2
            for row in rows:
                assert row["over_budget"] == (row["bytes"] > int(budget)), (budget, method, row)
            summary = report["budgets"][budget][method]
            assert summary["over_budget"] == sum(r["over_budget"] for r in rows)
            assert summary["bytes"] == pytest.approx(np.mean([r["bytes"] for r in rows]), abs=0.1)
            assert summary["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows]), abs=1e-3)
            if summary["over_budget"] == 0:
                assert summary["bytes"] <= int(budget)
            inside = [r for r in rows if not r["over_budget"]]
            within = report["within_budget"][budget].get(method)
            assert (within is None) == (not inside)
            if inside:
                assert within["images"] == len(inside) and within["bytes"] <= int(budget)
                assert within["psnr"] == pytest.approx(np.mean([r["psnr"] for r in inside]), abs=1e-3)


def test_quality_increases_with_budget(tiny_report):
    report, _ = tiny_report
    small, large = report["budgets"]["512"], report["budgets"]["1024"]
    for codec in CODECS:
        assert large[codec]["psnr"] > small[codec]["psnr"]
        assert large[codec]["bytes"] > small[codec]["bytes"]
        for a, b in zip(report["per_image"]["512"][codec], report["per_image"]["1024"][codec]):
            assert b["quality"] >= a["quality"]
    # the grid searched at 1024 B includes every point searched at 512 B
    assert large["gaussians"]["psnr"] >= small["gaussians"]["psnr"]


def test_plot_written(tiny_report):
    report, plot = tiny_report
    assert report["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(plot) as im:
        assert im.size[0] > 400


def test_impossible_budget_counts_every_image(image_dir, capsys):
    report = _run(capsys, ["--images", str(image_dir), "--budgets", "64", "--json", "--per-image", *TINY])
    entry = report["budgets"]["64"]
    assert set(entry) == {"gaussians", *CODECS}
    for method, row in entry.items():
        assert row["over_budget"] == 2, method
        assert row["bytes"] > 64
    # scored at the smallest output: the coarsest grid point, quality 0
    for row in report["per_image"]["64"]["gaussians"]:
        assert row["gaussians"] == 16 and row["depths"] == {"xy": 7, "scale": 5, "rot": 4, "color": 4}
    for codec in CODECS:
        assert all(row["quality"] == 0 for row in report["per_image"]["64"][codec])


def test_table_output_and_registration(image_dir, capsys):
    assert eval_commands.main(["--images", str(image_dir / "chelsea.png"), "--budgets", "900",
                               "--methods", "jpeg", "webp", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "jpeg" in out and "webp" in out and "PSNR" in out
    args = build_parser().parse_args(["eval", "--images", "x", "--budgets", "256", "512"])
    assert args.func is eval_commands.run and args.budgets == [256, 512]


def test_errors(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    assert eval_commands.main(["--images", str(tmp_path), "--methods", "jpeg", "--quiet"]) == 2
    assert "no image files" in capsys.readouterr().err
    assert eval_commands.main(["--images", str(tmp_path / "missing"), "--quiet", "--threads", "3"]) == 2
    assert torch.get_num_threads() == threads  # restored
    with pytest.raises(SystemExit):
        eval_commands.setup_args().parse_args(["--images", "x", "--budgets", "0"])


def test_prepare_image_resizes_on_uint8():
    rgb = prepare_image(_photo("chelsea"), 192)  # 451 x 300
    assert rgb.dtype == np.uint8 and rgb.shape == (128, 192, 3)
    gray = prepare_image(_photo("camera"), 192)
    assert gray.shape == (192, 192)
    rgba = np.dstack([_photo("coffee"), np.full(_photo("coffee").shape[:2], 7, np.uint8)])
    assert prepare_image(rgba, 60).shape == (40, 60, 3)
    expected = np.asarray(Image.fromarray(_photo("chelsea")).resize((192, 128), Image.LANCZOS))
    np.testing.assert_array_equal(rgb, expected)


def test_pillow_codec_highest_quality_that_fits():
    ctx = ImageContext("c", prepare_image(_photo("coffee"), 64))
    codec = PillowCodec("jpeg", "JPEG", optimize=True)
    budget = 900
    chosen = codec.compress(ctx, budget)
    assert chosen.nbytes <= budget
    q = chosen.setting["quality"]
    assert q == 100 or codec.encode(ctx, q + 1).nbytes > budget
    assert codec.compress(ctx, 10).setting["quality"] == 0  # nothing fits: smallest output
    available, notes = pillow_codecs()
    assert {c.name for c in available} | set(notes) == {"jpeg", "webp", "avif"}


def test_gaussian_candidates_only_fitting_points():
    method = GaussianMethod([16, 64, 256])
    for budget in (100, 700, 3000):
        points = method.candidates(3, budget)
        if budget == 100:  # none fits: the single smallest
            assert points == [(16, BitDepths(7, 5, 4, 4))]
        else:
            assert points and all(encoded_size(n, 3, d) <= budget for n, d in points)
    assert max(n for n, _ in method.candidates(3, 3000)) == 256
    with pytest.raises(ValueError):
        GaussianMethod([0])
    filled = GaussianMethod([16], fill=True)
    for d in filled.presets:  # the largest count of each preset that fits, and not one more
        n = max(k for k, p in filled.candidates(3, 1000) if p == d)
        assert encoded_size(n, 3, d) <= 1000 < encoded_size(n + 1, 3, d)
    assert filled.candidates(3, 20) == [(16, BitDepths(7, 5, 4, 4))]


def test_latent_method_unavailable_reasons(tmp_path):
    import importlib.util

    method, reason = load_latent_method(str(tmp_path / "model.pt"))
    assert method is None
    if importlib.util.find_spec(LATENT_CODEC_MODULE) is None:
        assert "codecs.latent" in reason
    else:
        assert "cannot load" in reason


def _tiny_latent_bundle(path, n: int = 16):
    """A tiny VAE bundle (``n`` Gaussians, 8-D latent) written to ``path``: plumbing, not quality."""
    lc = pytest.importorskip(LATENT_CODEC_MODULE)
    from conftest import write_tiny_latent_model

    return lc, lc.load_bundle(write_tiny_latent_model(path, n=n, latent=8))


def test_ours_through_the_method_interface(tmp_path):
    """Per-image rate control over tile grids: every image gets the grid whose decoding is closest to
    it among those within the budget; nothing fits -> the smallest output, counted over budget."""
    lc, bundle = _tiny_latent_bundle(tmp_path / "tiny.pt")
    ours = LatentMethod(lc, bundle, n_gaussians=16, channels=3, refine_iters=3, tiles=(1, 2))
    images = [("coffee", prepare_image(_photo("coffee"), 40)), ("camera", prepare_image(_photo("camera"), 40))]
    report = evaluate(images, [ours], [8, 2000], FitOptions(max_iters=30), per_image=True)
    for item in report["per_image"]["8"]["ours"]:
        assert item["over_budget"] and item["tiles"] == 1 and item["bytes"] > 8  # the smallest: one latent
    for item in report["per_image"]["2000"]["ours"]:
        assert not item["over_budget"] and item["tiles"] in (1, 2) and item["step"] > 0
    ctx = ImageContext("coffee", images[0][1], FitOptions(max_iters=30))
    chosen = ours.compress(ctx, 2000)
    ours.compress(ctx, 1000)
    assert len(ctx.cache["ours:tiles"]) == 2  # the two tiles were fitted once for both budgets
    for tiles in (1, 2):  # the chosen grid is the best of the candidates
        alone = LatentMethod(lc, bundle, n_gaussians=16, channels=3, refine_iters=3, tiles=(tiles,))
        single = alone.compress(ImageContext("coffee", images[0][1], FitOptions(max_iters=30)), 2000)
        assert psnr_uint8(ctx.reference, chosen.image) >= psnr_uint8(ctx.reference, single.image) - 0.05


def test_fit_cache_reused(tmp_path, monkeypatch):
    from gaussvae_ros.eval import methods

    reference = prepare_image(_photo("coffee"), 32)
    options = FitOptions(max_iters=10, cache_dir=str(tmp_path))
    first = ImageContext("a", reference, options).fit(8)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted again despite the cache")

    monkeypatch.setattr(methods, "fit_image", no_fit)
    again = ImageContext("b", reference, options).fit(8)
    np.testing.assert_array_equal(again.to_array(), first.to_array())
    assert again.blend == first.blend
    with pytest.raises(AssertionError):
        ImageContext("c", reference, FitOptions(max_iters=11, cache_dir=str(tmp_path))).fit(8)


def test_a_model_named_on_the_command_line_that_cannot_load_is_an_error(image_dir, tmp_path, capsys):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a model")
    for model in (damaged, tmp_path / "missing.pt"):
        argv = ["--images", str(image_dir), "--budgets", "2000", "--methods", "ours", "jpeg", "--model", str(model),
                "--long-side", "32", "--quiet"]
        assert eval_commands.main(argv) == 2  # not a report that quietly leaves "ours" out
        assert f"--model {model}" in capsys.readouterr().err


def test_ours_with_a_real_latent_codec_model(image_dir, tmp_path, capsys):
    """A tiny VAE bundle (16 Gaussians, 8-D latent) through ``--model``: plumbing, not quality."""
    lc, bundle = _tiny_latent_bundle(tmp_path / "latent.pt")
    n, path = bundle.seq_len, bundle.path
    report = _run(capsys, ["--images", str(image_dir), "--budgets", "8", "2000", "--json", "--per-image",
                           "--methods", "ours", "--model", str(path), "--long-side", "32", "--max-iters", "60",
                           "--quiet"])
    assert "ours" not in report["notes"]
    for budget in ("8", "2000"):
        row = report["budgets"][budget]["ours"]
        assert set(row) == {"psnr", "ssim", "bytes", "over_budget"}
        for item in report["per_image"][budget]["ours"]:
            assert item["gaussians"] == n and item["step"] > 0 and item["refine_iters"] == 150
            assert item["tiles"] in (1, 2, 4, 8) and 0 < item["source_psnr"] <= 100
            assert item["over_budget"] == (item["bytes"] > int(budget))
    assert report["budgets"]["8"]["ours"]["over_budget"] == 2  # the 24-byte header alone is over
    assert report["budgets"]["2000"]["ours"]["over_budget"] == 0


# --- the anchors a user would pick instead, and codec gaussians-rd ----------------------------------

@pytest.fixture(scope="module")
def photo_context():
    from skimage import data as skdata

    from gaussvae_ros.eval import prepare_image

    return ImageContext("astronaut", prepare_image(skdata.astronaut(), 128))


@pytest.mark.parametrize("name", ["webp-scaled", "avif-scaled", "jpeg-scaled"])
@pytest.mark.parametrize("budget", [300, 700, 1500])
def test_scaled_anchors_write_decodable_files_within_budget(photo_context, name, budget):
    """The file the scaled anchor reports decodes (at its recorded factor, back up with Lanczos) to
    the image it is scored on, within the budget; its factor is one of the tried ones, and it is at
    least as good as the same codec at full size alone."""
    import io

    from gaussvae_ros.eval import SCALE_FACTORS, ScaledPillowCodec, pillow_codecs

    codecs, notes = pillow_codecs([name, name.removesuffix("-scaled")])
    if len(codecs) < 2:
        pytest.skip(notes.get(name, "no such Pillow codec"))
    scaled, full = codecs
    assert isinstance(scaled, ScaledPillowCodec)
    encoded = scaled.compress(photo_context, budget)
    factor = encoded.setting["factor"]
    assert factor in SCALE_FACTORS and encoded.image.shape == photo_context.reference.shape
    fits = encoded.nbytes <= budget
    if not fits:  # the container alone is larger (AVIF ~300 B, JPEG ~580 B): the smallest file
        assert factor == min(SCALE_FACTORS)
        return
    ref = photo_context.reference
    w, h = max(1, round(ref.shape[1] * factor)), max(1, round(ref.shape[0] * factor))
    small = ref if factor == 1 else np.asarray(Image.fromarray(ref).resize((w, h), Image.LANCZOS))
    buffer = io.BytesIO()
    Image.fromarray(small).save(buffer, scaled.pil_format, quality=encoded.setting["quality"], **scaled.options)
    assert len(buffer.getvalue()) == encoded.nbytes <= budget
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    if factor != 1:
        decoded = np.asarray(Image.fromarray(decoded).resize((ref.shape[1], ref.shape[0]), Image.LANCZOS))
    np.testing.assert_array_equal(decoded, encoded.image)
    alone = full.compress(photo_context, budget)
    if alone.nbytes <= budget:
        assert psnr_uint8(ref, encoded.image) >= psnr_uint8(ref, alone.image)


def test_gaussians_rd_through_the_method_interface(photo_context):
    from gaussvae_ros.codecs.gaussians_rd import RDConfig
    from gaussvae_ros.eval import RDGaussianMethod

    method = RDGaussianMethod(RDConfig(fit_iters=40, refine_iters=40, prune_refine_iters=10))
    low, high = method.compress(photo_context, 300), method.compress(photo_context, 1200)
    assert low.nbytes <= 300 and high.nbytes <= 1200
    assert high.setting["gaussians"] > low.setting["gaussians"] > 10
    assert psnr_uint8(photo_context.reference, high.image) > psnr_uint8(photo_context.reference, low.image) + 1.0


def test_eval_on_a_recording_uses_the_encoders_working_size(bag_path, capsys):
    bag = bag_path("kitti07_mono8_mcap")
    assert eval_commands.main(["--bag", str(bag), "--every", "80", "--budgets", "1024", "--methods", "webp-scaled",
                               "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(i["width"], i["height"]) for i in report["images"]] == [(256, 77), (256, 77)]
    assert report["settings"]["source"]["bag"] == str(bag) and report["settings"]["long_side"] == 256
    assert report["within_budget"]["1024"]["webp-scaled"]["images"] == 2
