"""LoRA fine-tuning of VGGTCamera with peft, as in VGGT-HPE.

LoRA (rank 8, alpha 16, dropout 0 by default) adapts ``attn.qkv``, ``attn.proj``,
``mlp.fc1`` and ``mlp.fc2`` of every aggregator frame block and global block. The DINOv2
patch embed and the camera-head trunk are NOT adapted (a regex target, not a name suffix,
guarantees that). The whole backbone is frozen; the camera head is fully trainable
(peft ``modules_to_save``, so it is saved with the adapter and merged back).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from torch import nn

from hpe_core.vggt.model import LORA_TARGET_REGEX, VGGTCamera

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]
ADAPTER_NAME = "default"


@dataclass
class LoraSettings:
    """LoRA hyper-parameters. The update is ``W + (alpha / r) * B @ A``."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    train_camera_head: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"LoRA rank r must be a positive int, got {self.r!r}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")

    @property
    def scale(self) -> float:
        return self.alpha / self.r


def make_lora_config(settings: LoraSettings | None = None):
    """peft ``LoraConfig`` targeting exactly the aggregator frame/global block linears."""
    from peft import LoraConfig

    s = settings or LoraSettings()
    return LoraConfig(
        r=s.r,
        lora_alpha=s.alpha,
        lora_dropout=s.dropout,
        target_modules=LORA_TARGET_REGEX,  # a str is full-matched as a regex by peft
        bias="none",
        modules_to_save=["camera_head"] if s.train_camera_head else None,
    )


def apply_lora(model: VGGTCamera, settings: LoraSettings | None = None):
    """Wrap ``model`` (in place) in a peft ``PeftModel``: LoRA on the target linears, backbone
    frozen, camera head trainable when ``settings.train_camera_head``. Returns the PeftModel."""
    from peft import get_peft_model

    if not isinstance(model, VGGTCamera):
        raise TypeError(f"apply_lora expects a VGGTCamera, got {type(model).__name__}")
    peft_model = get_peft_model(model, make_lora_config(settings))
    trainable = count_parameters(peft_model, trainable_only=True)
    logger.info("LoRA applied: %d trainable parameters of %d", trainable, count_parameters(peft_model))
    return peft_model


def save_adapter(peft_model: nn.Module, directory: PathLike) -> Path:
    """Write the adapter (LoRA weights + the trainable camera head) with peft's
    ``save_pretrained`` (safetensors). Returns the directory."""
    directory = Path(directory)
    peft_model.save_pretrained(str(directory), safe_serialization=True)
    return directory


def load_adapter(model: VGGTCamera, directory: PathLike, is_trainable: bool = False):
    """Attach an adapter saved by :func:`save_adapter` to a base ``model``; returns a PeftModel."""
    from peft import PeftModel

    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{directory}: no adapter_config.json (not a saved LoRA adapter)")
    return PeftModel.from_pretrained(model, str(directory), is_trainable=is_trainable)


def merge_lora(peft_model: nn.Module) -> VGGTCamera:
    """Fold the LoRA updates (and the trained camera head) into plain weights for deployment;
    returns the unwrapped VGGTCamera."""
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, VGGTCamera):
        raise TypeError(f"merge produced {type(merged).__name__}, expected VGGTCamera")
    return merged


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def lora_parameter_count(config_embed_dim: int, depth: int, r: int = 8, mlp_ratio: float = 4.0) -> int:
    """Closed-form LoRA parameter count for ``depth`` frame + ``depth`` global blocks of width C:
    per block r * [(C + 3C) + (C + C) + (C + hC) + (hC + C)] with h = mlp_ratio."""
    c = config_embed_dim
    hidden = int(c * mlp_ratio)
    per_block = r * ((c + 3 * c) + (c + c) + (c + hidden) + (hidden + c))
    return 2 * depth * per_block


@torch.no_grad()
def randomize_lora_b(peft_model: nn.Module, std: float = 0.02, generator: torch.Generator | None = None) -> int:
    """Set every LoRA B matrix to random values (they start at zero, which hides the update);
    used by tests and merge checks. Returns the number of B matrices changed."""
    count = 0
    for name, param in peft_model.named_parameters():
        if ".lora_B." in name:
            param.copy_(torch.randn(param.shape, generator=generator) * std)
            count += 1
    return count
