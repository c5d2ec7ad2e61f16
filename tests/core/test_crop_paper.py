"""Tests of the paper's square face crop and its intrinsics K_crop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpe_core.crop import (
    crop_face,
    intrinsics_from_fov,
    resolve_intrinsics,
    square_crop_box,
)

WIDTH, HEIGHT = 640, 480
K_CAM = np.array([[525.0, 0.0, 319.5], [0.0, 520.0, 241.0], [0.0, 0.0, 1.0]])


def project(K, points_cam):
    """``[N, 3]`` camera-frame points (metres) -> ``[N, 2]`` pixels."""
    p = points_cam @ K.T
    return p[:, :2] / p[:, 2:3]


def blob_image(center_uv, sigma=2.5, width=WIDTH, height=HEIGHT):
    """float32 image with one Gaussian blob centred (sub-pixel) at ``center_uv``."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    d2 = (u - center_uv[0]) ** 2 + (v - center_uv[1]) ** 2
    return np.exp(-d2 / (2.0 * sigma**2)).astype(np.float32)


def centroid(image):
    v, u = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float64)
    w = np.clip(image.astype(np.float64), 0.0, None)
    return np.array([(u * w).sum() / w.sum(), (v * w).sum() / w.sum()])


def test_intrinsics_from_fov_spans_the_field_of_view():
    K = intrinsics_from_fov(WIDTH, HEIGHT, 60.0)
    # Rays through the outer edges of the first and last pixel columns.
    left = np.linalg.solve(K, [-0.5, (HEIGHT - 1) / 2.0, 1.0])
    right = np.linalg.solve(K, [WIDTH - 0.5, (HEIGHT - 1) / 2.0, 1.0])
    angle = math.degrees(math.acos(left @ right / np.linalg.norm(left) / np.linalg.norm(right)))
    assert angle == pytest.approx(60.0, abs=1e-9)
    assert K[1, 1] == K[0, 0]
    with pytest.raises(ValueError):
        intrinsics_from_fov(WIDTH, HEIGHT, 180.0)


def test_resolve_intrinsics_prefers_camera_info():
    np.testing.assert_array_equal(resolve_intrinsics(K_CAM, WIDTH, HEIGHT), K_CAM)
    fallback = intrinsics_from_fov(WIDTH, HEIGHT, 70.0)
    np.testing.assert_array_equal(resolve_intrinsics(None, WIDTH, HEIGHT, 70.0), fallback)
    # An uncalibrated CameraInfo carries an all-zero K.
    np.testing.assert_array_equal(resolve_intrinsics(np.zeros(9), WIDTH, HEIGHT, 70.0), fallback)
    with pytest.raises(ValueError):
        resolve_intrinsics(-K_CAM, WIDTH, HEIGHT)


@pytest.mark.parametrize(
    "box",
    [[300.0, 200.0, 380.5, 300.0], [-30.0, 400.0, 60.0, 470.0], [10.0, 20.0, 31.0, 50.0]],
)
def test_square_crop_box_is_the_paper_square(box):
    x0, y0, side = square_crop_box(box, margin=0.4)
    w, h = box[2] - box[0], box[3] - box[1]
    assert side == round(max(w, h) * 1.4)
    center = np.array([x0 + (side - 1) / 2.0, y0 + (side - 1) / 2.0])
    box_center = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
    assert np.all(np.abs(center - box_center) <= 0.5)


@pytest.mark.parametrize("out_size", [64, 224, 518])
@pytest.mark.parametrize("box", [[250.0, 150.0, 350.0, 270.0], [560.0, -20.0, 700.0, 90.0]])
def test_points_map_into_crop_as_projected_with_k_crop(box, out_size):
    rng = np.random.default_rng(0)
    points = np.column_stack(
        [rng.uniform(-0.4, 0.4, 50), rng.uniform(-0.3, 0.3, 50), rng.uniform(0.5, 3.0, 50)]
    )
    _, geometry = crop_face(np.zeros((HEIGHT, WIDTH, 3), np.uint8), box, out_size, K=K_CAM)
    via_image = geometry.image_to_crop(project(K_CAM, points))
    via_k_crop = project(geometry.K_crop, points)
    np.testing.assert_allclose(via_image, via_k_crop, atol=1e-9)
    np.testing.assert_allclose(geometry.crop_to_image(via_image), project(K_CAM, points), atol=1e-9)
    np.testing.assert_array_equal(geometry.K, K_CAM)


@pytest.mark.parametrize(
    "out_size, intermediate_size",
    [(96, None), (256, None), (518, 256)],  # shrink (AREA), enlarge (CUBIC), BIWI protocol
)
def test_pixels_land_where_k_crop_projects(out_size, intermediate_size):
    """A bright point rendered into the image appears in the crop where K_crop puts it."""
    point_cam = np.array([[0.061, -0.037, 0.9]])
    uv = project(K_CAM, point_cam)[0]
    image = blob_image(uv)
    box = [uv[0] - 55.3, uv[1] - 61.0, uv[0] + 35.0, uv[1] + 49.7]
    crop, geometry = crop_face(
        image, box, out_size, K=K_CAM, intermediate_size=intermediate_size
    )
    assert crop.shape == (out_size, out_size)
    expected = project(geometry.K_crop, point_cam)[0]
    error = np.linalg.norm(centroid(crop) - expected)
    print(f"out_size {out_size}: centroid error {error:.4f} crop px (scale {geometry.scale:.3f})")
    assert error < 0.05 * max(1.0, geometry.scale)


def test_padding_outside_the_image_is_zero():
    image = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    box = [-40.0, -30.0, 60.0, 90.0]  # square leaves the image on the left and the top
    out_size = 168
    x0, y0, side = square_crop_box(box)
    assert side == out_size  # no resampling: the crop is the padded window itself
    crop, geometry = crop_face(image, box, out_size, K=K_CAM)
    assert crop.shape == (out_size, out_size, 3) and crop.dtype == np.uint8
    inside = np.zeros((out_size, out_size), bool)
    inside[max(0, -y0) :, max(0, -x0) :] = True
    assert np.all(crop[~inside] == 0) and np.all(crop[inside] == 200)
    assert (~inside).sum() > 0 and inside.sum() > 0

    crop_small, geometry_small = crop_face(image, box, 56, K=K_CAM)
    # Crop pixels whose whole footprint lies left of column 0 stay exactly zero.
    u_edge = geometry_small.image_to_crop(np.array([[-0.5, 0.0]]))[0, 0]
    n_outside = int(math.floor(u_edge - 0.5)) + 1  # columns j with j + 0.5 <= u_edge
    assert n_outside >= 1
    assert np.all(crop_small[:, :n_outside] == 0)
    assert np.all(crop_small[:, n_outside + 1 :][-5:] > 0)
    assert np.all(crop_small[-5:, -5:] == 200)


def test_crop_content_matches_source_pixels():
    """Without resampling the crop is the source window (no off-by-one in the origin)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    box = [100.0, 120.0, 200.0, 220.0]
    x0, y0, side = square_crop_box(box)
    crop, geometry = crop_face(image, box, side, K=K_CAM)
    np.testing.assert_array_equal(crop, image[y0 : y0 + side, x0 : x0 + side])
    np.testing.assert_allclose(geometry.image_to_crop([[x0, y0]]), [[0.0, 0.0]], atol=1e-12)


def test_default_intrinsics_when_no_camera_info():
    image = np.zeros((HEIGHT, WIDTH), np.uint8)
    crop, geometry = crop_face(image, [300, 200, 340, 250], 128, K=None, hfov_deg=60.0)
    assert crop.shape == (128, 128)
    np.testing.assert_array_equal(geometry.K, intrinsics_from_fov(WIDTH, HEIGHT, 60.0))
    assert geometry.K_crop[0, 0] == pytest.approx(geometry.K[0, 0] * 128 / geometry.side)
