"""Image messages -> numpy: every supported encoding, row padding, byte order, compressed payloads, bad input."""

from __future__ import annotations

import array
import io
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gaussvae_ros.bag.images import (
    ImageDecodeError,
    compressed_image_to_numpy,
    image_message_to_numpy,
    message_to_numpy,
)

RNG = np.random.default_rng(7)
RGB8 = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, size=(5, 7), dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, size=(5, 7, 3), dtype=np.uint16)


def rosbags_image(**fields):
    """A real rosbags ``sensor_msgs/msg/Image`` instance (the class the bag reader hands out)."""
    from rosbags.typesys import Stores, get_typestore

    types = get_typestore(Stores.ROS2_HUMBLE).types
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2),
                                          frame_id="cam")
    return types["sensor_msgs/msg/Image"](header=header, **fields)


def pack(pixels: np.ndarray, encoding: str, padding: int = 0, bigendian: bool = False, data_type=bytes):
    """An Image-like message holding ``pixels`` (already in the message's channel order) with row padding."""
    h, w = pixels.shape[:2]
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    rows = wire.reshape(h, -1).view(np.uint8).reshape(h, -1)
    step = rows.shape[1] + padding
    buffer = np.full((h, step), 0xAB, dtype=np.uint8)  # padding bytes must be ignored
    buffer[:, : rows.shape[1]] = rows
    data = buffer.tobytes()
    if data_type is array.array:
        data = array.array("B", data)
    elif data_type is np.ndarray:
        data = np.frombuffer(data, dtype=np.uint8)
    return SimpleNamespace(height=h, width=w, encoding=encoding, step=step, is_bigendian=int(bigendian), data=data)


ENCODING_CASES = [
    ("rgb8", RGB8, RGB8),
    ("bgr8", RGB8[:, :, ::-1], RGB8),
    ("8UC3", RGB8[:, :, ::-1], RGB8),
    ("rgba8", np.dstack([RGB8, np.full(RGB8.shape[:2], 9, np.uint8)]), RGB8),
    ("bgra8", np.dstack([RGB8[:, :, ::-1], np.full(RGB8.shape[:2], 9, np.uint8)]), RGB8),
    ("mono8", RGB8[:, :, 0], RGB8[:, :, 0]),
    ("8UC1", RGB8[:, :, 1], RGB8[:, :, 1]),
    ("mono16", GRAY16, GRAY16),
    ("16UC1", GRAY16, GRAY16),
    ("rgb16", RGB16, RGB16),
    ("bgr16", RGB16[:, :, ::-1], RGB16),
]


def test_every_supported_encoding_has_a_decoding_case():
    from gaussvae_ros.bag.images import SUPPORTED_ENCODINGS

    assert {e.lower() for e, _, _ in ENCODING_CASES} == {e.lower() for e in SUPPORTED_ENCODINGS}


@pytest.mark.parametrize("encoding, message_pixels, expected", ENCODING_CASES)
@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("data_type", [bytes, array.array, np.ndarray])
def test_every_encoding_decodes_to_rgb_or_gray(encoding, message_pixels, expected, padding, data_type):
    out = image_message_to_numpy(pack(message_pixels, encoding, padding, data_type=data_type))
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("encoding, message_pixels, expected", [
    ("mono16", GRAY16, GRAY16), ("16UC1", GRAY16, GRAY16),
    ("rgb16", RGB16, RGB16), ("bgr16", RGB16[:, :, ::-1], RGB16),
])
def test_big_endian_16_bit(encoding, message_pixels, expected):
    msg = pack(message_pixels, encoding, padding=2, bigendian=True)
    out = image_message_to_numpy(msg)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected)
    # the same bytes read as little-endian give byte-swapped values: the flag is honoured
    msg.is_bigendian = 0
    np.testing.assert_array_equal(image_message_to_numpy(msg), expected.byteswap())


def test_rosbags_message_class():
    msg = rosbags_image(height=5, width=7, encoding="bgr8", is_bigendian=0, step=21,
                        data=np.ascontiguousarray(RGB8[:, :, ::-1]).reshape(-1))
    np.testing.assert_array_equal(message_to_numpy(msg), RGB8)


def test_output_does_not_alias_message_buffer():
    data = bytearray(pack(RGB8[:, :, 0], "mono8").data)
    msg = SimpleNamespace(height=5, width=7, encoding="mono8", step=7, is_bigendian=0, data=data)
    out = image_message_to_numpy(msg)
    data[0] ^= 0xFF
    assert out[0, 0] == RGB8[0, 0, 0]


@given(h=st.integers(1, 6), w=st.integers(1, 6), padding=st.integers(0, 5), color=st.booleans())
@settings(max_examples=40, deadline=None)
def test_any_size_and_padding_round_trips(h, w, padding, color):
    pixels = RNG.integers(0, 256, size=(h, w, 3) if color else (h, w), dtype=np.uint8)
    out = image_message_to_numpy(pack(pixels, "rgb8" if color else "mono8", padding))
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("change, match", [
    (dict(data=b"\x00" * 20), "truncated image data: 20 bytes"),
    (dict(height=0), "zero size"),
    (dict(width=0), "zero size"),
    (dict(encoding="yuv422"), "unsupported image encoding 'yuv422'"),
    (dict(encoding="32FC1"), "unsupported image encoding"),
    (dict(step=5), "step 5 is smaller"),
    (dict(data=None), "no data"),
])
def test_bad_image_messages_raise_clear_errors(change, match):
    msg = pack(RGB8[:, :, 0], "mono8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageDecodeError, match=match):
        image_message_to_numpy(msg)
    assert issubclass(ImageDecodeError, ValueError)


def encoded(pixels: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(out, format=fmt) if mode else Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("pixels, fmt, expected_shape, expected_dtype", [
    (RGB8, "PNG", (5, 7, 3), np.uint8),
    (RGB8[:, :, 0].copy(), "PNG", (5, 7), np.uint8),
    (GRAY16, "PNG", (5, 7), np.uint16),
    (np.dstack([RGB8, np.full((5, 7), 200, np.uint8)]), "PNG", (5, 7, 3), np.uint8),
])
def test_compressed_png_is_lossless(pixels, fmt, expected_shape, expected_dtype):
    msg = SimpleNamespace(format="rgb8; png compressed rgb8", data=np.frombuffer(encoded(pixels, fmt), np.uint8))
    out = message_to_numpy(msg)
    assert out.shape == expected_shape and out.dtype == expected_dtype
    np.testing.assert_array_equal(out, pixels[:, :, :3] if pixels.ndim == 3 else pixels)


def test_compressed_jpeg_decodes_close_to_original():
    u, v = np.meshgrid(np.linspace(0, 255, 64), np.linspace(0, 255, 48))
    smooth = np.dstack([u, v, np.full_like(u, 128.0)]).astype(np.uint8)
    out = compressed_image_to_numpy(SimpleNamespace(format="jpeg", data=encoded(smooth, "JPEG")))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - smooth).mean() < 4


@pytest.mark.parametrize("data, fmt, match", [
    (b"", "jpeg", "has no data"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg", "cannot decode compressed image"),
    (b"definitely not an image", "png", "cannot decode compressed image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 12, "16UC1; compressedDepth png", "compressedDepth"),
])
def test_bad_compressed_images_raise_clear_errors(data, fmt, match):
    with pytest.raises(ImageDecodeError, match=match):
        compressed_image_to_numpy(SimpleNamespace(format=fmt, data=data))


def test_truncated_png_raises():
    data = encoded(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8), "PNG")
    with pytest.raises(ImageDecodeError, match="cannot decode compressed image"):
        compressed_image_to_numpy(SimpleNamespace(format="png", data=data[: len(data) // 2]))
