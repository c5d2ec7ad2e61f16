"""sensor_msgs/CameraInfo <-> pinhole intrinsics ``K`` (numpy) and image size.

``K`` is the 3x3 pinhole matrix in pixels, OpenCV convention (``u`` right, ``v`` down, pixel
centre of column ``j`` at ``u = j``)::

    K = [[fx, s,  cx],
         [0,  fy, cy],
         [0,  0,  1 ]]

Reading a CameraInfo follows its message definition: binning (``binning_x/y``, 0 meaning 1)
and a region of interest (``roi``, all zeros meaning the full sensor) describe how the published
image was cut from the calibrated full-resolution sensor, so ``K`` is adjusted to the published
image: ``fx' = fx / bx``, ``cx' = (cx - roi.x_offset) / bx`` (likewise for ``y``) and the image
size becomes ``(roi.width // bx, roi.height // by)``. Distortion coefficients are reported but
not applied: the pipeline uses ``K`` only.

An uncalibrated camera publishes ``K`` all zeros; that, NaN/inf entries, a non-positive focal
length or a last row other than ``[0, 0, 1]`` raise :class:`CameraInfoError` so the node can
fall back to a default field of view (``hpe_core.crop.intrinsics_from_fov``).

Finite but absurd values are refused too (they would make every later frame fail): the image
sides at most :data:`MAX_SIDE_PX`; ``fx / width`` and ``fy / height`` within
:data:`FOCAL_PER_SIDE_RANGE` (a horizontal field of view between about 0.6 and 178 degrees);
``fy / fx`` within :data:`ASPECT_RANGE`; the principal point within one image size of the
image (``-width <= cx <= 2 width``, likewise ``cy``); ``|skew| <= fx``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from builtin_interfaces.msg import Time
from numpy.typing import ArrayLike, NDArray
from sensor_msgs.msg import CameraInfo

FloatArray = NDArray[np.float64]

# Tolerance on K's fixed entries (K[1,0], K[2,:] = [0, 0, 1]).
_K_FIXED_TOL = 1e-9
#: Largest image side a CameraInfo may declare, pixels.
MAX_SIDE_PX = 1 << 16
#: Accepted ``fx / width`` (and ``fy / height``): 0.01 is a 178-degree, 100 a 0.6-degree field of view.
FOCAL_PER_SIDE_RANGE = (0.01, 100.0)
#: Accepted pixel aspect ``fy / fx``.
ASPECT_RANGE = (0.1, 10.0)


class CameraInfoError(ValueError):
    """CameraInfo (or intrinsics) that cannot be used: uncalibrated or invalid ``K`` or size."""


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Intrinsics of the published image.

    Attributes:
        K: ``[3, 3]`` float64 pinhole matrix in pixels (already adjusted for binning / ROI).
        width: image width in pixels.
        height: image height in pixels.
        distortion_model: CameraInfo ``distortion_model`` (informational).
        distortion: ``[N]`` float64 distortion coefficients (informational; not applied).
    """

    K: FloatArray
    width: int
    height: int
    distortion_model: str = ""
    distortion: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height


def validate_intrinsics(K: ArrayLike, width: int, height: int) -> FloatArray:
    """Check a pinhole ``K`` and image size; return ``K`` as ``[3, 3]`` float64.

    Raises:
        CameraInfoError: wrong shape, all zeros (uncalibrated), NaN/inf, ``fx`` or ``fy``
            ``<= 0``, ``K[1,0] != 0``, last row not ``[0, 0, 1]``, non-positive size, or a
            value outside the plausibility limits of the module docstring.
    """
    K_arr = np.asarray(K, dtype=np.float64)
    if K_arr.shape == (9,):
        K_arr = K_arr.reshape(3, 3)
    if K_arr.shape != (3, 3):
        raise CameraInfoError(f"K must be [3, 3] (or 9 values), got shape {K_arr.shape}")
    if not np.all(np.isfinite(K_arr)):
        raise CameraInfoError(f"K contains NaN or inf: {K_arr.reshape(-1).tolist()}")
    if not np.any(K_arr):
        raise CameraInfoError("K is all zeros: the camera is uncalibrated")
    fx, fy = K_arr[0, 0], K_arr[1, 1]
    if fx <= 0.0 or fy <= 0.0:
        raise CameraInfoError(f"focal lengths must be positive, got fx={fx}, fy={fy}")
    fixed = np.array([K_arr[1, 0], K_arr[2, 0], K_arr[2, 1], K_arr[2, 2] - 1.0])
    if np.any(np.abs(fixed) > _K_FIXED_TOL):
        raise CameraInfoError(
            f"K must have K[1,0] = 0 and last row [0, 0, 1], got K[1,0]={K_arr[1, 0]}, "
            f"last row {K_arr[2].tolist()}"
        )
    if int(width) <= 0 or int(height) <= 0:
        raise CameraInfoError(f"image size must be positive, got width={width}, height={height}")
    w, h = int(width), int(height)
    if max(w, h) > MAX_SIDE_PX:
        raise CameraInfoError(f"image size {w}x{h} exceeds {MAX_SIDE_PX} pixels a side")
    lo, hi = FOCAL_PER_SIDE_RANGE
    if not (lo <= fx / w <= hi and lo <= fy / h <= hi):
        raise CameraInfoError(f"focal lengths fx={fx}, fy={fy} are implausible for a {w}x{h} image "
                              f"(fx/width and fy/height must be in [{lo}, {hi}])")
    if not ASPECT_RANGE[0] <= fy / fx <= ASPECT_RANGE[1]:
        raise CameraInfoError(f"pixel aspect fy/fx = {fy / fx:.4g} outside {list(ASPECT_RANGE)}")
    cx, cy, skew = K_arr[0, 2], K_arr[1, 2], K_arr[0, 1]
    if not (-w <= cx <= 2 * w and -h <= cy <= 2 * h):
        raise CameraInfoError(f"principal point ({cx}, {cy}) lies more than an image size outside the {w}x{h} image")
    if abs(skew) > fx:
        raise CameraInfoError(f"skew {skew} is larger than fx={fx}")
    return K_arr


def intrinsics_from_camera_info(msg: CameraInfo) -> PinholeIntrinsics:
    """Intrinsics of the image a CameraInfo describes (binning and ROI applied).

    Args:
        msg: ``sensor_msgs/CameraInfo``.

    Returns:
        :class:`PinholeIntrinsics` of the published (binned, cropped) image.

    Raises:
        CameraInfoError: uncalibrated or invalid ``K`` (see :func:`validate_intrinsics`), zero
            image size, or an ROI outside the sensor.
    """
    width, height = int(msg.width), int(msg.height)
    K_full = validate_intrinsics(np.asarray(msg.k, dtype=np.float64), width, height)
    bx = max(int(msg.binning_x), 1)
    by = max(int(msg.binning_y), 1)
    roi = msg.roi
    if roi.width == 0 or roi.height == 0:
        x0, y0, roi_w, roi_h = 0, 0, width, height
    else:
        x0, y0, roi_w, roi_h = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
        if x0 + roi_w > width or y0 + roi_h > height:
            raise CameraInfoError(
                f"roi (x={x0}, y={y0}, {roi_w}x{roi_h}) lies outside the {width}x{height} sensor"
            )
    out_w, out_h = roi_w // bx, roi_h // by
    if out_w <= 0 or out_h <= 0:
        raise CameraInfoError(f"binning {bx}x{by} leaves an empty image from a {roi_w}x{roi_h} roi")
    K = K_full.copy()
    K[0, :] = [K_full[0, 0] / bx, K_full[0, 1] / bx, (K_full[0, 2] - x0) / bx]
    K[1, 1:] = [K_full[1, 1] / by, (K_full[1, 2] - y0) / by]
    return PinholeIntrinsics(
        K=K,
        width=out_w,
        height=out_h,
        distortion_model=str(msg.distortion_model),
        distortion=np.asarray(msg.d, dtype=np.float64).copy(),
    )


def camera_info_from_intrinsics(
    K: ArrayLike,
    width: int,
    height: int,
    *,
    stamp: Optional[Time] = None,
    frame_id: str = "",
) -> CameraInfo:
    """Build the CameraInfo of an ideal (undistorted) pinhole camera.

    Args:
        K: ``[3, 3]`` pinhole matrix in pixels.
        width, height: image size in pixels.
        stamp: ``header.stamp`` (zero time when ``None``); use the image's stamp.
        frame_id: ``header.frame_id`` (the camera optical frame).

    Returns:
        CameraInfo with ``distortion_model = "plumb_bob"``, ``d`` five zeros, ``r`` identity,
        ``p = [K | 0]`` (monocular: no baseline), no binning and a full-image ROI.

    Raises:
        CameraInfoError: invalid ``K`` or size (see :func:`validate_intrinsics`).
    """
    K_arr = validate_intrinsics(K, width, height)
    msg = CameraInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = K_arr.reshape(-1)
    msg.r = np.eye(3).reshape(-1)
    P = np.zeros((3, 4))
    P[:, :3] = K_arr
    msg.p = P.reshape(-1)
    return msg
