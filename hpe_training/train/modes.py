"""Building the model to train and choosing its trainable parameters (the training mode).

Modes (the VGGT-HPE ablation):

* ``lora``: peft LoRA (rank r, alpha) on ``attn.qkv/attn.proj/mlp.fc1/mlp.fc2`` of every
  aggregator frame and global block; the backbone frozen; the model's own camera head fully
  trainable (``requires_grad``; no peft ``modules_to_save`` copy). Trainable names contain
  ``lora_`` or ``camera_head`` (checkpoints written with ``modules_to_save``, whose head names
  carry ``camera_head.modules_to_save.default.``, still resume).
* ``full``: every parameter trainable (initialised from the checkpoint).
* ``head-only``: only ``camera_head.*`` trainable.
* ``scratch``: random initialisation, every parameter trainable.

``aggregator.patch_embed.mask_token`` (DINOv2's masked-image-modelling token) is never used in
the forward pass and always stays frozen (DDP would otherwise report an unused parameter).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from hpe_core.vggt.checkpoints import (CONFIG_FILENAME, LoadReport, load_model, load_state_dict_into,
                                       load_vggt_hpe_checkpoint, read_state_dict)
from hpe_core.vggt.config import VGGTConfig, get_preset
from hpe_core.vggt.lora import ADAPTER_NAME, LoraSettings, apply_lora, merge_lora, merged_state_dict
from hpe_core.vggt.model import VGGTCamera
from hpe_training.train.config import TrainConfig

logger = logging.getLogger(__name__)
UNUSED_PARAMETERS = ("aggregator.patch_embed.mask_token",)
#: Infix of the camera head's names in lora checkpoints written with peft ``modules_to_save``.
LEGACY_HEAD_INFIX = f"camera_head.modules_to_save.{ADAPTER_NAME}."


def build_base_model(cfg: TrainConfig) -> VGGTCamera:
    """The un-adapted VGGTCamera: from our model directory, from an official VGGT file put into
    the ``preset`` architecture, or randomly initialised (``torch.manual_seed(cfg.seed)`` first,
    so a resumed run rebuilds the identical frozen backbone)."""
    torch.manual_seed(cfg.seed)
    init = cfg.init_checkpoint
    if init and Path(init).is_dir():
        if not (Path(init) / CONFIG_FILENAME).is_file():
            raise ValueError(f"init_checkpoint {init}: a directory without {CONFIG_FILENAME}")
        model = load_model(init).train()
    else:
        model = VGGTCamera(get_preset(cfg.preset))
        if init:
            report = load_init_file(init, model)
            if report.missing:
                logger.warning("init checkpoint %s left %d tensors at random init", init, len(report.missing))
        elif cfg.mode != "scratch":
            logger.warning("mode %r without init_checkpoint: starting from random weights", cfg.mode)
    patch = model.config.patch_size
    if cfg.image_size % patch:
        raise ValueError(f"image_size {cfg.image_size} must be a multiple of the patch size {patch}")
    # The config saved with the trained model records the size it is trained at, so export and
    # inference default to it. img_size (the positional-embedding shape, 518 for the official
    # weights) is left alone: changing it would change aggregator.patch_embed.pos_embed.
    model.config.trained_img_size = int(cfg.image_size)
    # ... and the crop it is trained on, which the backends ask the pipeline for.
    model.config.trained_crop = "aligned" if cfg.data_options.get("crop") == "aligned" else "paper"
    return model


def load_init_file(path: str, model: VGGTCamera) -> LoadReport:
    """Load an official VGGT file (``model.pt`` / ``.safetensors``) into ``model`` (what
    ``load_official_checkpoint`` does, reading the file once); a VGGT-HPE file (LoRA-wrapped
    linears, ``<layer>.lora_A.weight`` keys) is merged on the way in."""
    state = read_state_dict(path)
    if any(key.endswith(".lora_A.weight") for key in state):
        return load_vggt_hpe_checkpoint(path, model, mode="merged").report
    return load_state_dict_into(model, state, source=str(path))


def apply_mode(model: VGGTCamera, cfg: TrainConfig) -> nn.Module:
    """Set ``requires_grad`` for ``cfg.mode``; returns the module to train (a peft PeftModel in
    ``lora`` mode, ``model`` itself otherwise)."""
    if cfg.mode == "lora":
        for param in model.parameters():
            param.requires_grad_(False)
        module = apply_lora(model, LoraSettings(r=cfg.lora_rank, alpha=cfg.lora_alpha,
                                                dropout=cfg.lora_dropout, train_camera_head=True))
    else:
        module = model
        for name, param in model.named_parameters():
            if cfg.mode in ("full", "scratch"):
                param.requires_grad_(True)
            else:  # head-only
                param.requires_grad_(name.startswith("camera_head."))
    for name, param in module.named_parameters():
        if any(name.endswith(unused) for unused in UNUSED_PARAMETERS):
            param.requires_grad_(False)
    return module


def build_training_model(cfg: TrainConfig) -> nn.Module:
    """:func:`build_base_model` then :func:`apply_mode`."""
    return apply_mode(build_base_model(cfg), cfg)


def trainable_names(module: nn.Module) -> List[str]:
    """Names of the parameters with ``requires_grad``, in module order."""
    return [name for name, param in module.named_parameters() if param.requires_grad]


def saved_state(module: nn.Module, cfg: TrainConfig) -> Dict[str, Tensor]:
    """Weights a training checkpoint stores (CPU, contiguous): the trainable parameters in
    ``lora``/``head-only`` mode (the frozen rest is rebuilt from ``init_checkpoint``/seed), the
    whole state dict in ``full``/``scratch`` mode."""
    state = module.state_dict()
    if cfg.mode in ("lora", "head-only"):
        keep = set(trainable_names(module))
        state = {k: v for k, v in state.items() if k in keep}
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def load_saved_state(module: nn.Module, state: Dict[str, Tensor], cfg: TrainConfig) -> None:
    """Inverse of :func:`saved_state`; raises ValueError when keys do not match exactly.
    Keys of lora checkpoints written with peft ``modules_to_save``
    (``...camera_head.modules_to_save.default.X``) are read as ``...camera_head.X``."""
    state = {k.replace(LEGACY_HEAD_INFIX, "camera_head."): v for k, v in state.items()}
    own = module.state_dict()
    expected = set(trainable_names(module)) if cfg.mode in ("lora", "head-only") else set(own)
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint weights do not match mode {cfg.mode!r}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)


def deployable_state(module: nn.Module) -> Tuple[VGGTConfig, Dict[str, Tensor]]:
    """The config and the state dict (VGGTCamera keys) of the model to save for
    inference/export, without copying or modifying ``module``: LoRA folded in tensor by tensor
    (:func:`hpe_core.vggt.lora.merged_state_dict`), else the module's own state dict."""
    if isinstance(module, VGGTCamera):
        return module.config, module.state_dict()
    return module.get_base_model().config, merged_state_dict(module)


def deployable_model(module: nn.Module) -> VGGTCamera:
    """The plain VGGTCamera to save for inference/export: LoRA merged into the weights (the
    trained camera head kept), else the module itself. Merging modifies ``module``."""
    if isinstance(module, VGGTCamera):
        return module
    return merge_lora(module)
