"""Model files are verified on load: the shipped model's pinned SHA-256, other files' digest entry; an
unverified file is refused unless the user opts in."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from gaussvae_ros.codecs import latent as lc
from gaussvae_ros.codecs.latent import model_registry
from gaussvae_ros.vae import checkpoint

PATH = lc.default_model_path()
shipped = pytest.mark.skipif(not PATH.exists(), reason="no model shipped in this build")


@shipped
def test_the_shipped_model_matches_its_pinned_digest():
    assert checkpoint.file_sha256(PATH) == model_registry.SHIPPED_MODEL_SHA256
    lc.load_bundle(PATH)


@shipped
@pytest.mark.parametrize("damage", ["flipped byte", "zeroed 64 KiB"])
def test_a_damaged_shipped_model_is_refused(tmp_path, monkeypatch, damage):
    copy = tmp_path / "models" / model_registry.DEFAULT_MODEL_FILE
    copy.parent.mkdir()
    data = bytearray(PATH.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
    else:
        data[len(data) // 3:len(data) // 3 + 65536] = bytes(65536)
    copy.write_bytes(bytes(data))
    checkpoint.pin_file_digest(copy, model_registry.SHIPPED_MODEL_SHA256)
    with pytest.raises(ValueError, match="not the one shipped"):
        lc.load_bundle(copy)
    monkeypatch.setenv(checkpoint.ENV_ALLOW_UNVERIFIED, "1")  # the opt-in is for unverified files, not damaged ones
    with pytest.raises(ValueError, match="not the one shipped"):
        lc.load_bundle(copy)


@shipped
def test_a_file_without_digest_is_refused_unless_the_user_opts_in(tmp_path, monkeypatch):
    plain = tmp_path / "plain.pt"
    shutil.copyfile(PATH, plain)  # the shipped bytes, but not at the pinned path: nothing verifies them
    assert "sha256" not in torch.load(plain, weights_only=True)
    monkeypatch.delenv(checkpoint.ENV_ALLOW_UNVERIFIED, raising=False)
    with pytest.raises(ValueError, match="unverified model file"):
        lc.load_bundle(plain)
    monkeypatch.setenv(checkpoint.ENV_ALLOW_UNVERIFIED, "1")
    assert lc.load_bundle(plain).model_id == lc.load_bundle(PATH).model_id
    monkeypatch.delenv(checkpoint.ENV_ALLOW_UNVERIFIED)
    assert checkpoint.safe_load(plain, allow_unverified=True)["format"]


def test_files_written_by_the_project_carry_a_digest(tmp_path):
    obj = {"format": "x", "version": 1, "weights": torch.arange(4.0)}
    checkpoint.atomic_save(obj, tmp_path / "m.pt")
    loaded = checkpoint.safe_load(tmp_path / "m.pt", allow_unverified=False)
    assert loaded["sha256"] == checkpoint.content_digest(obj)
    assert np.allclose(loaded["weights"].numpy(), [0, 1, 2, 3])
