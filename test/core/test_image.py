"""Input conversion: every documented conversion, and clear errors for what is refused."""

import numpy as np
import pytest

from gaussvae_ros.core import psnr, ssim, to_float_image, to_uint8
from gaussvae_ros.core.image import MAX_PIXELS


@pytest.mark.parametrize("shape,channels", [((5, 6), 1), ((5, 6, 1), 1), ((5, 6, 2), 1), ((5, 6, 3), 3),
                                            ((5, 6, 4), 3)])
def test_channel_conversions(shape, channels):
    out = to_float_image(np.full(shape, 255, np.uint8))
    assert out.shape == (5, 6, channels) and out.dtype == np.float32
    assert np.allclose(out, 1.0)


def test_dtypes():
    assert to_float_image(np.full((2, 2), 65535, np.uint16)).max() == 1.0
    assert np.isclose(to_float_image(np.full((2, 2), 32768, np.uint16)).max(), 0.5, atol=1e-4)
    assert to_float_image(np.array([[True, False]])).tolist() == [[[1.0], [0.0]]]
    assert to_float_image(np.array([[1.5, -0.5]])).tolist() == [[[1.0], [0.0]]]  # floats are clipped
    assert to_float_image(np.array([[255, 0]], np.int32)).tolist() == [[[1.0], [0.0]]]
    one_pixel = to_float_image(np.zeros((1, 1, 3), np.uint8))
    assert one_pixel.shape == (1, 1, 3)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 4), np.uint8), "empty"),
    (np.zeros((4, 0, 3), np.uint8), "empty"),
    (np.zeros((4, 4, 5), np.uint8), "channels"),
    (np.zeros((2, 2, 2, 2), np.uint8), "shape"),
    (np.array([[np.nan, 0.5]]), "NaN"),
    (np.array([[np.inf, 0.5]]), "NaN"),
    (np.array([["a", "b"]]), "dtype"),
    (np.array([[300, 2]], np.int32), "outside"),
])
def test_refused_input(bad, match):
    with pytest.raises(ValueError, match=match):
        to_float_image(bad)


def test_very_large_image_is_refused_without_allocating():
    huge = np.broadcast_to(np.zeros(1, np.uint8), (MAX_PIXELS // 1000 + 1, 1001))
    with pytest.raises(ValueError, match="limit"):
        to_float_image(huge)


def test_metrics():
    a = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    assert psnr(a, a) == float("inf")
    assert np.isclose(psnr(a, np.clip(a + 0.1, 0, 1)), 20.0, atol=1.5)
    assert np.isclose(ssim(a, a), 1.0)
    assert to_uint8(a[:, :, :1]).shape == (16, 16)
    with pytest.raises(ValueError):
        psnr(a, a[:8])


def test_to_uint8_rounds_to_the_nearest_level_and_clips():
    values = np.array([0.0, 0.49, 0.51, 127.5 - 0.01, 127.5 + 0.01, 254.49, 254.51, 255.0, 300.0, -20.0]) / 255.0
    out = to_uint8(values.reshape(1, -1, 1))
    assert out.dtype == np.uint8 and out.shape == (1, 10)
    np.testing.assert_array_equal(out[0], [0, 0, 1, 127, 128, 254, 255, 255, 255, 0])
    # the round trip through to_float_image is exact for every 8-bit level
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(to_uint8(to_float_image(levels)), levels)
