"""VAE training: it learns, checkpoints round-trip, resume continues exactly, bad files give errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from gaussvae_ros.cli.main import main
from gaussvae_ros.vae.checkpoint import load_checkpoint, load_model
from gaussvae_ros.vae.config import config_from_dict, load_config
from gaussvae_ros.vae.data import save_param_set
from gaussvae_ros.vae.delaunay import make_delaunay_param_set
from gaussvae_ros.vae.reconstruction import evaluate_against_mean, features_of, reconstruct
from gaussvae_ros.vae.networks import build_model
from gaussvae_ros.vae.train import train, weights_digest


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest single-threaded, and the CPUs are shared with other test runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    # 8 artworks of 64 Gaussians: small enough to learn well beyond the mean in seconds.
    params, seeds = make_delaunay_param_set(8, seed=100, n_gaussians=64, min_points=2, max_points=12)
    return save_param_set(tmp_path_factory.mktemp("vae_data") / "tiny.npz", params, seeds=seeds)


def tiny_config(data_path, **sections):
    raw = {
        "model": {"latent_dim": 16, "encoder_strides": [2, 2, 2], "decoder_strides": [2, 2, 2], "kernel_size": 3},
        "data": {"path": str(data_path), "val_fraction": 0.0, "test_fraction": 0.0},
        "loss": {"beta": 0.01, "kl_anneal_steps": 20},
        "train": {"batch_size": 4, "epochs": 100, "lr": 3e-3, "log_every": 5},
    }
    for name, values in sections.items():
        raw[name].update(values)
    return config_from_dict(raw)


def _group_mse(model, config, transform, params):
    x = features_of(params, transform)
    sq = (reconstruct(model, x) - x).pow(2)
    return {g: float(sq[:, sl].mean()) for g, sl in transform.groups.items()}


@pytest.mark.parametrize("representation", ["angle", "cholesky"])
def test_short_training_lowers_every_groups_loss(tiny_set, tmp_path, representation):
    config = tiny_config(tiny_set, data={"representation": representation})
    summary = train(config, tmp_path / "run", max_steps=80)
    assert summary["step"] == 80
    model, stored, transform, slot_mean = load_model(tmp_path / "run" / "model.pt")
    torch.manual_seed(stored.train.seed)  # the same initialization the run started from
    initial = build_model(stored.model)
    params = np.load(tiny_set)["params"]
    before = _group_mse(initial, stored, transform, params)
    after = _group_mse(model, stored, transform, params)
    report = evaluate_against_mean(model, transform, slot_mean, params)
    assert set(after) == set(transform.groups)
    for group in after:  # every group's error falls, and below what the slot-mean predictor scores
        assert after[group] < before[group], (group, before, after)
        assert report["groups"][group]["model"] == pytest.approx(after[group], rel=1e-4)
        assert after[group] < report["groups"][group]["slot_mean"], (group, report["groups"])
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(len(lines)))
    assert all(f"group/{g}" in lines[0]["train"] for g in transform.groups)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "run" / "logs").iterdir())
    assert load_config(tmp_path / "run" / "config.yaml").model.in_channels == transform.num_features


def test_the_kl_weight_of_a_training_run_ramps_per_step_over_kl_anneal_steps(tiny_set, tmp_path):
    """The logged per-step KL weight (train_step/kl_weight, TensorBoard) of a real run: 0 until
    kl_anneal_start, then rising by beta / kl_anneal_steps each optimizer step (not each epoch: the
    tiny set has 2 steps per epoch), beta from then on."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    beta, start, steps = 0.01, 3, 10
    config = tiny_config(tiny_set, loss={"beta": beta, "kl_anneal_steps": steps, "kl_anneal_start": start},
                         train={"log_every": 1})
    train(config, tmp_path / "run", max_steps=20)
    events = EventAccumulator(str(tmp_path / "run" / "logs"))
    events.Reload()
    logged = {e.step: e.value for e in events.Scalars("train_step/kl_weight")}
    assert sorted(logged) == list(range(1, 21))
    for step, value in logged.items():  # logged after step `step`, whose loss used the weight of step - 1
        expected = beta * min(1.0, max(0.0, (step - 1 - start) / steps))
        assert value == pytest.approx(expected, rel=1e-5, abs=1e-9), (step, value, expected)


def test_training_through_the_renderer_lowers_the_image_error(tiny_set, tmp_path):
    from gaussvae_ros.vae.losses import RenderedImageLoss

    base = tiny_config(tiny_set, data={"representation": "cholesky"})
    train(base, tmp_path / "params", max_steps=40)
    config = tiny_config(tiny_set, data={"representation": "cholesky"},
                         loss={"param_weight": 1.0, "image_weight": 1.0, "image_size": 24})
    summary = train(config, tmp_path / "image", max_steps=60, init=tmp_path / "params" / "model.pt")
    assert {"image_mse", "image_psnr"} <= set(summary["train"])
    start, _, transform, _ = load_model(tmp_path / "params" / "model.pt")
    tuned, _, _, _ = load_model(tmp_path / "image" / "model.pt")
    x = features_of(np.load(tiny_set)["params"], transform)
    loss = RenderedImageLoss(transform, 24)
    with torch.no_grad():
        before, after = float(loss(reconstruct(start, x), x)), float(loss(reconstruct(tuned, x), x))
    assert after < 0.8 * before, (before, after)


def test_init_refuses_another_architecture(tiny_set, tmp_path):
    train(tiny_config(tiny_set), tmp_path / "a", max_steps=2)
    other = tiny_config(tiny_set, model={"latent_dim": 8})
    with pytest.raises(ValueError, match="--init"):
        train(other, tmp_path / "b", max_steps=2, init=tmp_path / "a" / "model.pt")


def test_model_file_round_trip_rebuilds_the_same_network(tiny_set, tmp_path):
    train(tiny_config(tiny_set, model={"name": "resnet_conv1d_vae", "encoder_channels": [8, 8, 16, 16, 16],
                                       "decoder_channels": [16, 16, 8, 8, 8], "kernel_size": 3,
                                       "encoder_strides": [1, 2, 2, 2, 2], "decoder_strides": [2, 2, 2, 2, 1],
                                       "norm_groups": 4}),
          tmp_path / "run", max_steps=3)
    model, config, transform, slot_mean = load_model(tmp_path / "run" / "model.pt")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert config.model.name == "resnet_conv1d_vae" and slot_mean.shape == (64, 8)
    x = features_of(np.load(tiny_set)["params"][:4], transform)
    torch.testing.assert_close(reconstruct(model, x), reconstruct(ckpt["model"], x), rtol=0, atol=0)
    np.testing.assert_array_equal(transform.std, ckpt["transform"].std)
    assert ckpt["progress"]["step"] == 3


def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_set, tmp_path):
    config = tiny_config(tiny_set, train={"checkpoint_every": 2})
    train(config, tmp_path / "straight", max_steps=7)
    train(tiny_config(tiny_set, train={"checkpoint_every": 2}), tmp_path / "split", max_steps=3)  # stops mid-epoch
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["progress"]["batch_in_epoch"] == 1
    summary = train(tiny_config(tiny_set, train={"checkpoint_every": 2}), tmp_path / "split", resume=True,
                    max_steps=7)
    assert summary["step"] == 7
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(value, b["state_dict"][key], rtol=0, atol=0)
    assert a["progress"] == b["progress"]
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    # the epoch cut by the stop is averaged over all its batches, as in the uninterrupted run
    metrics = [(tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("straight", "split")]
    assert len(metrics[0]) >= 2 and metrics[0] == metrics[1]


def test_refuses_to_overwrite_a_run_or_resume_with_a_different_model(tiny_set, tmp_path):
    train(tiny_config(tiny_set), tmp_path / "run", max_steps=1)
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(tiny_set), tmp_path / "run", max_steps=2)
    with pytest.raises(ValueError, match="latent_dim"):
        train(tiny_config(tiny_set, model={"latent_dim": 32}), tmp_path / "run", resume=True, max_steps=2)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(tiny_config(tiny_set), tmp_path / "fresh", resume=True)
    for key, value in (("seed", 5), ("batch_size", 8)):
        with pytest.raises(ValueError, match=f"train.{key}"):
            train(tiny_config(tiny_set, train={key: value}), tmp_path / "run", resume=True, max_steps=4)


def test_corrupt_truncated_or_foreign_checkpoints_give_clear_errors(tiny_set, tmp_path, monkeypatch):
    # hand-made files without a digest: checked entry by entry
    monkeypatch.setenv("GAUSSVAE_ALLOW_UNVERIFIED_MODELS", "1")
    train(tiny_config(tiny_set), tmp_path / "run", max_steps=1)
    path = tmp_path / "run" / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        train(tiny_config(tiny_set), tmp_path / "run", resume=True, max_steps=2)
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_model(path)
    # A pickle that would build an arbitrary object is refused, not executed.
    torch.save({"format": "gaussvae-vae-model", "payload": pickle.loads(pickle.dumps(_Marker()))}, path)
    with pytest.raises(ValueError, match="not a readable"):
        load_model(path)
    torch.save({"format": "something-else", "version": 1}, path)
    with pytest.raises(ValueError, match="format 'something-else'"):
        load_model(path)
    model_file = tmp_path / "run" / "model.pt"
    obj = torch.load(model_file, weights_only=True)
    obj["state_dict"].pop(next(iter(obj["state_dict"])))
    torch.save(obj, path)  # the digest still names the full weights
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_model(path)
    del obj["sha256"]  # a file without a digest (written before digests) is checked entry by entry
    torch.save(obj, path)
    with pytest.raises(ValueError, match="do not fit"):
        load_model(path)
    obj = torch.load(model_file, weights_only=True)
    del obj["sha256"]
    obj["norm_mean"] = obj["norm_mean"][:3]
    torch.save(obj, path)
    with pytest.raises(ValueError, match="norm_mean"):
        load_model(path)


def test_a_damaged_byte_anywhere_in_a_model_file_is_refused(tiny_set, tmp_path):
    train(tiny_config(tiny_set), tmp_path / "run", max_steps=1)
    good = (tmp_path / "run" / "model.pt").read_bytes()
    damaged = tmp_path / "damaged.pt"
    reference = weights_digest(load_model(tmp_path / "run" / "model.pt")[0])
    rng = np.random.default_rng(0)
    refused = 0
    for offset in rng.integers(len(good) // 10, len(good) * 9 // 10, 40):  # mostly tensor data
        data = bytearray(good)
        data[offset] ^= 0x10
        damaged.write_bytes(bytes(data))
        try:
            model = load_model(damaged)[0]
        except ValueError:
            refused += 1
        else:  # the byte was zip padding or a header field: the same weights, never others
            assert weights_digest(model) == reference, offset
    assert refused >= 30


def test_malformed_training_progress_is_refused_clearly(tiny_set, tmp_path, monkeypatch):
    # hand-made files without a digest: checked entry by entry
    monkeypatch.setenv("GAUSSVAE_ALLOW_UNVERIFIED_MODELS", "1")
    train(tiny_config(tiny_set), tmp_path / "run", max_steps=1)
    path = tmp_path / "run" / "checkpoint.pt"
    good = torch.load(path, weights_only=True)
    for key, value in (("progress", {}), ("progress", {"step": -1, "epoch": 0, "batch_in_epoch": 0}),
                       ("rng", []), ("rng", [1, 2])):
        obj = dict(good)
        obj[key] = value
        del obj["sha256"]
        torch.save(obj, path)
        with pytest.raises(ValueError, match=key):
            load_checkpoint(path)


class _Marker:
    pass


def test_config_files_reject_unknown_keys_and_bad_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  latent_dims: 512\n")
    with pytest.raises(ValueError, match="latent_dims"):
        load_config(path)
    path.write_text("train:\n  lr: fast\n")
    with pytest.raises(ValueError, match="train.lr must be a number"):
        load_config(path)
    path.write_text("loss:\n  beta: 1e-3\n")
    assert load_config(path).loss.beta == pytest.approx(1e-3)
    assert load_config(path, ["model.latent_dim=256"]).model.latent_dim == 256
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(path, ["latent_dim=256"])


def test_cli_dataset_train_and_eval(tmp_path, capsys):
    data = tmp_path / "set.npz"
    assert main(["vae-dataset", "--count", "20", "--output", str(data), "--max-points", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 20
    out = tmp_path / "exp"
    args = ["train", "--config", "config/conv1d_512d.yaml", "--output", str(out), "--max-steps", "3",
            "--set", f"data.path={data}", "--set", "data.val_fraction=0.2", "--set", "data.test_fraction=0.2",
            "--set", "train.batch_size=4"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3 and set(summary["eval_val"]) == {"xy", "cov", "color", "image_psnr"}  # cholesky
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    for metric in ("xy_rmse", "log_scale_rmse", "rot_error_deg_median", "color_rmse"):  # position, scale,
        assert set(epoch["val_natural"][metric]) == {"model", "slot_mean"}  # rotation, colour every epoch
    assert 0 < summary["eval_val"]["image_psnr"]["model"] < 100
    assert main(args) == 2  # the run exists: refused, with an error message
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--output", str(out), "--resume", "--max-steps", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 5
    assert main(["train", "--output", str(out), "--resume"]) == 2  # its max_steps is reached: said, not a no-op
    assert "already reached step 5" in capsys.readouterr().err
    slots = tmp_path / "slots.npz"
    assert main(["vae-eval", "--model", str(out / "model.pt"), "--data", str(data), "--per-slot", str(slots),
                 "--pca", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 4 and np.load(slots)["model_cov"].shape == (512,)
    assert report["pca_components"] == 3 and report["image_size"] == 64
    assert set(report["image_psnr"]) == {"model", "slot_mean"}
    assert all(row["pca"] <= row["slot_mean"] * 1.5 for row in report["groups"].values())
    assert main(["vae-eval", "--model", str(out / "model.pt"), "--data", str(data), "--split", "all", "--pca"]) == 2
