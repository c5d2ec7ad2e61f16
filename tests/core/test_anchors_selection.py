"""Anchor selection: nearest in rotation, calibrated preference, tie-breaking, virtual-frame gaps."""
from __future__ import annotations

import numpy as np
import pytest

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.selection import rotation_gaps_deg, select_anchors
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import virtual_camera_rotation

K_CAM = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _rot(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    return matrix_from_yaw_pitch_roll_deg(yaw, pitch, roll)


def _anchor(
    name: str,
    yaw: float,
    source: AnchorSource = AnchorSource.KEYFRAME,
    quality: float = 0.8,
    depth: int = 1,
    pitch: float = 0.0,
    virtual_from_cam: np.ndarray = np.eye(3),
) -> Anchor:
    keyframe = source is AnchorSource.KEYFRAME
    return Anchor(
        anchor_id=name,
        track_id="t",
        crop=np.zeros((4, 4, 3), np.uint8),
        pose_cam=make_transform(_rot(yaw, pitch), [0.0, 0.0, 1.0]),
        virtual_from_cam=virtual_from_cam,
        source=source,
        quality=quality,
        created_at=0.0,
        parent_ids=("t-c0",) if keyframe else (),
        chain_depth=depth if keyframe else 0,
        accumulated_uncertainty_deg=1.0 if keyframe else 0.0,
    )


def test_selects_the_k_nearest_in_rotation_with_their_gaps() -> None:
    anchors = [_anchor("a0", 0.0), _anchor("a20", 20.0), _anchor("a40", 40.0), _anchor("am20", -20.0)]
    sel = select_anchors(anchors, _rot(18.0), AnchorPolicy(anchors_per_estimate=3))
    assert sel.anchor_ids == ("a20", "a0", "a40")
    np.testing.assert_allclose(sel.gaps_deg, [2.0, 18.0, 22.0], atol=1e-9)
    one = select_anchors(anchors, _rot(-25.0), AnchorPolicy(), k=1)
    assert one.anchor_ids == ("am20",) and len(one) == 1


def test_fewer_anchors_than_k_returns_all_and_empty_pool_returns_none() -> None:
    anchors = [_anchor("a0", 0.0)]
    assert select_anchors(anchors, _rot(30.0), AnchorPolicy(anchors_per_estimate=3)).anchor_ids == ("a0",)
    empty = select_anchors([], _rot(30.0), AnchorPolicy())
    assert len(empty) == 0 and empty.gaps_deg.shape == (0,)


def test_calibrated_within_threshold_is_preferred_over_a_nearer_keyframe() -> None:
    anchors = [_anchor("kf6", 6.0), _anchor("cal0", 0.0, AnchorSource.CALIBRATED, quality=1.0), _anchor("kf30", 30.0)]
    policy = AnchorPolicy(prefer_calibrated_within_deg=10.0)
    near = select_anchors(anchors, _rot(8.0), policy, k=2)
    assert near.anchor_ids == ("cal0", "kf6")  # keyframe gap 2 < calibrated gap 8, calibrated first
    np.testing.assert_allclose(near.gaps_deg, [8.0, 2.0], atol=1e-9)
    far = select_anchors(anchors, _rot(13.0), policy, k=2)
    assert far.anchor_ids == ("kf6", "cal0")  # calibrated 13 deg away (> 10): plain nearest order
    no_pref = select_anchors(anchors, _rot(8.0), AnchorPolicy(prefer_calibrated_within_deg=0.0), k=2)
    assert no_pref.anchor_ids == ("kf6", "cal0")


def test_equal_gaps_break_ties_by_quality_then_chain_depth() -> None:
    # +10 and -10 deg of yaw are exactly as far from a frontal query.
    low_q = _anchor("low_q", 10.0, quality=0.6, depth=1)
    high_q = _anchor("high_q", -10.0, quality=0.9, depth=2)
    assert select_anchors([low_q, high_q], _rot(0.0), AnchorPolicy(), k=1).anchor_ids == ("high_q",)
    shallow = _anchor("shallow", 10.0, quality=0.7, depth=1)
    deep = _anchor("deep", -10.0, quality=0.7, depth=3)
    assert select_anchors([deep, shallow], _rot(0.0), AnchorPolicy(), k=1).anchor_ids == ("shallow",)


def test_gaps_use_virtual_frames_when_the_query_crop_rotation_is_given() -> None:
    R_left = virtual_camera_rotation(K_CAM, (60.0, 240.0))
    R_right = virtual_camera_rotation(K_CAM, (600.0, 240.0))
    anchor = _anchor("a", 10.0, pitch=5.0, virtual_from_cam=R_left)
    R_query = _rot(-5.0, 2.0)
    cam_gap = rotation_gaps_deg([anchor], R_query)
    np.testing.assert_allclose(cam_gap, geodesic_angle_deg(anchor.rotation_cam, R_query), atol=1e-9)
    virt_gap = rotation_gaps_deg([anchor], R_query, R_right)
    expected = geodesic_angle_deg(R_left @ anchor.rotation_cam, R_right @ R_query)
    np.testing.assert_allclose(virt_gap, expected, atol=1e-9)
    assert abs(float(virt_gap[0]) - float(cam_gap[0])) > 5.0  # the frames matter here
    # Same crop position on both sides: the two gaps coincide.
    np.testing.assert_allclose(rotation_gaps_deg([anchor], R_query, R_left), cam_gap, atol=1e-9)


def test_rejects_non_rotation_input_and_bad_k() -> None:
    with pytest.raises(ValueError):
        select_anchors([_anchor("a", 0.0)], np.eye(4), AnchorPolicy())
    with pytest.raises(ValueError):
        select_anchors([_anchor("a", 0.0)], np.eye(3), AnchorPolicy(), k=0)
