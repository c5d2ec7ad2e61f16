"""The ONNX Runtime backend against the PyTorch backend on the tiny preset (random weights)."""

import numpy as np
import pytest
import torch

from hpe_core.estimator import create_estimator
from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator, providers_for_device
from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera
from hpe_training.export.onnx_export import export_onnx

SIZE = (56, 56)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(2)
    return VGGTCamera(get_preset("tiny")).eval()


@pytest.fixture(scope="module")
def export_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_onnx")
    export_onnx(model, out, verify=False, log=lambda _msg: None)  # parity is what the tests check
    return out


@pytest.fixture(scope="module")
def ort_estimator(export_dir):
    return create_estimator("onnxruntime", export_dir, device="cpu")


@pytest.fixture(scope="module")
def torch_estimator(model):
    return TorchRelativePoseEstimator(model, device="cpu")


@pytest.fixture(scope="module")
def crops():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, size=(9, *SIZE, 3), dtype=np.uint8)


def test_reads_input_size_and_config_from_metadata(ort_estimator):
    assert isinstance(ort_estimator, OnnxRuntimeRelativePoseEstimator)
    assert ort_estimator.input_size == SIZE
    assert ort_estimator.metadata.model_config == get_preset("tiny").to_dict()
    assert ort_estimator.describe() == "onnxruntime on cpu (fp32, input 56x56)"


@pytest.mark.parametrize("k", [1, 3, 8])
def test_parity_with_torch(ort_estimator, torch_estimator, crops, k):
    anchors, query = crops[:k], crops[8]
    got = ort_estimator.estimate(ort_estimator.embed_anchors(anchors), query)
    want = torch_estimator.estimate(torch_estimator.embed_anchors(anchors), query)
    np.testing.assert_allclose(got.pose_encoding, want.pose_encoding, atol=1e-4)
    np.testing.assert_allclose(got.rotation, want.rotation, atol=1e-4)


def test_patch_tokens_match_torch(ort_estimator, torch_estimator, crops):
    got = ort_estimator.embed_anchors(crops[:3]).patch_tokens
    want = torch_estimator.embed_anchors(crops[:3]).patch_tokens.numpy()
    assert got.shape == want.shape == (3, 16, 64)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_cached_equals_uncached(ort_estimator, crops):
    anchors, query = crops[:4], crops[8]
    cached = ort_estimator.estimate(ort_estimator.embed_anchors(anchors), query)
    uncached = ort_estimator.estimate_from_crops(anchors, query)
    np.testing.assert_allclose(cached.pose_encoding, uncached.pose_encoding, atol=1e-5)


def test_batch_of_k_equals_k_single_calls(ort_estimator, crops):
    features = ort_estimator.embed_anchors(crops[:4])
    batched = ort_estimator.estimate(features, crops[8]).pose_encoding
    singles = np.concatenate([ort_estimator.estimate(features[i], crops[8]).pose_encoding for i in range(4)])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_refuses_torch_features(ort_estimator, torch_estimator, crops):
    with pytest.raises(ValueError, match="embed the anchors again"):
        ort_estimator.estimate(torch_estimator.embed_anchors(crops[:1]), crops[8])


def test_cuda_provider_choice():
    assert providers_for_device("cpu", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert providers_for_device("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        providers_for_device("cuda", ["CPUExecutionProvider"])
