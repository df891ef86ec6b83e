"""A robot's own latent model, the way the README tells a user to make one: fitted frames of a
recording (``gaussvae dataset from-bag``), ``gaussvae train``, the entropy model
(``python -m gaussvae_ros.codecs.latent``), then ``gaussvae replay --codec vae-latent
--latent-model`` and recall of what it stored. Tiny sizes: plumbing between the commands, not quality."""

from __future__ import annotations

import json

import numpy as np

from gaussvae_ros.cli.main import main
from gaussvae_ros.codecs.registry import render_memory
from gaussvae_ros.store.store import Store
from gaussvae_ros.codecs import latent as lc

N = 64  # Gaussians per frame: the shipped config's strides (4 x 4 x 4) need a multiple of 64


def test_train_a_latent_model_on_a_recording_and_replay_it_through_the_model(tmp_path, bag_path, capsys):
    bag = bag_path("kitti07_compressed_sqlite3")
    data, run, model = tmp_path / "data", tmp_path / "run", tmp_path / "robot_model.pt"
    assert main(["dataset", "from-bag", str(bag), "--every", "4", "--gaussians", str(N), "--long-side", "64",
                 "--max-iters", "30", "--out", str(data)]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 10
    assert main(["train", "--config", "config/latent_default.yaml", "--output", str(run), "--max-steps", "60",
                 "--set", f"data.path={data}", "--set", "data.val_fraction=0.2", "--set", "train.batch_size=4",
                 "--set", "loss.image_size=32"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 60
    assert lc.main([str(run / "model.pt"), "--out", str(model)]) == 0  # parameter set: the config's data.path
    model_id = capsys.readouterr().out.strip()
    assert lc.load_bundle(model).model_id == model_id

    db = tmp_path / "memories.db"
    assert main(["replay", str(bag), "--db", str(db), "--json", "--quiet", "--size", "64", "--gaussians", str(N),
                 "--iterations", "20", "--codec", "vae-latent", "--latent-model", str(model),
                 "--latent-max-bytes", "120"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["memories_stored"] > 0 and report["error_count"] == 0
    with Store(db, create=False) as store:
        records = store.by_time(with_payload=True)
    assert records and all((r.codec, r.model_id) == ("vae-latent", model_id) for r in records)
    assert all(len(r.payload) <= 120 for r in records)
    for r in records:  # recall finds the model by the id each memory names (registered by the replay)
        image = render_memory(r.payload, r.codec, r.model_id, 96, 29)
        assert image.shape == (29, 96) and np.ptp(image) > 0  # grey frames come back grey, not flat

    assert lc.main([str(tmp_path / "missing.pt")]) == 2  # a clear error, not a traceback
    assert "missing.pt" in capsys.readouterr().err
