"""Procedural head geometry (no rendering): meshes, landmarks, sampling determinism."""
from __future__ import annotations

import numpy as np
import pytest

from hpe_training.synth.expression import PRESETS, Expression, sample_expressions
from hpe_training.synth.head import LANDMARK_NAMES, build_head
from hpe_training.synth.identity import sample_identity
from hpe_training.synth.mesh import cavity, icosphere, vertex_normals
from hpe_training.synth.scene import euler_to_matrix, sample_view


@pytest.mark.parametrize("level", [0, 1, 3])
def test_icosphere_is_closed_unit_sphere_with_outward_normals(level):
    v, f = icosphere(level)
    assert len(v) == 10 * 4 ** level + 2 and len(f) == 20 * 4 ** level
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-12)
    # closed 2-manifold: every undirected edge is shared by exactly two faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)
    n = vertex_normals(v, f)
    assert np.all(np.sum(n * v, axis=1) > 0.95)


def test_cavity_is_minus_inverse_radius_on_spheres_and_positive_in_hollows():
    v, f = icosphere(3)
    for radius in (0.05, 0.2):
        c = cavity(v * radius, f, vertex_normals(v, f))
        np.testing.assert_allclose(c, -1.0 / radius, rtol=0.03)
    # push one vertex inwards: it becomes a hollow
    dented = v.copy()
    dented[0] *= 0.97
    n = vertex_normals(v, f)
    assert cavity(v, f, n)[0] < -0.95 and cavity(dented, f, n)[0] > 1.0


def test_identities_are_deterministic_and_distinct():
    a, b = sample_identity(7, 3), sample_identity(7, 3)
    assert a == b
    c = sample_identity(7, 4)
    assert c.semi_axes != a.semi_axes and c.skin_rgb != a.skin_rgb
    assert sample_identity(8, 3) != a


def test_head_landmarks_sit_where_a_face_has_them():
    idp = sample_identity(0, 1)
    head = build_head(idp, Expression("neutral"), level=4)
    lm = dict(zip(LANDMARK_NAMES, head.landmarks))
    np.testing.assert_array_equal(lm["head_centre"], 0.0)
    # the face looks along -z and the nose tip is the most forward landmark
    assert lm["nose_tip"][2] < min(lm["right_eye"][2], lm["left_eye"][2], lm["mouth_left"][2]) < 0
    # person's left is +x, y points down: eyes above the nose tip, mouth below it
    assert lm["right_eye"][0] < -0.02 and lm["left_eye"][0] > 0.02
    assert lm["mouth_right"][0] < 0 < lm["mouth_left"][0]
    assert lm["right_eye"][1] < lm["nose_tip"][1] < lm["mouth_left"][1]
    assert abs(lm["nose_tip"][0]) < 0.003
    pos = head.mesh.positions[head.head_vertices]
    assert 0.12 < np.ptp(pos[:, 0]) < 0.22 and 0.19 < np.ptp(pos[:, 1]) < 0.3
    assert len(head.face_vertices) > 100
    assert head.mesh.faces.max() < len(head.mesh.positions)
    assert np.isfinite(head.mesh.normals).all()


def test_expressions_move_the_face():
    idp = sample_identity(0, 2)
    neutral = build_head(idp, Expression("neutral"), level=4)
    smile = build_head(idp, Expression("smile", **PRESETS["smile"]), level=4)
    lm_n = dict(zip(LANDMARK_NAMES, neutral.landmarks))
    lm_s = dict(zip(LANDMARK_NAMES, smile.landmarks))
    # smiling raises (y decreases) and widens the mouth corners
    assert lm_s["mouth_left"][1] < lm_n["mouth_left"][1] - 0.002
    assert lm_s["mouth_left"][0] - lm_s["mouth_right"][0] > lm_n["mouth_left"][0] - lm_n["mouth_right"][0]
    open_mouth = build_head(idp, Expression("open", jaw_open=1.0), level=4)
    assert len(open_mouth.mesh.positions) > len(neutral.mesh.positions)  # mouth-interior part
    for level in (3, 5):  # coarse and default meshes stay finite with an open mouth
        mesh = build_head(sample_identity(0, 3), Expression("o", jaw_open=1.0, smile=0.7), level=level).mesh
        assert np.isfinite(mesh.positions).all() and np.isfinite(mesh.normals).all()
    exprs = sample_expressions(0, 2, 9)
    assert exprs[0].name == "neutral" and len({e.name for e in exprs}) == 8


def test_euler_convention_and_sampled_pose_ranges():
    # yaw about head y (down): +90 turns the face (head -z) towards camera -x (image left)
    r = euler_to_matrix(90.0, 0.0, 0.0)
    np.testing.assert_allclose(r @ np.array([0.0, 0.0, -1.0]), [-1.0, 0.0, 0.0], atol=1e-12)
    # pitch +: the face turns down (towards +y, image down)
    assert (euler_to_matrix(0.0, 30.0, 0.0) @ np.array([0.0, 0.0, -1.0]))[1] > 0.4
    poses = np.array([sample_view(0, 0, 0, 0, v, 128, 0).euler_deg for v in range(300)])
    assert np.abs(poses).max(axis=0).tolist() <= [90.0, 60.0, 40.0]
    assert (np.abs(poses[:, 0]) > 60).any() and (np.abs(poses[:, 1]) > 40).any()
