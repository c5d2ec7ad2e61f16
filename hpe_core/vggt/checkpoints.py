"""Loading and saving VGGTCamera weights.

Three formats:

* **official VGGT** (``model.pt`` of facebookresearch/vggt, or a ``.safetensors`` of it): a flat
  state_dict of the whole VGGT. :func:`load_official_checkpoint` keeps ``aggregator.*`` and
  ``camera_head.*``, ignores the other heads, and reports what is missing or unexpected.
* **ours**: a directory with ``config.json`` (:class:`VGGTConfig`) and ``model.safetensors``
  (:func:`save_model` / :func:`load_model`; :func:`save_state_dict` writes it from a config and
  a state dict, e.g. a LoRA model's merged state without merging a copy of the model).
* **VGGT-HPE** (the public relative-head-pose code): like the official layout but every
  LoRA-wrapped linear ``<layer>`` is stored as ``<layer>.base.weight``, ``<layer>.base.bias``,
  ``<layer>.lora_A.weight`` [r, in], ``<layer>.lora_B.weight`` [out, r] with update scale
  alpha / r. :func:`load_vggt_hpe_checkpoint` merges it (W + scale * B @ A) or rebuilds it as a
  peft adapter.

Checkpoints are read only with ``safetensors`` or ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from hpe_core.bounded_json import load_bounded
from hpe_core.vggt.config import VGGTConfig
from hpe_core.vggt.model import VGGTCamera

logger = logging.getLogger(__name__)
PathLike = Union[str, Path]

KEPT_PREFIXES: Tuple[str, ...] = ("aggregator.", "camera_head.")
CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.safetensors"
FORMAT_NAME = "hpe-vggt-camera"
FORMAT_VERSION = "1"
_NESTING_KEYS = ("model", "state_dict", "model_state_dict", "module")


class CheckpointError(ValueError):
    """A file is not a usable checkpoint (unreadable, no model weights, wrong shapes)."""


@dataclass
class LoadReport:
    """What a checkpoint load did.

    loaded: keys copied into the model; missing: model keys the file lacks (left as they were);
    unexpected: ``aggregator.*``/``camera_head.*`` keys of the file the model does not have;
    ignored: other keys of the file (depth/point/track heads, ...), not used by head pose.
    """

    path: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every model key was loaded and nothing unexpected was found."""
        return not self.missing and not self.unexpected

    def ignored_prefixes(self) -> List[str]:
        """Top-level names of the ignored keys (e.g. ['depth_head', 'point_head', 'track_head'])."""
        return sorted({k.split(".", 1)[0] for k in self.ignored})

    def summary(self) -> str:
        parts = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} keys of {self.ignored_prefixes()}")
        if self.missing:
            parts.append(f"MISSING {len(self.missing)}: {_preview(self.missing)}")
        if self.unexpected:
            parts.append(f"UNEXPECTED {len(self.unexpected)}: {_preview(self.unexpected)}")
        return "; ".join(parts)


def _preview(keys: List[str], n: int = 8) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


# ---------------------------------------------------------------------------- reading
def read_state_dict(path: PathLike) -> Dict[str, Tensor]:
    """Read a flat {name: tensor} state dict from a ``.safetensors`` or torch file.

    Torch files are loaded with ``weights_only=True`` on the CPU; a state dict nested under
    ``model`` / ``state_dict`` / ``model_state_dict`` / ``module`` is unwrapped and a
    ``module.`` (DataParallel) prefix stripped. Raises :class:`CheckpointError` when the file is
    not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    else:
        try:
            obj = _torch_load(path)
        except Exception as exc:  # torch raises many types here (UnpicklingError, KeyError, EOFError...)
            raise CheckpointError(
                f"{path}: not a loadable PyTorch checkpoint with weights_only=True ({exc}). If it is "
                f"a training checkpoint holding other Python objects, save its state_dict alone."
            ) from exc
    return _flatten_state_dict(obj, str(path))


def _torch_load(path: Path) -> object:
    """torch.load with weights_only=True, memory-mapped when the file format allows it
    (the official 1B file is about 5 GB; only aggregator/camera-head tensors get copied)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return torch.load(path, map_location="cpu", weights_only=True)


def _flatten_state_dict(obj: object, where: str) -> Dict[str, Tensor]:
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            nested = next((obj[k] for k in _NESTING_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if nested is None:
                break
            obj = nested
    if not isinstance(obj, Mapping) or not obj or not _is_tensor_dict(obj):
        raise CheckpointError(f"{where}: does not contain a state dict (a mapping of names to tensors)")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


# ---------------------------------------------------------------------------- official VGGT
def load_state_dict_into(model: nn.Module, state: Mapping[str, Tensor], source: str = "<state dict>",
                         strict: bool = False) -> LoadReport:
    """Copy the ``aggregator.*``/``camera_head.*`` tensors of ``state`` into ``model``.

    Raises :class:`CheckpointError` on any shape mismatch, when ``state`` holds none of the
    model's keys, or (``strict=True``) when keys are missing or unexpected.
    """
    own = model.state_dict()
    report = LoadReport(path=source)
    kept: Dict[str, Tensor] = {}
    mismatched: List[str] = []
    for key, value in state.items():
        if not key.startswith(KEPT_PREFIXES):
            report.ignored.append(key)
        elif key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            kept[key] = value
    if mismatched:
        raise CheckpointError(f"{source}: {len(mismatched)} shape mismatch(es) (wrong model config?): "
                              + "; ".join(mismatched[:8]))
    if not kept:
        raise CheckpointError(f"{source}: none of the model's aggregator.*/camera_head.* keys found "
                              f"(file has {len(state)} keys, e.g. {_preview(sorted(state), 3)})")
    report.missing = sorted(set(own) - set(kept))
    report.loaded = sorted(kept)
    if strict and not report.complete:
        raise CheckpointError(report.summary())
    model.load_state_dict(kept, strict=False)
    if report.complete:
        logger.info(report.summary())
    else:
        logger.warning(report.summary())
    return report


def load_official_checkpoint(path: PathLike, model: nn.Module, strict: bool = False) -> LoadReport:
    """Load an official VGGT checkpoint (``model.pt`` or ``.safetensors``) into ``model``.

    Keeps ``aggregator.*`` and ``camera_head.*``; ignores ``depth_head``/``point_head``/
    ``track_head`` (and any other key). Returns and logs a :class:`LoadReport`; raises
    :class:`CheckpointError` on a non-checkpoint file or a shape mismatch (and, with
    ``strict``, on missing or unexpected keys).
    """
    return load_state_dict_into(model, read_state_dict(path), source=str(path), strict=strict)


# ---------------------------------------------------------------------------- our format
def save_model(model: VGGTCamera, directory: PathLike, storage_dtype: Optional[torch.dtype] = None) -> Path:
    """Write ``directory/config.json`` and ``directory/model.safetensors``; returns the directory.

    ``storage_dtype`` (e.g. ``torch.float16``) stores floating-point weights in that type to
    halve the file; :func:`load_model` casts them back to the model's float32 parameters.
    """
    if not isinstance(model, VGGTCamera):
        raise TypeError(f"save_model expects a VGGTCamera (merge LoRA first), got {type(model).__name__}")
    return save_state_dict(model.config, model.state_dict(), directory, storage_dtype=storage_dtype)


def save_state_dict(config: VGGTConfig, state: Mapping[str, Tensor], directory: PathLike,
                    storage_dtype: Optional[torch.dtype] = None) -> Path:
    """:func:`save_model` from a config and a state dict with the VGGTCamera keys (e.g.
    :func:`hpe_core.vggt.lora.merged_state_dict`, which avoids copying a LoRA model to merge it).
    Refuses a state dict whose keys or shapes differ from ``VGGTCamera(config)``'s (checked on
    the meta device, no memory). Returns the directory."""
    from safetensors.torch import save_file

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in VGGTCamera(config).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise CheckpointError(f"state dict does not match the config: missing {_preview(missing, 5)}; "
                              f"unexpected {_preview(unexpected, 5)}; wrong shapes {_preview(wrong, 5)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.to_json(directory / CONFIG_FILENAME)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    if storage_dtype is not None:
        state = {k: v.to(storage_dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(directory / WEIGHTS_FILENAME),
              metadata={"format": FORMAT_NAME, "format_version": FORMAT_VERSION})
    return directory


def load_model(directory: PathLike, device: Union[str, torch.device] = "cpu",
               dtype: Optional[torch.dtype] = None) -> VGGTCamera:
    """Build a VGGTCamera from a directory written by :func:`save_model` (strict load), in eval mode."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILENAME
    weights_path = directory / WEIGHTS_FILENAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"{directory}: missing {p.name} (expected {CONFIG_FILENAME} + {WEIGHTS_FILENAME})")
    config = VGGTConfig.from_json(config_path)
    model = VGGTCamera(config)
    state = read_state_dict(weights_path)
    load_state_dict_into(model, state, source=str(weights_path), strict=True)
    model = model.to(device=device)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.eval()


# ---------------------------------------------------------------------------- VGGT-HPE layout
_LORA_SUFFIXES = (".base.weight", ".base.bias", ".lora_A.weight", ".lora_B.weight")


@dataclass
class VggtHpeLoad:
    """Result of :func:`load_vggt_hpe_checkpoint`.

    model: the VGGTCamera (merged mode) or a peft PeftModel around it (peft mode);
    lora_layers: module names that carried LoRA; rank, alpha: the LoRA hyper-parameters used.
    """

    model: nn.Module
    report: LoadReport
    lora_layers: List[str]
    rank: int
    alpha: float


def split_vggt_hpe_state(state: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Dict[str, Tensor]]]:
    """Split a VGGT-HPE state dict into plain tensors (``<layer>.base.*`` renamed ``<layer>.*``)
    and {layer: {"A": [r, in], "B": [out, r]}} LoRA factors."""
    plain: Dict[str, Tensor] = {}
    factors: Dict[str, Dict[str, Tensor]] = {}
    for key, value in state.items():
        if key.endswith(".lora_A.weight"):
            factors.setdefault(key[: -len(".lora_A.weight")], {})["A"] = value
        elif key.endswith(".lora_B.weight"):
            factors.setdefault(key[: -len(".lora_B.weight")], {})["B"] = value
        elif key.endswith(".base.weight") or key.endswith(".base.bias"):
            layer, _, leaf = key.rpartition(".base.")
            plain[f"{layer}.{leaf}"] = value
        else:
            plain[key] = value
    for layer, ab in factors.items():
        if set(ab) != {"A", "B"}:
            raise CheckpointError(f"LoRA layer {layer}: has {sorted(ab)} but needs both lora_A and lora_B")
        a, b = ab["A"], ab["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise CheckpointError(f"LoRA layer {layer}: incompatible lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}")
        if f"{layer}.weight" not in plain:
            raise CheckpointError(f"LoRA layer {layer}: lora factors without {layer}.base.weight")
    return plain, factors


def load_vggt_hpe_checkpoint(path: PathLike, model: VGGTCamera, mode: Literal["merged", "peft"] = "merged",
                             alpha: float = 16.0, rank: Optional[int] = None,
                             strict: bool = False) -> VggtHpeLoad:
    """Load a VGGT-HPE checkpoint (LoRA-wrapped linears) into ``model``.

    Args:
        path: ``.pt`` / ``.safetensors`` file in the VGGT-HPE layout.
        model: a VGGTCamera of the matching configuration (modified in place).
        mode: ``"merged"``: W <- W + (alpha / r) * B @ A folded into the plain weights;
            ``"peft"``: base weights loaded, then the layers wrapped with a peft LoRA adapter
            (r, alpha) holding A and B (for further fine-tuning).
        alpha: LoRA alpha (not stored in the checkpoint; VGGT-HPE uses 16).
        rank: expected LoRA rank; inferred from lora_A when None.
        strict: raise when model keys are missing or unexpected keys are found.
    """
    if mode not in ("merged", "peft"):
        raise ValueError(f"mode must be 'merged' or 'peft', got {mode!r}")
    plain, factors = split_vggt_hpe_state(read_state_dict(path))
    if not factors:
        raise CheckpointError(f"{path}: no '<layer>.lora_A.weight' keys; not a VGGT-HPE LoRA checkpoint "
                              f"(use load_official_checkpoint for plain weights)")
    ranks = {ab["A"].shape[0] for ab in factors.values()}
    if len(ranks) != 1:
        raise CheckpointError(f"{path}: LoRA layers have different ranks {sorted(ranks)}")
    found_rank = ranks.pop()
    if rank is not None and rank != found_rank:
        raise CheckpointError(f"{path}: LoRA rank {found_rank} in the file, {rank} expected")
    scale = alpha / found_rank
    layers = sorted(factors)
    if mode == "merged":
        for layer in layers:
            weight = plain[f"{layer}.weight"]
            delta = factors[layer]["B"].double() @ factors[layer]["A"].double()
            plain[f"{layer}.weight"] = (weight.double() + scale * delta).to(weight.dtype)
        report = load_state_dict_into(model, plain, source=str(path), strict=strict)
        return VggtHpeLoad(model, report, layers, found_rank, alpha)

    from peft import LoraConfig, get_peft_model

    report = load_state_dict_into(model, plain, source=str(path), strict=strict)
    config = LoraConfig(r=found_rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                        target_modules=layers_to_regex(layers))
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for layer in layers:
            wrapped = peft_model.base_model.model.get_submodule(layer)
            wrapped.lora_A["default"].weight.copy_(factors[layer]["A"])
            wrapped.lora_B["default"].weight.copy_(factors[layer]["B"])
    return VggtHpeLoad(peft_model, report, layers, found_rank, alpha)


def layers_to_regex(layers: List[str]) -> str:
    """A regex full-matching exactly the given module names (for peft ``target_modules``)."""
    import re

    return "(" + "|".join(re.escape(name) for name in layers) + ")"


def read_config_json(directory: PathLike) -> VGGTConfig:
    """Config of a saved model directory (without loading weights)."""
    return VGGTConfig.from_dict(load_bounded(Path(directory) / CONFIG_FILENAME))
