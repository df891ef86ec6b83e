"""``gaussvae dataset from-bag`` on a damaged recording: the readable frames are fitted, the rest reported."""

from __future__ import annotations

import json

from gaussvae_ros.cli.main import main

from support.damage import copy_recording, overwrite, storage_file


def test_from_bag_reads_past_a_damaged_page(tmp_path, bag_path, capsys):
    bag = copy_recording(bag_path("kitti07_compressed_sqlite3"), tmp_path / "bag")
    overwrite(storage_file(bag), 0.5, align=4096)
    argv = ["dataset", "from-bag", str(bag), "--out", str(tmp_path / "set"), "--every", "10", "--gaussians", "16",
            "--long-side", "32", "--max-iters", "5"]
    assert main(argv) == 4
    out = capsys.readouterr()
    assert json.loads(out.out)["fitted"] == 4  # 39 readable frames, every 10th
    assert "damaged recording" in out.err and "frames lost to damage" in out.err
