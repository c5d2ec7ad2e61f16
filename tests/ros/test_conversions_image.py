"""sensor_msgs/Image and CompressedImage <-> numpy RGB (hpe_ros.image_conversion)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image

from hpe_ros.image_conversion import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
    rgb_to_image_msg,
)

H, W = 5, 7
RNG = np.random.default_rng(1234)
# Reference RGB image; includes 0 and 255 so that min-max scaling of grey is exact.
REF_RGB = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
REF_GREY = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
REF_GREY[0, 0], REF_GREY[-1, -1] = 0, 255
ALPHA = RNG.integers(0, 256, size=(H, W, 1), dtype=np.uint8)


def make_msg(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False,
             trailing: int = 0) -> Image:
    """Pack ``pixels`` ([H, W, C] or [H, W]) into an Image by hand, with ``pad`` garbage bytes
    after every row and ``trailing`` extra bytes after the last row."""
    if pixels.dtype == np.uint16:
        pixels = pixels.astype(">u2" if big_endian else "<u2")
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    garbage = RNG.integers(1, 256, size=(rows.shape[0], pad), dtype=np.uint8)
    padded = np.concatenate([rows, garbage], axis=1)
    data = padded.tobytes() + bytes([77]) * trailing
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=int(big_endian), step=padded.shape[1])
    msg.data = data
    return msg


def expected_and_msg(encoding: str, pad: int) -> tuple[np.ndarray, Image]:
    if encoding == "rgb8":
        return REF_RGB, make_msg(REF_RGB, encoding, pad)
    if encoding == "bgr8":
        return REF_RGB, make_msg(REF_RGB[..., ::-1].copy(), encoding, pad)
    if encoding == "rgba8":
        return REF_RGB, make_msg(np.concatenate([REF_RGB, ALPHA], axis=2), encoding, pad)
    if encoding == "bgra8":
        return REF_RGB, make_msg(np.concatenate([REF_RGB[..., ::-1], ALPHA], axis=2), encoding, pad)
    grey3 = np.repeat(REF_GREY[..., None], 3, axis=2)
    if encoding == "mono8":
        return grey3, make_msg(REF_GREY, encoding, pad)
    # 16 bit: 12-bit data with an offset; min-max maps it back to the 8-bit reference exactly.
    return grey3, make_msg(REF_GREY.astype(np.uint16) * 16 + 100, encoding, pad)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_encoding_matches_reference(encoding: str, pad: int) -> None:
    expected, msg = expected_and_msg(encoding, pad)
    rgb = image_msg_to_rgb(msg)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, expected)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_sixteen_bit_big_and_little_endian_agree(encoding: str) -> None:
    values = RNG.integers(0, 65536, size=(H, W), dtype=np.uint16)
    little = make_msg(values, encoding, pad=2, big_endian=False)
    big = make_msg(values, encoding, pad=2, big_endian=True)
    assert bytes(little.data) != bytes(big.data)
    for scaling in ("minmax", "shift"):
        a = image_msg_to_rgb(little, sixteen_bit=scaling)
        b = image_msg_to_rgb(big, sixteen_bit=scaling)
        np.testing.assert_array_equal(a, b)
    expected_shift = np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(image_msg_to_rgb(big, sixteen_bit="shift"), expected_shift)


def test_sixteen_bit_constant_frame_is_black() -> None:
    msg = make_msg(np.full((H, W), 1234, np.uint16), "mono16")
    assert not image_msg_to_rgb(msg).any()


def test_rgb8_is_a_read_only_view_unless_copied() -> None:
    msg = make_msg(REF_RGB, "rgb8", pad=4, trailing=5)
    view = image_msg_to_rgb(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    assert not view.flags.writeable
    owned = image_msg_to_rgb(msg, copy=True)
    assert owned.flags.writeable and owned.flags.c_contiguous
    assert not np.shares_memory(owned, np.frombuffer(msg.data, np.uint8))
    np.testing.assert_array_equal(owned, REF_RGB)
    # A padded view is still usable by OpenCV.
    assert cv2.resize(view, (2 * W, 2 * H)).shape == (2 * H, 2 * W, 3)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_rgb_to_image_msg_round_trip(encoding: str) -> None:
    big = RNG.integers(0, 256, size=(H, W + 4, 3), dtype=np.uint8)
    rgb = big[:, 2:-2]  # non-contiguous input
    stamp = Time(sec=12, nanosec=345)
    msg = rgb_to_image_msg(rgb, encoding=encoding, stamp=stamp, frame_id="cam_optical")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H, W, 3 * W, encoding)
    assert msg.header.stamp == stamp and msg.header.frame_id == "cam_optical"
    assert len(msg.data) == H * W * 3
    back = deserialize_message(serialize_message(msg), Image)  # a valid message on the wire
    np.testing.assert_array_equal(image_msg_to_rgb(back), rgb)
    if encoding == "bgr8":
        np.testing.assert_array_equal(np.frombuffer(msg.data, np.uint8).reshape(H, W, 3), rgb[..., ::-1])


def test_rgb_to_image_msg_rejects_bad_input() -> None:
    with pytest.raises(ImageConversionError, match="uint8"):
        rgb_to_image_msg(REF_RGB.astype(np.float32))
    with pytest.raises(ImageConversionError, match=r"\[H, W, 3\]"):
        rgb_to_image_msg(REF_GREY)
    with pytest.raises(ImageConversionError, match="output encoding"):
        rgb_to_image_msg(REF_RGB, encoding="mono8")


def _error(msg: Image, **kwargs) -> str:
    with pytest.raises(ImageConversionError) as info:
        image_msg_to_rgb(msg, **kwargs)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_error_unsupported_encoding() -> None:
    msg = make_msg(REF_RGB, "rgb8")
    msg.encoding = "yuv422"
    text = _error(msg)
    assert "yuv422" in text and "unsupported" in text and "rgb8" in text


@pytest.mark.parametrize("field", ["width", "height"])
def test_error_zero_size(field: str) -> None:
    msg = make_msg(REF_RGB, "rgb8")
    setattr(msg, field, 0)
    assert "empty image" in _error(msg)


def test_error_step_too_small() -> None:
    msg = make_msg(REF_RGB, "rgb8")
    msg.step = 3 * W - 1
    text = _error(msg)
    assert "step" in text and str(3 * W) in text


def test_error_truncated_data() -> None:
    msg = make_msg(REF_RGB, "bgr8", pad=2)
    msg.data = bytes(msg.data)[:-1]
    assert "truncated" in _error(msg)


def test_error_absurd_size_without_touching_data() -> None:
    msg = Image(height=100_000, width=100_000, encoding="rgb8", step=300_000)
    assert "exceeds" in _error(msg)
    # The limit is configurable.
    assert "max_pixels" in _error(make_msg(REF_RGB, "rgb8"), max_pixels=H * W - 1)
    assert image_msg_to_rgb(make_msg(REF_RGB, "rgb8"), max_pixels=H * W).shape == (H, W, 3)


def test_error_bad_sixteen_bit_choice() -> None:
    msg = make_msg(REF_GREY.astype(np.uint16), "mono16")
    assert "sixteen_bit" in _error(msg, sixteen_bit="gamma")


def _compressed(data: bytes, fmt: str) -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg


def test_compressed_png_decodes_exactly() -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(REF_RGB, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(compressed_msg_to_rgb(_compressed(png.tobytes(), "png")), REF_RGB)


def test_compressed_jpeg_decodes_in_rgb_order() -> None:
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (230, 20, 20)  # red left half
    rgb[:, 24:] = (20, 20, 230)  # blue right half
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    out = compressed_msg_to_rgb(_compressed(jpg.tobytes(), "rgb8; jpeg compressed bgr8"))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() < 4.0
    assert out[16, 4, 0] > 200 and out[16, 44, 2] > 200


@pytest.mark.parametrize("kind", ["garbage", "truncated_png", "truncated_jpeg", "empty"])
def test_compressed_corrupt_data_raises(kind: str) -> None:
    ok, png = cv2.imencode(".png", REF_RGB)
    ok, jpg = cv2.imencode(".jpg", REF_RGB)
    data = {
        "garbage": RNG.integers(0, 256, size=500, dtype=np.uint8).tobytes(),
        "truncated_png": png.tobytes()[: len(png) // 2],
        "truncated_jpeg": jpg.tobytes()[: len(jpg) // 2],
        "empty": b"",
    }[kind]
    with pytest.raises(ImageConversionError, match="could not be decoded|no data|neither PNG nor JPEG|truncated"):
        compressed_msg_to_rgb(_compressed(data, "png"))


def test_compressed_depth_and_size_limit_rejected() -> None:
    ok, png = cv2.imencode(".png", REF_RGB)
    with pytest.raises(ImageConversionError, match="compressedDepth"):
        compressed_msg_to_rgb(_compressed(png.tobytes(), "16UC1; compressedDepth"))
    with pytest.raises(ImageConversionError, match="exceeds"):
        compressed_msg_to_rgb(_compressed(png.tobytes(), "png"), max_pixels=10)
