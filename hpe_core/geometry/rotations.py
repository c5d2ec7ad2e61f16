"""Rotation representations on SO(3) (numpy, float64, leading batch dims ``...``).

Conventions
-----------
* Rotation matrices are ``[..., 3, 3]`` and act on column vectors: ``p_b = R_b_from_a @ p_a``.
* Quaternions are Hamilton unit quaternions. ``xyzw`` (scalar last) is the order used by
  VGGT's pose encoding and ROS ``geometry_msgs/Quaternion``; ``wxyz`` (scalar first) is the
  order of transforms3d.
* The 6D representation (Zhou et al., CVPR 2019) is the first two columns of the matrix,
  flattened as ``[r00, r10, r20, r01, r11, r21]`` (column 0 then column 1), shape ``[..., 6]``.
* Angles are in radians unless a name ends in ``_deg``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

_EPS = 1e-12


def _as_float(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def canonical_quat_xyzw(q_xyzw: ArrayLike) -> FloatArray:
    """Normalise quaternions to unit length with a non-negative scalar part.

    ``q`` and ``-q`` describe the same rotation; this picks the one with ``qw >= 0``.
    For half-turns (``|qw| <= 1e-12``) the tie is broken by making the first component of
    ``(x, y, z)`` whose magnitude exceeds ``1e-12`` positive.

    Args:
        q_xyzw: ``[..., 4]`` quaternions ``(x, y, z, w)``, any non-zero norm.

    Returns:
        ``[..., 4]`` unit quaternions ``(x, y, z, w)`` with ``w >= 0`` (``w >= -1e-12`` for
        half-turns, where the tie-break above decides).
    """
    q = _as_float(q_xyzw)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < _EPS):
        raise ValueError("canonical_quat_xyzw: zero-norm quaternion")
    q = q / norm
    # Deciding component: w, else the first of x, y, z that is clearly non-zero.
    order = q[..., [3, 0, 1, 2]]
    first = np.argmax(np.abs(order) > _EPS, axis=-1)
    deciding = np.take_along_axis(order, first[..., None], axis=-1)
    return q * np.where(deciding < 0.0, -1.0, 1.0)


def quat_wxyz_from_xyzw(q_xyzw: ArrayLike) -> FloatArray:
    """Reorder ``[..., 4]`` quaternions from ``(x, y, z, w)`` to ``(w, x, y, z)``."""
    q = _as_float(q_xyzw)
    return np.concatenate([q[..., 3:4], q[..., 0:3]], axis=-1)


def quat_xyzw_from_wxyz(q_wxyz: ArrayLike) -> FloatArray:
    """Reorder ``[..., 4]`` quaternions from ``(w, x, y, z)`` to ``(x, y, z, w)``."""
    q = _as_float(q_wxyz)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)


def matrix_from_quat_xyzw(q_xyzw: ArrayLike) -> FloatArray:
    """Rotation matrices from quaternions.

    Args:
        q_xyzw: ``[..., 4]`` quaternions ``(x, y, z, w)``; normalised here, so any non-zero
            norm is accepted.

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    q = _as_float(q_xyzw)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm < _EPS):
        raise ValueError("matrix_from_quat_xyzw: zero-norm quaternion")
    q = q / norm
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = [
        [1.0 - 2.0 * (yy + zz), 2.0 * (xy - wz), 2.0 * (xz + wy)],
        [2.0 * (xy + wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz - wx)],
        [2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (xx + yy)],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def quat_xyzw_from_matrix(R: ArrayLike) -> FloatArray:
    """Unit quaternions from rotation matrices (numerically robust, Shepperd's method).

    For each matrix the four candidate quaternions are formed from the largest of
    ``(1 + tr, 1 + 2 R00 - tr, 1 + 2 R11 - tr, 1 + 2 R22 - tr)``, which avoids dividing by a
    small number near 180 degree rotations.

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 4]`` unit quaternions ``(x, y, z, w)`` with ``w >= 0`` (``w >= -1e-12`` for
        half-turns, see ``canonical_quat_xyzw``).
    """
    m = _as_float(R)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"quat_xyzw_from_matrix: expected [...,3,3], got {m.shape}")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    # 4*w^2, 4*x^2, 4*y^2, 4*z^2
    d = np.stack([1.0 + tr, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], -1)
    # Candidate (x, y, z, w) scaled by 4*component, one per pivot.
    cand = np.stack(
        [
            np.stack([m21 - m12, m02 - m20, m10 - m01, d[..., 0]], -1),
            np.stack([d[..., 1], m01 + m10, m02 + m20, m21 - m12], -1),
            np.stack([m01 + m10, d[..., 2], m12 + m21, m02 - m20], -1),
            np.stack([m02 + m20, m12 + m21, d[..., 3], m10 - m01], -1),
        ],
        axis=-2,
    )  # [..., 4 candidates, 4]
    best = np.argmax(d, axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    return canonical_quat_xyzw(q)


def rot6d_from_matrix(R: ArrayLike) -> FloatArray:
    """Zhou et al. 6D representation: the first two columns of ``R``.

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 6]`` = ``[R[:,0], R[:,1]]`` (column 0 then column 1).
    """
    m = _as_float(R)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def matrix_from_rot6d(d6: ArrayLike) -> FloatArray:
    """Rotation matrices from the 6D representation by Gram-Schmidt.

    Args:
        d6: ``[..., 6]`` two (not necessarily orthonormal) 3-vectors ``[a1, a2]``.

    Returns:
        ``[..., 3, 3]`` rotation matrix with columns ``b1, b2, b1 x b2`` where
        ``b1 = a1/|a1|`` and ``b2`` is ``a2`` orthogonalised against ``b1`` and normalised.
    """
    d = _as_float(d6)
    a1, a2 = d[..., 0:3], d[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), _EPS)
    a2p = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2p / np.maximum(np.linalg.norm(a2p, axis=-1, keepdims=True), _EPS)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def geodesic_angle_rad(R1: ArrayLike, R2: ArrayLike) -> FloatArray:
    """Geodesic distance on SO(3): the angle of ``R1^T R2``, in radians, in ``[0, pi]``.

    Computed with ``atan2(|skew|, trace-part)`` which stays accurate near 0 and pi.

    Args:
        R1, R2: ``[..., 3, 3]`` rotation matrices (broadcastable).

    Returns:
        ``[...]`` angles in radians.
    """
    a = _as_float(R1)
    b = _as_float(R2)
    M = np.swapaxes(a, -1, -2) @ b
    cos_part = (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1.0) * 0.5
    v = np.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1)
    sin_part = 0.5 * np.linalg.norm(v, axis=-1)
    return np.arctan2(sin_part, cos_part)


def geodesic_angle_deg(R1: ArrayLike, R2: ArrayLike) -> FloatArray:
    """Geodesic distance between rotations in degrees, in ``[0, 180]``; see geodesic_angle_rad."""
    return np.degrees(geodesic_angle_rad(R1, R2))


def rotation_from_axis_angle(axis: ArrayLike, angle_rad: ArrayLike) -> FloatArray:
    """Rodrigues' formula: rotation by ``angle_rad`` (right-handed) about ``axis``.

    Args:
        axis: ``[..., 3]`` rotation axes (normalised here; must be non-zero).
        angle_rad: ``[...]`` angles in radians (broadcastable against ``axis[..., 0]``).

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    k = _as_float(axis)
    n = np.linalg.norm(k, axis=-1, keepdims=True)
    if np.any(n < _EPS):
        raise ValueError("rotation_from_axis_angle: zero-length axis")
    k = k / n
    th = _as_float(angle_rad)
    k, th = np.broadcast_arrays(k, th[..., None])
    th = th[..., 0]
    K = _skew(k)
    s = np.sin(th)[..., None, None]
    c = np.cos(th)[..., None, None]
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + s * K + (1.0 - c) * (K @ K)


def axis_angle_from_matrix(R: ArrayLike) -> FloatArray:
    """Rotation vectors (axis times angle in radians, angle in ``[0, pi]``) from matrices.

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 3]`` rotation vectors ``axis * angle``.
    """
    q = quat_xyzw_from_matrix(R)  # w >= 0 so angle in [0, pi]
    v = q[..., 0:3]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., 3:4])
    # angle / s -> 2 as s -> 0 (small-angle limit).
    scale = np.where(s > 1e-9, angle / np.maximum(s, 1e-300), 2.0)
    return v * scale


def rotation_between_vectors(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Minimal rotation taking direction ``a`` to direction ``b`` (``R @ a_hat = b_hat``).

    For antiparallel inputs the rotation is by pi about an axis perpendicular to ``a``
    (chosen deterministically from the coordinate axis least aligned with ``a``).

    Args:
        a, b: ``[..., 3]`` non-zero vectors (normalised here; broadcastable).

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    a = _as_float(a)
    b = _as_float(b)
    a, b = np.broadcast_arrays(a, b)
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(na < _EPS) or np.any(nb < _EPS):
        raise ValueError("rotation_between_vectors: zero-length vector")
    a = a / na
    b = b / nb
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.sum(a * b, axis=-1)
    angle = np.arctan2(sin, cos)
    # Fallback axis perpendicular to a, for (anti)parallel inputs.
    helper_idx = np.argmin(np.abs(a), axis=-1)
    helper = np.eye(3)[helper_idx]
    perp = np.cross(a, helper)
    perp = perp / np.linalg.norm(perp, axis=-1, keepdims=True)
    use_perp = (sin < 1e-9)[..., None]
    axis = np.where(use_perp, perp, axis / np.maximum(sin, 1e-300)[..., None])
    return rotation_from_axis_angle(axis, angle)


def _skew(v: FloatArray) -> FloatArray:
    """``[..., 3]`` -> ``[..., 3, 3]`` cross-product matrices ``[v]_x``."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    o = np.zeros_like(x)
    return np.stack(
        [np.stack([o, -z, y], -1), np.stack([z, o, -x], -1), np.stack([-y, x, o], -1)], -2
    )


def skew(v: ArrayLike) -> FloatArray:
    """Cross-product matrices: ``skew(v) @ u == cross(v, u)``; ``[..., 3]`` -> ``[..., 3, 3]``."""
    return _skew(_as_float(v))


def project_to_so3(M: ArrayLike) -> FloatArray:
    """Closest rotation in the Frobenius norm to ``M`` (SVD, determinant fixed to +1).

    Args:
        M: ``[..., 3, 3]`` arbitrary matrices.

    Returns:
        ``[..., 3, 3]`` rotation matrices ``U diag(1, 1, det(U V^T)) V^T``.
    """
    m = _as_float(M)
    U, _, Vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(U @ Vt))
    d = np.where(d == 0, 1.0, d)
    D = np.broadcast_to(np.eye(3), m.shape).copy()
    D[..., 2, 2] = d
    return U @ D @ Vt


def so3_exp(rotvec: ArrayLike) -> FloatArray:
    """Exponential map: rotation vectors (axis * angle, radians) ``[..., 3]`` -> ``[..., 3, 3]``.

    Unlike ``rotation_from_axis_angle`` this accepts zero vectors (giving the identity),
    using the Taylor expansions of ``sin(x)/x`` and ``(1 - cos x)/x^2`` near zero.
    """
    v = _as_float(rotvec)
    th = np.linalg.norm(v, axis=-1)
    small = th < 1e-6
    th_safe = np.where(small, 1.0, th)
    a = np.where(small, 1.0 - th**2 / 6.0, np.sin(th_safe) / th_safe)
    b = np.where(small, 0.5 - th**2 / 24.0, (1.0 - np.cos(th_safe)) / th_safe**2)
    K = _skew(v)
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def so3_log(R: ArrayLike) -> FloatArray:
    """Logarithm map: ``[..., 3, 3]`` rotations -> ``[..., 3]`` rotation vectors (angle in [0, pi])."""
    return axis_angle_from_matrix(R)
