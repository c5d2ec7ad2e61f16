"""BIWI / FSA-Net / 6DRepNet Euler angles (yaw, pitch, roll) in degrees, and their errors.

The angles of a head rotation ``R`` (``R_cam_from_head``, ``[..., 3, 3]``) are defined through
``R' = R^T``:

    roll  = -atan2(R'[1,0], R'[0,0])
    yaw   = -atan2(-R'[2,0], sqrt(R'[2,1]^2 + R'[2,2]^2))
    pitch =  atan2(R'[2,1], R'[2,2])

Derivation of the inverse. Write the standard Z-Y-X product
``Rz(g) Ry(b) Rx(a)``; its entries are ``[1,0] = sg cb``, ``[0,0] = cg cb``, ``[2,0] = -sb``,
``[2,1] = cb sa``, ``[2,2] = cb ca``. For ``cb > 0`` the formulas above therefore read
``roll = -g``, ``yaw = -b``, ``pitch = a`` when ``R' = Rz(g) Ry(b) Rx(a)``. Hence
``R' = Rz(-roll) Ry(-yaw) Rx(pitch)`` and, transposing,

    R = Rx(-pitch) @ Ry(yaw) @ Rz(roll)

with ``Rx, Ry, Rz`` the right-handed elementary rotations about the camera's x (right),
y (down) and z (forward) axes. This is the exact inverse on the principal range
``yaw in (-90, 90)``, ``pitch, roll in (-180, 180]`` (the test suite checks the round trip).

Sign cheat-sheet (derived from the formulas, checked in the tests): a +30 deg right-handed
rotation about camera +y gives yaw = +30; about camera +x gives pitch = -30; about camera +z
gives roll = +30.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _rx(a: FloatArray) -> FloatArray:
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([i, o, o], -1), np.stack([o, c, -s], -1), np.stack([o, s, c], -1)], -2)


def _ry(a: FloatArray) -> FloatArray:
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, o, s], -1), np.stack([o, i, o], -1), np.stack([-s, o, c], -1)], -2)


def _rz(a: FloatArray) -> FloatArray:
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2)


def yaw_pitch_roll_deg_from_matrix(R: ArrayLike) -> FloatArray:
    """BIWI-convention Euler angles of head rotations.

    Args:
        R: ``[..., 3, 3]`` head rotations ``R_cam_from_head``.

    Returns:
        ``[..., 3]`` ``(yaw, pitch, roll)`` in degrees; yaw in ``[-90, 90]``, pitch and roll
        in ``(-180, 180]``.
    """
    m = np.asarray(R, dtype=np.float64)
    Rp = np.swapaxes(m, -1, -2)
    roll = -np.arctan2(Rp[..., 1, 0], Rp[..., 0, 0])
    yaw = -np.arctan2(-Rp[..., 2, 0], np.sqrt(Rp[..., 2, 1] ** 2 + Rp[..., 2, 2] ** 2))
    pitch = np.arctan2(Rp[..., 2, 1], Rp[..., 2, 2])
    return np.degrees(np.stack([yaw, pitch, roll], axis=-1))


def matrix_from_yaw_pitch_roll_deg(yaw: ArrayLike, pitch: ArrayLike, roll: ArrayLike) -> FloatArray:
    """Head rotation from BIWI-convention Euler angles: ``R = Rx(-pitch) Ry(yaw) Rz(roll)``.

    Args:
        yaw, pitch, roll: ``[...]`` angles in degrees (broadcastable).

    Returns:
        ``[..., 3, 3]`` rotations ``R_cam_from_head``; exact inverse of
        ``yaw_pitch_roll_deg_from_matrix`` for yaw in ``(-90, 90)``.
    """
    y, p, r = np.broadcast_arrays(
        np.radians(np.asarray(yaw, dtype=np.float64)),
        np.radians(np.asarray(pitch, dtype=np.float64)),
        np.radians(np.asarray(roll, dtype=np.float64)),
    )
    return _rx(-p) @ _ry(y) @ _rz(r)


def signed_angle_diff_deg(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Shortest signed difference ``a - b`` on the circle, in degrees, in ``[-180, 180)``."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.mod(d + 180.0, 360.0) - 180.0


def angle_error_deg(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Absolute angular error with wrap at 360, in degrees, in ``[0, 180]`` (179 vs -179 -> 2)."""
    return np.abs(signed_angle_diff_deg(a, b))


def mae_yaw_pitch_roll(pred_R: ArrayLike, true_R: ArrayLike) -> dict[str, float]:
    """Mean absolute Euler errors (BIWI protocol, wrapped at 360) over a set of rotations.

    Args:
        pred_R: ``[N, 3, 3]`` (or ``[..., 3, 3]``) predicted head rotations.
        true_R: same shape, ground-truth head rotations.

    Returns:
        ``{"yaw", "pitch", "roll", "mae"}`` in degrees; ``mae`` is the mean of the three.
    """
    p = yaw_pitch_roll_deg_from_matrix(pred_R).reshape(-1, 3)
    t = yaw_pitch_roll_deg_from_matrix(true_R).reshape(-1, 3)
    if p.shape != t.shape or p.shape[0] == 0:
        raise ValueError(f"mae_yaw_pitch_roll: shapes {p.shape} vs {t.shape}")
    err = angle_error_deg(p, t).mean(axis=0)
    yaw, pitch, roll = (float(e) for e in err)
    return {"yaw": yaw, "pitch": pitch, "roll": roll, "mae": (yaw + pitch + roll) / 3.0}
