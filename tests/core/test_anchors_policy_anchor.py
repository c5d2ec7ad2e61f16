"""AnchorPolicy validation and the Anchor record (validation, read-only arrays, virtual pose)."""
from __future__ import annotations

import numpy as np
import pytest

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import head_pose_cam_to_virtual, virtual_camera_rotation

K_CAM = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _anchor(**overrides: object) -> Anchor:
    values: dict[str, object] = dict(
        anchor_id="t-c0",
        track_id="t",
        crop=np.full((6, 5, 3), 7, np.uint8),
        pose_cam=make_transform(matrix_from_yaw_pitch_roll_deg(20.0, -5.0, 3.0), [0.1, -0.05, 0.9]),
        virtual_from_cam=np.eye(3),
        source=AnchorSource.CALIBRATED,
        quality=1.0,
        created_at=12.5,
    )
    values.update(overrides)
    return Anchor(**values)  # type: ignore[arg-type]


def test_policy_defaults_are_the_documented_ones() -> None:
    p = AnchorPolicy()
    assert (p.max_anchors_per_track, p.anchors_per_estimate, p.max_chain_depth) == (12, 3, 3)
    assert (p.keyframe_min_gap_deg, p.keyframe_min_confidence) == (15.0, 0.7)
    assert (p.max_accumulated_uncertainty_deg, p.prefer_calibrated_within_deg) == (10.0, 10.0)
    assert p.calibrated_never_evicted is True
    assert AnchorPolicy.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"max_anchors_per_track": 0}, "max_anchors_per_track"),
        ({"anchors_per_estimate": 0}, "anchors_per_estimate"),
        ({"anchors_per_estimate": 13}, "anchors_per_estimate"),
        ({"anchors_per_estimate": 2.5}, "anchors_per_estimate"),
        ({"keyframe_min_gap_deg": 0.0}, "keyframe_min_gap_deg"),
        ({"keyframe_min_confidence": 1.5}, "keyframe_min_confidence"),
        ({"max_chain_depth": -1}, "max_chain_depth"),
        ({"max_accumulated_uncertainty_deg": float("nan")}, "max_accumulated_uncertainty_deg"),
        ({"prefer_calibrated_within_deg": -1.0}, "prefer_calibrated_within_deg"),
        ({"calibrated_never_evicted": "yes"}, "calibrated_never_evicted"),
    ],
)
def test_policy_rejects_bad_values_with_the_field_name(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        AnchorPolicy(**kwargs)


def test_policy_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown"):
        AnchorPolicy.from_dict({"max_anchors": 3})


def test_anchor_copies_inputs_and_is_read_only() -> None:
    crop = np.zeros((4, 4, 3), np.uint8)
    pose = make_transform(np.eye(3), [0.0, 0.0, 1.0])
    a = _anchor(crop=crop, pose_cam=pose)
    crop[0, 0, 0] = 255
    pose[0, 3] = 5.0
    assert a.crop[0, 0, 0] == 0 and a.pose_cam[0, 3] == 0.0
    with pytest.raises(ValueError):
        a.crop[0, 0, 0] = 1
    with pytest.raises(ValueError):
        a.pose_cam[0, 0] = 2.0


def test_anchor_pose_virtual_matches_the_virtual_camera_module() -> None:
    R_virt = virtual_camera_rotation(K_CAM, (560.0, 100.0))
    a = _anchor(virtual_from_cam=R_virt)
    expected = head_pose_cam_to_virtual(a.pose_cam, R_virt)
    np.testing.assert_allclose(a.pose_virtual, expected, atol=1e-12)
    np.testing.assert_allclose(a.rotation_virtual, expected[:3, :3], atol=1e-12)
    # Not the identity conversion: the crop is far off axis.
    assert np.abs(a.pose_virtual - a.pose_cam).max() > 0.1


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"crop": np.zeros((4, 4, 3), np.float32)}, "crop"),
        ({"crop": np.zeros((4, 4), np.uint8)}, "crop"),
        ({"pose_cam": np.eye(3)}, "pose_cam"),
        ({"pose_cam": np.diag([1.0, 1.0, -1.0, 1.0])}, "rotation"),
        ({"virtual_from_cam": 2 * np.eye(3)}, "virtual_from_cam"),
        ({"quality": 1.2}, "quality"),
        ({"created_at": float("inf")}, "created_at"),
        ({"accumulated_uncertainty_deg": 1.0}, "calibrated"),
        ({"chain_depth": 1}, "root"),
        ({"source": AnchorSource.KEYFRAME}, "keyframe"),
        ({"anchor_id": ""}, "anchor_id"),
    ],
)
def test_anchor_rejects_invalid_fields(overrides: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        _anchor(**overrides)


def test_keyframe_anchor_needs_parents_and_depth() -> None:
    k = _anchor(
        anchor_id="t-k0",
        source=AnchorSource.KEYFRAME,
        parent_ids=("t-c0",),
        chain_depth=1,
        accumulated_uncertainty_deg=2.0,
        quality=0.8,
    )
    assert k.parent_ids == ("t-c0",) and k.chain_depth == 1 and not k.source.is_root
    assert AnchorSource.KEYFRAME.id_letter == "k" and AnchorSource("bootstrapped") is AnchorSource.BOOTSTRAPPED
