"""Rotation representations: round trips, agreement with independent constructions, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpe_core.geometry.rotations import (
    axis_angle_from_matrix,
    canonical_quat_xyzw,
    geodesic_angle_deg,
    geodesic_angle_rad,
    matrix_from_quat_xyzw,
    matrix_from_rot6d,
    project_to_so3,
    quat_wxyz_from_xyzw,
    quat_xyzw_from_matrix,
    quat_xyzw_from_wxyz,
    rot6d_from_matrix,
    rotation_between_vectors,
    rotation_from_axis_angle,
    skew,
    so3_exp,
    so3_log,
)

SETTINGS = settings(max_examples=60, deadline=None)

finite = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
quats = arrays(np.float64, (4,), elements=finite).filter(lambda q: np.linalg.norm(q) > 1e-3)
vec3 = arrays(np.float64, (3,), elements=st.floats(-10, 10, allow_nan=False)).filter(
    lambda v: np.linalg.norm(v) > 1e-3
)


def _is_rotation(R: np.ndarray, tol: float = 1e-12) -> bool:
    eye = np.eye(3)
    return bool(
        np.allclose(np.swapaxes(R, -1, -2) @ R, eye, atol=tol) and np.allclose(np.linalg.det(R), 1.0, atol=tol)
    )


def _quat_mul_xyzw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product written independently of the module (for composition checks)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


@SETTINGS
@given(quats)
def test_quat_matrix_quat_round_trip(q: np.ndarray) -> None:
    R = matrix_from_quat_xyzw(q)
    assert _is_rotation(R)
    q_back = quat_xyzw_from_matrix(R)
    np.testing.assert_allclose(q_back, canonical_quat_xyzw(q), atol=1e-9)
    assert q_back[3] >= -1e-12  # w >= 0 except for the documented half-turn tie-break


@SETTINGS
@given(quats)
def test_matrix_quat_matrix_round_trip(q: np.ndarray) -> None:
    R = matrix_from_quat_xyzw(q)
    np.testing.assert_allclose(matrix_from_quat_xyzw(quat_xyzw_from_matrix(R)), R, atol=1e-12)


@SETTINGS
@given(quats, quats)
def test_quaternion_product_matches_matrix_product(q1: np.ndarray, q2: np.ndarray) -> None:
    q1 = canonical_quat_xyzw(q1)
    q2 = canonical_quat_xyzw(q2)
    np.testing.assert_allclose(
        matrix_from_quat_xyzw(_quat_mul_xyzw(q1, q2)),
        matrix_from_quat_xyzw(q1) @ matrix_from_quat_xyzw(q2),
        atol=1e-12,
    )


def test_quat_matrix_known_values() -> None:
    # 90 deg about +z: q = (0, 0, sin45, cos45); maps x -> y.
    s = np.sqrt(0.5)
    R = matrix_from_quat_xyzw([0.0, 0.0, s, s])
    np.testing.assert_allclose(R @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(R, rotation_from_axis_angle([0, 0, 1], np.pi / 2), atol=1e-15)
    # 180 deg rotations (trace = -1): the robust path must recover the axis.
    for axis in np.eye(3):
        R = rotation_from_axis_angle(axis, np.pi)
        q = quat_xyzw_from_matrix(R)
        np.testing.assert_allclose(np.abs(q[:3]), axis, atol=1e-12)
        assert abs(q[3]) < 1e-12


def test_quat_from_matrix_is_batched() -> None:
    rng = np.random.default_rng(0)
    q = canonical_quat_xyzw(rng.normal(size=(4, 5, 4)))
    R = matrix_from_quat_xyzw(q)
    assert R.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(quat_xyzw_from_matrix(R), q, atol=1e-12)


def test_quat_order_conversions() -> None:
    q_xyzw = np.array([0.1, 0.2, 0.3, 0.9])
    q_wxyz = quat_wxyz_from_xyzw(q_xyzw)
    np.testing.assert_array_equal(q_wxyz, [0.9, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(quat_xyzw_from_wxyz(q_wxyz), q_xyzw)
    batch = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(quat_xyzw_from_wxyz(quat_wxyz_from_xyzw(batch)), batch)


def test_canonical_quat_flips_negative_w_and_normalises() -> None:
    q = canonical_quat_xyzw([[0.0, 0.0, 0.0, -2.0], [0.0, 0.0, 3.0, 4.0]])
    np.testing.assert_allclose(q, [[0, 0, 0, 1.0], [0, 0, 0.6, 0.8]])
    with pytest.raises(ValueError):
        canonical_quat_xyzw([0.0, 0.0, 0.0, 0.0])


@SETTINGS
@given(quats)
def test_rot6d_round_trip(q: np.ndarray) -> None:
    R = matrix_from_quat_xyzw(q)
    d6 = rot6d_from_matrix(R)
    assert d6.shape == (6,)
    np.testing.assert_allclose(d6[:3], R[:, 0])
    np.testing.assert_allclose(d6[3:], R[:, 1])
    np.testing.assert_allclose(matrix_from_rot6d(d6), R, atol=1e-12)


@SETTINGS
@given(arrays(np.float64, (6,), elements=st.floats(-5, 5, allow_nan=False)))
def test_rot6d_gram_schmidt_gives_rotation(d6: np.ndarray) -> None:
    a1, a2 = d6[:3], d6[3:]
    # Only well-conditioned inputs: non-degenerate and not nearly parallel.
    if np.linalg.norm(a1) < 1e-2 or np.linalg.norm(np.cross(a1, a2)) < 1e-2:
        return
    R = matrix_from_rot6d(d6)
    assert _is_rotation(R, 1e-10)
    # First column is the normalised first vector; second lies in span(a1, a2).
    np.testing.assert_allclose(R[:, 0], a1 / np.linalg.norm(a1), atol=1e-12)
    assert np.dot(R[:, 1], a2) > 0
    assert abs(np.dot(np.cross(a1, a2), R[:, 1])) < 1e-9


@SETTINGS
@given(vec3, st.floats(0.0, np.pi, allow_nan=False))
def test_geodesic_angle_recovers_axis_angle(axis: np.ndarray, angle: float) -> None:
    R1 = matrix_from_quat_xyzw([0.3, -0.2, 0.5, 0.7])
    R2 = R1 @ rotation_from_axis_angle(axis, angle)
    assert geodesic_angle_rad(R1, R2) == pytest.approx(angle, abs=1e-7)
    assert geodesic_angle_deg(R2, R1) == pytest.approx(np.degrees(angle), abs=1e-6)


def test_geodesic_angle_small_and_large_precision() -> None:
    # atan2 formulation keeps precision where acos(trace) would lose it.
    eps = 1e-9
    assert geodesic_angle_rad(np.eye(3), rotation_from_axis_angle([1, 1, 0], eps)) == pytest.approx(eps, rel=1e-6)
    assert geodesic_angle_rad(np.eye(3), rotation_from_axis_angle([0, 1, 1], np.pi - eps)) == pytest.approx(
        np.pi - eps, abs=1e-9
    )


@SETTINGS
@given(vec3, st.floats(-np.pi, np.pi, allow_nan=False), vec3)
def test_axis_angle_rotates_about_axis(axis: np.ndarray, angle: float, v: np.ndarray) -> None:
    R = rotation_from_axis_angle(axis, angle)
    assert _is_rotation(R)
    k = axis / np.linalg.norm(axis)
    np.testing.assert_allclose(R @ k, k, atol=1e-12)  # axis is fixed
    # Right-handedness: the component of v perpendicular to k turns by +angle about k.
    vp = v - np.dot(v, k) * k
    if np.linalg.norm(vp) > 1e-3:
        Rvp = R @ vp
        cos = np.dot(vp, Rvp) / np.dot(vp, vp)
        sin = np.dot(np.cross(vp, Rvp), k) / np.dot(vp, vp)
        assert np.arctan2(sin, cos) == pytest.approx(angle, abs=1e-9)


def test_axis_angle_right_handed_known() -> None:
    # +90 deg about +x maps +y to +z (right-hand rule).
    np.testing.assert_allclose(rotation_from_axis_angle([1, 0, 0], np.pi / 2) @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    with pytest.raises(ValueError):
        rotation_from_axis_angle([0, 0, 0], 1.0)


@SETTINGS
@given(arrays(np.float64, (3,), elements=st.floats(-3.0, 3.0, allow_nan=False)))
def test_exp_log_round_trip(rotvec: np.ndarray) -> None:
    if np.linalg.norm(rotvec) >= np.pi - 1e-6:
        return  # log is ambiguous at pi
    R = so3_exp(rotvec)
    assert _is_rotation(R)
    np.testing.assert_allclose(so3_log(R), rotvec, atol=1e-9)
    if np.linalg.norm(rotvec) > 1e-9:
        np.testing.assert_allclose(
            R, rotation_from_axis_angle(rotvec, np.linalg.norm(rotvec)), atol=1e-12
        )
    np.testing.assert_allclose(axis_angle_from_matrix(R), rotvec, atol=1e-9)


def test_exp_of_zero_and_tiny() -> None:
    np.testing.assert_array_equal(so3_exp(np.zeros(3)), np.eye(3))
    v = np.array([1e-8, -2e-8, 3e-8])
    np.testing.assert_allclose(so3_exp(v), np.eye(3) + skew(v), atol=1e-15)
    np.testing.assert_allclose(so3_log(so3_exp(v)), v, atol=1e-15)


@SETTINGS
@given(vec3, vec3)
def test_rotation_between_vectors_maps_a_to_b_minimally(a: np.ndarray, b: np.ndarray) -> None:
    R = rotation_between_vectors(a, b)
    assert _is_rotation(R)
    ah, bh = a / np.linalg.norm(a), b / np.linalg.norm(b)
    np.testing.assert_allclose(R @ ah, bh, atol=1e-9)
    # Minimal: the rotation angle equals the angle between the vectors.
    expected = np.arccos(np.clip(np.dot(ah, bh), -1, 1))
    assert geodesic_angle_rad(np.eye(3), R) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("a", [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0], [1.0, 2.0, 3.0], [1.0, 1e-12, 0]])
def test_rotation_between_vectors_antiparallel_and_parallel(a: list[float]) -> None:
    a = np.asarray(a)
    ah = a / np.linalg.norm(a)
    R = rotation_between_vectors(a, -a)
    assert _is_rotation(R)
    np.testing.assert_allclose(R @ ah, -ah, atol=1e-12)
    assert geodesic_angle_deg(np.eye(3), R) == pytest.approx(180.0, abs=1e-9)
    np.testing.assert_allclose(rotation_between_vectors(a, 3 * a), np.eye(3), atol=1e-12)


def test_skew_is_cross_product() -> None:
    rng = np.random.default_rng(1)
    v, u = rng.normal(size=(2, 7, 3))
    np.testing.assert_allclose(np.einsum("nij,nj->ni", skew(v), u), np.cross(v, u), atol=1e-14)


def test_project_to_so3() -> None:
    rng = np.random.default_rng(2)
    R = so3_exp(rng.normal(size=(10, 3)))
    np.testing.assert_allclose(project_to_so3(R), R, atol=1e-12)
    noisy = R + 1e-3 * rng.normal(size=R.shape)
    P = project_to_so3(noisy)
    assert _is_rotation(P)
    assert np.all(geodesic_angle_deg(P, R) < 0.5)
    # A reflection is projected to a proper rotation (det +1), not kept as det -1.
    assert np.linalg.det(project_to_so3(np.diag([1.0, 1.0, -1.0]))) == pytest.approx(1.0)
