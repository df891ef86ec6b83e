"""Two-process CPU DDP training under torchrun (gloo): runs, keeps the ranks' weights identical, resumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gaussvae_ros.vae.checkpoint import load_checkpoint, load_model
from gaussvae_ros.vae.data import save_param_set
from gaussvae_ros.vae.delaunay import make_delaunay_param_set
from gaussvae_ros.vae.train import weights_digest

REPO = Path(__file__).parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _torchrun(output: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", PYTHONPATH=str(REPO))
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "gaussvae_ros.cli.main", "train",
           "--config", str(REPO / "config" / "conv1d_512d.yaml"), "--output", str(output),
           "--set", f"data.path={data}", "--set", "data.val_fraction=0.25", "--set", "data.test_fraction=0.0",
           "--set", "model.latent_dim=16", "--set", "train.batch_size=4", "--set", "train.log_every=1", *extra]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_process_cpu_ddp_trains_checkpoints_and_resumes(tmp_path):
    params, _ = make_delaunay_param_set(12, seed=7, max_points=30)
    data = save_param_set(tmp_path / "set.npz", params)
    out = tmp_path / "ddp"
    run = _torchrun(out, data, "--max-steps", "3")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)  # only rank 0 prints
    assert summary["world_size"] == 2 and summary["step"] == 3
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["progress"]["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert not (ckpt["rng"][0]["torch"] == ckpt["rng"][1]["torch"]).all()  # ranks draw different noise
    # 9 training samples over 2 ranks of batch 2: 3 batches per epoch, so step 3 ended epoch 0.
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["train"]["group/cov"] > 0
    run = _torchrun(out, data, "--resume", "--max-steps", "5")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["step"] == 5
    model, config, _, _ = load_model(out / "model.pt")
    assert config.model.latent_dim == 16
    # Every checkpoint checks that both processes hold the same weights (they train on different
    # batches, so without synchronized gradients they part at the first step and the run fails).
    assert summary["weights_sha256"] == weights_digest(model)
