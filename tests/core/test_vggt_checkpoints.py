"""Checkpoint formats: official VGGT files, our directory format, the VGGT-HPE LoRA layout."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from hpe_core.vggt import lora
from hpe_core.vggt.checkpoints import (
    CheckpointError,
    load_model,
    load_official_checkpoint,
    load_vggt_hpe_checkpoint,
    read_state_dict,
    save_model,
)
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera, lora_target_module_names
from hpe_core.vggt.random_weights import randomize_parameters


def _tiny(seed: int) -> VGGTCamera:
    return randomize_parameters(VGGTCamera(get_preset("tiny")), seed=seed).eval()


def _images(b: int = 1, s: int = 2, seed: int = 0) -> Tensor:
    return torch.rand(b, s, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


def _official_like(model: VGGTCamera) -> Dict[str, Tensor]:
    """A full-VGGT-style state dict: our keys plus other heads' keys."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["depth_head.projects.0.weight"] = torch.randn(4, 4)
    state["point_head.scratch.output_conv2.2.bias"] = torch.randn(4)
    state["track_head.fnet.norm.weight"] = torch.randn(8)
    return state


# ------------------------------------------------------------------ official loader
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_official_loader_ignores_other_heads_and_reports(tmp_path: Path, suffix: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    source = _tiny(seed=1)
    state = _official_like(source)
    del state["camera_head.trunk_norm.bias"]
    state["aggregator.frame_blocks.9.attn.qkv.weight"] = torch.randn(3, 3)
    path = tmp_path / f"model{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))

    target = _tiny(seed=2)
    kept_bias = target.camera_head.trunk_norm.bias.detach().clone()
    with caplog.at_level(logging.WARNING, logger="hpe_core.vggt.checkpoints"):
        report = load_official_checkpoint(path, target)

    assert report.missing == ["camera_head.trunk_norm.bias"]
    assert report.unexpected == ["aggregator.frame_blocks.9.attn.qkv.weight"]
    assert report.ignored_prefixes() == ["depth_head", "point_head", "track_head"]
    assert not report.complete
    assert len(report.loaded) == len(source.state_dict()) - 1
    assert "MISSING" in caplog.text and "trunk_norm.bias" in caplog.text
    for key, value in target.state_dict().items():
        if key == "camera_head.trunk_norm.bias":
            assert torch.equal(value, kept_bias)  # left untouched
        else:
            assert torch.equal(value, source.state_dict()[key]), key

    with pytest.raises(CheckpointError, match="MISSING"):
        load_official_checkpoint(path, _tiny(seed=3), strict=True)


def test_official_loader_complete_file_gives_identical_outputs(tmp_path: Path) -> None:
    source = _tiny(seed=4)
    path = tmp_path / "model.pt"
    torch.save({"model": _official_like(source)}, path)  # nested under "model"
    target = _tiny(seed=5)
    report = load_official_checkpoint(path, target, strict=True)
    assert report.complete
    images = _images()
    with torch.no_grad():
        assert torch.equal(source(images)[-1], target(images)[-1])


def test_official_loader_rejects_shape_mismatch(tmp_path: Path) -> None:
    state = _official_like(_tiny(seed=6))
    state["aggregator.camera_token"] = torch.zeros(1, 2, 1, 32)
    path = tmp_path / "model.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="shape mismatch.*aggregator.camera_token"):
        load_official_checkpoint(path, _tiny(seed=7))


class _NotAllowed:
    pass


@pytest.mark.parametrize("kind", ["text", "list", "pickled_object", "empty_safetensors", "other_model"])
def test_official_loader_rejects_non_checkpoints(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ("f.safetensors" if kind == "empty_safetensors" else "f.pt")
    if kind == "text":
        path.write_text("hello, not a checkpoint\n")
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "pickled_object":
        torch.save({"x": _NotAllowed()}, path)
    elif kind == "empty_safetensors":
        path.write_bytes(b"\x00" * 16)
    else:
        torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError):
        load_official_checkpoint(path, _tiny(seed=8))


def test_read_state_dict_strips_dataparallel_prefix(tmp_path: Path) -> None:
    path = tmp_path / "dp.pt"
    torch.save({"state_dict": {"module.aggregator.camera_token": torch.ones(1)}}, path)
    assert list(read_state_dict(path)) == ["aggregator.camera_token"]


# ------------------------------------------------------------------ our directory format
def test_save_and_load_model_round_trip(tmp_path: Path) -> None:
    model = _tiny(seed=9)
    directory = save_model(model, tmp_path / "default_model")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(directory)
    assert loaded.config == model.config
    assert not loaded.training
    images = _images(seed=1)
    with torch.no_grad():
        for a, b in zip(model(images), loaded(images)):
            assert torch.equal(a, b)


def test_trained_size_survives_save_and_load_with_identical_weights(tmp_path: Path) -> None:
    """A model trained at 28 px (tiny preset: img_size 56) saves and reloads with the trained
    size recorded, the same parameter shapes and bit-identical weights and outputs."""
    import dataclasses
    import json

    model = _tiny(seed=5)
    model.config = dataclasses.replace(model.config, trained_img_size=28)
    save_model(model, tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (saved["img_size"], saved["trained_img_size"]) == (56, 28)
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config and loaded.config.default_input_size == 28
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    for size in (28, 56):
        images = torch.rand(1, 2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            assert torch.equal(loaded(images)[-1], model(images)[-1])


def test_save_state_dict_refuses_a_state_that_does_not_fit_the_config(tmp_path: Path) -> None:
    from hpe_core.vggt.checkpoints import save_state_dict

    model = _tiny(seed=6)
    state = dict(model.state_dict())
    save_state_dict(model.config, state, tmp_path / "ok")
    assert torch.equal(load_model(tmp_path / "ok").camera_head.embed_pose.weight, model.camera_head.embed_pose.weight)
    with pytest.raises(CheckpointError, match="missing camera_head.embed_pose.weight"):
        save_state_dict(model.config, {k: v for k, v in state.items() if k != "camera_head.embed_pose.weight"},
                        tmp_path / "missing")
    with pytest.raises(CheckpointError, match="wrong shapes aggregator.patch_embed.pos_embed"):
        save_state_dict(model.config, {**state, "aggregator.patch_embed.pos_embed": torch.zeros(1, 5, 64)},
                        tmp_path / "shape")
    assert not (tmp_path / "missing").exists() and not (tmp_path / "shape").exists()


def test_load_model_requires_both_files(tmp_path: Path) -> None:
    directory = save_model(_tiny(seed=10), tmp_path / "m")
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(directory)


# ------------------------------------------------------------------ VGGT-HPE layout
def _write_vggt_hpe_checkpoint(peft_model, path: Path) -> None:
    """Write a peft-wrapped model in the VGGT-HPE layout: each LoRA linear X becomes
    X.base.weight/X.base.bias/X.lora_A.weight/X.lora_B.weight; camera head and other keys plain."""
    inner = peft_model.get_base_model()
    targets = set(lora_target_module_names(VGGTCamera(get_preset("tiny"))))
    state: Dict[str, Tensor] = {}
    for name, module in inner.named_modules():
        if name in targets:
            state[f"{name}.base.weight"] = module.base_layer.weight.detach().clone()
            state[f"{name}.base.bias"] = module.base_layer.bias.detach().clone()
            state[f"{name}.lora_A.weight"] = module.lora_A["default"].weight.detach().clone()
            state[f"{name}.lora_B.weight"] = module.lora_B["default"].weight.detach().clone()
    plain = lora.merge_lora(peft_model).state_dict()  # non-LoRA tensors (LoRA'd ones replaced below)
    for key, value in plain.items():
        layer = key.rsplit(".", 1)[0]
        if layer not in targets:
            state[key] = value.detach().clone()
    state["depth_head.norm.weight"] = torch.ones(3)
    torch.save({"model": state, "epoch": 305}, path)


@pytest.fixture(scope="module")
def hpe_reference(tmp_path_factory: pytest.TempPathFactory):
    """(checkpoint path, images, reference outputs of the peft-wrapped model)."""
    torch.manual_seed(0)  # peft draws the LoRA A matrices from the global generator
    model = randomize_parameters(VGGTCamera(get_preset("tiny")), seed=11, std=0.1).eval()
    peft_model = lora.apply_lora(model, lora.LoraSettings(r=8, alpha=16))
    generator = torch.Generator().manual_seed(3)
    assert lora.randomize_lora_b(peft_model, std=0.05, generator=generator) == 2 * 2 * 4
    images = _images(b=2, s=2, seed=2)
    with torch.no_grad():
        reference = [p.clone() for p in peft_model(images)]
        without_lora = randomize_parameters(VGGTCamera(get_preset("tiny")), seed=11, std=0.1).eval()(images)[-1]
    # the LoRA update and the trained head must change the output, or the test proves nothing
    assert (reference[-1] - without_lora).abs().max() > 1e-2
    path = tmp_path_factory.mktemp("hpe") / "checkpoint_305.pt"
    _write_vggt_hpe_checkpoint(peft_model, path)
    return path, images, reference


def test_vggt_hpe_checkpoint_merged_equals_peft_model(hpe_reference) -> None:
    path, images, reference = hpe_reference
    result = load_vggt_hpe_checkpoint(path, VGGTCamera(get_preset("tiny")).eval(), mode="merged")
    assert result.rank == 8 and result.alpha == 16
    assert len(result.lora_layers) == 16
    assert result.report.complete and result.report.ignored_prefixes() == ["depth_head"]
    assert isinstance(result.model, VGGTCamera)
    with torch.no_grad():
        outputs = result.model(images)
    for ours, ref in zip(outputs, reference):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_vggt_hpe_checkpoint_as_peft_adapter_equals_peft_model(hpe_reference) -> None:
    path, images, reference = hpe_reference
    result = load_vggt_hpe_checkpoint(path, VGGTCamera(get_preset("tiny")).eval(), mode="peft")
    model = result.model
    assert any(".lora_B." in n for n, _ in model.named_parameters())
    with torch.no_grad():
        outputs = model(images)
    for ours, ref in zip(outputs, reference):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_vggt_hpe_loader_checks_alpha_and_rank(hpe_reference) -> None:
    path, images, reference = hpe_reference
    wrong_alpha = load_vggt_hpe_checkpoint(path, VGGTCamera(get_preset("tiny")).eval(), alpha=8.0)
    with torch.no_grad():
        assert (wrong_alpha.model(images)[-1] - reference[-1]).abs().max() > 1e-3
    with pytest.raises(CheckpointError, match="rank"):
        load_vggt_hpe_checkpoint(path, VGGTCamera(get_preset("tiny")), rank=4)


def test_vggt_hpe_loader_rejects_plain_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save(_tiny(seed=12).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a VGGT-HPE"):
        load_vggt_hpe_checkpoint(path, VGGTCamera(get_preset("tiny")))


def test_save_model_in_float16_loads_back_close(tmp_path):
    """The shipped model is stored in float16 (half the size) and loads into float32."""
    import torch

    from hpe_core.vggt.checkpoints import load_model, save_model
    from hpe_core.vggt.config import get_preset
    from hpe_core.vggt.model import VGGTCamera

    torch.manual_seed(0)
    model = VGGTCamera(get_preset("tiny")).eval()
    save_model(model, tmp_path / "m16", storage_dtype=torch.float16)
    save_model(model, tmp_path / "m32")
    size16 = (tmp_path / "m16" / "model.safetensors").stat().st_size
    size32 = (tmp_path / "m32" / "model.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    loaded = load_model(tmp_path / "m16")
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 2, 3, 56, 56)
    with torch.no_grad():
        a, b = model(x)[-1], loaded(x)[-1]
    assert torch.allclose(a, b, atol=5e-2) and not torch.equal(a, b)
