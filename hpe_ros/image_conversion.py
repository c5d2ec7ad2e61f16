"""sensor_msgs/Image and sensor_msgs/CompressedImage <-> numpy RGB uint8 (no cv_bridge).

The pipeline consumes ``[H, W, 3]`` uint8 RGB arrays (row ``i``, column ``j``, channels
``R, G, B``). This module turns camera messages into that form and back, with vectorised numpy
only: the message buffer is wrapped with ``np.frombuffer`` and a strided ``np.ndarray`` view
(no per-pixel Python work), and a copy is made only where the channel layout must change.
Channel reordering uses ``cv2.cvtColor`` on that view (SIMD; about 30 times faster than a
numpy fancy-index copy for a 1080p frame on the 2-core CI machine).

Supported ``Image.encoding`` values (``sensor_msgs/image_encodings``):

==========  ==========  ==========================================================
encoding    bytes/px    conversion to RGB uint8
==========  ==========  ==========================================================
rgb8        3           none: a zero-copy, read-only view of ``msg.data``
bgr8        3           channel order reversed (one copy)
rgba8       4           alpha dropped (one copy)
bgra8       4           alpha dropped, channel order reversed (one copy)
mono8       1           grey replicated to 3 channels
mono16      2           scaled to 8 bit (see below), replicated to 3 channels
16UC1       2           as mono16 (typically depth in millimetres)
==========  ==========  ==========================================================

16-bit to 8-bit scaling (``sixteen_bit``): ``"minmax"`` (the default) maps each frame's own
``[min, max]`` linearly to ``[0, 255]`` (a constant frame gives all zeros). We chose it as the
default because 16-bit streams rarely use the full range (10/12-bit sensors, depth in mm), and a
fixed shift would then give an almost black image in which no face is found. ``"shift"``
keeps the 8 most significant bits (``v >> 8``): stable brightness across frames, right for
streams that do fill the 16-bit range.

Layout rules honoured: ``step`` is the row stride in bytes (``>= width * bytes_per_pixel``;
padding bytes at the end of each row are skipped), ``len(data)`` must be at least
``step * height`` (extra trailing bytes are ignored), and ``is_bigendian`` selects the byte
order of 16-bit samples (ignored for 8-bit encodings). Any violation raises
:class:`ImageConversionError` (a ``ValueError``) with a message naming the field.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Literal, Optional

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from numpy.typing import NDArray
from sensor_msgs.msg import CompressedImage, Image

from hpe_ros.compressed_header import MAX_JPEG_SCAN_BYTES, CompressedHeaderError, declared_size

# Largest image accepted by default, in pixels (width * height): 8192 x 8192 (64 Mpx).
DEFAULT_MAX_PIXELS: int = 8192 * 8192

SixteenBitScaling = Literal["minmax", "shift"]


class ImageConversionError(ValueError):
    """An image message that cannot be converted (bad encoding, size, stride or data)."""


@dataclass(frozen=True)
class _EncodingLayout:
    """Memory layout of one encoding: ``channels`` samples of ``bytes_per_sample`` bytes."""

    channels: int
    bytes_per_sample: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_sample


_LAYOUTS: dict[str, _EncodingLayout] = {
    "rgb8": _EncodingLayout(3, 1),
    "bgr8": _EncodingLayout(3, 1),
    "rgba8": _EncodingLayout(4, 1),
    "bgra8": _EncodingLayout(4, 1),
    "mono8": _EncodingLayout(1, 1),
    "mono16": _EncodingLayout(1, 2),
    "16UC1": _EncodingLayout(1, 2),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
# OpenCV conversions for the 8-bit colour encodings that need a channel change.
_TO_RGB: dict[str, int] = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
}
OUTPUT_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8")


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"{what}: empty image (width={width}, height={height})")
    if width * height > max_pixels:
        raise ImageConversionError(
            f"{what}: {width}x{height} = {width * height} pixels exceeds the limit of "
            f"{max_pixels} pixels (max_pixels)"
        )


def image_msg_view(msg: Image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray:
    """Validate an Image message and view its pixels without copying.

    Args:
        msg: ``sensor_msgs/Image`` in one of :data:`SUPPORTED_ENCODINGS`.
        max_pixels: largest accepted ``width * height``.

    Returns:
        ``[H, W, C]`` view of ``msg.data`` (``C`` = channels of the encoding, in message order),
        dtype uint8, or uint16 with the message's byte order (``>u2`` / ``<u2``) for 16-bit
        encodings. Row stride is ``msg.step``; the view is read-only and shares memory with
        ``msg.data``.

    Raises:
        ImageConversionError: unsupported encoding, zero size, size above ``max_pixels``,
            ``step < width * bytes_per_pixel`` or ``len(data) < step * height``.
    """
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise ImageConversionError(
            f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    _check_size(width, height, max_pixels, f"Image ({msg.encoding})")
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(
            f"Image ({msg.encoding}): step {step} bytes is smaller than width * bytes_per_pixel "
            f"= {width} * {layout.bytes_per_pixel} = {row_bytes}"
        )
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    needed = step * height
    if buffer.size < needed:
        raise ImageConversionError(
            f"Image ({msg.encoding}): data has {buffer.size} bytes, expected step * height = "
            f"{step} * {height} = {needed} (truncated message)"
        )
    if layout.bytes_per_sample == 1:
        dtype = np.dtype(np.uint8)
    else:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
    view = np.ndarray(
        shape=(height, width, layout.channels),
        dtype=dtype,
        buffer=buffer,
        offset=0,
        strides=(step, layout.bytes_per_pixel, layout.bytes_per_sample),
    )
    view.flags.writeable = False
    return view


def sixteen_to_eight_bit(values: NDArray, scaling: SixteenBitScaling = "minmax") -> NDArray[np.uint8]:
    """Scale 16-bit samples to uint8 (see the module docstring for the two choices).

    Args:
        values: ``[...]`` unsigned 16-bit samples (any byte order, any strides).
        scaling: ``"minmax"`` (per-frame ``[min, max] -> [0, 255]``, constant input -> 0) or
            ``"shift"`` (``v >> 8``).

    Returns:
        ``[...]`` C-contiguous uint8 array of the same shape.
    """
    if scaling == "shift":
        return (values >> 8).astype(np.uint8)
    if scaling != "minmax":
        raise ImageConversionError(f"sixteen_bit scaling must be 'minmax' or 'shift', got {scaling!r}")
    lo, hi = int(values.min()), int(values.max())
    if hi == lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def image_msg_to_rgb(
    msg: Image,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    sixteen_bit: SixteenBitScaling = "minmax",
    copy: bool = False,
) -> NDArray[np.uint8]:
    """Convert a ``sensor_msgs/Image`` to the pipeline's RGB array.

    Args:
        msg: image in one of :data:`SUPPORTED_ENCODINGS`.
        max_pixels: largest accepted ``width * height`` (guards against absurd headers).
        sixteen_bit: 16-bit to 8-bit scaling for ``mono16`` / ``16UC1``.
        copy: when false, an ``rgb8`` message is returned as a read-only view of ``msg.data``
            (rows ``step`` bytes apart); when true the result is always an owned, writable,
            C-contiguous array. Other encodings always produce a new C-contiguous array.

    Returns:
        ``[H, W, 3]`` uint8 RGB, ``H = msg.height``, ``W = msg.width``.

    Raises:
        ImageConversionError: see :func:`image_msg_view`.
    """
    view = image_msg_view(msg, max_pixels=max_pixels)
    layout = _LAYOUTS[msg.encoding]
    if layout.channels == 1:
        grey = view[..., 0]
        if layout.bytes_per_sample == 2:
            grey = sixteen_to_eight_bit(grey, sixteen_bit)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    if msg.encoding == "rgb8":
        return np.array(view, dtype=np.uint8, order="C", copy=True) if copy else view
    return cv2.cvtColor(view, _TO_RGB[msg.encoding])


def _check_rgb_array(rgb: NDArray, max_pixels: int) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ImageConversionError(f"expected an [H, W, 3] RGB array, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ImageConversionError(f"expected a uint8 RGB array, got dtype {rgb.dtype}")
    _check_size(int(rgb.shape[1]), int(rgb.shape[0]), max_pixels, "RGB array")


def rgb_to_image_msg(
    rgb: NDArray[np.uint8],
    *,
    encoding: str = "rgb8",
    stamp: Optional[Time] = None,
    frame_id: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image:
    """Build a ``sensor_msgs/Image`` from an RGB array (debug image, camera player).

    Args:
        rgb: ``[H, W, 3]`` uint8 RGB (any strides).
        encoding: ``"rgb8"`` or ``"bgr8"``.
        stamp: ``header.stamp`` (zero time when ``None``).
        frame_id: ``header.frame_id`` (the camera optical frame).
        max_pixels: largest accepted ``H * W``.

    Returns:
        Image with ``step = 3 * W``, ``is_bigendian = 0`` and tightly packed ``data``.
    """
    _check_rgb_array(rgb, max_pixels)
    if encoding == "rgb8":
        packed = np.ascontiguousarray(rgb)
    elif encoding == "bgr8":
        packed = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    else:
        raise ImageConversionError(
            f"output encoding must be one of {', '.join(OUTPUT_ENCODINGS)}, got {encoding!r}"
        )
    data = array.array("B")
    data.frombytes(packed.data)
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = data
    return msg


def compressed_msg_to_rgb(msg: CompressedImage, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to RGB with ``cv2.imdecode``.

    Whatever ``format`` says about the original encoding, the decoded result is colour RGB
    (grey and 16-bit PNGs are converted to 8-bit colour by OpenCV). The
    ``compressedDepth`` format (a private header in front of a PNG) is not supported.

    Args:
        msg: compressed image; ``format`` e.g. ``"jpeg"``, ``"png"``, ``"bgr8; jpeg compressed bgr8"``.
        max_pixels: largest accepted decoded ``width * height``.

    Returns:
        ``[H, W, 3]`` uint8 RGB, C-contiguous.

    Raises:
        ImageConversionError: empty or corrupt data, compressedDepth format, neither PNG nor
            JPEG, or a header (checked before decoding: :mod:`hpe_ros.compressed_header`) or
            decoded image above ``max_pixels``.
    """
    if "compresseddepth" in msg.format.lower():
        raise ImageConversionError(
            f"CompressedImage format {msg.format!r} (compressedDepth) is not supported"
        )
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageConversionError(f"CompressedImage (format {msg.format!r}) has no data")
    try:  # the size the header declares, before any decoding (decompression bombs)
        kind, width, height = declared_size(memoryview(buffer)[:MAX_JPEG_SCAN_BYTES])
    except CompressedHeaderError as exc:
        raise ImageConversionError(f"CompressedImage (format {msg.format!r}, {buffer.size} bytes): {exc}") from exc
    _check_size(width, height, max_pixels, f"CompressedImage ({kind} header)")
    try:
        bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV raises for some malformed headers
        raise ImageConversionError(
            f"CompressedImage (format {msg.format!r}, {buffer.size} bytes) could not be decoded: {exc}"
        ) from exc
    if bgr is None:
        raise ImageConversionError(
            f"CompressedImage (format {msg.format!r}, {buffer.size} bytes) could not be decoded: "
            "corrupt, truncated or not a JPEG/PNG"
        )
    _check_size(int(bgr.shape[1]), int(bgr.shape[0]), max_pixels, "decoded CompressedImage")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
