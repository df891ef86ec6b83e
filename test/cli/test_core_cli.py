"""``gaussvae fit`` and ``gaussvae render``: the README's first two commands, on real files."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from gaussvae_ros.apps.bench import skimage_photo
from gaussvae_ros.cli.main import main
from gaussvae_ros.core import decode_gaussians, render, to_uint8


def test_fit_then_render_at_any_size(tmp_path, capsys):
    coffee = to_uint8(skimage_photo("coffee", 96))
    photo = tmp_path / "photo.png"
    Image.fromarray(coffee).save(photo)
    gs, preview = tmp_path / "out" / "photo.gs", tmp_path / "out" / "side_by_side.png"
    assert main(["fit", str(photo), "--gaussians", "64", "--max-iters", "60", "--out", str(gs),
                 "--preview", str(preview), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["gaussians"] == 64 and summary["bytes"] == gs.stat().st_size and summary["psnr"] > 15
    with Image.open(preview) as side_by_side:
        assert side_by_side.size == (2 * coffee.shape[1], coffee.shape[0])

    big = tmp_path / "big.png"
    assert main(["render", str(gs), "--size", "300x1700", "--out", str(big)]) == 0  # taller than one band
    with Image.open(big) as image:
        rendered = np.asarray(image)
    assert rendered.shape == (1700, 300, 3)
    whole = to_uint8(render(decode_gaussians(gs.read_bytes()), 1700, 300))
    assert np.abs(rendered.astype(int) - whole.astype(int)).max() <= 1  # the bands join without seams


def test_bad_files_are_errors_not_tracebacks(tmp_path, capsys):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    assert main(["fit", str(not_an_image)]) == 2
    assert "not an image file" in capsys.readouterr().err
    damaged = tmp_path / "damaged.gs"
    damaged.write_bytes(b"GS" + bytes(40))
    assert main(["render", str(damaged), "--size", "64x48", "--out", str(tmp_path / "x.png")]) == 2
    assert "error" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
