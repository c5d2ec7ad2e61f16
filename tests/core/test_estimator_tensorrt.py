"""TensorRT backend: cache keys and profiles everywhere; engines only where TensorRT and a GPU exist."""

import json

import numpy as np
import pytest
import torch

from hpe_core.estimator import create_estimator
from hpe_core.estimator.tensorrt_backend import (
    MAX_ANCHORS,
    TensorRTUnavailableError,
    engine_cache_key,
    graph_profile,
    onnx_content_hash,
    tensorrt_availability,
)

TRT_REASON = tensorrt_availability()
needs_tensorrt = pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT cannot run here: {TRT_REASON}")


def test_profiles_cover_one_to_eight_anchors():
    pose = graph_profile("relative_pose", (56, 56), (16, 64))
    lo, opt, hi = pose.shapes["anchor_patch_tokens"]
    assert (lo, opt, hi) == ((1, 16, 64), (4, 16, 64), (MAX_ANCHORS, 16, 64))
    assert set(pose.shapes["query_patch_tokens"]) == {(1, 16, 64)}
    embed = graph_profile("patch_embed", (56, 70), (20, 64))
    assert embed.shapes["images"][2] == (MAX_ANCHORS + 1, 3, 56, 70)  # K anchors + the query


def test_cache_key_depends_on_every_ingredient(tmp_path):
    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"graph-1")
    profile = graph_profile("relative_pose", (56, 56), (16, 64))
    base = dict(onnx_hash=onnx_content_hash(graph), trt_version="10.3.0", gpu_name="NVIDIA H100",
                precision="fp16", profile=profile)
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**base)
    changed = [dict(base, trt_version="10.4.0"), dict(base, gpu_name="NVIDIA A100"), dict(base, precision="fp32"),
               dict(base, profile=graph_profile("relative_pose", (56, 70), (20, 64)))]
    assert len({engine_cache_key(**c) for c in changed} | {key}) == 5
    graph.write_bytes(b"graph-2")
    assert onnx_content_hash(graph) != base["onnx_hash"]
    before = onnx_content_hash(graph)
    (tmp_path / "g.onnx.data").write_bytes(b"weights")  # external data beside the graph counts too
    assert onnx_content_hash(graph) != before


def test_missing_tensorrt_raises_clear_error(tmp_path):
    if TRT_REASON is None:
        pytest.skip("TensorRT is available here")
    with pytest.raises(TensorRTUnavailableError):
        create_estimator("tensorrt", tmp_path, device="cuda")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from hpe_core.vggt.config import get_preset
    from hpe_core.vggt.model import VGGTCamera
    from hpe_training.export.onnx_export import export_onnx

    torch.manual_seed(3)
    out = tmp_path_factory.mktemp("trt_onnx")
    export_onnx(VGGTCamera(get_preset("tiny")), out, log=lambda _msg: None)
    return out


@pytest.mark.tensorrt
@pytest.mark.gpu
@needs_tensorrt
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_engine_matches_onnxruntime_and_is_cached(tiny_export, tmp_path, precision, tolerance):
    cache = tmp_path / "engines"
    engine = create_estimator("tensorrt", tiny_export, device="cuda", precision=precision, cache_dir=cache)
    reference = create_estimator("onnxruntime", tiny_export)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(MAX_ANCHORS + 1, 56, 56, 3), dtype=np.uint8)
    for k in (1, 4, MAX_ANCHORS):
        got = engine.estimate(engine.embed_anchors(crops[:k]), crops[-1]).pose_encoding
        want = reference.estimate(reference.embed_anchors(crops[:k]), crops[-1]).pose_encoding
        assert np.abs(got - want).max() < tolerance
    uncached = engine.estimate_from_crops(crops[:MAX_ANCHORS], crops[-1]).pose_encoding
    cached = engine.estimate(engine.embed_anchors(crops[:MAX_ANCHORS]), crops[-1]).pose_encoding
    assert np.abs(uncached - cached).max() < tolerance
    plans = sorted(cache.glob("*.plan"))
    assert len(plans) == 2
    for plan in plans:
        sidecar = json.loads(plan.with_suffix(".json").read_text())
        assert sidecar["precision"] == precision and sidecar["gpu_name"] == torch.cuda.get_device_name()
        assert plan.read_bytes()[:1] != b"{"  # a plain plan, no JSON header
    stamps = {p: p.stat().st_mtime_ns for p in plans}
    again = create_estimator("tensorrt", tiny_export, device="cuda", precision=precision, cache_dir=cache)
    assert {p: p.stat().st_mtime_ns for p in sorted(cache.glob("*.plan"))} == stamps  # reused, not rebuilt
    assert again.estimate(again.embed_anchors(crops[:2]), crops[-1]).pose_encoding.shape == (2, 9)
