"""VGGT absT_quaR_FoV pose encoding: definition, round trips, batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpe_core.geometry.pose_encoding import (
    POSE_ENCODING_DIM,
    extrinsics_intrinsics_from_pose_encoding,
    pose_encoding_from_extrinsics_intrinsics,
)
from hpe_core.geometry.rotations import (
    canonical_quat_xyzw,
    matrix_from_quat_xyzw,
    quat_xyzw_from_matrix,
    rotation_from_axis_angle,
)

SETTINGS = settings(max_examples=60, deadline=None)

quats = arrays(np.float64, (4,), elements=st.floats(-1, 1, allow_nan=False)).filter(
    lambda q: np.linalg.norm(q) > 1e-3
)
trans = arrays(np.float64, (3,), elements=st.floats(-5, 5, allow_nan=False))
sizes = st.integers(14, 1036)
fovs = st.floats(0.05, 3.0)  # radians, strictly inside (0, pi)


def test_fields_follow_the_definition() -> None:
    H, W = 518, 392
    fx, fy = 700.0, 650.0
    R = rotation_from_axis_angle([0, 1, 0], np.radians(20))
    t = np.array([0.01, -0.02, 0.3])
    E = np.concatenate([R, t[:, None]], axis=1)
    K = np.array([[fx, 0, W / 2], [0, fy, H / 2], [0, 0, 1.0]])
    enc = pose_encoding_from_extrinsics_intrinsics(E, K, (H, W))
    assert enc.shape == (POSE_ENCODING_DIM,)
    np.testing.assert_allclose(enc[:3], t)
    # 20 deg about +y: q = (0, sin10, 0, cos10), scalar last.
    np.testing.assert_allclose(enc[3:7], [0, np.sin(np.radians(10)), 0, np.cos(np.radians(10))], atol=1e-15)
    assert enc[7] == pytest.approx(2 * np.arctan((H / 2) / fy))  # fov_h uses fy and H
    assert enc[8] == pytest.approx(2 * np.arctan((W / 2) / fx))  # fov_w uses fx and W


def test_identity_camera_square_image() -> None:
    # 90 deg field of view on a 518 image: f = 259.
    enc = np.array([0, 0, 0, 0, 0, 0, 1, np.pi / 2, np.pi / 2])
    E, K = extrinsics_intrinsics_from_pose_encoding(enc, (518, 518))
    np.testing.assert_allclose(E, np.eye(3, 4), atol=1e-15)
    np.testing.assert_allclose(K, [[259, 0, 259], [0, 259, 259], [0, 0, 1]])


@SETTINGS
@given(quats, trans, fovs, fovs, sizes, sizes)
def test_encoding_round_trip(q, t, fov_h, fov_w, H, W) -> None:
    enc = np.concatenate([t, canonical_quat_xyzw(q), [fov_h, fov_w]])
    E, K = extrinsics_intrinsics_from_pose_encoding(enc, (H, W))
    assert E.shape == (3, 4) and K.shape == (3, 3)
    np.testing.assert_allclose(K[:2, 2], [W / 2, H / 2])
    assert K[0, 1] == 0 and K[2, 2] == 1
    enc_back = pose_encoding_from_extrinsics_intrinsics(E, K, (H, W))
    np.testing.assert_allclose(enc_back[:3], t, atol=1e-12)
    np.testing.assert_allclose(
        matrix_from_quat_xyzw(enc_back[3:7]), matrix_from_quat_xyzw(q), atol=1e-12
    )
    np.testing.assert_allclose(enc_back[7:], [fov_h, fov_w], rtol=1e-12)


@SETTINGS
@given(quats, trans, st.floats(50, 5000), st.floats(50, 5000), sizes, sizes)
def test_cameras_round_trip(q, t, fx, fy, H, W) -> None:
    R = matrix_from_quat_xyzw(q)
    E = np.concatenate([R, t[:, None]], axis=1)
    K = np.array([[fx, 0, W / 2], [0, fy, H / 2], [0, 0, 1.0]])
    E2, K2 = extrinsics_intrinsics_from_pose_encoding(pose_encoding_from_extrinsics_intrinsics(E, K, (H, W)), (H, W))
    np.testing.assert_allclose(E2, E, atol=1e-12)
    np.testing.assert_allclose(K2, K, rtol=1e-10)


def test_unnormalised_quaternion_is_normalised_on_decode() -> None:
    q = np.array([0.0, 0.0, 0.3, 0.4])  # norm 0.5, as a raw network output may be
    E, _ = extrinsics_intrinsics_from_pose_encoding(np.r_[0, 0, 0, q, 1.0, 1.0], (100, 100))
    np.testing.assert_allclose(E[:, :3], matrix_from_quat_xyzw(q / 0.5), atol=1e-15)
    np.testing.assert_allclose(E[:, :3] @ E[:, :3].T, np.eye(3), atol=1e-14)


def test_batched_and_per_item_image_sizes() -> None:
    rng = np.random.default_rng(3)
    q = canonical_quat_xyzw(rng.normal(size=(2, 3, 4)))
    enc = np.concatenate([rng.normal(size=(2, 3, 3)), q, rng.uniform(0.3, 1.5, size=(2, 3, 2))], axis=-1)
    E, K = extrinsics_intrinsics_from_pose_encoding(enc, (518, 518))
    assert E.shape == (2, 3, 3, 4) and K.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(pose_encoding_from_extrinsics_intrinsics(E, K, (518, 518)), enc, atol=1e-12)
    # Per-item sizes [..., 2] broadcast against the batch.
    hw = np.array([[[518, 518]], [[280, 518]]])  # [2, 1, 2]
    E2, K2 = extrinsics_intrinsics_from_pose_encoding(enc, hw)
    np.testing.assert_allclose(K2[1, :, 1, 2], 140.0)
    np.testing.assert_allclose(K2[0, :, 1, 2], 259.0)
    np.testing.assert_allclose(pose_encoding_from_extrinsics_intrinsics(E2, K2, hw), enc, atol=1e-12)
    # 4x4 extrinsics are accepted on encode.
    E4 = np.broadcast_to(np.eye(4), (2, 3, 4, 4)).copy()
    E4[..., :3, :] = E
    np.testing.assert_allclose(pose_encoding_from_extrinsics_intrinsics(E4, K, (518, 518)), enc, atol=1e-12)
    np.testing.assert_allclose(quat_xyzw_from_matrix(E[..., :3]), q, atol=1e-12)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        extrinsics_intrinsics_from_pose_encoding(np.zeros(8), (10, 10))
    with pytest.raises(ValueError):
        pose_encoding_from_extrinsics_intrinsics(np.zeros((3, 3)), np.eye(3), (10, 10))
    with pytest.raises(ValueError):
        pose_encoding_from_extrinsics_intrinsics(np.eye(3, 4), np.eye(3), (10, 0))
