"""Torch geometry ops agree with the numpy reference and are differentiable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpe_core.geometry import pose_encoding as np_pe
from hpe_core.geometry import rotations as np_rot
from hpe_core.geometry import torch_ops as tops
from hpe_core.geometry import transforms as np_tf

SETTINGS = settings(max_examples=40, deadline=None)

quat_batches = arrays(np.float64, (5, 4), elements=st.floats(-1, 1, allow_nan=False)).filter(
    lambda q: bool(np.all(np.linalg.norm(q, axis=-1) > 1e-3))
)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


@SETTINGS
@given(quat_batches)
def test_quaternion_conversions_match_numpy(q: np.ndarray) -> None:
    R_np = np_rot.matrix_from_quat_xyzw(q)
    R_t = tops.matrix_from_quat_xyzw(_t(q))
    np.testing.assert_allclose(R_t.numpy(), R_np, atol=1e-14)
    np.testing.assert_allclose(tops.quat_xyzw_from_matrix(R_t).numpy(), np_rot.quat_xyzw_from_matrix(R_np), atol=1e-12)
    np.testing.assert_allclose(tops.canonical_quat_xyzw(_t(q)).numpy(), np_rot.canonical_quat_xyzw(q), atol=1e-14)


def test_half_turn_tie_break_matches_numpy() -> None:
    q = np.array([[-1.0, 0, 0, 0], [0, -0.6, 0.8, 0], [0.0, 0, -1, 0]])
    np.testing.assert_array_equal(tops.canonical_quat_xyzw(_t(q)).numpy(), np_rot.canonical_quat_xyzw(q))
    R = np_rot.matrix_from_quat_xyzw(q)
    np.testing.assert_allclose(tops.quat_xyzw_from_matrix(_t(R)).numpy(), np_rot.quat_xyzw_from_matrix(R), atol=1e-15)


@SETTINGS
@given(quat_batches)
def test_rot6d_and_geodesic_match_numpy(q: np.ndarray) -> None:
    R = np_rot.matrix_from_quat_xyzw(q)
    d6 = np_rot.rot6d_from_matrix(R)
    np.testing.assert_allclose(tops.rot6d_from_matrix(_t(R)).numpy(), d6)
    noisy = d6 + 0.05 * np.sin(np.arange(30.0)).reshape(5, 6)
    np.testing.assert_allclose(tops.matrix_from_rot6d(_t(noisy)).numpy(), np_rot.matrix_from_rot6d(noisy), atol=1e-12)
    R2 = R[::-1].copy()
    ang_np = np_rot.geodesic_angle_rad(R, R2)
    ang_t = tops.geodesic_angle_rad(_t(R), _t(R2), eps=1e-12).numpy()
    # acos loses precision near 0 and pi; the numpy atan2 form is the reference.
    np.testing.assert_allclose(ang_t, ang_np, atol=2e-6)


@SETTINGS
@given(quat_batches, quat_batches)
def test_relative_transform_matches_numpy(q1: np.ndarray, q2: np.ndarray) -> None:
    t1 = np.cumsum(q1[:, :3], axis=0)
    t2 = q2[:, 1:]
    Tq = np_tf.make_transform(np_rot.matrix_from_quat_xyzw(q1), t1)
    Ta = np_tf.make_transform(np_rot.matrix_from_quat_xyzw(q2), t2)
    np.testing.assert_allclose(tops.invert_transform(_t(Ta)).numpy(), np_tf.invert_transform(Ta), atol=1e-13)
    np.testing.assert_allclose(
        tops.relative_transform(_t(Tq), _t(Ta)).numpy(), np_tf.relative_transform(Tq, Ta), atol=1e-12
    )


@SETTINGS
@given(
    quat_batches,
    arrays(np.float64, (5, 3), elements=st.floats(-3, 3, allow_nan=False)),
    arrays(np.float64, (5, 2), elements=st.floats(0.1, 2.8)),
    st.integers(14, 1036),
    st.integers(14, 1036),
)
def test_pose_encoding_matches_numpy(q: np.ndarray, t: np.ndarray, fov: np.ndarray, H: int, W: int) -> None:
    enc = np.concatenate([t, np_rot.canonical_quat_xyzw(q), fov], axis=-1)
    E_np, K_np = np_pe.extrinsics_intrinsics_from_pose_encoding(enc, (H, W))
    E_t, K_t = tops.extrinsics_intrinsics_from_pose_encoding(_t(enc), (H, W))
    np.testing.assert_allclose(E_t.numpy(), E_np, atol=1e-14)
    np.testing.assert_allclose(K_t.numpy(), K_np, rtol=1e-13)
    enc_t = tops.pose_encoding_from_extrinsics_intrinsics(E_t, K_t, (H, W)).numpy()
    np.testing.assert_allclose(enc_t, np_pe.pose_encoding_from_extrinsics_intrinsics(E_np, K_np, (H, W)), atol=1e-12)
    np.testing.assert_allclose(enc_t, enc, atol=1e-12)


def test_pose_encoding_batched_shapes_float32() -> None:
    enc = torch.zeros(2, 2, 9)
    enc[..., 6] = 1.0
    enc[..., 7:] = 1.0
    E, K = tops.extrinsics_intrinsics_from_pose_encoding(enc, (518, 518))
    assert E.shape == (2, 2, 3, 4) and K.shape == (2, 2, 3, 3)
    assert E.dtype == torch.float32 and K.dtype == torch.float32
    back = tops.pose_encoding_from_extrinsics_intrinsics(E, K, torch.tensor([518.0, 518.0]))
    torch.testing.assert_close(back, enc)
    with pytest.raises(ValueError):
        tops.extrinsics_intrinsics_from_pose_encoding(torch.zeros(3, 8), (10, 10))


def test_gradients_are_finite_and_correct() -> None:
    torch.manual_seed(0)
    q = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tops.matrix_from_quat_xyzw, (q,))
    R = tops.matrix_from_quat_xyzw(torch.randn(6, 4, dtype=torch.float64)).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(tops.quat_xyzw_from_matrix, (R,))
    d6 = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tops.matrix_from_rot6d, (d6,))
    enc = torch.cat(
        [torch.randn(6, 3), torch.nn.functional.normalize(torch.randn(6, 4), dim=-1), torch.rand(6, 2) + 0.5], -1
    ).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: tops.extrinsics_intrinsics_from_pose_encoding(e, (518, 392)), (enc,))
    # Geodesic angle of identical rotations: gradient stays finite thanks to the clamp.
    R1 = tops.matrix_from_quat_xyzw(q)
    ang = tops.geodesic_angle_rad(R1, R1.detach()).sum()
    ang.backward()
    assert torch.isfinite(q.grad).all()
