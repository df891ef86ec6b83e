"""``gaussvae play`` plays past a damaged part of a recording and says what it skipped."""

from __future__ import annotations

import json
import os
import random

import pytest

pytest.importorskip("rclpy")

from support.damage import copy_recording, overwrite, storage_file, truncate  # noqa: E402
from support.recordings import run_cli, shared  # noqa: E402


@pytest.fixture(autouse=True)
def dds_env(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", os.environ.get("ROS_DOMAIN_ID") or str(random.randint(1, 100)))


@pytest.mark.parametrize("damage", ["chunk", "truncated"])
def test_play_reads_past_a_damaged_recording(tmp_path, damage):
    bag = copy_recording(shared("kitti07_mono8_mcap"), tmp_path / "bag")
    if damage == "chunk":
        overwrite(storage_file(bag), 0.5)
    else:
        truncate(storage_file(bag), 0.5)
    out = run_cli("play", str(bag), "--rate", "50", "--topics", "/odom", "--json", "--quiet", timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 4, out.stderr
    report = json.loads(out.stdout)
    lost = report["lost"]["/odom"]
    assert report["messages_published"] == 160 - lost
    assert (1 <= lost <= 6) if damage == "chunk" else (70 <= lost <= 85)
    assert "damaged recording" in out.stderr
