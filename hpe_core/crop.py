"""The paper's face crop and the crop's pinhole intrinsics.

VGGT-HPE crop: a square centred on the detection box centre with side
``max(w, h) * (1 + margin)`` (margin 0.4), zero padding where the square leaves the image,
resized to the model input size.

Pixel convention (OpenCV, also that of ``K``): the centre of pixel ``(row i, column j)`` is
at ``(u, v) = (j, i)``, so pixel ``j`` spans ``[j - 0.5, j + 0.5]``. The crop square is
rounded to whole pixels: it covers source columns ``x0 .. x0 + side - 1`` and rows
``y0 .. y0 + side - 1`` (its edges are at ``x0 - 0.5`` and ``x0 + side - 0.5``). OpenCV's
``resize`` maps pixel edges onto pixel edges, so a source pixel coordinate ``u`` lands at

    u_crop = s * (u - x0 + 0.5) - 0.5,      s = out_size / side

(likewise for ``v``). As a matrix, ``A = S @ T`` with ``T`` the translation by the crop's
top-left edge ``-(x0 - 0.5, y0 - 0.5)`` and ``S`` the scale by ``s`` followed by the half-pixel
shift ``-0.5``; the crop's intrinsics are ``K_crop = A @ K``. Without lens distortion a 3D
point ``X`` (camera frame) projects into the crop at ``K_crop @ X`` exactly where its
projection ``K @ X`` lands after cropping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

PAPER_MARGIN = 0.4
DEFAULT_HFOV_DEG = 60.0


def intrinsics_from_fov(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> FloatArray:
    """Pinhole intrinsics of an uncalibrated camera from its horizontal field of view.

    Square pixels (``fy = fx``), zero skew, principal point at the image centre
    ``((width - 1) / 2, (height - 1) / 2)`` in the OpenCV pixel-centre convention.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        hfov_deg: horizontal field of view in degrees, in (0, 180).

    Returns:
        ``[3, 3]`` K with ``fx = fy = (width / 2) / tan(hfov / 2)`` pixels.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array(
        [[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )


def resolve_intrinsics(
    K: Optional[ArrayLike], width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG
) -> FloatArray:
    """The camera's ``K`` (e.g. from CameraInfo) when given, else :func:`intrinsics_from_fov`.

    Args:
        K: ``[3, 3]`` intrinsics in pixels, or ``None`` (or all zeros: an uncalibrated
            CameraInfo) to fall back to the default field of view.
        width, height: image size in pixels.
        hfov_deg: fallback horizontal field of view in degrees.

    Returns:
        ``[3, 3]`` float64 intrinsics.
    """
    if K is not None:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        if np.any(K != 0.0):
            if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
                raise ValueError(f"invalid intrinsics (need fx, fy > 0 and K[2,2] = 1): {K}")
            return K
    return intrinsics_from_fov(width, height, hfov_deg)


@dataclass(frozen=True)
class CropGeometry:
    """Where a crop came from and how it images the scene.

    Attributes:
        x0, y0: source column / row of the crop's top-left pixel (may be negative).
        side: crop square side in source pixels.
        out_size: crop side in output pixels.
        crop_from_image: ``[3, 3]`` affine map ``A`` from source pixel coordinates to crop
            pixel coordinates (homogeneous).
        K: ``[3, 3]`` intrinsics of the source image.
        K_crop: ``[3, 3]`` intrinsics of the crop, ``A @ K``.
    """

    x0: int
    y0: int
    side: int
    out_size: int
    crop_from_image: FloatArray
    K: FloatArray
    K_crop: FloatArray

    @property
    def scale(self) -> float:
        """Output pixels per source pixel, ``out_size / side``."""
        return self.out_size / self.side

    @property
    def center_px(self) -> FloatArray:
        """``[2]`` centre of the crop square in source pixel coordinates ``(u, v)``."""
        return np.array([self.x0 + (self.side - 1) / 2.0, self.y0 + (self.side - 1) / 2.0])

    def image_to_crop(self, points_uv: ArrayLike) -> FloatArray:
        """Map ``[..., 2]`` source pixel coordinates into the crop."""
        p = np.asarray(points_uv, dtype=np.float64)
        A = self.crop_from_image
        return p @ A[:2, :2].T + A[:2, 2]

    def crop_to_image(self, points_uv: ArrayLike) -> FloatArray:
        """Map ``[..., 2]`` crop pixel coordinates back to the source image."""
        p = np.asarray(points_uv, dtype=np.float64)
        A = self.crop_from_image
        return (p - A[:2, 2]) / np.diag(A)[:2]


def square_crop_box(box_xyxy: ArrayLike, margin: float = PAPER_MARGIN) -> tuple[int, int, int]:
    """The paper's crop square around a detection box, rounded to whole pixels.

    Args:
        box_xyxy: ``[4]`` detection box ``[x1, y1, x2, y2]`` in pixels.
        margin: relative margin; the side is ``max(w, h) * (1 + margin)``.

    Returns:
        ``(x0, y0, side)``: top-left pixel column and row and the side, in source pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box_xyxy, dtype=np.float64).reshape(4))
    if margin < 0.0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    width, height = x2 - x1, y2 - y1
    if width <= 0 or height <= 0:
        raise ValueError(f"degenerate box {[x1, y1, x2, y2]}")
    side = max(1, int(round(max(width, height) * (1.0 + margin))))
    # Centre of the box as a pixel coordinate; the square's centre is x0 + (side - 1) / 2.
    cx, cy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    x0 = int(math.floor(cx - (side - 1) / 2.0 + 0.5))
    y0 = int(math.floor(cy - (side - 1) / 2.0 + 0.5))
    return x0, y0, side


def crop_from_image_matrix(x0: int, y0: int, side: int, out_size: int) -> FloatArray:
    """``[3, 3]`` affine ``A = S @ T`` from source to crop pixel coordinates (module docstring)."""
    s = out_size / side
    T = np.array([[1.0, 0.0, -(x0 - 0.5)], [0.0, 1.0, -(y0 - 0.5)], [0.0, 0.0, 1.0]])
    S = np.array([[s, 0.0, -0.5], [0.0, s, -0.5], [0.0, 0.0, 1.0]])
    return S @ T


def resize_matrix(in_size: int, out_size: int) -> FloatArray:
    """``[3, 3]`` affine of an OpenCV resize of a square image: ``u' = s (u + 0.5) - 0.5``."""
    s = out_size / in_size
    return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])


def _padded_square(image: NDArray, x0: int, y0: int, side: int) -> NDArray:
    """``[side, side, C]`` window of ``image`` at ``(x0, y0)``; zeros outside the image."""
    height, width = image.shape[:2]
    out = np.zeros((side, side) + image.shape[2:], dtype=image.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _resize_square(window: NDArray, out_size: int, interpolation: Optional[int]) -> NDArray:
    """Resize a ``[n, n, ...]`` window to ``[out_size, out_size, ...]`` with OpenCV."""
    side = window.shape[0]
    if side == out_size:
        return window
    if interpolation is None:
        interpolation = cv2.INTER_AREA if out_size < side else cv2.INTER_CUBIC
    out = cv2.resize(window, (out_size, out_size), interpolation=interpolation)
    if window.ndim == 3 and out.ndim == 2:  # OpenCV drops a trailing channel axis of 1
        out = out[:, :, None]
    return out


def crop_face(
    image: NDArray,
    box_xyxy: ArrayLike,
    out_size: int,
    K: Optional[ArrayLike] = None,
    margin: float = PAPER_MARGIN,
    hfov_deg: float = DEFAULT_HFOV_DEG,
    interpolation: Optional[int] = None,
    intermediate_size: Optional[int] = None,
) -> tuple[NDArray, CropGeometry]:
    """Cut the paper's square face crop and compute its intrinsics.

    Args:
        image: ``[H, W, C]`` (or ``[H, W]``) image, any dtype OpenCV resizes (uint8 RGB here).
        box_xyxy: ``[4]`` detection box in pixels.
        out_size: crop side in output pixels (the model input size, e.g. 518).
        K: ``[3, 3]`` camera intrinsics (from CameraInfo), or ``None`` for the default
            field of view (:func:`resolve_intrinsics`).
        margin: relative crop margin (paper: 0.4).
        hfov_deg: horizontal field of view used when ``K`` is ``None``.
        interpolation: OpenCV flag; default ``INTER_AREA`` when shrinking and
            ``INTER_CUBIC`` when enlarging.
        intermediate_size: if set, resize to this size first and then bicubically to
            ``out_size`` (the BIWI protocol of VGGT-HPE: 256, then 518); ``K_crop`` accounts
            for both steps.

    Returns:
        ``crop [out_size, out_size, C]`` (same dtype; zero where the square leaves the image)
        and its :class:`CropGeometry`.
    """
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")
    height, width = image.shape[:2]
    K = resolve_intrinsics(K, width, height, hfov_deg)
    x0, y0, side = square_crop_box(box_xyxy, margin)
    window = _padded_square(image, x0, y0, side)
    if intermediate_size is None:
        crop = _resize_square(window, out_size, interpolation)
        A = crop_from_image_matrix(x0, y0, side, out_size)
    else:
        if intermediate_size < 1:
            raise ValueError(f"intermediate_size must be >= 1, got {intermediate_size}")
        first = _resize_square(window, intermediate_size, interpolation)
        crop = _resize_square(first, out_size, cv2.INTER_CUBIC)
        A = resize_matrix(intermediate_size, out_size) @ crop_from_image_matrix(
            x0, y0, side, intermediate_size
        )
    geometry = CropGeometry(
        x0=x0, y0=y0, side=side, out_size=out_size, crop_from_image=A, K=K, K_crop=A @ K
    )
    return crop, geometry
