"""The PyTorch backend on the tiny preset (random weights): caching, batching, end-to-end parity."""

import numpy as np
import pytest
import torch

from hpe_core.estimator import create_estimator
from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
from hpe_core.vggt.checkpoints import save_model
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera

SIZE = (56, 56)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VGGTCamera(get_preset("tiny")).eval()


@pytest.fixture(scope="module")
def estimator(model):
    return TorchRelativePoseEstimator(model, device="cpu")


@pytest.fixture(scope="module")
def crops():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, *SIZE, 3), dtype=np.uint8)


def test_matches_model_forward_on_image_pairs(model, estimator, crops):
    anchors, query = crops[:4], crops[4]
    rel = estimator.estimate(estimator.embed_anchors(anchors), query)
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    pairs = torch.stack([images[:4], images[4:5].expand(4, -1, -1, -1)], dim=1)  # [K, 2, 3, H, W]
    with torch.no_grad():
        want = model(pairs)[-1][:, 1].numpy()
    np.testing.assert_allclose(rel.pose_encoding, want, atol=1e-5)
    assert rel.rotation.shape == (4, 3, 3) and rel.translation.shape == (4, 3) and rel.fov_hw.shape == (4, 2)


def test_cached_equals_uncached(estimator, crops):
    anchors, query = crops[:4], crops[4]
    cached = estimator.estimate(estimator.embed_anchors(anchors), query)
    uncached = estimator.estimate_from_crops(anchors, query)
    np.testing.assert_allclose(cached.pose_encoding, uncached.pose_encoding, atol=1e-5)


def test_batch_of_k_equals_k_single_calls(estimator, crops):
    anchors, query = crops[:4], crops[4]
    features = estimator.embed_anchors(anchors)
    batched = estimator.estimate(features, query).pose_encoding
    singles = np.concatenate([estimator.estimate(features[i], query).pose_encoding for i in range(4)])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    # the anchor changes the answer (the pairs really are different)
    assert np.abs(batched - batched[:1]).max() > 1e-3


def test_features_cached_per_anchor_can_be_recombined(estimator, crops):
    anchors, query = crops[:4], crops[4]
    per_anchor = [estimator.embed_anchors(anchors[i:i + 1]) for i in range(4)]
    subset = type(per_anchor[0]).concatenate([per_anchor[3], per_anchor[1]])
    got = estimator.estimate(subset, query).pose_encoding
    want = estimator.estimate_from_crops(anchors[[3, 1]], query).pose_encoding
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_refuses_features_of_another_model(estimator, crops):
    torch.manual_seed(1)
    other = TorchRelativePoseEstimator(VGGTCamera(get_preset("tiny")), device="cpu")
    with pytest.raises(ValueError, match="embed the anchors again"):
        estimator.estimate(other.embed_anchors(crops[:1]), crops[4])


def test_wrong_crop_size_and_empty_anchor_set_are_rejected(estimator, crops):
    with pytest.raises(ValueError, match=r"\[N, 56, 56, 3\]"):
        estimator.embed_anchors(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="at least one anchor"):
        estimator.estimate(estimator.embed_anchors(crops[:2])[2:], crops[4])


def test_bf16_autocast_runs_close_to_fp32(model, estimator, crops):
    low = TorchRelativePoseEstimator(model, device="cpu", precision="bf16")
    got = low.estimate(low.embed_anchors(crops[:2]), crops[4]).pose_encoding
    want = estimator.estimate(estimator.embed_anchors(crops[:2]), crops[4]).pose_encoding
    assert np.isfinite(got).all()
    assert 0 < np.abs(got - want).max() < 0.1  # really computed in bf16, and still close


def test_registry_loads_checkpoint_directory(model, estimator, crops, tmp_path):
    save_model(model, tmp_path / "ckpt")
    loaded = create_estimator("torch", tmp_path / "ckpt", device="cpu")
    assert loaded.name == "torch" and loaded.input_size == SIZE and loaded.precision == "fp32"
    got = loaded.estimate(loaded.embed_anchors(crops[:2]), crops[4]).pose_encoding
    want = estimator.estimate(estimator.embed_anchors(crops[:2]), crops[4]).pose_encoding
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_default_input_size_is_the_trained_size():
    import dataclasses

    model = VGGTCamera(get_preset("tiny")).eval()
    assert TorchRelativePoseEstimator(model).input_size == (56, 56)
    model.config = dataclasses.replace(model.config, trained_img_size=28)
    assert TorchRelativePoseEstimator(model).input_size == (28, 28)
    assert TorchRelativePoseEstimator(model, input_size=(42, 42)).input_size == (42, 42)


def test_cuda_request_without_gpu_is_clear(model):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        TorchRelativePoseEstimator(model, device="cuda")


@pytest.mark.gpu
def test_cuda_fp16_matches_cpu_fp32(model, crops):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    import copy

    cpu = TorchRelativePoseEstimator(copy.deepcopy(model), device="cpu")
    gpu = TorchRelativePoseEstimator(copy.deepcopy(model), device="cuda", precision="fp16")
    want = cpu.estimate(cpu.embed_anchors(crops[:4]), crops[4]).pose_encoding
    got = gpu.estimate(gpu.embed_anchors(crops[:4]), crops[4]).pose_encoding
    assert np.abs(got - want).max() < 0.05
