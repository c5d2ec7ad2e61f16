"""Tests of the virtual crop camera with synthetic rigid "faces" (landmark constellations).

Head frame: origin at the head centre, x to the head's left-to-right as seen in a frontal
view, y down, z into the head, so ``T_cam_from_head`` with identity rotation is a face looking
straight down the optical axis at the camera (nose along -z).
"""

from __future__ import annotations

import numpy as np
import pytest

from hpe_core.crop import crop_face, crop_from_image_matrix, square_crop_box
from hpe_core.geometry.rotations import (
    geodesic_angle_deg,
    rotation_between_vectors,
    rotation_from_axis_angle,
)
from hpe_core.geometry.transforms import make_transform, transform_points
from hpe_core.virtual_camera import (
    head_pose_cam_to_virtual,
    head_pose_virtual_to_cam,
    query_pose_from_relative,
    relative_pose_virtual,
    viewing_ray,
    virtual_camera_rotation,
    virtual_crop_face,
    virtual_crop_geometry,
    warp_virtual_crop,
)

WIDTH, HEIGHT = 640, 480
K_CAM = np.array([[500.0, 0.0, 321.3], [0.0, 505.0, 238.9], [0.0, 0.0, 1.0]])

# Landmarks in the head frame (metres): eyes, nose tip, mouth corners, chin, ears.
FACE_POINTS_HEAD = np.array(
    [
        [-0.032, -0.030, -0.075],
        [0.032, -0.030, -0.075],
        [0.000, 0.005, -0.105],
        [-0.025, 0.045, -0.080],
        [0.025, 0.045, -0.080],
        [0.000, 0.085, -0.070],
        [-0.075, 0.000, 0.000],
        [0.075, 0.000, 0.000],
    ]
)

# Head centres far off the optical axis (metres, camera frame).
OFF_CENTRE_POSITIONS = [
    np.array([0.45, 0.0, 1.0]),
    np.array([-0.5, 0.3, 1.2]),
    np.array([0.3, -0.35, 0.8]),
    np.array([-0.35, -0.3, 1.4]),
]


def project(K, points_cam):
    p = np.asarray(points_cam) @ K.T
    return p[..., :2] / p[..., 2:3]


def random_rotation(rng, max_deg):
    axis = rng.normal(size=3)
    return rotation_from_axis_angle(axis / np.linalg.norm(axis), np.radians(rng.uniform(0, max_deg)))


def head_center_px(T_cam_from_head):
    return project(K_CAM, T_cam_from_head[:3, 3][None])[0]


def test_virtual_rotation_takes_the_ray_to_the_axis_without_roll():
    rng = np.random.default_rng(3)
    for _ in range(20):
        c = rng.uniform([0, 0], [WIDTH, HEIGHT])
        R = virtual_camera_rotation(K_CAM, c)
        d = viewing_ray(K_CAM, c)
        np.testing.assert_allclose(R @ d, [0.0, 0.0, 1.0], atol=1e-12)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        # Minimal: the rotation angle equals the angle between the ray and the axis.
        assert geodesic_angle_deg(R, np.eye(3)) == pytest.approx(np.degrees(np.arccos(d[2])))
    np.testing.assert_allclose(virtual_camera_rotation(K_CAM, K_CAM[:2, 2]), np.eye(3), atol=1e-12)


@pytest.mark.parametrize("position", OFF_CENTRE_POSITIONS)
def test_head_facing_the_camera_is_frontal_in_virtual_camera(position):
    # The head turns so its nose (-z_head) points at the camera centre.
    R_cam_from_head = rotation_between_vectors([0.0, 0.0, 1.0], position)
    T_cam_from_head = make_transform(R_cam_from_head, position)
    # Its pose in the camera frame is far from frontal ...
    ray_angle = np.degrees(np.arccos(position[2] / np.linalg.norm(position)))
    assert ray_angle > 15.0
    assert geodesic_angle_deg(R_cam_from_head, np.eye(3)) == pytest.approx(ray_angle)
    # ... but, cropped around the projected head centre, the virtual camera sees it frontal,
    # straight ahead, at its true distance.
    R_virt = virtual_camera_rotation(K_CAM, head_center_px(T_cam_from_head))
    T_virt = head_pose_cam_to_virtual(T_cam_from_head, R_virt)
    np.testing.assert_allclose(T_virt[:3, :3], np.eye(3), atol=1e-9)
    np.testing.assert_allclose(T_virt[:3, 3], [0, 0, np.linalg.norm(position)], atol=1e-9)


def test_camera_frontal_off_centre_head_is_turned_in_virtual_camera():
    """The converse: identity rotation in the camera frame is seen obliquely."""
    position = OFF_CENTRE_POSITIONS[0]
    T_cam = make_transform(np.eye(3), position)
    R_virt = virtual_camera_rotation(K_CAM, head_center_px(T_cam))
    T_virt = head_pose_cam_to_virtual(T_cam, R_virt)
    ray_angle = np.degrees(np.arctan2(position[0], position[2]))
    assert geodesic_angle_deg(T_virt[:3, :3], np.eye(3)) == pytest.approx(ray_angle)


def test_cam_virtual_round_trips():
    rng = np.random.default_rng(4)
    for position in OFF_CENTRE_POSITIONS:
        T_cam = make_transform(random_rotation(rng, 80.0), position)
        R_virt = virtual_camera_rotation(K_CAM, rng.uniform([0, 0], [WIDTH, HEIGHT]))
        T_virt = head_pose_cam_to_virtual(T_cam, R_virt)
        np.testing.assert_allclose(head_pose_virtual_to_cam(T_virt, R_virt), T_cam, atol=1e-12)
        np.testing.assert_allclose(
            head_pose_cam_to_virtual(head_pose_virtual_to_cam(T_virt, R_virt), R_virt),
            T_virt, atol=1e-12,
        )
        # Landmarks expressed in the virtual camera are the camera ones rotated.
        np.testing.assert_allclose(
            transform_points(T_virt, FACE_POINTS_HEAD),
            transform_points(T_cam, FACE_POINTS_HEAD) @ R_virt.T, atol=1e-12,
        )


@pytest.mark.parametrize("position", OFF_CENTRE_POSITIONS)
def test_warped_crop_centres_the_head(position):
    rng = np.random.default_rng(5)
    T_cam = make_transform(random_rotation(rng, 60.0), position)
    center = head_center_px(T_cam)
    out_size = 224
    geometry = virtual_crop_geometry(K_CAM, center, side_px=150.0, out_size=out_size)
    mid = (out_size - 1) / 2.0
    np.testing.assert_allclose(geometry.image_to_crop(center[None])[0], [mid, mid], atol=1e-9)
    # Every landmark lands where the virtual camera (K_virt, R_virt) projects it.
    landmarks_cam = transform_points(T_cam, FACE_POINTS_HEAD)
    np.testing.assert_allclose(
        geometry.image_to_crop(project(K_CAM, landmarks_cam)),
        project(geometry.K_virt, landmarks_cam @ geometry.R_virt_from_cam.T), atol=1e-9,
    )


def test_warped_crop_pixels_put_the_head_centre_at_the_crop_centre():
    position = OFF_CENTRE_POSITIONS[1]
    center = head_center_px(make_transform(np.eye(3), position))
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    image = np.exp(-((u - center[0]) ** 2 + (v - center[1]) ** 2) / (2 * 3.0**2))
    out_size = 128
    crop, _ = warp_virtual_crop(image.astype(np.float32), K_CAM, center, 100.0, out_size)
    w = crop.astype(np.float64)
    cv, cu = np.mgrid[0:out_size, 0:out_size]
    got = np.array([(cu * w).sum() / w.sum(), (cv * w).sum() / w.sum()])
    mid = (out_size - 1) / 2.0
    assert np.linalg.norm(got - [mid, mid]) < 0.05


def test_same_virtual_pose_gives_the_same_warped_crop_anywhere():
    """The warped crop depends only on T_virt_from_head; the plain crop does not."""
    rng = np.random.default_rng(6)
    T_virt = make_transform(random_rotation(rng, 40.0), [0.0, 0.0, 1.1])
    crops_warped, crops_plain = [], []
    for position in OFF_CENTRE_POSITIONS + [np.array([0.0, 0.0, 1.0])]:
        ray = position / np.linalg.norm(position)
        R_cam_from_virt = rotation_between_vectors([0.0, 0.0, 1.0], ray)
        T_cam = head_pose_virtual_to_cam(T_virt, R_cam_from_virt.T)
        center = head_center_px(T_cam)
        np.testing.assert_allclose(virtual_camera_rotation(K_CAM, center), R_cam_from_virt.T,
                                   atol=1e-12)
        landmarks_px = project(K_CAM, transform_points(T_cam, FACE_POINTS_HEAD))
        crops_warped.append(
            virtual_crop_geometry(K_CAM, center, 120.0, 224).image_to_crop(landmarks_px)
        )
        half = 60.0
        box = [center[0] - half / 1.4, center[1] - half / 1.4,
               center[0] + half / 1.4, center[1] + half / 1.4]
        x0, y0, side = square_crop_box(box)
        A = crop_from_image_matrix(x0, y0, side, 224)
        crops_plain.append(landmarks_px @ A[:2, :2].T + A[:2, 2])
    for warped in crops_warped[1:]:
        np.testing.assert_allclose(warped, crops_warped[0], atol=1e-9)
    # Plain crops of the same virtual pose differ (keystone), by several crop pixels here.
    spread = max(np.abs(p - crops_plain[-1]).max() for p in crops_plain[:-1])
    assert spread > 3.0


def test_relative_pose_in_virtual_frames_recovers_the_query():
    rng = np.random.default_rng(7)
    T_anchor = make_transform(random_rotation(rng, 20.0), OFF_CENTRE_POSITIONS[0])
    T_query = make_transform(random_rotation(rng, 70.0), OFF_CENTRE_POSITIONS[1])
    R_a = virtual_camera_rotation(K_CAM, head_center_px(T_anchor))
    R_q = virtual_camera_rotation(K_CAM, head_center_px(T_query))
    T_rel = relative_pose_virtual(T_query, T_anchor, R_a, R_q)
    np.testing.assert_allclose(query_pose_from_relative(T_rel, T_anchor, R_a, R_q), T_query,
                               atol=1e-12)
    # A head that moves across the image keeping the same look in its crops has the identity
    # relative pose in virtual frames, while its camera-frame rotation changed.
    T_moved = head_pose_virtual_to_cam(head_pose_cam_to_virtual(T_anchor, R_a), R_q)
    T_rel_same = relative_pose_virtual(T_moved, T_anchor, R_a, R_q)
    np.testing.assert_allclose(T_rel_same[:3, :3], np.eye(3), atol=1e-12)
    assert geodesic_angle_deg(T_moved[:3, :3], T_anchor[:3, :3]) > 20.0


def test_centred_face_warped_crop_equals_plain_crop():
    """At the principal point the virtual camera is the real one: H equals the crop affine."""
    rng = np.random.default_rng(8)
    image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    K = K_CAM.copy()
    # An even whole-pixel square is centred on a pixel corner: put the principal point there.
    K[0, 2], K[1, 2] = 320.5, 240.5
    box = [320.5 - 50.0, 240.5 - 50.0, 320.5 + 50.0, 240.5 + 50.0]  # side 140 exactly
    plain, g_plain = crop_face(image, box, 140, K=K)
    warped, g_virt = virtual_crop_face(image, box, 140, K=K)
    np.testing.assert_allclose(g_virt.crop_from_image, g_plain.crop_from_image, atol=1e-12)
    np.testing.assert_allclose(g_virt.K_virt, g_plain.K_crop, atol=1e-12)
    np.testing.assert_array_equal(warped, plain)
