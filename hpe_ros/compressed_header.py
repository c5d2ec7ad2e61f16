"""Image size declared in a JPEG or PNG header, read before anything is decoded.

A compressed frame of a few hundred kilobytes can declare 30000 x 30000 pixels (a "decompression
bomb"); decoding it first and checking the size afterwards costs gigabytes. The node therefore
reads the size the header declares, refuses the frame when it exceeds ``max_image_pixels``, and
only then calls the decoder. Only the two formats ``image_transport``'s compressed plugin
produces are accepted: PNG (signature, then the ``IHDR`` chunk: width and height as big-endian
uint32, PNG specification section 11.2.2) and JPEG (``SOI``, then marker segments up to the first
start-of-frame ``SOF0``-``SOF15`` other than ``DHT``/``JPG``/``DAC``, whose payload holds the
height and width as big-endian uint16, ITU-T T.81 section B.2.2).
"""
from __future__ import annotations

import struct
from typing import Optional

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Bytes of marker segments scanned for a JPEG start-of-frame before giving up (EXIF and ICC
#: segments come first; each is at most 64 KiB, and cameras write a handful).
MAX_JPEG_SCAN_BYTES = 1 << 20


class CompressedHeaderError(ValueError):
    """The data is not a PNG or JPEG whose size can be read from its header."""


def declared_size(data: "bytes | memoryview") -> tuple[str, int, int]:
    """``(format, width, height)`` that a PNG or JPEG header declares.

    Args:
        data: the compressed bytes (``CompressedImage.data``, or a memoryview of them: nothing is copied).

    Returns:
        ``("png" | "jpeg", width, height)`` in pixels.

    Raises:
        CompressedHeaderError: neither format, or a header too short or malformed to say.
    """
    if data[:8] == PNG_SIGNATURE:
        return ("png", *_png_size(data))
    if data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
        if size is None:
            raise CompressedHeaderError("JPEG without a start-of-frame segment in its first "
                                        f"{MAX_JPEG_SCAN_BYTES} bytes")
        return ("jpeg", *size)
    raise CompressedHeaderError(f"neither PNG nor JPEG (first bytes {bytes(data[:8]).hex()})")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise CompressedHeaderError("PNG without an IHDR chunk first")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> Optional[tuple[int, int]]:
    i, end = 2, min(len(data), MAX_JPEG_SCAN_BYTES)
    while i + 4 <= end:
        if data[i] != 0xFF:
            raise CompressedHeaderError(f"JPEG marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers: no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            raise CompressedHeaderError(f"JPEG segment length {length} at byte {i}")
        if marker in _JPEG_SOF_MARKERS:
            if i + 9 > len(data):
                raise CompressedHeaderError("JPEG start-of-frame segment is truncated")
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return int(width), int(height)
        i += 2 + length
    return None
