"""Reading the on-disk layout back: poses, intrinsics, boxes and landmarks agree."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from hpe_training.data.camera import project_points
from hpe_training.data.layout import LayoutReader, SampleKey
from hpe_training.data.safe_pickle import UnsafePickleError
from hpe_training.synth.render import egl_available

SEED, SIZE = 11, 96


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    if not egl_available():
        pytest.skip("no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")
    from hpe_training.synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth")
    generate(SynthConfig(out=root, identities=2, lightings=2, expressions=2, views=3, size=SIZE,
                         seed=SEED, identity_offset=10, mesh_level=4), progress=False)
    return root


def test_reader_enumerates_all_views(dataset):
    reader = LayoutReader(dataset)
    assert len(reader) == 2 * 2 * 2 * 3
    assert reader.identities() == [10, 11]
    assert reader.samples[0].key == SampleKey(10, 0, 0, 0)
    assert reader.samples[-1].key == SampleKey(11, 1, 1, 2)
    groups = reader.groups()
    assert sorted(groups) == [(10, 0), (10, 1), (11, 0), (11, 1)]
    assert all(len(v) == 6 for v in groups.values())
    img = reader.load_image(reader.samples[3])
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8 and img.std() > 5


def test_reader_round_trips_generator_poses_exactly(dataset):
    from hpe_training.synth.scene import sample_object_transform, sample_view

    reader = LayoutReader(dataset)
    for s in reader.samples[::5]:
        k = s.key
        ann = reader.load_annotation(s)
        view = sample_view(SEED, k.identity, k.lighting, k.expr, k.view, SIZE, n_photos=9)
        r_h2w, t_h2w = sample_object_transform(SEED, k.identity, k.lighting, k.expr)
        np.testing.assert_array_equal(ann.K, view.K)
        np.testing.assert_array_equal(ann.R_h2w, r_h2w)
        np.testing.assert_array_equal(ann.t_h2w, t_h2w)
        np.testing.assert_allclose(ann.R_h2c, view.R_h2c, atol=1e-12)
        np.testing.assert_allclose(ann.t_h2c, view.t_h2c, atol=1e-12)
        assert abs(np.linalg.det(ann.R_w2c) - 1) < 1e-12
        assert 0.2 < ann.t_h2c[2] < 2.5  # metres in front of the camera


def test_landmarks_project_onto_stored_2d_points_and_into_the_face_box(dataset):
    reader = LayoutReader(dataset)
    inside = total = 0
    for s in reader.samples:
        k = s.key
        lm3d = json.loads((dataset / f"identity_{k.identity:04d}" / "landmarks_3d.json").read_text())
        pts = np.asarray(lm3d["expressions"][f"expr_{k.expr:02d}"])
        ann = reader.load_annotation(s)
        uv = project_points(ann.K, ann.R_h2c, ann.t_h2c, pts)
        np.testing.assert_allclose(uv, reader.load_landmarks(s), atol=1e-3)
        x0, y0, x1, y1 = ann.bbox
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
        face = uv[:5]  # nose, eyes, mouth corners (not the head centre)
        in_img = (face >= 0).all(1) & (face < SIZE).all(1)
        ok = (face[:, 0] >= x0 - 0.5) & (face[:, 0] <= x1 + 0.5) & (face[:, 1] >= y0 - 0.5) & (face[:, 1] <= y1 + 0.5)
        assert ok[in_img].all()
        inside += int(in_img.sum())
        total += len(face)
    assert inside > 0.9 * total


def _write_paper_style_view(root, proto=2):
    d = root / "identity_000" / "lighting_0" / "expr_3" / "view_12"
    d.mkdir(parents=True)
    import cv2

    cv2.imwrite(str(d / "output.png"), np.full((40, 50, 3), 128, np.uint8))
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    cam = {"R": rot, "t": np.array([[0.1], [0.0], [1.2]], np.float32),
           "K": np.array([[300, 0, 25], [0, 300, 20], [0, 0, 1]], np.float32)}
    obj = {"R_world": rot.T.astype(np.float64), "t_world": np.array([0.0, 0.05, 0.0])}
    (d / "output_opencv_camera.pkl").write_bytes(pickle.dumps(cam, protocol=proto))
    (d / "output_object_transform_post_render.pkl").write_bytes(pickle.dumps(obj, protocol=proto))
    np.save(d / "face_bbox.npy", np.array([5, 6, 30, 35], np.int64))
    return d


def test_reader_accepts_paper_style_files(tmp_path):
    _write_paper_style_view(tmp_path)
    reader = LayoutReader(tmp_path)
    assert [s.key for s in reader.samples] == [SampleKey(0, 0, 3, 12)]
    ann = reader.load_annotation(reader.samples[0])
    np.testing.assert_allclose(ann.R_h2c, np.eye(3), atol=1e-7)
    np.testing.assert_allclose(ann.t_h2c, [0.1 - 0.05, 0.0, 1.2], atol=1e-7)
    np.testing.assert_array_equal(ann.bbox, [5, 6, 30, 35])
    assert reader.load_landmarks(reader.samples[0]) is None


def test_reader_refuses_malicious_pose_pickle(tmp_path):
    d = _write_paper_style_view(tmp_path)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (d / "output_opencv_camera.pkl").write_bytes(pickle.dumps({"R": Evil()}))
    reader = LayoutReader(tmp_path)
    with pytest.raises(UnsafePickleError):
        reader.load_annotation(reader.samples[0])
    assert not marker.exists()


def test_reader_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        LayoutReader(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no views"):
        LayoutReader(tmp_path)
