"""The face-mesh estimator: exact fits on synthetic landmarks, the real astronaut rolled by known
angles, bootstrapping from its absolute estimate, and pools that keep its landmark features."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hpe_core.anchors.persistence import decode_pool, encode_pool
from hpe_core.crop_camera import CropCamera
from hpe_core.facemesh.canonical import load_canonical_face
from hpe_core.facemesh.fit import robust_fit, weighted_fit
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.rotations import geodesic_angle_deg

pytest.importorskip("ai_edge_litert")


def _rz(a_deg: float) -> np.ndarray:
    a = math.radians(a_deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])


@pytest.mark.parametrize("with_scale", [False, True])
def test_weighted_fit_recovers_a_known_transform(with_scale: bool) -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(50, 3)) * 0.05
    R = matrix_from_yaw_pitch_roll_deg(40.0, -15.0, 25.0)
    t = np.array([0.02, -0.01, 0.7])
    s = 1.3 if with_scale else 1.0
    dst = s * src @ R.T + t
    fit = weighted_fit(src, dst, np.ones(50), with_scale=with_scale)
    assert geodesic_angle_deg(fit.rotation, R) < 1e-6
    np.testing.assert_allclose(fit.translation, t, atol=1e-9)
    assert fit.scale == pytest.approx(s, rel=1e-9)


def test_robust_fit_ignores_outliers() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(80, 3)) * 0.05
    R = matrix_from_yaw_pitch_roll_deg(-60.0, 10.0, 5.0)
    dst = src @ R.T + np.array([0.0, 0.0, 0.8])
    dst[:10] += rng.normal(size=(10, 3)) * 0.05  # 10 points the mesh got badly wrong
    assert geodesic_angle_deg(weighted_fit(src, dst, np.ones(80)).rotation, R) > 1.0
    assert geodesic_angle_deg(robust_fit(src, dst, np.ones(80), cauchy_scale=0.004).rotation, R) < 0.2


def test_relative_and_absolute_fits_exact_on_synthetic_landmarks() -> None:
    """Project the canonical face at two known poses through a crop camera, as the mesh would
    report it (pixels and relative depth), and recover the poses exactly."""
    from hpe_core.facemesh.estimator import fit_to_canonical, relative_fit
    from hpe_core.facemesh.topology import expression_weights

    canonical = load_canonical_face()
    weights = expression_weights(canonical.jaw)
    cam = CropCamera(np.array([[900.0, 0, 95.5], [0, 900.0, 95.5], [0, 0, 1]]), np.eye(3))

    def mesh_of(R, t):
        P = canonical.points @ R.T + t
        uv = (P[:, :2] / P[:, 2:3]) * 900.0 + 95.5
        D = t[2]
        z = (P[:, 2] / D - 1.0) * 900.0 / canonical.z_scale
        return np.concatenate([uv, z[:, None]], 1)

    Ra, ta = matrix_from_yaw_pitch_roll_deg(-20.0, 5.0, 10.0), np.array([0.01, 0.0, 0.9])
    Rq, tq = matrix_from_yaw_pitch_roll_deg(35.0, -10.0, -5.0), np.array([-0.02, 0.01, 0.95])
    obs = []
    for R, t in ((Ra, ta), (Rq, tq)):
        points, vis, pose, _ = fit_to_canonical(mesh_of(R, t), cam, canonical, weights)
        assert geodesic_angle_deg(pose[:3, :3], R) < 0.5  # absolute: rigid fit to the canonical face
        obs.append((points, vis))
    values = np.concatenate([obs[0][0], obs[0][1][:, None]], 1)[None]
    rel = relative_fit(values, obs[1][0], obs[1][1], weights)
    assert geodesic_angle_deg(rel.rotation[0], Rq @ Ra.T) < 0.5


@pytest.fixture(scope="module")
def astronaut_frame() -> np.ndarray:
    from skimage import data

    from hpe_training.evaluation.real import sweep_frame

    return sweep_frame(data.astronaut())


@pytest.fixture(scope="module")
def facemesh_pipeline_factory():
    from hpe_training.evaluation.real import make_pipeline

    cache: dict = {}
    return lambda bootstrap="none": make_pipeline("facemesh", 60.0, bootstrap, cache)


def test_astronaut_rolled_by_known_angles_within_1_deg(astronaut_frame) -> None:
    from hpe_training.evaluation.real import roll_sweep

    result = roll_sweep(astronaut_frame, "facemesh", step_deg=3.0, max_deg=60.0)  # the protocol
    # MTCNN finds no face at -57 and -60 deg (a detector limit, reported by hpe-eval real)
    assert result["missed"] <= 2
    assert result["mean_error_deg"] <= 1.0, result


def test_bootstrap_from_the_absolute_estimate(astronaut_frame, facemesh_pipeline_factory) -> None:
    """A rolled first sight is bootstrapped at its estimated pose, not at 'facing the camera'."""
    K = np.array([[554.3, 0, 319.5], [0, 554.3, 239.5], [0, 0, 1]])
    upright = facemesh_pipeline_factory("absolute").process(astronaut_frame, 0.0, K).heads[0]
    pipeline = facemesh_pipeline_factory("absolute")
    M = cv2.getRotationMatrix2D((319.5, 239.5), 30.0, 1.0)
    rolled = cv2.warpAffine(astronaut_frame, M, (640, 480))
    head = pipeline.process(rolled, 0.0, K).heads[0]
    assert head.source == upright.source == "bootstrapped"
    # rolling the image by 30 deg is the camera turned: the bootstrapped pose turns with it
    # (Rz(-30) in the optical frame), where a "facing the camera" guess would not turn at all
    assert geodesic_angle_deg(head.pose_cam[:3, :3], _rz(-30.0) @ upright.pose_cam[:3, :3]) < 2.0
    assert geodesic_angle_deg(head.pose_cam[:3, :3], upright.pose_cam[:3, :3]) > 25.0
    anchors = pipeline.pool.anchors(head.person)
    assert anchors[0].source.value == "bootstrapped" and anchors[0].crop_from_cam is not None


def test_pool_save_load_keeps_landmark_features(astronaut_frame, facemesh_pipeline_factory) -> None:
    pipeline = facemesh_pipeline_factory("absolute")
    pipeline.process(astronaut_frame, 0.0)
    pipeline.process(astronaut_frame, 0.1)  # the second frame computes the anchor's features
    pool = pipeline.pool
    anchor = pool.anchors(pool.tracks()[0])[0]
    assert anchor.features is not None and anchor.features.persistable
    loaded = decode_pool(encode_pool(pool))
    back = loaded.anchors(pool.tracks()[0])[0]
    assert back.features.producer == anchor.features.producer
    np.testing.assert_allclose(back.features.values, anchor.features.values)
    np.testing.assert_allclose(back.crop_from_cam, anchor.crop_from_cam)
    # a loaded pool's features are reused, not recomputed: estimating with it gives the same pose
    fresh = facemesh_pipeline_factory("absolute")
    fresh.process(astronaut_frame, 0.0)
    fresh.replace_pool(loaded)
    res = fresh.process(astronaut_frame, 0.2)
    assert res.heads[0].source == "estimated"
    assert geodesic_angle_deg(res.heads[0].pose_cam[:3, :3], anchor.rotation_cam) < 1.0
