"""Rigid transforms: inverse, composition, relative pose round trips, point mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpe_core.geometry.rotations import matrix_from_quat_xyzw, rotation_from_axis_angle
from hpe_core.geometry.transforms import (
    apply_relative,
    compose_transforms,
    invert_transform,
    make_transform,
    relative_transform,
    split_transform,
    transform_points,
)

SETTINGS = settings(max_examples=50, deadline=None)

quats = arrays(np.float64, (4,), elements=st.floats(-1, 1, allow_nan=False)).filter(
    lambda q: np.linalg.norm(q) > 1e-3
)
trans = arrays(np.float64, (3,), elements=st.floats(-5, 5, allow_nan=False))


@st.composite
def transforms(draw: st.DrawFn) -> np.ndarray:
    return make_transform(matrix_from_quat_xyzw(draw(quats)), draw(trans))


def test_make_and_split() -> None:
    R = rotation_from_axis_angle([0, 0, 1], 0.3)
    t = np.array([1.0, 2.0, 3.0])
    T = make_transform(R, t)
    assert T.shape == (4, 4)
    np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
    R2, t2 = split_transform(T)
    np.testing.assert_array_equal(R2, R)
    np.testing.assert_array_equal(t2, t)
    # Batched, with broadcasting of a single rotation against several translations.
    Tb = make_transform(R, np.arange(12.0).reshape(4, 3))
    assert Tb.shape == (4, 4, 4)
    np.testing.assert_array_equal(Tb[2, :3, 3], [6, 7, 8])
    # split accepts [3, 4] extrinsics too; rejects other shapes.
    R3, t3 = split_transform(T[:3])
    np.testing.assert_array_equal(t3, t)
    with pytest.raises(ValueError):
        split_transform(np.eye(3))


@SETTINGS
@given(transforms())
def test_inverse(T: np.ndarray) -> None:
    Ti = invert_transform(T)
    np.testing.assert_allclose(Ti @ T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(T @ Ti, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Ti, np.linalg.inv(T), atol=1e-12)


@SETTINGS
@given(transforms(), transforms(), transforms())
def test_composition_is_associative(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    left = compose_transforms(compose_transforms(A, B), C)
    right = compose_transforms(A, compose_transforms(B, C))
    np.testing.assert_allclose(left, right, atol=1e-11)
    # inv(A B) = inv(B) inv(A)
    np.testing.assert_allclose(
        invert_transform(compose_transforms(A, B)),
        compose_transforms(invert_transform(B), invert_transform(A)),
        atol=1e-11,
    )


@SETTINGS
@given(transforms(), transforms())
def test_relative_apply_round_trip(T_q: np.ndarray, T_a: np.ndarray) -> None:
    T_rel = relative_transform(T_q, T_a)
    np.testing.assert_allclose(apply_relative(T_rel, T_a), T_q, atol=1e-11)
    np.testing.assert_allclose(relative_transform(T_a, T_a), np.eye(4), atol=1e-12)
    # Anchor normalisation: after mapping both poses by inv(T_a) on the right, the anchor
    # becomes the identity and the query's pose equals T_rel (VGGT frame 0 = anchor).
    np.testing.assert_allclose(T_q @ invert_transform(T_a), T_rel, atol=1e-12)


@SETTINGS
@given(transforms(), transforms(), transforms())
def test_relative_pose_is_independent_of_head_frame(T_q: np.ndarray, T_a: np.ndarray, G: np.ndarray) -> None:
    # Re-defining the head frame (T -> T @ G, same G for both images) leaves T_rel unchanged,
    # which is why the relative target transfers between datasets with different head frames.
    np.testing.assert_allclose(
        relative_transform(T_q @ G, T_a @ G), relative_transform(T_q, T_a), atol=1e-10
    )


@SETTINGS
@given(transforms(), transforms())
def test_transform_points_matches_homogeneous(A: np.ndarray, B: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    p = rng.normal(size=(7, 3))
    ph = np.concatenate([p, np.ones((7, 1))], axis=1)
    np.testing.assert_allclose(transform_points(A, p), (ph @ A.T)[:, :3], atol=1e-12)
    np.testing.assert_allclose(
        transform_points(compose_transforms(A, B), p), transform_points(A, transform_points(B, p)), atol=1e-11
    )


def test_transform_points_batched_and_known() -> None:
    # Camera-from-head: head 1 m in front of the camera, turned 90 deg about camera +y.
    T = make_transform(rotation_from_axis_angle([0, 1, 0], np.pi / 2), [0.0, 0.0, 1.0])
    # Head +z (nose direction in that head frame) maps to camera +x, offset by t.
    np.testing.assert_allclose(transform_points(T, [[0.0, 0.0, 0.1]]), [[0.1, 0.0, 1.0]], atol=1e-15)
    Ts = np.stack([T, np.eye(4)])
    pts = np.ones((2, 5, 3))
    out = transform_points(Ts, pts)
    assert out.shape == (2, 5, 3)
    np.testing.assert_allclose(out[1], pts[1])
