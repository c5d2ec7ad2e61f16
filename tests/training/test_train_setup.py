"""Training config, learning-rate schedule and mode set-up (trainable parameter sets)."""
import json
import math

import pytest
import torch

from hpe_core.vggt.checkpoints import save_model
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera
from hpe_training.train.config import TrainConfig, apply_overrides
from hpe_training.train.modes import (build_base_model, build_training_model, deployable_model,
                                      load_saved_state, saved_state, trainable_names)
from hpe_training.train.schedule import StepScheduler, WarmupCosine


# ---------------------------------------------------------------- config
def test_config_defaults_follow_the_public_recipe():
    cfg = TrainConfig(train_root="x")
    assert (cfg.mode, cfg.lr, cfg.weight_decay, cfg.warmup_fraction, cfg.min_lr, cfg.grad_clip) == \
        ("lora", 1e-4, 0.01, 0.1, 1e-6, 1.0)
    assert (cfg.batch_size, cfg.accumulation_steps, cfg.image_size, cfg.bf16) == (1, 4, 518, True)


def test_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("train_root: /data/train\npreset: tiny\nimage_size: 56\nmode: head-only\n"
                    "data_options:\n  margin: 0.5\n")
    cfg = TrainConfig.from_file(path, ["lr=3e-5", "absolute=true", "val_root=/data/val",
                                       "data_options.shift=0.1", "max_steps=12"])
    assert cfg.lr == pytest.approx(3e-5) and cfg.absolute is True and cfg.max_steps == 12
    assert cfg.mode == "head-only" and cfg.val_root == "/data/val"
    assert cfg.data_options == {"margin": 0.5, "shift": 0.1}
    json_path = tmp_path / "train.json"
    json_path.write_text(cfg.to_json())
    assert TrainConfig.from_file(json_path) == cfg


@pytest.mark.parametrize("bad", [{"mode": "half"}, {"lr": 0.0}, {"warmup_fraction": 1.0}, {"min_lr": 1.0},
                                 {"accumulation_steps": 0}, {"mode": "scratch", "init_checkpoint": "a.pt"},
                                 {"unknown_key": 1}, {"grad_clip": -1.0}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        TrainConfig.from_dict({"train_root": "x", **bad})


def test_shipped_recipe_config_is_valid():
    from pathlib import Path

    import hpe_training.train as train_pkg

    cfg = TrainConfig.from_file(Path(train_pkg.__file__).parent / "configs" / "lora_vggt1b.yaml")
    assert (cfg.preset, cfg.mode, cfg.lora_rank, cfg.lora_alpha, cfg.lr, cfg.accumulation_steps) == \
        ("vggt-1b", "lora", 8, 16.0, 1e-4, 4)


def test_override_syntax_errors():
    with pytest.raises(ValueError):
        apply_overrides({}, ["no_equals_sign"])


# ---------------------------------------------------------------- schedule
def test_warmup_then_cosine_to_min_lr():
    sched = WarmupCosine(base_lr=1e-4, min_lr=1e-6, total_steps=100, warmup_fraction=0.1)
    lrs = [sched(s) for s in range(100)]
    assert sched.warmup_steps == 10
    assert lrs[0] == pytest.approx(1e-5) and lrs[4] == pytest.approx(5e-5) and lrs[9] == pytest.approx(1e-4)
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:10]))  # increasing warm-up
    assert lrs[10] == pytest.approx(1e-4)
    assert all(b < a for a, b in zip(lrs[10:], lrs[11:]))  # decreasing cosine
    mid = 10 + 89 / 2  # half-way through the cosine: (base + min) / 2
    assert sched(int(mid)) > (1e-4 + 1e-6) / 2 > sched(int(mid) + 1)
    assert lrs[99] == pytest.approx(1e-6) and sched(150) == pytest.approx(1e-6)
    expected_20 = 1e-6 + (1e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * 10 / 89))
    assert lrs[20] == pytest.approx(expected_20)


def test_step_scheduler_sets_optimizer_lr_and_round_trips():
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([param], lr=1.0)
    sched = StepScheduler(opt, WarmupCosine(1e-4, 1e-6, 20, 0.1))
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-5)
    for _ in range(5):
        sched.advance()
    other = StepScheduler(opt, WarmupCosine(1e-4, 1e-6, 20, 0.1))
    other.load_state_dict(sched.state_dict())
    assert other.step_count == 5 and opt.param_groups[0]["lr"] == pytest.approx(sched.schedule(5))


# ---------------------------------------------------------------- modes
def _cfg(mode, **kw):
    return TrainConfig(**{"train_root": "x", "preset": "tiny", "image_size": 56, "mode": mode, **kw})


def test_lora_mode_trains_only_lora_and_camera_head():
    module = build_training_model(_cfg("lora"))
    names = trainable_names(module)
    lora = [n for n in names if ".lora_A." in n or ".lora_B." in n]
    head = [n for n in names if ".camera_head." in n]
    assert lora and head and sorted(lora + head) == sorted(names)
    assert all("aggregator" in n for n in lora)
    assert not any("patch_embed" in n for n in lora)
    # LoRA on 4 linears x (2 frame + 2 global blocks) of the tiny preset, A and B each
    assert len(lora) == 4 * 4 * 2
    head_params = sum(p.numel() for n, p in module.named_parameters() if n in head)
    assert head_params == sum(p.numel() for p in VGGTCamera(get_preset("tiny")).camera_head.parameters())


def test_head_only_full_and_scratch_sets():
    head = trainable_names(build_training_model(_cfg("head-only")))
    assert head and all(n.startswith("camera_head.") for n in head)
    assert len(head) == len(list(VGGTCamera(get_preset("tiny")).camera_head.parameters()))
    full_model = build_training_model(_cfg("full"))
    all_names = [n for n, _ in full_model.named_parameters()]
    assert trainable_names(full_model) == [n for n in all_names if n != "aggregator.patch_embed.mask_token"]
    assert trainable_names(build_training_model(_cfg("scratch"))) == trainable_names(full_model)


def test_init_from_our_checkpoint_and_seeded_random_init(tmp_path):
    source = VGGTCamera(get_preset("tiny"))
    torch.nn.init.normal_(source.camera_head.embed_pose.weight)
    save_model(source, tmp_path / "init")
    model = build_base_model(_cfg("full", init_checkpoint=str(tmp_path / "init")))
    assert torch.equal(model.camera_head.embed_pose.weight, source.camera_head.embed_pose.weight)
    a, b = build_base_model(_cfg("scratch", seed=3)), build_base_model(_cfg("scratch", seed=3))
    c = build_base_model(_cfg("scratch", seed=4))
    assert torch.equal(a.aggregator.camera_token, b.aggregator.camera_token)
    assert not torch.equal(a.camera_head.embed_pose.weight, c.camera_head.embed_pose.weight)
    with pytest.raises(ValueError):
        build_base_model(_cfg("scratch", image_size=50))


def test_init_from_official_and_vggt_hpe_files(tmp_path):
    source = VGGTCamera(get_preset("tiny"))
    state = {k: torch.randn_like(v) for k, v in source.state_dict().items()}
    official = dict(state, **{"depth_head.proj.weight": torch.zeros(3, 3)})  # other heads are ignored
    torch.save({"model": official}, tmp_path / "model.pt")
    model = build_base_model(_cfg("lora", init_checkpoint=str(tmp_path / "model.pt")))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    # VGGT-HPE layout: one LoRA-wrapped linear, merged as W + (16 / r) B A
    layer = "aggregator.frame_blocks.0.attn.qkv"
    hpe = {k: v for k, v in state.items() if not k.startswith(layer + ".")}
    hpe[layer + ".base.weight"], hpe[layer + ".base.bias"] = state[layer + ".weight"], state[layer + ".bias"]
    A, B = torch.randn(8, 64), torch.randn(192, 8)
    hpe[layer + ".lora_A.weight"], hpe[layer + ".lora_B.weight"] = A, B
    torch.save(hpe, tmp_path / "hpe.pt")
    merged = build_base_model(_cfg("full", init_checkpoint=str(tmp_path / "hpe.pt")))
    torch.testing.assert_close(merged.state_dict()[layer + ".weight"], state[layer + ".weight"] + 2.0 * B @ A)


def test_saved_state_round_trip_and_merge(tmp_path):
    cfg = _cfg("lora")
    module = build_training_model(cfg)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    state = saved_state(module, cfg)
    assert set(state) == set(trainable_names(module))
    fresh = build_training_model(cfg)
    load_saved_state(fresh, state, cfg)
    images = torch.rand(1, 2, 3, 56, 56)
    with torch.no_grad():
        expected = module(images)[-1]
        assert torch.equal(fresh(images)[-1], expected)
        merged = deployable_model(fresh)
        assert isinstance(merged, VGGTCamera)
        torch.testing.assert_close(merged(images)[-1], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        load_saved_state(build_training_model(cfg), {k: v for k, v in list(state.items())[1:]}, cfg)


def test_training_records_the_trained_size_without_changing_shapes():
    """Issue 14: the config of a model trained at image_size records it (trained_img_size);
    img_size, which sets the positional-embedding shape, stays the preset's."""
    for mode in ("lora", "full"):
        model = build_base_model(_cfg(mode, image_size=28))
        assert (model.config.img_size, model.config.trained_img_size, model.config.default_input_size) == \
            (56, 28, 28)
        assert model.aggregator.patch_embed.pos_embed.shape == (1, 4 * 4 + 1, 64)
    assert get_preset("tiny").trained_img_size is None  # the preset itself is untouched


def test_lora_checkpoints_of_the_modules_to_save_layout_still_resume():
    """Before issue 14 the trained head was peft's modules_to_save copy; its checkpoint keys
    (...camera_head.modules_to_save.default.X) load into the head trained in place."""
    cfg = _cfg("lora")
    module = build_training_model(cfg)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    state = saved_state(module, cfg)
    legacy = {k.replace("camera_head.", "camera_head.modules_to_save.default."): v for k, v in state.items()}
    assert any("modules_to_save" in k for k in legacy)
    fresh = build_training_model(cfg)
    load_saved_state(fresh, legacy, cfg)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_deployable_state_merges_without_copying_or_changing_the_model(tmp_path):
    from hpe_core.vggt.checkpoints import load_model, save_state_dict
    from hpe_training.train.modes import deployable_state

    cfg = _cfg("lora", image_size=28)
    module = build_training_model(cfg)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    images = torch.rand(1, 2, 3, 28, 28)
    with torch.no_grad():
        expected = module(images)[-1]
    config, state = deployable_state(module)
    assert config.trained_img_size == 28
    save_state_dict(config, state, tmp_path / "model")
    with torch.no_grad():
        assert torch.equal(module(images)[-1], expected)  # still the unmerged training model
        torch.testing.assert_close(load_model(tmp_path / "model")(images)[-1], expected, atol=1e-5, rtol=1e-5)
