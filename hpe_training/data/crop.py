"""Square face crops with random margin and shift, and the matching intrinsics update.

Pixel convention (OpenCV): pixel (u, v) has its centre at integer coordinates. A crop box
(x0, y0, side) resized to ``out`` pixels maps u -> s (u - x0) with s = out / side, so
K' = [[s fx, s k01, s (cx - x0)], [0, s fy, s (cy - y0)], [0, 0, 1]].
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """Square crop: top-left corner (x0, y0) and side length, in source pixels (floats)."""

    x0: float
    y0: float
    side: float


def square_box(bbox: np.ndarray, margin: float, shift: tuple[float, float] = (0.0, 0.0)) -> CropBox:
    """Square box around a face box.

    Args:
        bbox: [4] x0, y0, x1, y1 (pixels).
        margin: side = max(w, h) * (1 + margin).
        shift: (dx, dy) offset of the box centre as fractions of the side.
    """
    x0, y0, x1, y1 = (float(v) for v in np.asarray(bbox).reshape(4))
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + margin)
    cx = 0.5 * (x0 + x1) + shift[0] * side
    cy = 0.5 * (y0 + y1) + shift[1] * side
    return CropBox(cx - side / 2.0, cy - side / 2.0, side)


def crop_intrinsics(K: np.ndarray, box: CropBox, out_size: int) -> np.ndarray:
    """Intrinsics [3, 3] of the crop ``box`` resized to ``out_size`` x ``out_size``."""
    s = out_size / box.side
    a = np.array([[s, 0.0, -s * box.x0], [0.0, s, -s * box.y0], [0.0, 0.0, 1.0]])
    return a @ np.asarray(K, np.float64)


def crop_image(image: np.ndarray, box: CropBox, out_size: int) -> np.ndarray:
    """Crop and resize with zero padding outside the image (bilinear; pre-blurred when shrinking).

    Args:
        image: [H, W, C] uint8 or float.

    Returns:
        [out_size, out_size, C] array of the input dtype.
    """
    s = out_size / box.side
    src = image
    if s < 0.7:  # anti-alias before shrinking
        sigma = 0.5 / s - 0.5
        src = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    a = np.array([[s, 0.0, -s * box.x0], [0.0, s, -s * box.y0]], np.float64)
    return cv2.warpAffine(src, a, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def random_box(bbox: np.ndarray, rng: np.random.Generator, margin_range: tuple[float, float] = (0.4, 0.6),
               max_shift: float = 0.1) -> CropBox:
    """Square box with margin ~ U(margin_range) and centre shift ~ U(-max_shift, max_shift) of the side."""
    margin = float(rng.uniform(*margin_range))
    shift = (float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift)))
    return square_box(bbox, margin, shift)
