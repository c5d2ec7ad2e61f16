"""LoRA fine-tuning of VGGTCamera with peft, as in VGGT-HPE.

LoRA (rank 8, alpha 16, dropout 0 by default) adapts ``attn.qkv``, ``attn.proj``,
``mlp.fc1`` and ``mlp.fc2`` of every aggregator frame block and global block. The DINOv2
patch embed and the camera-head trunk are NOT adapted (a regex target, not a name suffix,
guarantees that). The whole backbone is frozen; the camera head is fully trainable in place:
its own parameters get ``requires_grad`` (no peft ``modules_to_save``, which would keep a second,
trainable copy of the head beside the frozen original: 216 M parameters, 0.86 GB in fp32, at 1B).

Adapter directory (:func:`save_adapter`):

* ``adapter_config.json`` + ``adapter_model.safetensors``: peft's ``save_pretrained`` (the LoRA
  factors ``lora_A`` [r, in] and ``lora_B`` [out, r] of every adapted linear);
* ``camera_head.safetensors``: the trained camera head, official key names ``camera_head.*``
  (written when the head is trainable).

:func:`load_adapter` also reads adapters written before this layout (peft ``modules_to_save``:
the head inside ``adapter_model.safetensors`` under ``base_model.model.camera_head.*``): the head
is loaded into the model's own camera head, without a copy.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

import torch
from torch import Tensor, nn

from hpe_core.vggt.model import LORA_TARGET_REGEX, VGGTCamera

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]
ADAPTER_NAME = "default"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
CAMERA_HEAD_FILE = "camera_head.safetensors"
CAMERA_HEAD_PREFIX = "camera_head."
#: Where adapters written with peft ``modules_to_save=["camera_head"]`` keep the head's tensors.
LEGACY_HEAD_PREFIX = "base_model.model.camera_head."


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
    )


def apply_lora(model: VGGTCamera, settings: LoraSettings | None = None):
    """Wrap ``model`` (in place) in a peft ``PeftModel``: LoRA on the target linears, backbone
    frozen, the model's own camera head trainable (``requires_grad``) when
    ``settings.train_camera_head``. Returns the PeftModel."""
    from peft import get_peft_model

    if not isinstance(model, VGGTCamera):
        raise TypeError(f"apply_lora expects a VGGTCamera, got {type(model).__name__}")
    s = settings or LoraSettings()
    peft_model = get_peft_model(model, make_lora_config(s))  # freezes every non-LoRA parameter
    if s.train_camera_head:
        model.camera_head.requires_grad_(True)
    trainable = count_parameters(peft_model, trainable_only=True)
    logger.info("LoRA applied: %d trainable parameters of %d", trainable, count_parameters(peft_model))
    return peft_model


def _camera_head_trainable(peft_model: nn.Module) -> bool:
    head = peft_model.get_base_model().camera_head
    return any(p.requires_grad for p in head.parameters())


def save_adapter(peft_model: nn.Module, directory: PathLike, camera_head: bool | None = None) -> Path:
    """Write the adapter: the LoRA factors with peft's ``save_pretrained`` (safetensors) and,
    when ``camera_head`` (default: when the head's parameters are trainable), the camera head's
    state dict as ``camera_head.safetensors`` (keys ``camera_head.*``). No tensor is copied
    beyond moving it to the CPU. Returns the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    peft_model.save_pretrained(str(directory), safe_serialization=True)
    head_file = directory / CAMERA_HEAD_FILE
    if camera_head is None:
        camera_head = _camera_head_trainable(peft_model)
    if camera_head:
        head = peft_model.get_base_model().camera_head
        state = {CAMERA_HEAD_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(head_file), metadata={"format": "hpe-camera-head"})
    elif head_file.exists():
        head_file.unlink()
    return directory


def load_adapter(model: VGGTCamera, directory: PathLike, is_trainable: bool = False):
    """Attach an adapter saved by :func:`save_adapter` (or by the earlier ``modules_to_save``
    layout) to a base ``model``; returns a PeftModel.

    A saved camera head is copied into ``model.camera_head`` (strict: every tensor, same shapes);
    the LoRA factors go into the peft wrappers (every factor of the file must be used). With
    ``is_trainable`` the LoRA factors, and the head if the adapter carries one, are trainable;
    otherwise nothing is.
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / ADAPTER_CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{directory}: no {ADAPTER_CONFIG_FILE} (not a saved LoRA adapter)")
    if not isinstance(model, VGGTCamera):
        raise TypeError(f"load_adapter expects a VGGTCamera, got {type(model).__name__}")
    config = LoraConfig.from_pretrained(str(directory))
    saved = load_file(str(directory / ADAPTER_WEIGHTS_FILE), device="cpu")
    legacy = list(config.modules_to_save or [])
    if any(name != "camera_head" for name in legacy):
        raise ValueError(f"{directory}: modules_to_save {legacy}: only camera_head is supported")
    head_state: Dict[str, Tensor] = {}
    if legacy:  # the head is inside adapter_model.safetensors, under the peft model's prefix
        for key in [k for k in saved if k.startswith(LEGACY_HEAD_PREFIX)]:
            head_state[key[len(LEGACY_HEAD_PREFIX):]] = saved.pop(key)
        config.modules_to_save = None
    elif (directory / CAMERA_HEAD_FILE).is_file():
        head_file = load_file(str(directory / CAMERA_HEAD_FILE), device="cpu")
        head_state = {k[len(CAMERA_HEAD_PREFIX):]: v for k, v in head_file.items() if k.startswith(CAMERA_HEAD_PREFIX)}
        if len(head_state) != len(head_file):
            raise ValueError(f"{directory / CAMERA_HEAD_FILE}: keys outside {CAMERA_HEAD_PREFIX}*")
    if head_state:
        _load_camera_head(model, head_state, str(directory))
    config.inference_mode = not is_trainable
    peft_model = get_peft_model(model, config)
    result = set_peft_model_state_dict(peft_model, saved, adapter_name=ADAPTER_NAME)
    unused = sorted(result.unexpected_keys)
    missing = sorted(k for k in result.missing_keys if ".lora_" in k)
    if unused or missing:
        raise ValueError(f"{directory}: adapter weights do not match the model: unused {unused[:5]}, "
                         f"missing {missing[:5]}")
    for param in peft_model.parameters():
        param.requires_grad_(False)
    if is_trainable:
        for name, param in peft_model.named_parameters():
            if ".lora_" in name:
                param.requires_grad_(True)
        if head_state:
            model.camera_head.requires_grad_(True)
    return peft_model


def _load_camera_head(model: VGGTCamera, state: Dict[str, Tensor], source: str) -> None:
    """Copy ``state`` (camera-head keys without the ``camera_head.`` prefix) into the model's
    head in place; raises ValueError unless keys and shapes match exactly."""
    own = model.camera_head.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(f"{source}: camera head does not match the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, wrong shapes {sorted(wrong)[:5]}")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)


def merge_lora(peft_model: nn.Module) -> VGGTCamera:
    """Fold the LoRA updates into plain weights for deployment, in place (the camera head is the
    model's own, trained or not); returns the unwrapped VGGTCamera."""
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, VGGTCamera):
        raise TypeError(f"merge produced {type(merged).__name__}, expected VGGTCamera")
    return merged


@torch.no_grad()
def merged_state_dict(peft_model: nn.Module) -> Dict[str, Tensor]:
    """The state dict :func:`merge_lora` would give (official ``aggregator.*``/``camera_head.*``
    keys, each LoRA update folded in as ``W + (alpha / r) * B @ A``), without modifying or
    copying the model.

    Computed layer by layer: an adapted linear's weight is a new CPU tensor (on a GPU only one
    layer's delta exists on the device at a time); every other tensor is the model's own on the
    CPU (shared storage there, one copy to the CPU from a GPU). Peak extra memory is the adapted
    weights, not a copy of the whole model.
    """
    from peft.tuners.lora import LoraLayer

    base = peft_model.get_base_model()
    merged_weights: Dict[str, Tensor] = {}
    for name, module in base.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        if module.lora_variant or any(module.lora_bias.values()):
            raise NotImplementedError(f"{name}: merging LoRA variants or LoRA biases is not supported")
        weight = module.get_base_layer().weight
        total = weight.detach().clone() if not module.merged else weight.detach()
        if not module.merged:
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    total += module.get_delta_weight(adapter).to(weight.dtype)
        merged_weights[f"{name}.weight"] = total.to("cpu")
        del total
    state: Dict[str, Tensor] = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key or ".original_module." in key:
            continue
        key = key.replace(".base_layer.", ".").replace(f".modules_to_save.{ADAPTER_NAME}.", ".")
        state[key] = merged_weights.get(key, value.detach()).to("cpu").contiguous()
    return state


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
