"""Rigid transforms in SE(3) as 4x4 homogeneous matrices (numpy, float64, batch dims ``...``).

Naming: ``T_b_from_a`` maps points expressed in frame ``a`` to frame ``b``:
``p_b = R @ p_a + t``. A head pose is ``T_cam_from_head`` in the camera optical frame
(OpenCV: x right, y down, z forward), translation in metres.

Relative head pose of a query w.r.t. an anchor (VGGT-HPE):
``T_rel = T_q @ inv(T_a)`` and back ``T_q = T_rel @ T_a``. With the anchor as VGGT's
frame 0 (world), the query's predicted camera-from-world extrinsic *is* ``T_rel``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def make_transform(R: ArrayLike, t: ArrayLike) -> FloatArray:
    """Assemble homogeneous transforms.

    Args:
        R: ``[..., 3, 3]`` rotations.
        t: ``[..., 3]`` translations (broadcastable against ``R``'s batch dims).

    Returns:
        ``[..., 4, 4]`` matrices ``[[R, t], [0, 0, 0, 1]]``.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    batch = np.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = np.zeros(batch + (4, 4), dtype=np.float64)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def split_transform(T: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Split ``[..., 4, 4]`` (or ``[..., 3, 4]``) transforms into ``(R [...,3,3], t [...,3])``."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape[-2:] not in ((4, 4), (3, 4)):
        raise ValueError(f"split_transform: expected [...,4,4] or [...,3,4], got {T.shape}")
    return T[..., :3, :3].copy(), T[..., :3, 3].copy()


def invert_transform(T: ArrayLike) -> FloatArray:
    """Closed-form inverse of rigid transforms: ``[R^T, -R^T t]``.

    Args:
        T: ``[..., 4, 4]`` rigid transforms ``T_b_from_a``.

    Returns:
        ``[..., 4, 4]`` ``T_a_from_b``.
    """
    R, t = split_transform(T)
    Rt = np.swapaxes(R, -1, -2)
    return make_transform(Rt, -np.einsum("...ij,...j->...i", Rt, t))


def compose_transforms(T_c_from_b: ArrayLike, T_b_from_a: ArrayLike) -> FloatArray:
    """Chain transforms: ``T_c_from_a = T_c_from_b @ T_b_from_a``; ``[..., 4, 4]`` each."""
    return np.asarray(T_c_from_b, dtype=np.float64) @ np.asarray(T_b_from_a, dtype=np.float64)


def relative_transform(T_q: ArrayLike, T_a: ArrayLike) -> FloatArray:
    """Relative pose of a query w.r.t. an anchor: ``T_rel = T_q @ inv(T_a)``.

    Args:
        T_q: ``[..., 4, 4]`` query head pose ``T_cam_from_head`` (query image).
        T_a: ``[..., 4, 4]`` anchor head pose ``T_cam_from_head`` (anchor image).

    Returns:
        ``[..., 4, 4]`` ``T_rel``; the identity when ``T_q == T_a``.
    """
    return compose_transforms(T_q, invert_transform(T_a))


def apply_relative(T_rel: ArrayLike, T_a: ArrayLike) -> FloatArray:
    """Recover the query pose from a relative pose and the anchor: ``T_q = T_rel @ T_a``."""
    return compose_transforms(T_rel, T_a)


def transform_points(T: ArrayLike, points: ArrayLike) -> FloatArray:
    """Apply transforms to points.

    Args:
        T: ``[..., 4, 4]`` (or ``[..., 3, 4]``) transforms ``T_b_from_a``.
        points: ``[..., N, 3]`` points in frame ``a``; ``T``'s batch dims broadcast against
            ``points``' batch dims (everything but the last two axes).

    Returns:
        ``[..., N, 3]`` points in frame ``b``.
    """
    R, t = split_transform(T)
    p = np.asarray(points, dtype=np.float64)
    return p @ np.swapaxes(R, -1, -2) + t[..., None, :]
