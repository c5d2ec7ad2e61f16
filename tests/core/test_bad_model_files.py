"""Missing, truncated, corrupt and foreign model files give one clear error at load time.

Covers the three things a backend loads: an ONNX export directory (onnxruntime, tensorrt), a
torch checkpoint directory, and a cached TensorRT plan (checked without TensorRT: a bad plan
is ignored and rebuilt). Uses the shipped default model (its ONNX export comes from
tools/setup.sh).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hpe_core.estimator import onnx_format as fmt
from hpe_core.estimator.registry import create_estimator
from hpe_core.estimator.tensorrt_backend import read_cached_plan
from hpe_core.pipeline_factory import DEFAULT_MODEL_DIR, ModelNotFoundError, resolve_model_dir
from hpe_core.vggt.checkpoints import CheckpointError, load_model

ONNX_DIR = DEFAULT_MODEL_DIR / "onnx"
TORCH_DIR = DEFAULT_MODEL_DIR / "torch"


@pytest.fixture()
def export_copy(tmp_path: Path) -> Path:
    if not (ONNX_DIR / fmt.MANIFEST_FILE).is_file():
        pytest.skip("the default model's ONNX export is missing (run tools/setup.sh)")
    out = tmp_path / "onnx"
    shutil.copytree(ONNX_DIR, out)
    return out


def _rewrite_manifest_entry(export_dir: Path, name: str) -> None:
    manifest = json.loads((export_dir / fmt.MANIFEST_FILE).read_text())
    path = export_dir / name
    manifest["files"][name].update(sha256=fmt.sha256_file(path), bytes=path.stat().st_size)
    (export_dir / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))


def test_intact_export_loads(export_copy: Path) -> None:
    fmt.verify_export_files(export_copy)
    estimator = create_estimator("onnxruntime", export_copy)
    assert estimator.input_size[0] > 0


def test_truncated_graph_is_refused_before_onnxruntime_parses_it(export_copy: Path) -> None:
    graph = export_copy / fmt.RELATIVE_POSE_FILE
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    with pytest.raises(fmt.ExportFileError, match="truncated"):
        create_estimator("onnxruntime", export_copy)


def test_corrupt_graph_of_the_same_size_is_refused(export_copy: Path) -> None:
    graph = export_copy / fmt.PATCH_EMBED_FILE
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(fmt.ExportFileError, match="SHA-256"):
        create_estimator("onnxruntime", export_copy)


def test_missing_graph_or_directory_is_named(export_copy: Path, tmp_path: Path) -> None:
    (export_copy / fmt.PATCH_EMBED_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="patch_embed.onnx"):
        create_estimator("onnxruntime", export_copy)
    with pytest.raises(ModelNotFoundError, match="manifest.json"):
        resolve_model_dir("onnxruntime", str(tmp_path / "nowhere"))


def test_foreign_onnx_graph_is_refused(export_copy: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 112, 112])
    y = helper.make_tensor_value_info("patch_tokens", TensorProto.FLOAT, ["N", 3, 112, 112])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["patch_tokens"])], "foreign", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(export_copy / fmt.PATCH_EMBED_FILE))
    _rewrite_manifest_entry(export_copy, fmt.PATCH_EMBED_FILE)  # a consistent but foreign export
    with pytest.raises(ValueError, match="not an hpe export"):
        create_estimator("onnxruntime", export_copy)


@pytest.fixture()
def checkpoint_copy(tmp_path: Path) -> Path:
    out = tmp_path / "torch"
    shutil.copytree(TORCH_DIR, out)
    return out


def test_truncated_foreign_and_missing_checkpoints(checkpoint_copy: Path) -> None:
    weights = checkpoint_copy / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[: len(original) // 3])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_model(checkpoint_copy)
    from safetensors.numpy import save_file

    save_file({"some_other_model.weight": np.zeros((2, 2), np.float32)}, str(weights))
    with pytest.raises(CheckpointError):
        load_model(checkpoint_copy)
    weights.unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_model(checkpoint_copy)
    (checkpoint_copy / "config.json").write_text("{not json")
    weights.write_bytes(original)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(checkpoint_copy)


def _cache_entry(tmp_path: Path, plan: bytes, key: str = "k1") -> Path:
    plan_path = tmp_path / "patch_embed-abc.plan"
    plan_path.write_bytes(plan)
    sidecar = {"key": key, "plan_bytes": len(plan), "plan_sha256": hashlib.sha256(plan).hexdigest()}
    plan_path.with_suffix(".json").write_text(json.dumps(sidecar))
    return plan_path


def test_cached_engine_is_used_only_when_it_matches_its_sidecar(tmp_path: Path) -> None:
    plan = bytes(range(256)) * 64
    plan_path = _cache_entry(tmp_path, plan)
    assert read_cached_plan(plan_path, "k1") == plan
    assert read_cached_plan(plan_path, "another-key") is None  # foreign (other GPU/version/ONNX)
    plan_path.write_bytes(plan[:1000])  # truncated (killed while copying, disk full)
    assert read_cached_plan(plan_path, "k1") is None
    plan_path.write_bytes(b"\x00" * len(plan))  # same size, other bytes
    assert read_cached_plan(plan_path, "k1") is None
    plan_path.with_suffix(".json").write_text("{half a sidecar")
    assert read_cached_plan(plan_path, "k1") is None
    plan_path.with_suffix(".json").unlink()
    assert read_cached_plan(plan_path, "k1") is None
