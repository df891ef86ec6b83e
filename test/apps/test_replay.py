"""Replay of recordings into a memory store: written bags, the shared recordings, reruns, a killed run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gaussvae_ros.bag.keyframes import KeyframeConfig
from gaussvae_ros.core import encoded_size
from gaussvae_ros.apps.replay import ReplayOptions, replay_bag
from gaussvae_ros.core.image import working_image
from gaussvae_ros.store import page_size_for_payload

from support.recordings import (EVERY_FRAME, FAST, MS, ROOT, T0, blocks, cli_env, drifting, open_store, run_cli,
                                shared, synthetic_recording)


# --- written recordings -------------------------------------------------------------------------

def test_replay_keeps_cameras_apart_and_records_pose_size_and_camera_info(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=5)
    report = replay_bag(bag, tmp_path / "m.db", ReplayOptions(**FAST, keyframes=EVERY_FRAME))
    assert report.frames_read == 10 and report.error_count == 0
    assert report.pose_topic == "/odom"
    assert report.memories_stored == report.keyframes == 10  # every frame differs: all are keyframes
    assert report.per_topic["/front/image_raw"]["stored"] == 5
    assert report.working_size["/front/image_raw"] == {"width": 32, "height": 24}
    with open_store(tmp_path / "m.db") as store:
        records = store.by_time()
        stats = store.stats()
    assert {(s.topic, s.camera_frame_id) for s in stats.streams} == {
        ("/front/image_raw", "front_optical"), ("/down/image_raw/compressed", "down_optical")}
    with sqlite3.connect(tmp_path / "m.db") as conn:  # pages sized for this codec's payloads
        assert conn.execute("PRAGMA page_size").fetchone()[0] == page_size_for_payload(encoded_size(24, 3))
    for r in records:
        assert (r.width, r.height) == (64, 48)  # original size, not the working size
        assert r.pose is not None and r.pose_frame_id == "odom"
        # odometry moves 1 m/s from T0: the pose is the one at the frame's own stamp
        assert r.pose.position[0] == pytest.approx((r.stamp_ns - T0) * 1e-9, abs=1e-6)
        if r.topic == "/front/image_raw":
            assert r.intrinsics is not None and r.intrinsics.k[0] == 50.0
        else:
            assert r.intrinsics is None


@pytest.mark.parametrize("codec, memory_bytes", [("gaussians-rd", 400), ("gaussians-q", 0)])
def test_recalled_memory_resembles_the_frame(tmp_path, codec, memory_bytes):
    from gaussvae_ros.codecs import decode_payload
    from gaussvae_ros.core import render

    bag = synthetic_recording(tmp_path / "bag", frames=1)
    replay_bag(bag, tmp_path / "m.db", ReplayOptions(long_side=32, n_gaussians=64, max_iters=150, threads=1,
                                                     codec=codec, memory_bytes=memory_bytes,
                                                     image_topics=["/front/image_raw"]))
    with open_store(tmp_path / "m.db") as store:
        (record,) = store.by_time(with_payload=True)
    assert record.codec == codec and (not memory_bytes or len(record.payload) <= memory_bytes)
    recalled = render(decode_payload(record.payload, record.codec, record.model_id), 24, 32)
    target = working_image(blocks(0, color=True), 32).astype(np.float32) / 255.0
    assert recalled.shape == target.shape
    # far closer to its own frame than to another camera's frame
    error_own = np.abs(recalled - target).mean()
    error_other = np.abs(recalled - working_image(blocks(1, color=True), 32).astype(np.float32) / 255.0).mean()
    assert error_own < 0.5 * error_other


def test_rerun_is_idempotent(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=4)
    first = replay_bag(bag, tmp_path / "m.db", ReplayOptions(**FAST, keyframes=EVERY_FRAME))
    second = replay_bag(bag, tmp_path / "m.db", ReplayOptions(**FAST, keyframes=EVERY_FRAME))
    assert first.memories_stored == 8
    assert second.memories_stored == 0 and second.already_stored == 8
    with open_store(tmp_path / "m.db") as store:
        assert store.stats().count == 8


def test_frames_before_the_first_pose_follow_the_option(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=6, first_pose_ms=1200)
    stored = replay_bag(bag, tmp_path / "store.db", ReplayOptions(**FAST, keyframes=EVERY_FRAME,
                                                                   image_topics=["/front/image_raw"]))
    skipped = replay_bag(bag, tmp_path / "skip.db", ReplayOptions(**FAST, keyframes=EVERY_FRAME, no_pose="skip",
                                                                   image_topics=["/front/image_raw"]))
    # frames at 0, 500, 1000 ms have no odometry within 50 ms; 1000 ms is 200 ms before the first sample
    assert stored.memories_stored == 6
    assert skipped.memories_stored == 3 and skipped.skipped == {"no_pose": 3}
    with open_store(tmp_path / "store.db") as store:
        poses = [r.pose is not None for r in store.by_time()]
    assert poses == [False, False, False, True, True, True]
    with open_store(tmp_path / "skip.db") as store:
        assert all(r.pose is not None and r.stamp_ns >= T0 + 1200 * MS for r in store.by_time())


def test_broken_frames_are_reported_and_the_rest_replays(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=5, broken=(1, 3))
    report = replay_bag(bag, tmp_path / "m.db", ReplayOptions(**FAST, keyframes=EVERY_FRAME))
    assert report.frames_read == 10 and report.error_count == 2
    assert report.per_topic["/front/image_raw"] == {"frames": 5, "keyframes": 3, "stored": 3, "already_stored": 0,
                                                    "errors": 2}
    assert all("truncated image data" in e for e in report.errors)
    with open_store(tmp_path / "m.db") as store:
        stamps = store.stamps("/front/image_raw")
    assert stamps == [T0 + k * 500 * MS for k in (0, 2, 4)]


def test_bad_arguments_fail_before_writing(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=1)
    with pytest.raises(ValueError, match="not image topics"):
        replay_bag(bag, tmp_path / "m.db", ReplayOptions(image_topics=["/odom"]))
    with pytest.raises(ValueError, match="not a pose topic"):
        replay_bag(bag, tmp_path / "m.db", ReplayOptions(pose_topic="/front/image_raw"))
    with pytest.raises(ValueError, match="no_pose"):
        ReplayOptions(no_pose="maybe")
    assert not (tmp_path / "m.db").exists()


# --- shared recordings --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kitti_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("kitti") / "kitti.db"
    options = ReplayOptions(long_side=64, n_gaussians=48, max_iters=20, threads=1, codec="gaussians-q", memory_bytes=0)
    report = replay_bag(shared("kitti07_mono8_mcap"), db, options)
    return db, report


def test_kitti_replay_stores_keyframes_along_the_drive(kitti_db):
    db, report = kitti_db
    assert report.frames_read == 160 and report.error_count == 0
    assert 10 <= report.memories_stored <= 60
    assert report.working_size["/camera/image_raw"]["width"] == 64
    with open_store(db) as store:
        records = store.by_time()
    assert all(r.pose is not None and r.intrinsics is not None for r in records)
    assert all((r.width, r.height) == (1226, 370) for r in records)


def test_recall_quality_benchmark_decodes_every_memory_against_its_frame(kitti_db, capsys):
    import importlib.util

    db, report = kitti_db
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_recall_quality.py"
    spec = importlib.util.spec_from_file_location("bench_recall_quality", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--db", str(db), "--bag", str(shared("kitti07_mono8_mcap")), "--long-side", "64",
                       "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["memories"] == report.memories_stored and summary["codecs"] == ["gaussians-q"]
    assert 12 < summary["psnr_min"] <= summary["psnr_mean"] <= summary["psnr_max"] < 40  # 48 Gaussians, 20 steps
    assert abs(summary["psnr_mean"] - report.mean_psnr) < 0.3  # the fits' own PSNR, through quantization


def kitti_ground_truth() -> dict[int, np.ndarray]:
    from gaussvae_ros.bag.reader import BagReader

    with BagReader(shared("kitti07_mono8_mcap")) as bag:
        track = bag.read_pose_track("/odom")
    return {int(s): p for s, p in zip(track.stamps, track.positions)}


def test_kitti_pose_query_returns_frames_near_that_pose(kitti_db):
    db, _ = kitti_db
    truth = kitti_ground_truth()
    with open_store(db) as store:
        records = store.by_time()
        # stored poses are the ground truth of their frames
        for r in records:
            np.testing.assert_allclose(r.pose.position, truth[r.stamp_ns], atol=1e-9)
        query = records[len(records) // 2].pose.position
        near = store.within_radius(query, 10.0)
        nearest = store.nearest(query, k=3)
    expected = {r.id for r in records if np.linalg.norm(np.subtract(r.pose.position, query)) <= 10.0}
    assert {r.id for r in near} == expected and len(expected) >= 2
    assert nearest[0].distance_m == 0.0 and len(nearest) == 3
    assert all(np.linalg.norm(np.subtract(r.pose.position, query)) <= 10.0 for r in near)


def test_kitti_time_query_returns_the_right_frames(kitti_db):
    db, _ = kitti_db
    truth = kitti_ground_truth()
    frame_stamps = sorted(truth)  # KITTI images and poses share stamps
    start, end = frame_stamps[40], frame_stamps[100]
    with open_store(db) as store:
        everything = store.by_time()
        window = store.by_time(start, end)
    assert [r.id for r in window] == [r.id for r in everything if start <= r.stamp_ns <= end]
    assert window and all(r.stamp_ns in truth for r in window)


def test_euroc_static_stores_at_most_six_memories(tmp_path):
    bag = shared("euroc_v101_static_sqlite3")
    stored = replay_bag(bag, tmp_path / "store.db", ReplayOptions(**FAST))
    skipped = replay_bag(bag, tmp_path / "skip.db", ReplayOptions(**FAST, no_pose="skip"))
    assert 1 <= stored.memories_stored <= 6 and 1 <= skipped.memories_stored <= 6
    assert skipped.skipped["no_pose"] == 21  # the first 21 frames have no pose
    with open_store(tmp_path / "store.db") as store:
        first = store.by_time()[0]
    assert first.pose is None  # the very first frame, stored without its (missing) pose
    with open_store(tmp_path / "skip.db") as store:
        assert all(r.pose is not None for r in store.by_time())


def test_t265_two_cameras_kept_apart(tmp_path):
    report = replay_bag(shared("t265_fisheye_mcap"), tmp_path / "m.db", ReplayOptions(**FAST))
    assert report.pose_topic == "/camera/odom/sample"
    with open_store(tmp_path / "m.db") as store:
        streams = store.stats().streams
        records = store.by_time()
    assert len(streams) == 2 and len({s.camera_frame_id for s in streams}) == 2
    assert all(s.count >= 1 for s in streams)
    assert all(r.pose is not None for r in records)  # odometry at 200 Hz covers every image


def test_synthetic_fixtures_via_cli_json(tmp_path):
    bag = shared("format_fixtures_synthetic") / "test_bag_sqlite3"
    done = run_cli("replay", str(bag), "--db", str(tmp_path / "m.db"), "--json")
    assert done.returncode == 1, done.stderr  # every frame bad: nothing stored is a failure (issue 13)
    assert "nothing stored from 4 frames" in done.stderr
    report = json.loads(done.stdout)
    assert report["frames_read"] == 4 and report["error_count"] == 4 and report["memories_stored"] == 0
    assert report["seconds"] > 0
    assert any("truncated image data" in e for e in report["errors"])
    assert "pose topics" in done.stderr  # three pose topics: none chosen, warned


# --- a killed run -------------------------------------------------------------------------------

def test_replay_killed_mid_way_resumes_without_duplicates(tmp_path):
    frames, batch = 24, 4
    bag = synthetic_recording(tmp_path / "bag", frames=frames, storage="sqlite3")
    db = tmp_path / "m.db"
    args = ["replay", str(bag), "--db", str(db), "--image-topic", "/front/image_raw", "--size", "48",
            "--gaussians", "48", "--iterations", "40", "--batch-size", str(batch), "--quiet", "--threads", "1",
            "--min-image-change", "0.05", "--duplicate-image-change", "0.01"]
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "gaussvae_ros.cli.main", *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    committed = 0
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                        committed = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
                except sqlite3.Error:
                    committed = 0
                if committed >= batch:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, f"replay ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        survived = sorted(r[0] for r in conn.execute("SELECT stamp_ns FROM memories"))
    assert survived and len(survived) % batch == 0, "only whole batches are committed"
    expected = [T0 + k * 500 * MS for k in range(frames)]  # every frame is a keyframe
    assert survived == expected[: len(survived)], "committed memories are a prefix of the replay"

    done = run_cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["error_count"] == 0, report["errors"]
    assert report["already_stored"] == len(survived), report
    assert report["memories_stored"] == frames - len(survived), report
    assert report["memories_stored"] == frames - len(survived)
    with open_store(db) as store:
        assert store.stamps("/front/image_raw") == expected
        assert store.integrity_check() == []


def test_similar_keyframes_are_warm_started_also_after_a_resume(tmp_path):
    bag = synthetic_recording(tmp_path / "bag", frames=6, front=drifting)
    every = KeyframeConfig(min_image_change=0.03, duplicate_image_change=0.01)  # frames differ by 0.04
    options = ReplayOptions(**FAST, keyframes=every, image_topics=["/front/image_raw"])
    full = replay_bag(bag, tmp_path / "full.db", options)
    assert full.memories_stored == 6 and full.warm_starts == 5 and full.cold_restarts == 0
    never = replay_bag(bag, tmp_path / "never.db", ReplayOptions(**FAST, keyframes=every, warm_start_max_change=0,
                                                                 image_topics=["/front/image_raw"]))
    assert never.memories_stored == 6 and never.warm_starts == 0
    # keep the first three memories only, as if the run had been killed: the rerun warm-starts
    # the fourth frame from the third one as stored in the database
    with open_store(tmp_path / "full.db") as store:
        ids = [r.id for r in store.by_time()]
        store.delete(ids[3:])
    resumed = replay_bag(bag, tmp_path / "full.db", options)
    assert resumed.already_stored == 3 and resumed.memories_stored == 3 and resumed.warm_starts == 3


def test_replay_stores_vae_latents_that_recall_decodes_also_after_a_resume(tmp_path):
    from conftest import write_tiny_latent_model
    from gaussvae_ros.codecs.registry import decode_payload, render_memory
    from gaussvae_ros.codecs import latent as lc
    from gaussvae_ros.core import render, to_uint8

    model = write_tiny_latent_model(tmp_path / "tiny.pt", n=FAST["n_gaussians"])
    bundle = lc.load_bundle(model)
    bag = synthetic_recording(tmp_path / "bag", frames=4, front=drifting)
    every = KeyframeConfig(min_image_change=0.03, duplicate_image_change=0.01)
    options = ReplayOptions(**dict(FAST, codec="vae-latent"), keyframes=every, latent_model=str(model),
                            latent_refine_iters=5)
    report = replay_bag(bag, tmp_path / "m.db", options)
    assert report.memories_stored == 8 and report.error_count == 0
    with open_store(tmp_path / "m.db") as store:
        records = store.by_time(with_payload=True)
        ids = [r.id for r in records if r.topic == "/front/image_raw"]
        store.delete(ids[2:])
    for r in records:  # both the RGB and the grey (mono PNG) camera, in a few dozen bytes
        assert (r.codec, r.model_id) == ("vae-latent", bundle.model_id)
        assert len(r.payload) < 100
        channels = 1 if r.topic == "/down/image_raw/compressed" else 3
        decoded = decode_payload(r.payload, r.codec, r.model_id)
        assert decoded.channels == channels and np.isfinite(decoded.to_array()).all()
        image = render_memory(r.payload, r.codec, r.model_id, 40, 30)
        assert image.shape == ((30, 40) if channels == 1 else (30, 40, 3))
        expected = to_uint8(render(decoded, 30, 40))
        assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1 and image.max() > 0
    # the rerun does not warm-start from a stored latent memory (a VAE's reconstruction starts a fit
    # worse than a cold start does): the first refitted frame starts cold, the second from its fit
    resumed = replay_bag(bag, tmp_path / "m.db", options)
    assert resumed.memories_stored == 2 and resumed.warm_starts == 1 and resumed.error_count == 0


def test_cli_codec_options_reach_the_stored_latents(tmp_path):
    from conftest import write_tiny_latent_model

    from gaussvae_ros.codecs.registry import render_memory
    from gaussvae_ros.codecs import latent as latent_codec

    model = write_tiny_latent_model(tmp_path / "tiny.pt", n=FAST["n_gaussians"])
    bag = synthetic_recording(tmp_path / "bag", frames=3)
    db = tmp_path / "m.db"
    done = run_cli("replay", str(bag), "--db", str(db), "--json", "--size", "32", "--gaussians", "24",
                   "--codec", "vae-latent", "--latent-model", str(model),
                   "--latent-max-bytes", "40", "--latent-refine-iters", "3")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["memories_stored"] >= 2
    with open_store(db) as store:
        records = store.by_time(with_payload=True)
    assert records and all(r.codec == "vae-latent" and len(r.payload) <= 40 for r in records)
    tiled_db = tmp_path / "tiled.db"  # one latent per half of each frame
    done = run_cli("replay", str(bag), "--db", str(tiled_db), "--json", "--size", "32", "--gaussians", "24",
                   "--codec", "vae-latent", "--latent-model", str(model), "--latent-max-bytes", "200",
                   "--latent-tiles", "2")
    assert done.returncode == 0, done.stderr
    with open_store(tiled_db) as store:
        records = store.by_time(with_payload=True)
    grids = {latent_codec.payload_info(r.payload)["grid"].count for r in records}
    assert records and grids == {2} and all(len(r.payload) <= 200 for r in records)
    latent_codec.register_latent_model(model)
    for r in records:  # recall decodes every memory, whatever its grid
        assert render_memory(r.payload, r.codec, r.model_id, 32, 24).shape[:2] == (24, 32)
    bad = run_cli("replay", str(bag), "--db", str(tmp_path / "n.db"), "--codec", "vae-latent",
                  "--latent-model", str(model), "--gaussians", "24", "--latent-refine-iters", "-1")
    assert bad.returncode != 0 and "refine_iters" in bad.stderr and not (tmp_path / "n.db").exists()


def test_replay_refuses_a_latent_model_for_another_gaussian_count_before_writing(tmp_path):
    from conftest import write_tiny_latent_model

    model = write_tiny_latent_model(tmp_path / "tiny.pt", n=32)
    bag = synthetic_recording(tmp_path / "bag", frames=2)
    with pytest.raises(ValueError, match="32 Gaussians"):
        replay_bag(bag, tmp_path / "m.db", ReplayOptions(**dict(FAST, codec="vae-latent"), latent_model=str(model)))
    assert not (tmp_path / "m.db").exists()
    with pytest.raises(ValueError, match="not found"):
        replay_bag(bag, tmp_path / "m.db", ReplayOptions(**dict(FAST, codec="vae-latent"),
                                                          latent_model=str(tmp_path / "missing.pt")))
