"""``gaussvae eval --bag`` on a damaged recording: evaluated on the readable frames, the damage said, exit 4."""

from __future__ import annotations

import json

from gaussvae_ros.cli import eval_commands

from support.damage import copy_recording, storage_file, truncate


def test_eval_on_a_truncated_recording_uses_the_part_before_the_cut(tmp_path, bag_path, capsys):
    bag = copy_recording(bag_path("kitti07_mono8_mcap"), tmp_path / "bag")
    truncate(storage_file(bag), 0.5)
    code = eval_commands.main(["--bag", str(bag), "--every", "40", "--budgets", "1024", "--methods", "webp-scaled",
                               "--json", "--quiet"])
    out = capsys.readouterr()
    assert code == 4
    report = json.loads(out.out)
    assert len(report["images"]) == 3  # frames 0, 40, 80 of the 81 before the cut
    assert report["frames_lost"]["/camera/image_raw"] == 79
    assert "damaged recording" in out.err
