"""``make demo`` reduced: a small gallery recording replayed live into the node graph, end to end."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")

from gaussvae_ros.apps import demo  # noqa: E402


def _interfaces_available() -> bool:
    try:
        import gaussvae_ros_interfaces.srv  # noqa: F401
    except ImportError:
        return False
    return True


needs_interfaces = pytest.mark.skipif(not _interfaces_available(),
                                      reason="gaussvae_ros_interfaces not built (source build_ros/env.sh)")


@needs_interfaces
def test_reduced_demo_end_to_end(tmp_path):
    config = demo.DemoConfig(photos=("astronaut", "coffee"), frames_per_photo=3, width=96, height=72, fps=2.0,
                             long_side=64, memory_bytes=600, max_iters=120, pixels_per_m=80.0,
                             recall_latency_repeats=3, min_psnr=15.0)
    summary = demo.run_demo(tmp_path / "demo", config, quiet=True)
    out = tmp_path / "demo"
    assert (out / "recording" / "metadata.yaml").exists()
    for name in ("contact_sheet.png", "pose_map.png", "gallery_map.png", "summary.json", "memories.db"):
        assert (out / name).stat().st_size > 0, name
    recalled = sorted((out / "recalled").glob("*.png"))
    n = summary["store"]["memories"]
    assert n >= 1 and len(recalled) == n == len(summary["memories"])
    from PIL import Image

    assert Image.open(recalled[0]).size == (96, 72)
    assert sorted(out.glob("recalled_near_*_192x144.png"))
    # the player published every frame; the encoder's best-effort (sensor-data) subscription may lose
    # one on a loaded machine (the summary reports it); it kept at least one keyframe
    assert summary["replay"]["images"] == 6
    enc = summary["encoder"]
    assert enc["frames_received"] >= 5 and enc["keyframes"] >= 1 and enc["fit_errors"] == 0
    assert enc["frames_processed"] + enc["frames_dropped"] == enc["frames_received"]
    assert 15.0 < summary["psnr_db"]["mean"] < 60.0
    assert all(15.0 < m["psnr_db"] < 60.0 for m in summary["memories"])
    assert 400 < summary["store"]["bytes_per_memory"] <= 600  # memory_bytes, filled by rate control
    webp = summary["webp_same_bytes"]  # what a user would store instead, in as many bytes
    assert webp["bytes_per_memory"] <= summary["store"]["bytes_per_memory"] + 1
    assert all(10.0 < m["webp_psnr_db"] < 60.0 for m in summary["memories"])
    assert webp["memories_psnr_db_mean"] == pytest.approx(summary["psnr_db"]["mean"], abs=0.01)
    assert summary["queries"]["all_by_time"] == n
    assert len(summary["queries"]["nearest_by_pose"]) == 2
    assert summary["graph_exit_status"] == 0
    assert json.loads((out / "summary.json").read_text())["psnr_db"] == summary["psnr_db"]
    demo.print_summary(summary)  # the printed report works on a real summary


def test_demo_fails_loudly_when_the_graph_does_not_start(tmp_path):
    config = demo.DemoConfig(photos=("astronaut",), frames_per_photo=2, width=32, height=24, pixels_per_m=40.0,
                             startup_timeout_s=20.0,
                             graph_command=(sys.executable, "-c", "import sys; print('broken graph'); sys.exit(3)"))
    with pytest.raises(demo.DemoError, match="graph start.*exited with status 3"):
        demo.run_demo(tmp_path / "demo", config, quiet=True)
    assert "broken graph" in (tmp_path / "demo" / "graph.log").read_text()


def test_graph_process_always_stopped(tmp_path):
    """A graph that ignores SIGINT is still ended (SIGTERM, then SIGKILL)."""
    script = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    graph = demo.GraphProcess(tmp_path / "p.yaml", tmp_path / "log", dict(os.environ),
                              command=(sys.executable, "-c", script))
    graph.start()
    import time

    deadline = time.monotonic() + 20
    while "up" not in graph.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    status = graph.stop(timeout=0.5)
    assert status is not None and status != 0
    assert graph.process.poll() is not None


def test_write_params_overrides_nested_and_named_sections(tmp_path):
    import yaml

    base = tmp_path / "base.yaml"
    base.write_text("/**/gaussvae_encoder:\n  ros__parameters:\n    long_side: 256\n    keyframe:\n"
                    "      min_translation_m: 5.0\n      min_interval_s: 0.2\n")
    out = demo.write_params(tmp_path / "p.yaml", base, {
        "encoder": {"long_side": 64, "keyframe.min_translation_m": 1.0},
        "memory": {"database": "/x.db"}})
    data = yaml.safe_load(out.read_text())
    enc = data["/**/gaussvae_encoder"]["ros__parameters"]
    assert enc["long_side"] == 64 and enc["keyframe"] == {"min_translation_m": 1.0, "min_interval_s": 0.2}
    assert data["gaussvae_memory"]["ros__parameters"]["database"] == "/x.db"


def test_psnr_u8():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert demo._psnr_u8(a, b) == float("inf")
    b[0, 0, 0] = 255
    assert demo._psnr_u8(a, b) == pytest.approx(10 * np.log10(255.0 ** 2 / (255.0 ** 2 / 48)))


def test_latent_comparison_reencodes_memories_plain_and_refined(tmp_path):
    """The demo's ``vae_latent`` line: stored 512-Gaussian memories through the shipped model."""
    from types import SimpleNamespace

    from PIL import Image
    from skimage import data

    from gaussvae_ros.core import encode_gaussians, fit_image
    from gaussvae_ros.store import Memory, Store
    from gaussvae_ros.codecs import latent as latent_codec

    if not latent_codec.default_model_path().exists():
        pytest.skip("no shipped model in this build")
    originals = {}
    with Store(tmp_path / "m.db") as store:
        for stamp, name in ((1, "coffee"), (2, "astronaut")):
            image = np.asarray(Image.fromarray(getattr(data, name)()).resize((64, 48), Image.LANCZOS))
            gaussians = fit_image(image, n_gaussians=512, max_iters=40, seed=0, threads=1).gaussians
            store.insert(Memory(stamp, "/cam", "cam", encode_gaussians(gaussians), 64, 48, "rgb8"))
            originals[stamp] = SimpleNamespace(image=image)
    result = demo.latent_comparison(tmp_path / "m.db", originals)
    assert result["model_id"] == latent_codec.load_default_bundle().model_id
    assert 50 < result["refined_bytes_per_memory"] <= result["bytes_per_memory"] < 600  # within the same bytes
    assert 8 < result["psnr_db_mean"] <= result["refined_psnr_db_mean"] < 40  # refining never loses
