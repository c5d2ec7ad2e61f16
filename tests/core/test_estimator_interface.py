"""Backend-independent parts of the estimator: pose decoding, composition, feature caching, registry."""

import numpy as np
import pytest
import torch

from hpe_core.estimator import (
    AnchorFeatures,
    RelativePose,
    compose_with_anchor_poses,
    create_estimator,
    crops_to_float,
)
from hpe_core.geometry.pose_encoding import (
    extrinsics_intrinsics_from_pose_encoding,
    pose_encoding_from_extrinsics_intrinsics,
)
from hpe_core.geometry.rotations import rotation_from_axis_angle
from hpe_core.geometry.transforms import make_transform, relative_transform


def _random_poses(rng: np.random.Generator, k: int) -> np.ndarray:
    axes = rng.normal(size=(k, 3))
    angles = rng.uniform(-np.pi, np.pi, size=k)
    R = rotation_from_axis_angle(axes / np.linalg.norm(axes, axis=1, keepdims=True), angles)
    t = rng.normal(scale=0.3, size=(k, 3)) + np.array([0.0, 0.0, 1.0])
    return make_transform(R, t)


def test_decoding_matches_geometry_module():
    rng = np.random.default_rng(0)
    enc = rng.normal(size=(5, 9))
    enc[:, 7:] = rng.uniform(0.3, 1.2, size=(5, 2))
    rel = RelativePose.from_pose_encoding(enc)
    extrinsics, _ = extrinsics_intrinsics_from_pose_encoding(enc, (56, 70))
    np.testing.assert_allclose(rel.rotation, extrinsics[:, :, :3], atol=1e-12)
    np.testing.assert_allclose(rel.translation, extrinsics[:, :, 3], atol=1e-12)
    np.testing.assert_array_equal(rel.fov_hw, enc[:, 7:])
    np.testing.assert_allclose(rel.rotation @ rel.rotation.transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), (5, 3, 3)), atol=1e-12)


def test_compose_recovers_query_pose():
    rng = np.random.default_rng(1)
    k = 4
    anchors = _random_poses(rng, k)
    query = _random_poses(rng, 1)[0]
    T_rel = relative_transform(query[None], anchors)  # T_q inv(T_a), per anchor
    intrinsics = np.broadcast_to(np.array([[50.0, 0, 28], [0, 50.0, 28], [0, 0, 1]]), (k, 3, 3))
    enc = pose_encoding_from_extrinsics_intrinsics(T_rel, intrinsics, (56, 56))
    rel = RelativePose.from_pose_encoding(enc)
    np.testing.assert_allclose(rel.as_matrices(), T_rel, atol=1e-12)
    composed = compose_with_anchor_poses(rel, anchors)
    np.testing.assert_allclose(composed, np.broadcast_to(query, (k, 4, 4)), atol=1e-12)


def test_compose_rejects_wrong_anchor_count():
    rel = RelativePose.from_pose_encoding(np.tile([0, 0, 1, 0, 0, 0, 1, 1, 1.0], (2, 1)))
    with pytest.raises(ValueError, match=r"\[2, 4, 4\]"):
        compose_with_anchor_poses(rel, np.eye(4)[None])


@pytest.mark.parametrize("make", [np.asarray, torch.as_tensor])
def test_anchor_features_slice_and_concatenate(make):
    tokens = make(np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2))
    feats = AnchorFeatures(tokens, "p")
    assert len(feats) == 5 and feats.token_shape == (3, 2)
    one = feats[2]
    assert len(one) == 1 and np.array_equal(np.asarray(one.patch_tokens), np.asarray(tokens[2:3]))
    last = feats[-1]
    assert np.array_equal(np.asarray(last.patch_tokens), np.asarray(tokens[4:5]))
    picked = feats[[3, 0]]
    assert np.array_equal(np.asarray(picked.patch_tokens), np.asarray(tokens[[3, 0]]))
    rebuilt = AnchorFeatures.concatenate([feats[i] for i in range(5)])
    assert np.array_equal(np.asarray(rebuilt.patch_tokens), np.asarray(tokens))
    assert type(rebuilt.patch_tokens) is type(tokens)
    with pytest.raises(IndexError):
        feats[5]


def test_anchor_features_refuse_mixing_producers():
    a = AnchorFeatures(np.zeros((1, 3, 2), np.float32), "model-a")
    b = AnchorFeatures(np.zeros((1, 3, 2), np.float32), "model-b")
    with pytest.raises(ValueError, match="different producers"):
        AnchorFeatures.concatenate([a, b])
    # features are generic [K, ...] (VGGT tokens [K, P, C], face-mesh points [K, N, 4]) ...
    with pytest.raises(ValueError, match=r"\[K, \.\.\.\]"):
        AnchorFeatures(np.zeros((3,), np.float32), "model-a")
    # ... but one producer's entries must agree in shape
    c = AnchorFeatures(np.zeros((1, 4, 2), np.float32), "model-a")
    with pytest.raises(ValueError, match="shapes differ"):
        AnchorFeatures.concatenate([a, c])


def test_crops_to_float_layout_and_checks():
    crops = np.zeros((2, 4, 6, 3), np.uint8)
    crops[1, 2, 3] = (255, 0, 51)
    images = crops_to_float(crops, (4, 6))
    assert images.shape == (2, 3, 4, 6) and images.dtype == np.float32
    np.testing.assert_allclose(images[1, :, 2, 3], [1.0, 0.0, 0.2], atol=1e-7)
    with pytest.raises(TypeError, match="uint8"):
        crops_to_float(crops.astype(np.float32), (4, 6))
    with pytest.raises(ValueError, match=r"\[N, 4, 4, 3\]"):
        crops_to_float(crops, (4, 4))


def test_registry_rejects_bad_requests(tmp_path):
    with pytest.raises(ValueError, match="unknown backend"):
        create_estimator("openvino", tmp_path)
    with pytest.raises(ValueError, match="precisions"):
        create_estimator("onnxruntime", tmp_path, precision="fp16")
    with pytest.raises(ValueError, match="runs on"):
        create_estimator("tensorrt", tmp_path, device="cpu")
    with pytest.raises(FileNotFoundError, match="hpe-export"):
        create_estimator("onnxruntime", tmp_path)
