"""Training on the node's crops: MTCNN run over a dataset, landmark-aligned pair crops, the
``wide`` augmentation, and the trained crop recorded in the model config."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hpe_core.aligned_crop import aligned_crop_geometry
from hpe_core.crop import PAPER_MARGIN
from hpe_core.virtual_camera import head_pose_cam_to_virtual
from hpe_training.data.augment import PairAugmenter
from hpe_training.data.detections import (DETECTION_NAME, FaceDetection, best_match, build_offline_detector, decode,
                                          detect_dataset, encode, load_detection)
from hpe_training.data.layout import LayoutReader
from hpe_training.data.pairs import HeadPairDataset, PairConfig, render_landmarks5
from hpe_training.synth.render import egl_available


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    """A small rendered set (frontal-ish and turned heads) with MTCNN's answers stored."""
    if not egl_available():
        pytest.skip("no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")
    from hpe_training.synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("aligned")
    generate(SynthConfig(out=root, identities=2, lightings=1, expressions=2, views=4, size=160, seed=5,
                         mesh_level=4, near_fraction=0.5), progress=False)
    summary = detect_dataset(root, build_offline_detector(), progress=False)
    return LayoutReader(root), summary


def test_detection_records_round_trip():
    det = FaceDetection(np.array([10.0, 20.0, 90.0, 110.0]), np.arange(10, dtype=float).reshape(5, 2) + 30, 0.87)
    back = decode(encode(det))
    np.testing.assert_allclose(back.box_xyxy, det.box_xyxy, atol=1e-4)
    np.testing.assert_allclose(back.landmarks5, det.landmarks5, atol=1e-4)
    assert back.score == pytest.approx(0.87, abs=1e-6)
    assert decode(encode(None)) is None
    assert decode(np.zeros(7)) is None  # malformed
    bad = encode(det)
    bad[2] = 5.0  # x1 < x0
    assert decode(bad) is None


def test_best_match_takes_the_detection_on_the_face_box():
    from hpe_core.detection.types import Detection

    lm = np.full((5, 2), 50.0)
    far = Detection(np.array([200.0, 200.0, 260.0, 260.0]), 0.99, lm)
    near = Detection(np.array([40.0, 40.0, 100.0, 100.0]), 0.7, lm)
    m = best_match([far, near], np.array([45.0, 45.0, 105.0, 105.0]))
    np.testing.assert_allclose(m.box_xyxy, near.box_xyxy)
    assert best_match([far], np.array([45.0, 45.0, 105.0, 105.0])) is None


def test_detect_dataset_stores_an_answer_per_view_and_resumes(detected):
    reader, summary = detected
    assert summary.detected == len(reader) and summary.skipped == 0
    assert summary.found + summary.missed == len(reader)
    assert summary.found >= len(reader) // 4  # our renders: MTCNN finds a good share
    assert all((s.directory / DETECTION_NAME).is_file() for s in reader.samples)
    again = detect_dataset(reader.root, build_offline_detector(), progress=False)
    assert again.detected == 0 and again.skipped == len(reader)


def _eye_angle_in_crop_deg(reader, ds, index, rng):
    """Angle of the render's (exact) eye line in the aligned crop of view ``index``."""
    sample = reader.samples[index]
    ann = reader.load_annotation(sample)
    box, landmarks = ds._detector_box(index, ann.bbox, rng)
    geometry = aligned_crop_geometry(ann.K, box, 112, landmarks, PAPER_MARGIN)
    eyes = render_landmarks5(reader.load_landmarks(sample))[:2]
    e = geometry.image_to_crop(eyes)
    return math.degrees(math.atan2(e[1, 1] - e[0, 1], e[1, 0] - e[0, 0]))


def test_aligned_crops_level_the_eyes(detected):
    """Views MTCNN found are levelled by its landmarks (its noise left in); views it missed by
    the render's points; box crops keep the head's roll in the image."""
    reader, _ = detected
    ds = HeadPairDataset(reader, PairConfig(size=112, crop="aligned", augment=False))
    assert 0.0 < ds.detection_rate() <= 1.0
    assert np.all(ds.landmark_noise > 0) and np.all(ds.landmark_noise < 0.2)
    found = [i for i, d in enumerate(ds._detections) if d is not None]
    missed = [i for i, d in enumerate(ds._detections) if d is None]
    frontal = []
    for i in found:
        sample = reader.samples[i]
        eyes = render_landmarks5(reader.load_landmarks(sample))[:2]
        box = reader.load_annotation(sample).bbox
        if np.linalg.norm(eyes[1] - eyes[0]) > 0.3 * (box[2] - box[0]):  # a face seen from the front
            frontal.append(abs(_eye_angle_in_crop_deg(reader, ds, i, None)))
    if frontal:
        assert np.median(frontal) < 8.0
    for i in missed:
        assert abs(_eye_angle_in_crop_deg(reader, ds, i, None)) < 0.5
    # the image's own eye lines are not level: the rendered heads are rolled
    raw = []
    for s in reader.samples:
        eyes = render_landmarks5(reader.load_landmarks(s))[:2]
        raw.append(abs(math.degrees(math.atan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0]))))
    assert max(raw) > 8.0


def test_aligned_targets_are_poses_in_the_levelled_camera(detected):
    """The head's 3-D points, posed by the target and projected with the crop's K, land where the
    crop's homography puts their image projections: crop, K and target agree."""
    reader, _ = detected
    ds = HeadPairDataset(reader, PairConfig(size=112, crop="aligned", augment=False))
    rng = np.random.default_rng(0)
    for index in range(len(reader)):
        sample = reader.samples[index]
        ann = reader.load_annotation(sample)
        crop, K_crop, T_cam, R_virt = ds.load_view(index, rng)
        T_virt = head_pose_cam_to_virtual(T_cam, R_virt)
        points = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0]])  # head frame, metres
        cam = points @ T_cam[:3, :3].T + T_cam[:3, 3]
        image_px = cam @ ann.K.T
        image_px = image_px[:, :2] / image_px[:, 2:]
        H = K_crop @ R_virt @ np.linalg.inv(ann.K)  # the aligned crop's warp
        h = np.c_[image_px, np.ones(3)] @ H.T
        via_warp = h[:, :2] / h[:, 2:]
        virt = points @ T_virt[:3, :3].T + T_virt[:3, 3]
        p = virt @ K_crop.T
        via_target = p[:, :2] / p[:, 2:]
        np.testing.assert_allclose(via_target, via_warp, atol=1e-6)
        assert crop.shape == (112, 112, 3)


def test_aligned_crop_needs_the_detections(tmp_path, detected):
    reader, _ = detected
    sample = reader.samples[0]
    moved = sample.directory / DETECTION_NAME
    keep = moved.read_bytes()
    moved.unlink()
    try:
        with pytest.raises(FileNotFoundError, match="hpe_training.data.detections"):
            HeadPairDataset(reader, PairConfig(size=112, crop="aligned"))
    finally:
        moved.write_bytes(keep)
    assert load_detection(sample) is not None or np.all(np.isnan(np.load(moved)))


def test_wide_augmentation_shares_the_camera_and_varies_the_exposure_per_view():
    rng = np.random.default_rng(3)
    a = rng.integers(40, 220, (64, 64, 3), dtype=np.uint8)
    aug = PairAugmenter("wide")
    differs = 0
    for seed in range(40):
        (x, y), _ = aug([a, a.copy()], seed)
        differs += int(not np.array_equal(x, y))
        (x2, y2), _ = aug([a, a.copy()], seed)
        np.testing.assert_array_equal(x, x2)  # deterministic by seed
        np.testing.assert_array_equal(y, y2)
    assert 3 <= differs < 40  # per-view exposure / occluders sometimes, shared draw otherwise
    standard = PairAugmenter("standard")
    for seed in range(10):
        (x, y), _ = standard([a, a.copy()], seed)
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError):
        PairAugmenter("extreme")


@pytest.mark.parametrize("bad", [dict(crop="mesh"), dict(augment_level="x"), dict(aligned_margin_range=(0.5, 0.3)),
                                 dict(aligned_max_shift=0.7)])
def test_pair_config_refuses_bad_crop_settings(bad):
    with pytest.raises(ValueError):
        PairConfig(**bad)


def test_trained_crop_travels_with_the_model(tmp_path):
    import torch

    from hpe_core.estimator.onnx_format import crop_mode_of
    from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
    from hpe_core.vggt.checkpoints import load_model, save_model
    from hpe_core.vggt.config import VGGTConfig, get_preset
    from hpe_core.vggt.model import VGGTCamera

    config = get_preset("tiny")
    assert "trained_crop" not in config.to_dict() and config.crop_mode == "paper"
    config.trained_crop = "aligned"
    assert VGGTConfig.from_dict(config.to_dict()).crop_mode == "aligned"
    with pytest.raises(ValueError):
        VGGTConfig.from_dict({**config.to_dict(), "trained_crop": "sideways"})
    torch.manual_seed(0)
    save_model(VGGTCamera(config), tmp_path / "m")
    model = load_model(tmp_path / "m")
    assert TorchRelativePoseEstimator(model).crop_mode == "aligned"
    assert crop_mode_of(model.config.to_dict()) == "aligned"
    assert crop_mode_of({"img_size": 518}) == "paper"  # exports made before trained_crop
