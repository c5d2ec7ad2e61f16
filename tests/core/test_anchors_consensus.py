"""Multi-anchor consensus: composition in virtual frames, robustness to an outlier, confidence.

Relative estimates are built from known true poses (``relative_pose_virtual``) plus controlled
rotation/translation errors: they are the data a real estimator would return.
"""
from __future__ import annotations

import numpy as np
import pytest

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.consensus import ConsensusParams, fuse_relative_estimates
from hpe_core.geometry.averaging import average_transforms
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.rotations import geodesic_angle_deg, so3_exp
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import relative_pose_virtual, virtual_camera_rotation

K_CAM = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
QUERY_CENTER = (400.0, 200.0)
ANCHOR_CENTERS = [(320.0, 240.0), (420.0, 250.0), (250.0, 200.0), (350.0, 300.0)]
ANCHOR_POSES = [
    ((0.0, 0.0, 0.0), (0.00, 0.0, 1.0)),
    ((25.0, 5.0, 0.0), (0.10, 0.0, 1.1)),
    ((10.0, -10.0, 5.0), (-0.1, 0.05, 0.9)),
    ((-5.0, 8.0, -3.0), (0.05, -0.05, 1.2)),
]


def _pose(yaw: float, pitch: float, roll: float, t: tuple[float, float, float]) -> np.ndarray:
    return make_transform(matrix_from_yaw_pitch_roll_deg(yaw, pitch, roll), t)


def _anchor(i: int, pose: np.ndarray, center: tuple[float, float], quality: float = 1.0, unc: float = 0.0) -> Anchor:
    source = AnchorSource.CALIBRATED if unc == 0.0 else AnchorSource.BOOTSTRAPPED
    return Anchor(
        anchor_id=f"t-x{i}",
        track_id="t",
        crop=np.zeros((4, 4, 3), np.uint8),
        pose_cam=pose,
        virtual_from_cam=virtual_camera_rotation(K_CAM, center),
        source=source,
        quality=quality,
        created_at=float(i),
        accumulated_uncertainty_deg=unc,
    )


def _relative(anchors: list[Anchor], T_query: np.ndarray, R_vq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T = np.stack([relative_pose_virtual(T_query, a.pose_cam, a.virtual_from_cam, R_vq) for a in anchors])
    return T[:, :3, :3].copy(), T[:, :3, 3].copy()


def _perturb(R: np.ndarray, axis: tuple[float, float, float], deg: float) -> np.ndarray:
    v = np.asarray(axis, dtype=np.float64)
    return so3_exp(v / np.linalg.norm(v) * np.radians(deg)) @ R


@pytest.fixture()
def scene() -> tuple[list[Anchor], np.ndarray, np.ndarray]:
    anchors = [_anchor(i, _pose(*ypr, t), c) for i, ((ypr, t), c) in enumerate(zip(ANCHOR_POSES, ANCHOR_CENTERS))]
    T_query = _pose(12.0, 3.0, 2.0, (0.15, -0.08, 1.05))
    R_vq = virtual_camera_rotation(K_CAM, QUERY_CENTER)
    return anchors, T_query, R_vq


def test_exact_estimates_recover_the_query_pose_in_the_real_camera(scene) -> None:
    anchors, T_query, R_vq = scene
    R_rel, t_rel = _relative(anchors, T_query, R_vq)
    fused = fuse_relative_estimates(anchors, R_rel, t_rel, R_vq)
    np.testing.assert_allclose(fused.pose_cam, T_query, atol=1e-9)
    np.testing.assert_allclose(fused.per_anchor_poses_cam, np.broadcast_to(T_query, (4, 4, 4)), atol=1e-9)
    assert fused.disagreement_deg < 1e-6 and fused.residuals_deg.max() < 1e-6
    assert fused.anchor_ids == tuple(a.anchor_id for a in anchors)
    np.testing.assert_allclose(fused.weights.sum(), 1.0)
    # Gaps are measured in the virtual frames the network sees.
    expected_gaps = [geodesic_angle_deg(a.rotation_virtual, R_vq @ T_query[:3, :3]) for a in anchors]
    np.testing.assert_allclose(fused.gaps_deg, expected_gaps, atol=1e-6)
    nearest = int(np.argmin(expected_gaps))
    assert fused.nearest_anchor_id == anchors[nearest].anchor_id
    assert fused.nearest_gap_deg == pytest.approx(expected_gaps[nearest], abs=1e-6)


def test_ignoring_the_virtual_camera_gives_a_wrong_pose(scene) -> None:
    anchors, T_query, R_vq = scene
    R_rel, t_rel = _relative(anchors, T_query, R_vq)
    wrong = fuse_relative_estimates(anchors, R_rel, t_rel, None)  # pretend the crop is centred
    assert geodesic_angle_deg(wrong.rotation_cam, T_query[:3, :3]) > 3.0


def test_one_outlier_is_outvoted_and_the_fusion_beats_the_worst_anchor(scene) -> None:
    anchors, T_query, R_vq = scene
    R_rel, t_rel = _relative(anchors, T_query, R_vq)
    rng = np.random.default_rng(3)
    for i in range(len(anchors)):  # realistic noise: about 1 deg, 1 cm
        R_rel[i] = _perturb(R_rel[i], tuple(rng.normal(size=3)), 1.0)
        t_rel[i] += rng.normal(scale=0.01, size=3)
    clean = fuse_relative_estimates(anchors, R_rel, t_rel, R_vq)
    R_rel[1] = _perturb(R_rel[1], (0.3, 1.0, -0.2), 30.0)  # anchor 1: a bad estimate
    t_rel[1] += np.array([0.2, -0.1, 0.3])
    fused = fuse_relative_estimates(anchors, R_rel, t_rel, R_vq)
    # Ordinary noise is within what the gaps lead to expect; the outlier is not.
    assert clean.excess_disagreement_deg < 0.5 and clean.confidence > 0.8
    assert fused.excess_disagreement_deg > 3.0 and fused.confidence < clean.confidence - 0.2
    per_anchor_err = geodesic_angle_deg(fused.per_anchor_poses_cam[:, :3, :3], T_query[:3, :3][None])
    fused_err = float(geodesic_angle_deg(fused.rotation_cam, T_query[:3, :3]))
    assert per_anchor_err.max() > 25.0
    assert fused_err < 2.0
    assert fused_err < per_anchor_err.max() / 10.0
    assert np.linalg.norm(fused.translation_m - T_query[:3, 3]) < 0.03
    assert int(np.argmax(fused.residuals_deg)) == 1 and fused.residuals_deg[1] > 25.0
    assert int(np.argmax(fused.translation_residuals_m)) == 1
    # An unweighted chordal mean of the same four estimates is pulled much further.
    plain = average_transforms(fused.per_anchor_poses_cam, None, robust=False)
    assert float(geodesic_angle_deg(plain.transform[:3, :3], T_query[:3, :3])) > 3.0 * fused_err


def test_confidence_falls_as_the_anchors_disagree_more(scene) -> None:
    anchors, T_query, R_vq = scene
    R_true, t_true = _relative(anchors, T_query, R_vq)
    axes = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (-1.0, -1.0, 0.0)]
    confidences, disagreements = [], []
    for spread in (0.0, 2.0, 5.0, 10.0):
        R_rel = np.stack([_perturb(R_true[i], axes[i], spread) for i in range(4)])
        fused = fuse_relative_estimates(anchors, R_rel, t_true, R_vq)
        confidences.append(fused.confidence)
        disagreements.append(fused.disagreement_deg)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert np.all(np.diff(disagreements) > 0) and np.all(np.diff(confidences) < 0)
    assert confidences[-1] < 0.5 * confidences[0]


def test_confidence_falls_with_the_gap_to_the_nearest_anchor() -> None:
    params = ConsensusParams()
    anchor = _anchor(0, _pose(0.0, 0.0, 0.0, (0.0, 0.0, 1.0)), (320.0, 240.0))
    R_vq = np.eye(3)
    results = []
    for yaw in (3.0, 15.0, 30.0, 60.0):
        T_query = _pose(yaw, 0.0, 0.0, (0.0, 0.0, 1.0))
        R_rel, t_rel = _relative([anchor], T_query, R_vq)
        results.append(fuse_relative_estimates([anchor], R_rel, t_rel, R_vq, params))
    conf = [r.confidence for r in results]
    assert conf[0] == pytest.approx(1.0)  # within the 5 deg error-free zone
    assert np.all(np.diff(conf) < 0)
    assert conf[1] == pytest.approx(np.exp(-10.0 / params.gap_decay_deg))
    # The uncertainty of a one-hop estimate grows with the gap (hop error model).
    unc = [r.accumulated_uncertainty_deg for r in results]
    assert np.all(np.diff(unc) > 0)
    assert unc[1] == pytest.approx(params.hop_base_deg + params.hop_slope * 15.0)


def test_weights_favour_near_certain_trusted_anchors() -> None:
    params = ConsensusParams()
    w = params.weight([1.0, 1.0, 0.5, 1.0], [0.0, 20.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0])
    assert w[0] == pytest.approx(1.0)
    assert w[1] == pytest.approx(1.0 / 5.0)  # (20/10)^2 = 4
    assert w[2] == pytest.approx(0.5)
    assert w[3] == pytest.approx(0.5)  # 1 / (1 + 5/5)


def test_anchor_uncertainty_lowers_its_weight_and_adds_to_the_estimate(scene) -> None:
    anchors, T_query, R_vq = scene
    # Same anchors, but all except the first carry 8 deg of accumulated uncertainty.
    uncertain = [anchors[0]] + [
        _anchor(i, _pose(*ypr, t), c, unc=8.0)
        for i, ((ypr, t), c) in enumerate(zip(ANCHOR_POSES, ANCHOR_CENTERS))
        if i > 0
    ]
    R_rel, t_rel = _relative(uncertain, T_query, R_vq)
    certain = fuse_relative_estimates(anchors, *_relative(anchors, T_query, R_vq), R_vq)
    fused = fuse_relative_estimates(uncertain, R_rel, t_rel, R_vq)
    assert fused.weights[0] > certain.weights[0]
    assert certain.accumulated_uncertainty_deg + 1.0 < fused.accumulated_uncertainty_deg < certain.accumulated_uncertainty_deg + 8.0


def test_bad_inputs_are_rejected(scene) -> None:
    anchors, T_query, R_vq = scene
    R_rel, t_rel = _relative(anchors, T_query, R_vq)
    with pytest.raises(ValueError):
        fuse_relative_estimates([], R_rel[:0], t_rel[:0])
    with pytest.raises(ValueError):
        fuse_relative_estimates(anchors, R_rel[:3], t_rel[:3])
    t_bad = t_rel.copy()
    t_bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        fuse_relative_estimates(anchors, R_rel, t_bad)
    with pytest.raises(ValueError, match="gap_decay_deg"):
        ConsensusParams(gap_decay_deg=0.0)
