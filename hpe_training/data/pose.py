"""Pose targets: relative normalisation, quaternions and fields of view.

Poses are 4x4 camera-from-head transforms (OpenCV camera frame, metres). Quaternions are
scalar-last (x, y, z, w) with w >= 0, as in VGGT's ``absT_quaR_FoV`` encoding.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def relative_to_anchor(T_anchor: np.ndarray, T_query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a pair so the anchor is the identity.

    Args:
        T_anchor, T_query: [4, 4] camera-from-head transforms.

    Returns:
        (identity [4, 4], T_rel [4, 4] = T_query inv(T_anchor)).
    """
    T_rel = np.asarray(T_query, np.float64) @ np.linalg.inv(np.asarray(T_anchor, np.float64))
    return np.eye(4), T_rel


def quaternion_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion [4] (x, y, z, w), w >= 0, of a rotation matrix [3, 3]."""
    q = Rotation.from_matrix(np.asarray(R, np.float64)).as_quat()
    return -q if q[3] < 0 else q


def fov_from_intrinsics(K: np.ndarray, height: int, width: int) -> tuple[float, float]:
    """(fov_h, fov_w) in radians: 2 atan((H/2)/fy), 2 atan((W/2)/fx)."""
    return (float(2.0 * np.arctan((height / 2.0) / K[1, 1])), float(2.0 * np.arctan((width / 2.0) / K[0, 0])))


def pose_encoding(T: np.ndarray, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """VGGT ``absT_quaR_FoV`` vector [9]: tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w."""
    return np.concatenate([T[:3, 3], quaternion_xyzw(T[:3, :3]), fov_from_intrinsics(K, height, width)])
