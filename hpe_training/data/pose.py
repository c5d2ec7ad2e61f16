"""Pose targets of training pairs: relative normalisation, quaternions and fields of view.

Thin names over :mod:`hpe_core.geometry` (one implementation of the VGGT pose encoding for
training and inference). Poses are 4x4 camera-from-head transforms (OpenCV camera frame,
metres). Quaternions are scalar-last (x, y, z, w) with w >= 0, as in VGGT's ``absT_quaR_FoV``.
"""
from __future__ import annotations

import numpy as np

from hpe_core.geometry.pose_encoding import pose_encoding_from_extrinsics_intrinsics
from hpe_core.geometry.rotations import canonical_quat_xyzw, quat_xyzw_from_matrix
from hpe_core.geometry.transforms import relative_transform


def relative_to_anchor(T_anchor: np.ndarray, T_query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a pair so the anchor is the identity: ``(I [4, 4], T_query inv(T_anchor))``."""
    return np.eye(4), relative_transform(np.asarray(T_query, np.float64), np.asarray(T_anchor, np.float64))


def quaternion_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion [4] (x, y, z, w), w >= 0, of a rotation matrix [3, 3]."""
    return canonical_quat_xyzw(quat_xyzw_from_matrix(np.asarray(R, np.float64)))


def pose_encoding(T: np.ndarray, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """VGGT ``absT_quaR_FoV`` vector [9]: tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w."""
    enc = pose_encoding_from_extrinsics_intrinsics(np.asarray(T, np.float64)[:3, :4], K, (height, width))
    enc[3:7] = canonical_quat_xyzw(enc[3:7])
    return enc


def fov_from_intrinsics(K: np.ndarray, height: int, width: int) -> tuple[float, float]:
    """(fov_h, fov_w) in radians: 2 atan((H/2)/fy), 2 atan((W/2)/fx)."""
    enc = pose_encoding(np.eye(4), K, height, width)
    return float(enc[7]), float(enc[8])
