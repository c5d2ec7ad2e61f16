"""Pairs: crops keep intrinsics consistent, augmentation is shared, targets are right."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hpe_training.data.augment import PairAugmenter
from hpe_training.data.camera import project_points
from hpe_training.data.crop import CropBox, crop_image, crop_intrinsics, random_box, square_box
from hpe_training.data.layout import LayoutReader
from hpe_training.data.pairs import HeadPairDataset, PairConfig, PairSampler
from hpe_training.data.pose import fov_from_intrinsics, relative_to_anchor
from hpe_training.synth.render import egl_available


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    if not egl_available():
        pytest.skip("no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")
    from hpe_training.synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("pairs")
    generate(SynthConfig(out=root, identities=2, lightings=2, expressions=2, views=2, size=96, seed=3,
                         mesh_level=4), progress=False)
    return LayoutReader(root)


@pytest.mark.parametrize("box", [CropBox(40.3, 22.7, 90.0), CropBox(-20.0, 50.5, 260.0), CropBox(100.2, 80.9, 37.0)])
def test_crop_moves_image_content_where_the_new_K_projects(box):
    """A bright dot drawn at the projection of a 3D point is found at its projection with K'."""
    rng = np.random.default_rng(0)
    K = np.array([[300.0, 0.0, 160.0], [0.0, 310.0, 120.0], [0.0, 0.0, 1.0]])
    R = Rotation.from_rotvec(rng.normal(0, 0.3, 3)).as_matrix()
    t = np.array([0.02, -0.01, 0.8])
    # choose a 3D point that projects inside the crop box
    target = np.array([box.x0 + 0.37 * box.side, box.y0 + 0.61 * box.side])
    target = np.clip(target, 5, [314, 234])
    ray = np.linalg.inv(K) @ np.array([target[0], target[1], 1.0])
    X = R.T @ (ray * 0.8 - t)
    uv = project_points(K, R, t, X[None])[0]
    img = np.zeros((240, 320, 3), np.float32)
    yy, xx = np.mgrid[0:240, 0:320]
    img[..., 0] = np.exp(-((xx - uv[0]) ** 2 + (yy - uv[1]) ** 2) / (2 * 3.0 ** 2))
    out_size = 112
    crop = crop_image(img, box, out_size)
    K2 = crop_intrinsics(K, box, out_size)
    uv2 = project_points(K2, R, t, X[None])[0]
    w = crop[..., 0]
    assert w.sum() > 1.0
    cy, cx = np.mgrid[0:out_size, 0:out_size]
    centroid = np.array([(w * cx).sum() / w.sum(), (w * cy).sum() / w.sum()])
    np.testing.assert_allclose(centroid, uv2, atol=0.35)


def test_random_boxes_follow_margin_and_shift():
    rng = np.random.default_rng(1)
    bbox = np.array([30.0, 40.0, 90.0, 120.0])  # w 60, h 80
    for _ in range(200):
        b = random_box(bbox, rng, (0.4, 0.6), 0.1)
        assert 80 * 1.4 - 1e-9 <= b.side <= 80 * 1.6 + 1e-9
        c = np.array([b.x0 + b.side / 2, b.y0 + b.side / 2])
        assert np.all(np.abs(c - [60.0, 80.0]) <= 0.1 * b.side + 1e-9)
    b = square_box(bbox, 0.5)
    assert (b.x0, b.y0, b.side) == (0.0, 20.0, 120.0)


def test_augmentation_is_shared_by_both_views():
    aug = PairAugmenter()
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    changed = 0
    for seed in range(12):
        (oa, ob, oa2), replay = aug([a, b, a.copy()], seed)
        np.testing.assert_array_equal(oa, oa2)  # identical input -> identical output: same params
        changed += int(not np.array_equal(oa, a))
        applied = [t["__class_fullname__"].split(".")[-1] for t in replay["transforms"] if t["applied"]]
        (oa3, ob3, _), _ = aug([a, b, a], seed)
        np.testing.assert_array_equal(ob, ob3)  # deterministic by seed
        if "ColorJitter" in applied:
            # brightness/contrast change goes the same way on both views
            da, db = oa.astype(float).mean() - a.mean(), ob.astype(float).mean() - b.mean()
            assert np.sign(da) == np.sign(db) or abs(da) < 2 or abs(db) < 2
    assert changed >= 8
    (x1, _), _ = aug([a, b], 0)
    (x2, _), _ = aug([a, b], 1)
    assert not np.array_equal(x1, x2)


def test_pairs_share_identity_and_lighting(reader):
    sampler = PairSampler(reader, seed=4)
    partners = set()
    for i in range(len(reader)):
        a, q = sampler.pair(i)
        ka, kq = reader.samples[a].key, reader.samples[q].key
        assert a == i and q != i
        assert (ka.identity, ka.lighting) == (kq.identity, kq.lighting)
        assert sampler.pair(i) == (a, q)
        partners.add((kq.expr, kq.view))
    assert len(partners) == 4  # expression and view are free
    assert any(sampler.pair(i, epoch=1) != sampler.pair(i, epoch=0) for i in range(len(reader)))


def test_relative_and_absolute_targets(reader):
    rel = HeadPairDataset(reader, PairConfig(size=64, mode="relative", seed=1))
    ab = HeadPairDataset(reader, PairConfig(size=64, mode="absolute", seed=1, augment=False))
    item = rel[5]
    assert item["images"].shape == (2, 3, 64, 64) and item["images"].dtype == torch.float32
    assert 0.0 <= float(item["images"].min()) and float(item["images"].max()) <= 1.0
    assert float(item["images"].std()) > 0.02
    T = item["T_abs"].double().numpy()
    np.testing.assert_allclose(item["R"][0].numpy(), np.eye(3), atol=1e-6)
    np.testing.assert_allclose(item["t"][0].numpy(), 0.0, atol=1e-6)
    _, T_rel = relative_to_anchor(T[0], T[1])
    np.testing.assert_allclose(item["R"][1].numpy(), T_rel[:3, :3], atol=1e-5)
    np.testing.assert_allclose(item["t"][1].numpy(), T_rel[:3, 3], atol=1e-5)
    # the relative pose carries the anchor's camera onto the query's
    np.testing.assert_allclose(T_rel @ T[0], T[1], atol=1e-5)
    q = item["quat"][1].double().numpy()
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), T_rel[:3, :3], atol=1e-5)
    assert q[3] >= 0
    for f in range(2):
        expected = fov_from_intrinsics(item["K"][f].double().numpy(), 64, 64)
        np.testing.assert_allclose(item["fov"][f].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(item["pose_enc"][1, :3].numpy(), item["t"][1].numpy())
    a_item = ab[5]
    np.testing.assert_array_equal(a_item["keys"].numpy(), item["keys"].numpy())
    np.testing.assert_allclose(a_item["R"].numpy(), a_item["T_abs"][:, :3, :3].numpy(), atol=1e-6)
    np.testing.assert_allclose(a_item["t"].numpy(), a_item["T_abs"][:, :3, 3].numpy(), atol=1e-6)
    k = item["keys"].numpy()
    assert k[0, 0] == k[1, 0] and k[0, 1] == k[1, 1]


def test_dataset_crop_K_projects_landmarks_into_the_crop(reader):
    """Stored 3D landmarks land, with the crop's K and the pose, where the crop put them."""
    import json

    ds = HeadPairDataset(reader, PairConfig(size=80, augment=False, seed=9))
    rng = np.random.default_rng(0)
    for idx in range(0, len(reader), 3):
        img, K2, T, _ = ds.load_view(idx, rng)
        s = reader.samples[idx]
        lm3d = json.loads((reader.root / f"identity_{s.key.identity:04d}" / "landmarks_3d.json").read_text())
        pts = np.asarray(lm3d["expressions"][f"expr_{s.key.expr:02d}"])
        uv_crop = project_points(K2, T[:3, :3], T[:3, 3], pts)
        ann = reader.load_annotation(s)
        uv = reader.load_landmarks(s)
        # the same affine map that warped the image: u' = s (u - x0)
        scale = K2[0, 0] / ann.K[0, 0]
        x0 = ann.K[0, 2] - K2[0, 2] / scale
        y0 = ann.K[1, 2] - K2[1, 2] / scale
        np.testing.assert_allclose(uv_crop, scale * (uv - [x0, y0]), atol=1e-3)
        # the face (nose, eyes, mouth corners) is inside the crop
        assert np.all((uv_crop[:5] > 0) & (uv_crop[:5] < 80))


def test_pair_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mode"):
        PairConfig(mode="sideways")
    with pytest.raises(ValueError, match="margin_range"):
        PairConfig(margin_range=(0.6, 0.4))
    with pytest.raises(ValueError, match="max_shift"):
        PairConfig(max_shift=0.7)


def test_targets_are_in_each_crops_virtual_camera(reader):
    """Targets use the virtual camera of each crop (as the pipeline does at inference): the
    absolute target is the real pose rotated by R_virt_from_cam, and the relative target is
    built from those, not from the real-camera poses."""
    from hpe_core.geometry.rotations import geodesic_angle_deg
    from hpe_core.virtual_camera import head_pose_cam_to_virtual

    ds = HeadPairDataset(reader, PairConfig(size=64, augment=False, seed=3))
    item = ds[0]
    a_idx, q_idx = ds.sampler.pair(0, ds.epoch)
    rng = np.random.default_rng([ds.config.seed, 104729, ds.epoch, 0])
    views = [ds.load_view(i, rng) for i in (a_idx, q_idx)]
    T_virt = [head_pose_cam_to_virtual(T, R) for _, _, T, R in views]
    np.testing.assert_allclose(item["T_abs"].numpy(), np.stack(T_virt), atol=1e-5)
    T_rel = T_virt[1] @ np.linalg.inv(T_virt[0])
    np.testing.assert_allclose(item["R"][1].numpy(), T_rel[:3, :3], atol=1e-5)
    # Off-centre crops: the virtual rotation is not the identity, so this differs from the
    # real-camera relative pose.
    assert max(geodesic_angle_deg(R, np.eye(3)) for *_, R in views) > 0.5


def test_near_sampling_takes_queries_within_the_gap_bound(tmp_path):
    """With near views in the data and near_fraction 1, every query whose anchor has a near
    partner lies within near_gap_deg of it; near_fraction 0 keeps the uniform draw."""
    if not egl_available():
        pytest.skip("no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")
    from hpe_core.geometry.rotations import geodesic_angle_deg
    from hpe_training.synth.generator import SynthConfig, generate

    generate(SynthConfig(out=tmp_path, identities=1, lightings=1, expressions=2, views=5, size=64, seed=4,
                         mesh_level=3, msaa=0, near_fraction=1.0, near_max_deg=20.0), progress=False)
    reader = LayoutReader(tmp_path)
    R = [reader.load_annotation(s).R_h2c for s in reader.samples]
    near = PairSampler(reader, seed=0, near_fraction=1.0, near_gap_deg=25.0)
    uniform = PairSampler(reader, seed=0)
    near_gaps, uniform_gaps = [], []
    for epoch in range(4):
        for i in range(len(reader)):
            a, q = near.pair(i, epoch)
            assert a == i and q != i
            near_gaps.append(geodesic_angle_deg(R[q] @ R[a].T, np.eye(3)))
            a, q = uniform.pair(i, epoch)
            uniform_gaps.append(geodesic_angle_deg(R[q] @ R[a].T, np.eye(3)))
    # every view 1..4 of an expression lies within 20 deg of its view 0, so every anchor has a
    # near partner (pairs of views 1..4 can be up to 40 deg apart: bounded by the 25 deg rule)
    assert max(near_gaps) <= 25.0 + 1e-6
    assert max(uniform_gaps) > 25.0  # the other expression's views are far
    with pytest.raises(ValueError, match="near_fraction"):
        PairConfig(near_fraction=1.5)


def test_near_views_stay_within_their_bound_of_view_zero():
    from hpe_core.geometry.rotations import geodesic_angle_deg
    from hpe_training.synth.scene import euler_to_matrix, view_pose_deg

    for view in range(1, 30):
        base = euler_to_matrix(*view_pose_deg(7, 3, 0, 1, 0))
        pose = euler_to_matrix(*view_pose_deg(7, 3, 0, 1, view, near_fraction=1.0, near_max_deg=15.0))
        assert geodesic_angle_deg(pose @ base.T, np.eye(3)) <= 15.0 + 1e-6
    # without the option every pose is the independent draw it always was
    independent = [view_pose_deg(7, 3, 0, 1, v) for v in range(1, 30)]
    far = [geodesic_angle_deg(euler_to_matrix(*p) @ euler_to_matrix(*view_pose_deg(7, 3, 0, 1, 0)).T, np.eye(3))
           for p in independent]
    assert max(far) > 30.0
