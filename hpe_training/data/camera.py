"""Small pinhole-camera helpers (OpenCV convention: x right, y down, z forward, pixels).

All poses map points from a source frame into the camera frame: X_cam = R X + t.
"""
from __future__ import annotations

import numpy as np


def project_points(K: np.ndarray, R: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Project 3D points with a pinhole camera.

    Args:
        K: [3, 3] intrinsics (pixels).
        R: [3, 3] rotation from the points' frame to the camera frame.
        t: [3] translation (same units as the points).
        points: [N, 3] points.

    Returns:
        [N, 2] pixel coordinates (u, v), OpenCV convention (pixel centres at integers).
    """
    cam = np.asarray(points, np.float64) @ np.asarray(R, np.float64).T + np.asarray(t, np.float64).reshape(1, 3)
    uvw = cam @ np.asarray(K, np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


def to_homogeneous(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[4, 4] transform from a rotation [3, 3] and a translation [3]."""
    m = np.eye(4)
    m[:3, :3] = R
    m[:3, 3] = np.asarray(t, np.float64).reshape(3)
    return m


def head_to_camera(R_w2c: np.ndarray, t_w2c: np.ndarray, R_h2w: np.ndarray,
                   t_h2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compose world-to-camera with head-to-world.

    Returns:
        (R_h2c [3, 3] = R_w2c R_h2w, t_h2c [3] = R_w2c t_h2w + t_w2c).
    """
    R_w2c = np.asarray(R_w2c, np.float64)
    R = R_w2c @ np.asarray(R_h2w, np.float64)
    t = R_w2c @ np.asarray(t_h2w, np.float64).reshape(3) + np.asarray(t_w2c, np.float64).reshape(3)
    return R, t
