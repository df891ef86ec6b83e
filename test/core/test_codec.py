"""Binary format: round trip within the stated bounds, sizes, and clear errors on corrupt data."""

import math

import numpy as np
import pytest

from gaussvae_ros.core import BitDepths, Gaussians, decode_gaussians, encode_gaussians, encoded_size, morton_order


def random_gaussians(n=512, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return Gaussians(rng.random((n, 2)), np.exp(rng.uniform(-6, -2, (n, 2))), rng.uniform(-4, 4, n),
                     rng.uniform(-0.1, 1.1, (n, channels)))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("depths", [BitDepths(), BitDepths(xy=16, scale=16, rot=16, color=16), BitDepths(4, 3, 2, 1)])
def test_round_trip_within_stated_error_bounds(channels, depths):
    g = random_gaussians(channels=channels)
    data = encode_gaussians(g, depths)
    assert len(data) == encoded_size(len(g), channels, depths)
    back = decode_gaussians(data)
    ref = g.take(morton_order(g.xy))
    assert back.channels == channels and len(back) == len(g)
    log_range = np.log(g.scale).max() - np.log(g.scale).min()
    color_range = g.color.max() - g.color.min()
    tol = 1e-5
    assert np.abs(back.xy - ref.xy).max() <= 2.0 ** -(depths.xy + 1) + tol
    assert np.abs(np.log(back.scale) - np.log(ref.scale)).max() <= log_range * 2.0 ** -(depths.scale + 1) + tol
    rot_err = np.abs((back.rot - ref.rot + math.pi / 2) % math.pi - math.pi / 2)  # rotation is modulo pi
    assert rot_err.max() <= math.pi * 2.0 ** -(depths.rot + 1) + tol
    assert np.abs(back.color - ref.color).max() <= color_range * 2.0 ** -(depths.color + 1) + tol


def test_default_payload_is_compact():
    g = random_gaussians()
    assert len(encode_gaussians(g)) < 512 * 10 + 40  # 72 bits per RGB Gaussian + 30 bytes of framing
    assert len(encode_gaussians(g)) * 3 < g.to_array().nbytes


def test_blend_mode_and_empty_set_survive():
    g = random_gaussians(n=7, channels=1)
    g.blend = "sum"
    assert decode_gaussians(encode_gaussians(g)).blend == "sum"
    empty = Gaussians(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3)))
    assert len(decode_gaussians(encode_gaussians(empty))) == 0


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "empty", "extend"])
def test_corrupt_payload_gives_clear_error(damage):
    data = bytearray(encode_gaussians(random_gaussians(n=40)))
    if damage == "truncate":
        data = data[:-7]
    elif damage == "flip":
        data[40] ^= 0x10
    elif damage == "magic":
        data[0:2] = b"XX"
    elif damage == "empty":
        data = b""
    else:
        data += b"\x00"
    with pytest.raises(ValueError, match="payload"):
        decode_gaussians(bytes(data))


def test_refuses_what_it_cannot_represent():
    g = random_gaussians(n=4)
    g.xy[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        encode_gaussians(g)
    g = random_gaussians(n=4)
    g.scale[2, 1] = 0.0
    with pytest.raises(ValueError, match="positive scales"):
        encode_gaussians(g)
    with pytest.raises(ValueError, match="bit depth"):
        BitDepths(xy=0)
    with pytest.raises(ValueError, match="bit depth"):
        BitDepths(color=17)
