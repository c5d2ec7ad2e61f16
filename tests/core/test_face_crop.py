"""hpe_core.face_crop: both crop modes image the scene the way their CropCamera says."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hpe_core.face_crop import cut_face_crop
from hpe_core.geometry.rotations import geodesic_angle_deg

K = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])


def _scene(point_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A black frame with a bright 5x5 dot where ``point_cam`` projects, and that pixel."""
    uv = (K @ point_cam)[:2] / point_cam[2]
    image = np.zeros((480, 640, 3), np.uint8)
    u, v = int(round(uv[0])), int(round(uv[1]))
    image[v - 2:v + 3, u - 2:u + 3] = 255
    return image, np.array([u, v], dtype=float)


def _bright_centroid(crop: np.ndarray) -> np.ndarray:
    weight = crop[..., 0].astype(float)
    rows, cols = np.nonzero(weight > 0)
    w = weight[rows, cols]
    return np.array([cols @ w / w.sum(), rows @ w / w.sum()])


@pytest.mark.parametrize("mode", ["paper", "aligned"])
def test_a_point_lands_where_the_crop_camera_projects_it(mode):
    point = np.array([0.12, -0.05, 0.9])  # off-centre, so the virtual camera is turned
    image, uv = _scene(point)
    box = np.array([uv[0] - 60, uv[1] - 50, uv[0] + 40, uv[1] + 70])
    # eye line tilted by 20 deg on screen: the aligned crop levels it
    eyes = np.array([[uv[0] - 30, uv[1] - 10], [uv[0] + 30 * math.cos(0.35), uv[1] - 10 + 30 * math.sin(0.35)]])
    landmarks = np.vstack([eyes, [[uv[0], uv[1] + 10], [uv[0] - 20, uv[1] + 35], [uv[0] + 20, uv[1] + 35]]])
    crop, camera = cut_face_crop(image, K, box, 128, mode, landmarks)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    projected = camera.crop_from_cam @ point
    np.testing.assert_allclose(_bright_centroid(crop), projected[:2] / projected[2], atol=0.6)
    # the crop pixel's viewing ray, in the virtual frame, is the point's direction there
    ray = camera.rays_virtual(projected[:2] / projected[2])[0]
    expected = camera.virtual_from_cam @ point
    np.testing.assert_allclose(ray, expected / expected[2], atol=1e-9)


def test_the_aligned_camera_carries_the_levelling_roll_and_falls_back_without_landmarks():
    image, uv = _scene(np.array([0.0, 0.0, 1.0]))
    box = np.array([uv[0] - 50, uv[1] - 50, uv[0] + 50, uv[1] + 50])
    a = math.radians(20.0)
    landmarks = np.array([[uv[0] - 30 * math.cos(a), uv[1] - 30 * math.sin(a)],
                          [uv[0] + 30 * math.cos(a), uv[1] + 30 * math.sin(a)],
                          [uv[0], uv[1] + 10], [uv[0] - 20, uv[1] + 35], [uv[0] + 20, uv[1] + 35]])
    _, paper = cut_face_crop(image, K, box, 96, "paper", landmarks)
    _, aligned = cut_face_crop(image, K, box, 96, "aligned", landmarks)
    _, plain = cut_face_crop(image, K, box, 96, "aligned", None)
    assert float(geodesic_angle_deg(aligned.virtual_from_cam, paper.virtual_from_cam)) == pytest.approx(20.0, abs=0.5)
    assert float(geodesic_angle_deg(plain.virtual_from_cam, paper.virtual_from_cam)) < 0.5


def test_bad_requests_are_refused():
    image = np.zeros((100, 100, 3), np.uint8)
    box = [20, 20, 60, 60]
    with pytest.raises(ValueError, match="crop mode"):
        cut_face_crop(image, K, box, 64, "square")
    with pytest.raises(ValueError, match="paper crops only"):
        cut_face_crop(image, K, box, 64, "aligned", intermediate_size=32)
    crop, camera = cut_face_crop(image, K, box, 64, "paper", intermediate_size=32)
    assert crop.shape == (64, 64, 3) and camera.focal_px > 0
