"""``hpe-export`` round trips on the tiny preset, and the checks that make an export fail."""

import copy
import json

import numpy as np
import onnx
import pytest
import torch

from hpe_core.estimator import create_estimator
from hpe_core.estimator import onnx_format as fmt
from hpe_core.estimator.tensorrt_backend import tensorrt_availability
from hpe_core.vggt.checkpoints import save_model
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.lora import apply_lora, randomize_lora_b, save_adapter
from hpe_core.vggt.model import VGGTCamera
from hpe_training.export.cli import main, merge_adapter
from hpe_training.export.onnx_export import verify_with_onnxruntime


@pytest.fixture(scope="module")
def preset_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "tiny"
    assert main(["--preset", "tiny", "--random-init", "--seed", "4", "--output", str(out)]) == 0
    return out


def test_manifest_lists_files_hashes_and_checks(preset_export):
    manifest = json.loads((preset_export / fmt.MANIFEST_FILE).read_text())
    assert manifest["format_version"] == fmt.FORMAT_VERSION
    assert manifest["input_size_hw"] == [56, 56]
    assert manifest["model_config"] == get_preset("tiny").to_dict()
    assert manifest["source"] == {"preset": "tiny", "random_init": True, "seed": 4}
    for name in (fmt.PATCH_EMBED_FILE, fmt.RELATIVE_POSE_FILE):
        assert manifest["files"][name]["sha256"] == fmt.sha256_file(preset_export / name)
    checks = manifest["checks"]
    assert {c["name"] for c in checks} == {"patch_embed N=4", "relative_pose K=1", "relative_pose K=3",
                                           "relative_pose K=3 pair queries"}
    assert manifest["graphs"][fmt.RELATIVE_POSE_FILE]["inputs"][fmt.QUERY_TOKENS_INPUT] == [fmt.QUERY_AXIS, "P", "C"]
    assert all(c["passed"] and c["max_abs_diff"] <= 1e-4 for c in checks)
    if tensorrt_availability() is not None:
        assert manifest["tensorrt"]["status"] == "skipped" and manifest["tensorrt"]["reason"]


def test_graphs_carry_metadata_names_and_dynamic_axes(preset_export):
    embed = onnx.load(str(preset_export / fmt.PATCH_EMBED_FILE))
    props = {p.key: p.value for p in embed.metadata_props}
    meta = fmt.GraphMetadata.from_props(props, "patch_embed")
    assert meta.graph == "patch_embed" and meta.input_size == (56, 56)
    assert meta.model_config == get_preset("tiny").to_dict()
    assert json.loads(props["hpe.preprocessing"])["range"] == [0.0, 1.0]
    assert [i.name for i in embed.graph.input] == ["images"]
    assert embed.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    pose = onnx.load(str(preset_export / fmt.RELATIVE_POSE_FILE))
    assert [i.name for i in pose.graph.input] == ["anchor_patch_tokens", "query_patch_tokens"]
    assert [o.name for o in pose.graph.output] == ["pose_enc"]
    assert pose.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "K"
    # the query's first axis is 1 or K (one query per pair: several faces in one call)
    assert pose.graph.input[1].type.tensor_type.shape.dim[0].dim_param == fmt.QUERY_AXIS
    assert {p.key: p.value for p in pose.metadata_props}["hpe.graph"] == "relative_pose"


def test_export_matches_the_model_it_came_from(preset_export):
    torch.manual_seed(4)
    model = VGGTCamera(get_preset("tiny")).eval()
    assert all(c.passed for c in verify_with_onnxruntime(model, preset_export, (56, 56)))
    # the check can fail: another model's outputs do not match this export
    torch.manual_seed(5)
    other = VGGTCamera(get_preset("tiny")).eval()
    assert not any(c.passed for c in verify_with_onnxruntime(other, preset_export, (56, 56)))


def test_checkpoint_with_lora_adapter_round_trip(tmp_path, capsys):
    torch.manual_seed(6)
    base = VGGTCamera(get_preset("tiny")).eval()
    save_model(base, tmp_path / "ckpt")
    peft_model = apply_lora(copy.deepcopy(base))  # wraps its argument in place
    assert randomize_lora_b(peft_model, std=0.05, generator=torch.Generator().manual_seed(0)) > 0
    save_adapter(peft_model, tmp_path / "adapter")
    peft_model.eval()

    out = tmp_path / "export"
    assert main(["--model-dir", str(tmp_path / "ckpt"), "--adapter", str(tmp_path / "adapter"),
                 "--output", str(out), "--tensorrt", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "merging LoRA adapter" in printed and "TensorRT step skipped: --tensorrt skip" in printed
    manifest = json.loads((out / fmt.MANIFEST_FILE).read_text())
    merge = [c for c in manifest["checks"] if c["name"] == "lora merge"]
    assert merge and merge[0]["passed"]

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, size=(3, 56, 56, 3), dtype=np.uint8)
    estimator = create_estimator("onnxruntime", out)
    got = estimator.estimate(estimator.embed_anchors(crops[:2]), crops[2]).pose_encoding
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    pairs = torch.stack([images[:2], images[2:].expand(2, -1, -1, -1)], dim=1)
    with torch.no_grad():
        want_adapted = peft_model(pairs)[-1][:, 1].numpy()
        want_base = base(pairs)[-1][:, 1].numpy()
    np.testing.assert_allclose(got, want_adapted, atol=1e-4)
    assert np.abs(got - want_base).max() > 1e-3  # the adapter really changed the model


def _tiny_checkpoint_and_adapter(tmp_path):
    torch.manual_seed(6)
    base = VGGTCamera(get_preset("tiny")).eval()
    save_model(base, tmp_path / "ckpt")
    peft_model = apply_lora(copy.deepcopy(base))
    randomize_lora_b(peft_model, std=0.05, generator=torch.Generator().manual_seed(0))
    save_adapter(peft_model, tmp_path / "adapter")
    return base, tmp_path / "ckpt", tmp_path / "adapter"


def test_merge_check_runs_at_the_export_input_size(tmp_path):
    """The merge check runs at --input-size (issue 14: it ran at img_size, 518 px at 1B)."""
    base, _, adapter = _tiny_checkpoint_and_adapter(tmp_path)
    seen = []
    base.aggregator.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    merged, check = merge_adapter(base, adapter, 1e-4, input_size=(28, 42))
    assert seen and set(seen) == {(2, 2, 3, 28, 42)}  # adapter model, then merged model
    assert check["passed"] and check["input_size_hw"] == [28, 42]
    seen.clear()
    _, default = merge_adapter(VGGTCamera(get_preset("tiny")).eval(), adapter, 1e30)
    assert default["input_size_hw"] == [56, 56]
    with pytest.raises(ValueError, match="patch size"):
        merge_adapter(VGGTCamera(get_preset("tiny")).eval(), adapter, 1e-4, input_size=(30, 28))


def test_manifest_records_the_merge_check_input_size(tmp_path):
    _, ckpt, adapter = _tiny_checkpoint_and_adapter(tmp_path)
    out = tmp_path / "export"
    assert main(["--model-dir", str(ckpt), "--adapter", str(adapter), "--output", str(out),
                 "--input-size", "28", "28", "--tensorrt", "skip"]) == 0
    manifest = json.loads((out / fmt.MANIFEST_FILE).read_text())
    merge = [c for c in manifest["checks"] if c["name"] == "lora merge"]
    assert merge and merge[0]["passed"] and merge[0]["input_size_hw"] == [28, 28]
    assert manifest["input_size_hw"] == [28, 28]


def test_export_defaults_to_the_trained_size(tmp_path):
    """A checkpoint trained at 28 px (trained_img_size) exports at 28x28 without --input-size."""
    import dataclasses

    _, ckpt, adapter = _tiny_checkpoint_and_adapter(tmp_path)
    base = VGGTCamera(get_preset("tiny")).eval()
    base.config = dataclasses.replace(base.config, trained_img_size=28)
    save_model(base, ckpt)
    out = tmp_path / "export"
    assert main(["--model-dir", str(ckpt), "--adapter", str(adapter), "--output", str(out),
                 "--tensorrt", "skip"]) == 0
    manifest = json.loads((out / fmt.MANIFEST_FILE).read_text())
    assert manifest["input_size_hw"] == [28, 28]
    assert [c["input_size_hw"] for c in manifest["checks"] if c["name"] == "lora merge"] == [[28, 28]]
    assert manifest["model_config"]["trained_img_size"] == 28
    assert create_estimator("onnxruntime", out).input_size == (28, 28)


def test_preset_without_random_init_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--random-init"):
        main(["--preset", "tiny", "--output", str(tmp_path)])
