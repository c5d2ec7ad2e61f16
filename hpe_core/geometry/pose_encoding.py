"""VGGT camera pose encoding ``absT_quaR_FoV`` (numpy, float64, batch dims ``...``).

Encoding (9 values, last axis): ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` where
``(R | t)`` is the OpenCV camera-from-world extrinsic (x right, y down, z forward), the
quaternion is scalar-last and canonical (``qw >= 0``), and the fields of view are in radians:

    fov_h = 2 atan((H / 2) / fy),    fov_w = 2 atan((W / 2) / fx)

for an image of ``H`` rows and ``W`` columns (pixels). Decoding puts the principal point at
the image centre ``(cx, cy) = (W / 2, H / 2)`` with zero skew. For VGGT-HPE the world is the
anchor frame, so the query's extrinsic is the relative head pose ``T_rel``.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.geometry.rotations import matrix_from_quat_xyzw, quat_xyzw_from_matrix

FloatArray = NDArray[np.float64]
ImageHW = Union[Sequence[float], ArrayLike]

POSE_ENCODING_DIM = 9
POSE_ENCODING_TYPE = "absT_quaR_FoV"


def _split_hw(image_hw: ImageHW) -> tuple[FloatArray, FloatArray]:
    hw = np.asarray(image_hw, dtype=np.float64)
    if hw.shape[-1:] != (2,):
        raise ValueError(f"image_hw must be (H, W) or [..., 2], got shape {hw.shape}")
    if np.any(hw <= 0):
        raise ValueError("image_hw must be positive")
    return hw[..., 0], hw[..., 1]


def pose_encoding_from_extrinsics_intrinsics(
    extrinsics: ArrayLike, intrinsics: ArrayLike, image_hw: ImageHW
) -> FloatArray:
    """Encode cameras as VGGT ``absT_quaR_FoV`` vectors.

    Args:
        extrinsics: ``[..., 3, 4]`` (or ``[..., 4, 4]``) OpenCV camera-from-world ``[R | t]``,
            translation in the scene unit (metres here).
        intrinsics: ``[..., 3, 3]`` pinhole matrices in pixels; only ``fx = K[0,0]`` and
            ``fy = K[1,1]`` are used (the encoding assumes a centred principal point).
        image_hw: ``(H, W)`` image size in pixels, or ``[..., 2]`` broadcastable per item.

    Returns:
        ``[..., 9]`` ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` (fov in radians, qw >= 0).
    """
    E = np.asarray(extrinsics, dtype=np.float64)
    K = np.asarray(intrinsics, dtype=np.float64)
    if E.shape[-2:] not in ((3, 4), (4, 4)):
        raise ValueError(f"extrinsics must be [...,3,4] or [...,4,4], got {E.shape}")
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must be [...,3,3], got {K.shape}")
    H, W = _split_hw(image_hw)
    t = E[..., :3, 3]
    q = quat_xyzw_from_matrix(E[..., :3, :3])
    fov_h = 2.0 * np.arctan((H / 2.0) / K[..., 1, 1])
    fov_w = 2.0 * np.arctan((W / 2.0) / K[..., 0, 0])
    batch = np.broadcast_shapes(t.shape[:-1], fov_h.shape, fov_w.shape)
    return np.concatenate(
        [
            np.broadcast_to(t, batch + (3,)),
            np.broadcast_to(q, batch + (4,)),
            np.broadcast_to(fov_h, batch)[..., None],
            np.broadcast_to(fov_w, batch)[..., None],
        ],
        axis=-1,
    )


def extrinsics_intrinsics_from_pose_encoding(
    pose_enc: ArrayLike, image_hw: ImageHW
) -> tuple[FloatArray, FloatArray]:
    """Decode VGGT ``absT_quaR_FoV`` vectors into cameras.

    Args:
        pose_enc: ``[..., 9]`` ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``, fov in radians.
            The quaternion is normalised before use (network outputs are not unit length).
        image_hw: ``(H, W)`` image size in pixels, or ``[..., 2]`` broadcastable per item.

    Returns:
        ``extrinsics [..., 3, 4]`` OpenCV camera-from-world ``[R | t]`` and
        ``intrinsics [..., 3, 3]`` with ``fy = (H/2)/tan(fov_h/2)``, ``fx = (W/2)/tan(fov_w/2)``,
        principal point ``(W/2, H/2)``.
    """
    p = np.asarray(pose_enc, dtype=np.float64)
    if p.shape[-1] != POSE_ENCODING_DIM:
        raise ValueError(f"pose_enc must be [..., 9], got {p.shape}")
    H, W = _split_hw(image_hw)
    R = matrix_from_quat_xyzw(p[..., 3:7])
    E = np.concatenate([R, p[..., 0:3, None]], axis=-1)
    fy = (H / 2.0) / np.tan(p[..., 7] / 2.0)
    fx = (W / 2.0) / np.tan(p[..., 8] / 2.0)
    batch = np.broadcast_shapes(p.shape[:-1], fx.shape, fy.shape)
    E = np.broadcast_to(E, batch + (3, 4)).copy()
    K = np.zeros(batch + (3, 3), dtype=np.float64)
    K[..., 0, 0] = fx
    K[..., 1, 1] = fy
    K[..., 0, 2] = W / 2.0
    K[..., 1, 2] = H / 2.0
    K[..., 2, 2] = 1.0
    return E, K
