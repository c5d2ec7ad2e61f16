"""Rotation and pose averaging: exactness on trivial inputs, symmetry, robustness to outliers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpe_core.geometry.averaging import (
    average_transforms,
    chordal_mean_rotation,
    geodesic_median_rotation,
)
from hpe_core.geometry.rotations import geodesic_angle_deg, matrix_from_quat_xyzw, so3_exp
from hpe_core.geometry.transforms import make_transform

SETTINGS = settings(max_examples=30, deadline=None)

quats = arrays(np.float64, (4,), elements=st.floats(-1, 1, allow_nan=False)).filter(
    lambda q: np.linalg.norm(q) > 1e-3
)
tangents = arrays(np.float64, (3,), elements=st.floats(-0.8, 0.8, allow_nan=False))


@SETTINGS
@given(quats, st.integers(1, 6))
def test_identical_rotations_average_to_themselves(q: np.ndarray, n: int) -> None:
    R = matrix_from_quat_xyzw(q)
    Rs = np.repeat(R[None], n, axis=0)
    for res in (chordal_mean_rotation(Rs), geodesic_median_rotation(Rs)):
        np.testing.assert_allclose(res.rotation, R, atol=1e-10)
        np.testing.assert_allclose(res.residuals_deg, 0.0, atol=1e-6)
        assert res.converged


@SETTINGS
@given(quats, tangents, tangents)
def test_symmetric_set_averages_to_centre(q: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> None:
    # R exp(+v) and R exp(-v) are symmetric about R for both the chordal and geodesic metrics.
    R = matrix_from_quat_xyzw(q)
    Rs = np.stack([R @ so3_exp(v1), R @ so3_exp(-v1), R @ so3_exp(v2), R @ so3_exp(-v2)])
    chordal = chordal_mean_rotation(Rs)
    assert geodesic_angle_deg(chordal.rotation, R) < 1e-7
    median = geodesic_median_rotation(Rs)
    # The L1 median of a symmetric set is its centre unless the problem is degenerate
    # (collinear tangents give a flat cost along the line); compare costs in that case.
    cost = lambda X: geodesic_angle_deg(X[None], Rs).sum()  # noqa: E731
    assert cost(median.rotation) <= cost(R) + 1e-6
    if np.linalg.norm(np.cross(v1, v2)) > 1e-2:
        assert geodesic_angle_deg(median.rotation, R) < 1e-4


def test_weights_and_residuals() -> None:
    R0 = matrix_from_quat_xyzw([0.1, 0.2, 0.3, 0.9])
    Ra = R0 @ so3_exp([0.0, 0.0, np.radians(10)])
    Rb = R0 @ so3_exp([0.0, 0.0, np.radians(-10)])
    # Equal weights: midway; residuals report each input's distance (10 deg each).
    res = chordal_mean_rotation(np.stack([Ra, Rb]))
    np.testing.assert_allclose(res.residuals_deg, [10.0, 10.0], atol=1e-9)
    # Zero weight on one input ignores it entirely.
    res = chordal_mean_rotation(np.stack([Ra, Rb]), weights=[1.0, 0.0])
    assert geodesic_angle_deg(res.rotation, Ra) < 1e-9
    np.testing.assert_allclose(res.residuals_deg, [0.0, 20.0], atol=1e-7)
    # Three-to-one weights on a single-axis pair: chordal mean lies strictly between, nearer Ra.
    res = chordal_mean_rotation(np.stack([Ra, Rb]), weights=[3.0, 1.0])
    assert 0 < res.residuals_deg[0] < res.residuals_deg[1]
    assert res.residuals_deg.sum() == pytest.approx(20.0, abs=1e-9)
    # Weighted median with a majority weight goes to that input.
    med = geodesic_median_rotation(np.stack([Ra, Rb]), weights=[3.0, 1.0])
    assert med.residuals_deg[0] < 1e-6


def test_robust_mean_resists_outlier() -> None:
    rng = np.random.default_rng(5)
    R_true = matrix_from_quat_xyzw([0.2, -0.1, 0.4, 0.9])
    inliers = R_true @ so3_exp(rng.normal(scale=np.radians(1.0), size=(8, 3)))
    outlier = R_true @ so3_exp([0.0, np.radians(120.0), 0.0])  # e.g. a flipped detection
    Rs = np.concatenate([inliers, outlier[None]])
    chordal = chordal_mean_rotation(Rs)
    median = geodesic_median_rotation(Rs)
    err_chordal = geodesic_angle_deg(chordal.rotation, R_true)
    err_median = geodesic_angle_deg(median.rotation, R_true)
    assert median.converged
    assert err_median < 1.0
    assert err_chordal > 3.0 * err_median
    # The outlier stands out in the residuals the caller reports.
    assert median.residuals_deg[-1] > 100.0
    assert np.all(median.residuals_deg[:-1] < 5.0)


def test_median_respects_iteration_cap() -> None:
    rng = np.random.default_rng(6)
    Rs = so3_exp(rng.normal(scale=0.5, size=(10, 3)))
    res = geodesic_median_rotation(Rs, max_iterations=1, tolerance_rad=0.0)
    assert res.iterations == 1 and not res.converged
    with pytest.raises(ValueError):
        geodesic_median_rotation(Rs, max_iterations=0)


@pytest.mark.parametrize(
    "bad_weights", [[1.0, -1.0], [0.0, 0.0], [1.0, np.nan], [1.0, 2.0, 3.0]]
)
def test_bad_weights_raise(bad_weights: list[float]) -> None:
    with pytest.raises(ValueError):
        chordal_mean_rotation(np.stack([np.eye(3), np.eye(3)]), weights=bad_weights)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        chordal_mean_rotation(np.zeros((0, 3, 3)))
    with pytest.raises(ValueError):
        geodesic_median_rotation(np.eye(3))


def test_average_transforms() -> None:
    rng = np.random.default_rng(7)
    R_true = matrix_from_quat_xyzw([0.0, 0.3, 0.0, 0.95])
    t_true = np.array([0.05, -0.02, 0.6])
    Ts = make_transform(
        R_true @ so3_exp(rng.normal(scale=0.01, size=(6, 3))), t_true + rng.normal(scale=0.002, size=(6, 3))
    )
    bad = make_transform(R_true @ so3_exp([1.5, 0.0, 0.0]), t_true + [0.5, 0.0, 0.0])
    Ts = np.concatenate([Ts, bad[None]])
    robust = average_transforms(Ts)
    plain = average_transforms(Ts, robust=False)
    assert robust.transform.shape == (4, 4)
    np.testing.assert_array_equal(robust.transform[3], [0, 0, 0, 1])
    assert np.linalg.norm(robust.transform[:3, 3] - t_true) < 0.01
    assert np.linalg.norm(plain.transform[:3, 3] - t_true) > 0.05
    assert geodesic_angle_deg(robust.transform[:3, :3], R_true) < geodesic_angle_deg(plain.transform[:3, :3], R_true)
    assert robust.translation_residuals[-1] > 0.4
    assert robust.rotation_residuals_deg[-1] > 80.0
    # Weighted majority on one input: the geometric median is that input's translation.
    two = average_transforms(Ts[[0, -1]], weights=[3.0, 1.0])
    np.testing.assert_allclose(two.transform, Ts[0], atol=1e-9)
    # Identical inputs: exact.
    same = average_transforms(np.repeat(Ts[:1], 3, axis=0))
    np.testing.assert_allclose(same.transform, Ts[0], atol=1e-10)
