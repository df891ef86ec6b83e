"""``gaussvae db stats|query|export|compact`` on a database built by a replay of a written recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaussvae_ros.cli.main import main
from gaussvae_ros.apps.replay import ReplayOptions, replay_bag

from support.recordings import EVERY_FRAME, MS, T0, synthetic_recording

FRAMES = 6


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dbcli")
    bag = synthetic_recording(folder / "bag", frames=FRAMES, first_pose_ms=400)
    path = folder / "m.db"
    replay_bag(bag, path, ReplayOptions(long_side=32, n_gaussians=32, max_iters=20, threads=1,
                                       keyframes=EVERY_FRAME))
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_stats(db, capsys):
    code, out, _ = run(capsys, "db", "stats", str(db), "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["memories"] == 2 * FRAMES
    assert stats["with_pose"] == 2 * FRAMES - 2  # each camera's first frame precedes the odometry
    assert {c["topic"] for c in stats["cameras"]} == {"/front/image_raw", "/down/image_raw/compressed"}
    assert stats["time_span_s"] == pytest.approx((FRAMES - 1) * 0.5 + 0.010, abs=1e-6)
    assert stats["pose_bounds"]["max"][0] == pytest.approx((FRAMES - 1) * 0.5 + 0.010, abs=1e-6)
    code, text, _ = run(capsys, "db", "stats", str(db))
    assert code == 0 and f"{2 * FRAMES} memories" in text


def test_query_by_time(db, capsys):
    code, out, _ = run(capsys, "db", "query", str(db), "--start", "0.9", "--end", "2.0", "--relative",
                       "--topic", "/front/image_raw", "--json")
    assert code == 0
    stamps = [m["stamp_ns"] for m in json.loads(out)["memories"]]
    assert stamps == [T0 + 1000 * MS, T0 + 1500 * MS, T0 + 2000 * MS]
    absolute = f"{(T0 + 1000 * MS) * 1e-9:.6f}"
    code, out, _ = run(capsys, "db", "query", str(db), "--start", absolute, "--limit", "2", "--json")
    assert [m["stamp_ns"] for m in json.loads(out)["memories"]] == [T0 + 1000 * MS, T0 + 1010 * MS]


def test_query_by_pose(db, capsys):
    code, out, _ = run(capsys, "db", "query", str(db), "--near", "1.0", "0", "0", "--radius", "0.3", "--json")
    assert code == 0
    memories = json.loads(out)["memories"]
    # odometry moves 1 m/s: within 0.3 m of x = 1 m are the frames from 0.7 s to 1.3 s
    assert sorted(m["stamp_ns"] for m in memories) == [T0 + 1000 * MS, T0 + 1010 * MS]
    assert all(m["distance_m"] <= 0.3 for m in memories)
    code, out, _ = run(capsys, "db", "query", str(db), "--near", "2.4", "0", "0", "--k", "3", "--json")
    memories = json.loads(out)["memories"]
    assert [m["stamp_ns"] for m in memories] == [T0 + 2500 * MS, T0 + 2510 * MS, T0 + 2010 * MS]
    distances = [m["distance_m"] for m in memories]
    assert distances == sorted(distances)


def test_export_images_sheet_and_map(db, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, "db", "export", str(db), str(out_dir), "--topic", "/front/image_raw",
                       "--size", "40x30", "--contact-sheet", "--map", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["count"] == FRAMES
    for path in result["images"]:
        with Image.open(path) as image:
            assert image.size == (40, 30) and image.mode == "RGB"
    with Image.open(result["contact_sheet"]) as sheet:
        assert sheet.width > 40 and sheet.height > 30
    assert result["map_points"] == FRAMES - 1
    with Image.open(result["map"]) as chart:
        pixels = np.asarray(chart.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn, not blank

    code, out, _ = run(capsys, "db", "export", str(db), str(tmp_path / "full"), "--limit", "1", "--json")
    (path,) = json.loads(out)["images"]
    with Image.open(path) as image:
        assert image.size == (64, 48)  # the original camera size by default


def test_export_decodes_latent_memories_and_skips_only_the_undecodable(tmp_path, capsys, monkeypatch):
    import sqlite3

    from conftest import write_tiny_latent_model
    from gaussvae_ros.codecs import latent as lc

    model = write_tiny_latent_model(tmp_path / "tiny.pt", n=32)
    bag = synthetic_recording(tmp_path / "bag", frames=3, first_pose_ms=400)
    path = tmp_path / "latent.db"
    replay_bag(bag, path, ReplayOptions(long_side=32, n_gaussians=32, max_iters=20, threads=1, keyframes=EVERY_FRAME,
                                        codec="vae-latent", latent_model=str(model)))
    lc.unregister_latent_model(lc.load_bundle(model).model_id)  # a fresh process: found through the variable
    monkeypatch.setenv(lc.ENV_MODELS, str(model))
    with sqlite3.connect(path) as conn:  # one memory damaged on disk, one naming a model nobody has
        ids = [row[0] for row in conn.execute("SELECT id FROM memories ORDER BY id")]
        conn.execute("UPDATE memories SET payload = zeroblob(length(payload)) WHERE id = ?", (ids[0],))
        conn.execute("INSERT INTO profiles (pose_frame_id, width, height, encoding, intrinsics, codec, model_id) "
                     "SELECT pose_frame_id, width, height, encoding, intrinsics, codec, '00000000deadbeef' "
                     "FROM profiles WHERE id = (SELECT profile_id FROM memories WHERE id = ?)", (ids[1],))
        conn.execute("UPDATE memories SET profile_id = last_insert_rowid() WHERE id = ?", (ids[1],))
    code, out, err = run(capsys, "db", "export", str(path), str(tmp_path / "out"), "--size", "40x30", "--json")
    result = json.loads(out)
    assert code == 1 and result["count"] == len(ids) - 2, result["errors"][:3]  # every other memory is written
    assert [e["id"] for e in result["errors"]] == ids[:2] and f"#{ids[1]}" in err and "deadbeef" in err
    for image_path in result["images"]:
        with Image.open(image_path) as image:
            assert image.size == (40, 30)


def test_recalled_export_matches_the_scene(db, tmp_path, capsys):
    from support.recordings import blocks

    run(capsys, "db", "export", str(db), str(tmp_path / "e"), "--topic", "/down/image_raw/compressed",
        "--limit", "1", "--json")
    (path,) = sorted((tmp_path / "e").glob("*.png"))
    recalled = np.asarray(Image.open(path)).astype(float)
    assert recalled.shape == (48, 64)
    own = np.abs(recalled - blocks(1000)).mean()
    other = np.abs(recalled - blocks(1001)).mean()
    assert own < 0.6 * other


@pytest.mark.parametrize("args, message", [
    (["db", "stats", "missing.db"], "no memory store"),
    (["db", "query", "{db}", "--radius", "3"], "need --near"),
    (["db", "query", "{db}", "--near", "0", "0", "0", "--radius", "1", "--k", "2"], "not both"),
])
def test_errors_are_reported(db, tmp_path, capsys, args, message):
    args = [a.replace("{db}", str(db)) if a != "missing.db" else str(tmp_path / a) for a in args]
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err


def test_a_damaged_file_is_an_error_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database " * 500)
    for command in ("stats", "query", "compact"):
        code, _, err = run(capsys, "db", command, str(path))
        assert code == 2 and "damaged or not a SQLite database" in err and "Traceback" not in err
    assert path.read_bytes() == b"not a database " * 500


def test_compact_keeps_the_memories(db, tmp_path, capsys):
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    code, before, _ = run(capsys, "db", "query", str(copy), "--json")
    code, out, _ = run(capsys, "db", "compact", str(copy), "--page-size", "16384", "--json")
    result = json.loads(out)
    assert code == 0 and result["page_size"] == 16384 and result["bytes_after"] == copy.stat().st_size
    assert run(capsys, "db", "query", str(copy), "--json")[1] == before
    with pytest.raises(SystemExit):
        main(["db", "compact", str(copy), "--page-size", "5000"])
    assert "power of two" in capsys.readouterr().err


def test_bad_size_is_a_usage_error(db, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "export", str(db), str(tmp_path / "x"), "--size", "big"])
    assert exit_info.value.code == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
