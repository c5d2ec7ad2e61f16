"""BIWI / 6DRepNet Euler convention: fixed signs, exact inverse, wrap-around errors, MAE."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpe_core.geometry.euler import (
    angle_error_deg,
    mae_yaw_pitch_roll,
    matrix_from_yaw_pitch_roll_deg,
    signed_angle_diff_deg,
    yaw_pitch_roll_deg_from_matrix,
)
from hpe_core.geometry.rotations import geodesic_angle_deg, matrix_from_quat_xyzw, rotation_from_axis_angle

SETTINGS = settings(max_examples=80, deadline=None)


def _reference_biwi(R: np.ndarray) -> tuple[float, float, float]:
    """The published formula, entry by entry, for one matrix (independent of the module)."""
    Rp = R.T
    roll = -np.arctan2(Rp[1][0], Rp[0][0]) * 180 / np.pi
    yaw = -np.arctan2(-Rp[2][0], np.sqrt(Rp[2][1] ** 2 + Rp[2][2] ** 2)) * 180 / np.pi
    pitch = np.arctan2(Rp[2][1], Rp[2][2]) * 180 / np.pi
    return yaw, pitch, roll


# Worked from the formula with R' = R^T:
# * R = Ry(+30) (right-handed about camera +y, which points down): R'[2,0] = sin30,
#   R'[2,1] = 0, R'[2,2] = cos30 -> yaw = -atan2(-sin30, cos30) = +30, pitch = atan2(0, cos30) = 0,
#   roll = -atan2(0, cos30) = 0.
# * R = Rx(+30) (about camera +x, right): R'[2,1] = -sin30, R'[2,2] = cos30 -> pitch = -30.
# * R = Rz(+30) (about camera +z, forward): R'[1,0] = -sin30, R'[0,0] = cos30 -> roll = +30.
@pytest.mark.parametrize(
    "axis, expected",
    [
        ([0, 1, 0], (30.0, 0.0, 0.0)),
        ([1, 0, 0], (0.0, -30.0, 0.0)),
        ([0, 0, 1], (0.0, 0.0, 30.0)),
        ([0, -1, 0], (-30.0, 0.0, 0.0)),
    ],
)
def test_fixed_single_axis_rotations(axis: list[int], expected: tuple[float, float, float]) -> None:
    R = rotation_from_axis_angle(axis, np.radians(30.0))
    ypr = yaw_pitch_roll_deg_from_matrix(R)
    np.testing.assert_allclose(ypr, expected, atol=1e-12)
    np.testing.assert_allclose(ypr, _reference_biwi(R), atol=1e-12)
    np.testing.assert_allclose(matrix_from_yaw_pitch_roll_deg(*expected), R, atol=1e-15)


def test_identity_is_zero() -> None:
    np.testing.assert_allclose(yaw_pitch_roll_deg_from_matrix(np.eye(3)), 0.0, atol=0)


@SETTINGS
@given(
    st.floats(-89.9, 89.9, allow_nan=False),
    st.floats(-179.9, 179.9, allow_nan=False),
    st.floats(-179.9, 179.9, allow_nan=False),
)
def test_round_trip_on_principal_range(yaw: float, pitch: float, roll: float) -> None:
    R = matrix_from_yaw_pitch_roll_deg(yaw, pitch, roll)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-14)
    ypr = yaw_pitch_roll_deg_from_matrix(R)
    np.testing.assert_allclose(ypr, [yaw, pitch, roll], atol=1e-8)
    np.testing.assert_allclose(ypr, _reference_biwi(R), atol=1e-10)


@SETTINGS
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 1e-2))
def test_matrix_euler_matrix_round_trip(q: list[float]) -> None:
    R = matrix_from_quat_xyzw(q)
    ypr = yaw_pitch_roll_deg_from_matrix(R)
    if abs(ypr[0]) > 89.0:  # gimbal lock: angles are not unique there
        return
    assert geodesic_angle_deg(matrix_from_yaw_pitch_roll_deg(*ypr), R) < 1e-8


def test_batched() -> None:
    rng = np.random.default_rng(4)
    ypr = np.stack([rng.uniform(-80, 80, (3, 5)), rng.uniform(-170, 170, (3, 5)), rng.uniform(-170, 170, (3, 5))], -1)
    R = matrix_from_yaw_pitch_roll_deg(ypr[..., 0], ypr[..., 1], ypr[..., 2])
    assert R.shape == (3, 5, 3, 3)
    np.testing.assert_allclose(yaw_pitch_roll_deg_from_matrix(R), ypr, atol=1e-9)


def test_angle_wrap() -> None:
    assert angle_error_deg(179.0, -179.0) == pytest.approx(2.0)
    assert angle_error_deg(-179.0, 179.0) == pytest.approx(2.0)
    assert signed_angle_diff_deg(179.0, -179.0) == pytest.approx(-2.0)
    assert signed_angle_diff_deg(-179.0, 179.0) == pytest.approx(2.0)
    assert angle_error_deg(10.0, 370.0) == pytest.approx(0.0)
    assert angle_error_deg(0.0, 180.0) == pytest.approx(180.0)
    np.testing.assert_allclose(angle_error_deg([0, 90, -45], [359, -90, 45]), [1, 180, 90])


@SETTINGS
@given(st.floats(-1e4, 1e4, allow_nan=False), st.floats(-1e4, 1e4, allow_nan=False))
def test_angle_error_properties(a: float, b: float) -> None:
    e = float(angle_error_deg(a, b))
    assert 0.0 <= e <= 180.0
    assert e == pytest.approx(float(angle_error_deg(b, a)), abs=1e-9)
    d = float(signed_angle_diff_deg(a, b))
    # b + d is a, modulo 360.
    assert np.isclose(np.mod(b + d - a + 180.0, 360.0), 180.0, atol=1e-7)


def test_mae_yaw_pitch_roll() -> None:
    true = np.array([[10.0, 0.0, 0.0], [-20.0, 5.0, 179.0]])
    pred = np.array([[13.0, -2.0, 0.0], [-20.0, 5.0, -179.0]])
    tR = matrix_from_yaw_pitch_roll_deg(true[:, 0], true[:, 1], true[:, 2])
    pR = matrix_from_yaw_pitch_roll_deg(pred[:, 0], pred[:, 1], pred[:, 2])
    m = mae_yaw_pitch_roll(pR, tR)
    assert set(m) == {"yaw", "pitch", "roll", "mae"}
    assert m["yaw"] == pytest.approx(1.5)
    assert m["pitch"] == pytest.approx(1.0)
    assert m["roll"] == pytest.approx(1.0)  # 179 vs -179 counts as 2 deg, not 358
    assert m["mae"] == pytest.approx((1.5 + 1.0 + 1.0) / 3)
    assert mae_yaw_pitch_roll(tR, tR)["mae"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        mae_yaw_pitch_roll(pR, tR[:1])
