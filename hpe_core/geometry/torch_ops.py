"""Torch counterparts of the geometry core (batched over leading dims, differentiable).

Same conventions as the numpy modules: quaternions ``(x, y, z, w)``; extrinsics OpenCV
camera-from-world ``[..., 3, 4]``; VGGT ``absT_quaR_FoV`` pose encoding
``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` (fov in radians); image size ``(H, W)`` pixels.
Outputs keep the input dtype and device. The test suite checks agreement with the numpy
implementations.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

ImageHW = Union[Sequence[float], Tensor]


def canonical_quat_xyzw(q_xyzw: Tensor) -> Tensor:
    """Unit quaternions ``[..., 4]`` ``(x, y, z, w)`` with ``w >= 0`` (``q`` and ``-q`` are one rotation).

    Same tie-break as the numpy version for half-turns (``|w| <= 1e-12``): the first of
    ``x, y, z`` with magnitude above ``1e-12`` is made positive.
    """
    q = q_xyzw / q_xyzw.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    order = q[..., [3, 0, 1, 2]]
    first = (order.abs() > 1e-12).to(torch.int8).argmax(dim=-1, keepdim=True)
    deciding = torch.gather(order, -1, first)
    return torch.where(deciding < 0, -q, q)


def matrix_from_quat_xyzw(q_xyzw: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` from quaternions ``[..., 4]`` ``(x, y, z, w)`` (normalised here)."""
    q = q_xyzw / q_xyzw.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z, w = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    out = torch.stack(
        [
            1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
            2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
            2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
        ],
        dim=-1,
    )
    return out.reshape(q.shape[:-1] + (3, 3))


def quat_xyzw_from_matrix(R: Tensor) -> Tensor:
    """Quaternions ``[..., 4]`` ``(x, y, z, w)``, ``w >= 0``, from rotations ``[..., 3, 3]``.

    Shepperd's method: of the four candidate quaternions the one built from the largest of
    ``4w^2, 4x^2, 4y^2, 4z^2`` is chosen (no division by a small number), then normalised.
    Differentiable almost everywhere (the choice is piecewise constant).
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"quat_xyzw_from_matrix: expected [...,3,3], got {tuple(R.shape)}")
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    tr = m00 + m11 + m22
    d = torch.stack([1 + tr, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    cand = torch.stack(
        [
            torch.stack([m21 - m12, m02 - m20, m10 - m01, d[..., 0]], -1),
            torch.stack([d[..., 1], m01 + m10, m02 + m20, m21 - m12], -1),
            torch.stack([m01 + m10, d[..., 2], m12 + m21, m02 - m20], -1),
            torch.stack([m02 + m20, m12 + m21, d[..., 3], m10 - m01], -1),
        ],
        dim=-2,
    )  # [..., 4, 4]
    best = d.argmax(dim=-1)
    idx = best[..., None, None].expand(best.shape + (1, 4))
    q = torch.gather(cand, -2, idx).squeeze(-2)
    return canonical_quat_xyzw(q)


def matrix_from_rot6d(d6: Tensor) -> Tensor:
    """Rotations ``[..., 3, 3]`` from Zhou et al. 6D vectors ``[..., 6]`` (Gram-Schmidt, columns b1, b2, b3)."""
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rot6d_from_matrix(R: Tensor) -> Tensor:
    """6D vectors ``[..., 6]`` = first two columns of ``R [..., 3, 3]`` (column 0 then 1)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def geodesic_angle_rad(R1: Tensor, R2: Tensor, eps: float = 1e-7) -> Tensor:
    """Geodesic angle ``[...]`` (radians) between rotations ``[..., 3, 3]``.

    Uses ``acos`` of the clamped trace term (clamped to ``[-1 + eps, 1 - eps]`` so the
    gradient stays finite; the value is therefore at least ``~sqrt(2 eps)``).
    """
    M = R1.transpose(-1, -2) @ R2
    cos = (M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.acos(cos.clamp(-1 + eps, 1 - eps))


def invert_transform(T: Tensor) -> Tensor:
    """Inverse of rigid transforms ``[..., 4, 4]``: ``[R^T, -R^T t]``."""
    R, t = T[..., :3, :3], T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    top = torch.cat([Rt, -Rt @ t], dim=-1)
    bottom = torch.zeros_like(T[..., 3:, :])
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def relative_transform(T_q: Tensor, T_a: Tensor) -> Tensor:
    """``T_rel = T_q @ inv(T_a)`` for ``[..., 4, 4]`` head poses (camera-from-head)."""
    return T_q @ invert_transform(T_a)


def _hw(image_hw: ImageHW, like: Tensor) -> tuple[Tensor, Tensor]:
    hw = torch.as_tensor(image_hw, dtype=like.dtype, device=like.device)
    if hw.shape[-1:] != (2,):
        raise ValueError(f"image_hw must be (H, W) or [..., 2], got {tuple(hw.shape)}")
    return hw[..., 0], hw[..., 1]


def pose_encoding_from_extrinsics_intrinsics(
    extrinsics: Tensor, intrinsics: Tensor, image_hw: ImageHW
) -> Tensor:
    """VGGT ``absT_quaR_FoV`` ``[..., 9]`` from extrinsics ``[..., 3, 4]`` and intrinsics ``[..., 3, 3]``.

    ``fov_h = 2 atan((H/2)/fy)``, ``fov_w = 2 atan((W/2)/fx)`` in radians; quaternion ``w >= 0``.
    """
    H, W = _hw(image_hw, extrinsics)
    t = extrinsics[..., :3, 3]
    q = quat_xyzw_from_matrix(extrinsics[..., :3, :3])
    fov_h = 2 * torch.atan((H / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((W / 2) / intrinsics[..., 0, 0])
    batch = torch.broadcast_shapes(t.shape[:-1], fov_h.shape, fov_w.shape)
    return torch.cat(
        [
            t.expand(batch + (3,)),
            q.expand(batch + (4,)),
            fov_h.expand(batch)[..., None],
            fov_w.expand(batch)[..., None],
        ],
        dim=-1,
    )


def extrinsics_intrinsics_from_pose_encoding(pose_enc: Tensor, image_hw: ImageHW) -> tuple[Tensor, Tensor]:
    """Extrinsics ``[..., 3, 4]`` and intrinsics ``[..., 3, 3]`` from ``absT_quaR_FoV`` ``[..., 9]``.

    ``fy = (H/2)/tan(fov_h/2)``, ``fx = (W/2)/tan(fov_w/2)``, principal point ``(W/2, H/2)``.
    """
    if pose_enc.shape[-1] != 9:
        raise ValueError(f"pose_enc must be [..., 9], got {tuple(pose_enc.shape)}")
    H, W = _hw(image_hw, pose_enc)
    R = matrix_from_quat_xyzw(pose_enc[..., 3:7])
    E = torch.cat([R, pose_enc[..., 0:3, None]], dim=-1)
    fy = (H / 2) / torch.tan(pose_enc[..., 7] / 2)
    fx = (W / 2) / torch.tan(pose_enc[..., 8] / 2)
    batch = torch.broadcast_shapes(pose_enc.shape[:-1], fx.shape, fy.shape)
    fx, fy = fx.expand(batch), fy.expand(batch)
    zero = torch.zeros_like(fx)
    one = torch.ones_like(fx)
    cx = (W / 2).expand(batch)
    cy = (H / 2).expand(batch)
    K = torch.stack([fx, zero, cx, zero, fy, cy, zero, zero, one], dim=-1).reshape(batch + (3, 3))
    return E.expand(batch + (3, 4)), K
