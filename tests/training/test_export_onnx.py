"""ONNX export at a non-native input size: the precomputed positional embedding and its parity."""

import numpy as np
import pytest
import torch

from hpe_core.estimator import create_estimator
from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera
from hpe_training.export.onnx_export import FixedSizePosEmbed, export_onnx

WIDE = (56, 70)  # the tiny model's positional embedding is built for 56x56: 70 needs resampling


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(8)
    return VGGTCamera(get_preset("tiny")).eval()


def test_fixed_size_pos_embed_is_scoped(model):
    dino = model.aggregator.patch_embed
    want = dino.interpolate_pos_embed(4, 5)
    with FixedSizePosEmbed(model, WIDE):
        torch.testing.assert_close(dino.interpolate_pos_embed(4, 5), want, rtol=0, atol=0)
        with pytest.raises(ValueError, match="exported for a"):
            dino.interpolate_pos_embed(4, 4)
    assert dino.interpolate_pos_embed(4, 4) is dino.pos_embed  # the method is back


def test_wide_export_matches_torch(model, tmp_path):
    result = export_onnx(model, tmp_path, input_size=WIDE, log=lambda _msg: None)
    assert result.input_size == WIDE and all(c.passed for c in result.checks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patch_embed.onnx", "relative_pose.onnx"]
    ort_est = create_estimator("onnxruntime", tmp_path)
    torch_est = TorchRelativePoseEstimator(model, input_size=WIDE)
    assert ort_est.input_size == torch_est.input_size == WIDE
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, size=(4, *WIDE, 3), dtype=np.uint8)
    got = ort_est.estimate(ort_est.embed_anchors(crops[:3]), crops[3]).pose_encoding
    want = torch_est.estimate(torch_est.embed_anchors(crops[:3]), crops[3]).pose_encoding
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_input_size_must_be_patch_multiple(model, tmp_path):
    with pytest.raises(ValueError, match="multiples of the patch size"):
        export_onnx(model, tmp_path, input_size=(56, 60), verify=False, log=lambda _msg: None)


def test_large_graphs_keep_weights_in_one_external_file(model, tmp_path, monkeypatch):
    """Graphs over the protobuf limit store weights beside them; simulated with a zero threshold."""
    import json

    from hpe_core.estimator import onnx_format as fmt
    from hpe_training.export import onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    result = export_onnx(model, tmp_path, log=lambda _msg: None)
    assert all(c.passed for c in result.checks)  # ONNX Runtime found the external weights
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["patch_embed.onnx", "patch_embed.onnx.data", "relative_pose.onnx", "relative_pose.onnx.data"]
    entry = result.files["relative_pose.onnx"]
    data = tmp_path / "relative_pose.onnx.data"
    assert entry["external_data"] == [{"file": "relative_pose.onnx.data", "bytes": data.stat().st_size,
                                       "sha256": fmt.sha256_file(data)}]
    graph_bytes = (tmp_path / "relative_pose.onnx").stat().st_size
    assert 5 * graph_bytes < (tmp_path / "relative_pose.onnx.data").stat().st_size  # weights moved out
    json.dumps(result.files)  # manifest-ready
