"""peft LoRA on VGGTCamera: targets, frozen backbone, merge invariance, save/reload."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from hpe_core.vggt import lora
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import LORA_TARGET_SUFFIXES, VGGTCamera, lora_target_module_names
from hpe_core.vggt.random_weights import randomize_parameters

SEED = 21


def _base() -> VGGTCamera:
    torch.manual_seed(SEED)  # peft draws the LoRA A matrices from the global generator next
    return randomize_parameters(VGGTCamera(get_preset("tiny")), seed=SEED, std=0.1).eval()


def _images() -> Tensor:
    return torch.rand(2, 2, 3, 56, 56, generator=torch.Generator().manual_seed(5))


def _lora_layers(peft_model) -> list:
    return sorted(name[: -len(".lora_A")] for name, _ in peft_model.get_base_model().named_modules()
                  if name.endswith(".lora_A"))


def test_settings_validation() -> None:
    assert lora.LoraSettings().scale == 2.0
    for bad in ({"r": 0}, {"alpha": 0}, {"dropout": 1.0}):
        with pytest.raises(ValueError):
            lora.LoraSettings(**bad)


def test_lora_targets_only_aggregator_frame_and_global_blocks() -> None:
    base = _base()
    expected = lora_target_module_names(base)
    assert len(expected) == 2 * 2 * len(LORA_TARGET_SUFFIXES)
    peft_model = lora.apply_lora(base)
    layers = _lora_layers(peft_model)
    assert layers == sorted(expected)
    assert not any(l.startswith(("aggregator.patch_embed.", "camera_head.")) for l in layers)
    # the same-named linears of the patch embed and camera-head trunk stay plain nn.Linear
    inner = peft_model.get_base_model()
    assert type(inner.get_submodule("aggregator.patch_embed.blocks.0.attn.qkv")) is torch.nn.Linear
    assert type(inner.camera_head.trunk[0].mlp.fc1) is torch.nn.Linear


def test_backbone_frozen_and_camera_head_trainable() -> None:
    base = _base()
    head = base.camera_head
    head_params = sum(p.numel() for p in head.parameters())
    base_params = lora.count_parameters(base)
    peft_model = lora.apply_lora(base)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or n.startswith("base_model.model.camera_head.") for n in trainable)
    n_lora = sum(p.numel() for n, p in peft_model.named_parameters() if p.requires_grad and ".lora_" in n)
    assert n_lora == lora.lora_parameter_count(64, depth=2, r=8)
    assert lora.count_parameters(peft_model, trainable_only=True) == n_lora + head_params

    # issue 14: the head is trained in place, not as a second copy (peft modules_to_save kept both)
    assert peft_model.get_base_model().camera_head is head
    assert all(p.requires_grad for p in head.parameters())
    assert lora.count_parameters(peft_model) == base_params + n_lora

    only_lora = lora.apply_lora(_base(), lora.LoraSettings(train_camera_head=False))
    assert lora.count_parameters(only_lora, trainable_only=True) == n_lora


def test_gradients_reach_only_trainable_parameters() -> None:
    peft_model = lora.apply_lora(_base())
    lora.randomize_lora_b(peft_model, generator=torch.Generator().manual_seed(0))
    peft_model.train()
    loss = peft_model(_images())[-1].square().mean()
    loss.backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters()}
    assert grads["base_model.model.aggregator.frame_blocks.0.attn.qkv.lora_A.default.weight"].abs().sum() > 0
    assert grads["base_model.model.camera_head.pose_branch.fc2.weight"].abs().sum() > 0
    assert grads["base_model.model.aggregator.frame_blocks.0.attn.qkv.base_layer.weight"] is None
    assert grads["base_model.model.aggregator.patch_embed.blocks.0.mlp.fc1.weight"] is None


def test_merge_keeps_outputs_and_lora_is_not_a_no_op() -> None:
    images = _images()
    with torch.no_grad():
        plain = _base()(images)[-1]
    peft_model = lora.apply_lora(_base())
    assert lora.randomize_lora_b(peft_model, std=0.05, generator=torch.Generator().manual_seed(1)) == 16
    peft_model.eval()
    with torch.no_grad():
        unmerged = [t.clone() for t in peft_model(images)]
        merged_model = lora.merge_lora(peft_model)
        merged = merged_model(images)
    assert isinstance(merged_model, VGGTCamera)
    assert set(merged_model.state_dict()) == set(_base().state_dict())  # plain official keys again
    assert (unmerged[-1] - plain).abs().max() > 1e-3
    for a, b in zip(merged, unmerged):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_adapter_save_and_reload_round_trip(tmp_path: Path) -> None:
    images = _images()
    peft_model = lora.apply_lora(_base())
    lora.randomize_lora_b(peft_model, std=0.05, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # "train" the head too, so the adapter must carry it
        peft_model.get_base_model().camera_head.pose_branch.fc2.bias.add_(0.5)
    peft_model.eval()
    with torch.no_grad():
        before = [t.clone() for t in peft_model(images)]
    directory = lora.save_adapter(peft_model, tmp_path / "adapter")
    assert (directory / "adapter_model.safetensors").is_file()
    assert (directory / lora.CAMERA_HEAD_FILE).is_file()

    reloaded = lora.load_adapter(_base(), directory)
    reloaded.eval()
    with torch.no_grad():
        after = reloaded(images)
        merged_after = lora.merge_lora(reloaded)(images)
    for a, b, c in zip(before, after, merged_after):
        assert torch.equal(a, b)
        torch.testing.assert_close(c, a, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in reloaded.parameters())  # is_trainable=False
    trainable = lora.load_adapter(_base(), directory, is_trainable=True)
    names = {n for n, p in trainable.named_parameters() if p.requires_grad}
    assert names == {n for n, p in peft_model.named_parameters() if p.requires_grad}


def _legacy_adapter(directory: Path):
    """An adapter as written before issue 14: peft ``modules_to_save=["camera_head"]``."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=8, lora_alpha=16.0, lora_dropout=0.0, bias="none",
                        target_modules=lora.LORA_TARGET_REGEX, modules_to_save=["camera_head"])
    legacy = get_peft_model(_base(), config)
    lora.randomize_lora_b(legacy, std=0.05, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        legacy.get_base_model().camera_head.modules_to_save["default"].pose_branch.fc2.bias.add_(0.5)
    legacy.save_pretrained(str(directory), safe_serialization=True)
    return legacy.eval()


def test_adapter_of_the_modules_to_save_layout_still_loads(tmp_path: Path) -> None:
    legacy = _legacy_adapter(tmp_path / "legacy")
    images = _images()
    with torch.no_grad():
        want = legacy(images)[-1]
    base = _base()
    reloaded = lora.load_adapter(base, tmp_path / "legacy").eval()
    assert reloaded.get_base_model().camera_head is base.camera_head  # the head loaded in place
    assert not any("modules_to_save" in n or "original_module" in n for n, _ in reloaded.named_parameters())
    with torch.no_grad():
        assert torch.equal(reloaded(images)[-1], want)
        torch.testing.assert_close(lora.merge_lora(reloaded)(images)[-1], want, atol=1e-5, rtol=1e-5)


def test_load_adapter_refuses_a_head_of_another_shape(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    peft_model = lora.apply_lora(_base())
    directory = lora.save_adapter(peft_model, tmp_path / "adapter")
    head = load_file(str(directory / lora.CAMERA_HEAD_FILE))
    head["camera_head.pose_branch.fc2.bias"] = torch.zeros(3)
    save_file(head, str(directory / lora.CAMERA_HEAD_FILE))
    with pytest.raises(ValueError, match="wrong shapes"):
        lora.load_adapter(_base(), directory)


def test_merged_state_dict_equals_merge_without_touching_the_model() -> None:
    """The final save folds LoRA in tensor by tensor instead of merging a deep copy (issue 14)."""
    peft_model = lora.apply_lora(_base())
    lora.randomize_lora_b(peft_model, std=0.05, generator=torch.Generator().manual_seed(4))
    peft_model.eval()
    images = _images()
    with torch.no_grad():
        before = peft_model(images)[-1].clone()
    params_before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    state = lora.merged_state_dict(peft_model)
    base = peft_model.get_base_model()
    head_weight = base.camera_head.pose_branch.fc2.weight
    assert state["camera_head.pose_branch.fc2.weight"].data_ptr() == head_weight.data_ptr()  # no copy
    with torch.no_grad():
        assert torch.equal(peft_model(images)[-1], before)  # the model is unchanged
    assert all(torch.equal(p, params_before[n]) for n, p in peft_model.named_parameters())
    merged = lora.merge_lora(peft_model).state_dict()
    assert state.keys() == merged.keys() == _base().state_dict().keys()
    for key in merged:
        assert torch.equal(state[key], merged[key]), key


def test_load_adapter_rejects_other_directories(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        lora.load_adapter(_base(), tmp_path)
