"""Training configuration (``hpe-train --config FILE.yaml``).

A flat dataclass; files are YAML (``.yaml``/``.yml``) or JSON (``.json``) mappings of the same
field names. Unknown keys are rejected. ``--override key=value`` values are parsed as YAML
scalars (``lr=3e-5``, ``absolute=true``, ``val_root=null``); ``data_options.NAME=value``
sets one entry of the ``data_options`` mapping.

Step counts are *optimizer* steps (one step = ``accumulation_steps`` micro-batches of
``batch_size`` pairs per process).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

PathLike = Union[str, Path]
MODES = ("lora", "full", "head-only", "scratch")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything a training run needs.

    Data: ``train_root`` / ``val_root``: dataset roots in the VGGT-HPE on-disk layout (val
    should hold identities absent from train); ``data_options``: extra keyword arguments for
    the pair dataset.

    Model: ``preset`` (``tiny`` | ``small`` | ``vggt-1b``) gives the architecture;
    ``init_checkpoint`` is either one of our model directories (``config.json`` +
    ``model.safetensors``; its config replaces the preset) or an official VGGT file
    (``model.pt`` / ``.safetensors``, loaded into the preset's architecture). ``mode``:
    ``lora`` (LoRA on the frozen aggregator blocks, camera head trainable), ``full`` (all
    trainable), ``head-only`` (only the camera head) or ``scratch`` (random init, all
    trainable; ``init_checkpoint`` must be unset). ``absolute``: train on each view's own
    head-to-camera pose instead of the pose relative to the anchor.

    Optimisation: AdamW(lr, weight_decay); linear warm-up over ``warmup_fraction`` of the
    optimizer steps, then cosine decay to ``min_lr``; gradient clip ``grad_clip`` (max L2 norm,
    0 disables); ``bf16``: bfloat16 autocast, applied on CUDA only; ``cpu_bf16``: bfloat16
    autocast on the CPU as well (opt-in: about 1.3x faster per step on a CPU with AVX512-BF16,
    measured on the 2-core development machine, at the cost of bf16 rounding in the forward
    pass).

    Length: ``epochs`` passes over the training pairs, capped at ``max_steps`` optimizer steps
    when set. Checkpoints every ``checkpoint_every`` optimizer steps (0: only at the end);
    validation after every epoch.
    """

    train_root: str = ""
    val_root: Optional[str] = None
    data_options: Dict[str, Any] = field(default_factory=dict)

    preset: str = "vggt-1b"
    init_checkpoint: Optional[str] = None
    mode: str = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    absolute: bool = False
    image_size: int = 518

    batch_size: int = 1
    accumulation_steps: int = 4
    epochs: int = 500
    max_steps: Optional[int] = None
    lr: float = 1e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    bf16: bool = True
    cpu_bf16: bool = False

    loss_gamma: float = 0.6
    lambda_translation: float = 1.0
    lambda_quaternion: float = 1.0
    lambda_focal: float = 0.5

    seed: int = 0
    num_workers: int = 4
    device: str = "auto"
    output_dir: str = "runs/hpe"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate: bool = True
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        def require(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        require(self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}")
        require(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        require(not (self.mode == "scratch" and self.init_checkpoint),
                "mode 'scratch' trains from random weights: unset init_checkpoint")
        require(isinstance(self.data_options, Mapping), "data_options must be a mapping")
        self.data_options = dict(self.data_options)
        require(self.lora_rank >= 1, f"lora_rank must be >= 1, got {self.lora_rank}")
        require(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        require(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        require(self.image_size >= 14, f"image_size must be >= 14, got {self.image_size}")
        for name in ("batch_size", "accumulation_steps", "epochs"):
            require(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.max_steps is None or self.max_steps >= 1,
                f"max_steps must be >= 1 or null, got {self.max_steps}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 <= self.min_lr <= self.lr, f"min_lr must be in [0, lr], got {self.min_lr}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(0.0 <= self.warmup_fraction < 1.0,
                f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        require(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables), got {self.grad_clip}")
        require(0.0 < self.loss_gamma <= 1.0, f"loss_gamma must be in (0, 1], got {self.loss_gamma}")
        for name in ("lambda_translation", "lambda_quaternion", "lambda_focal"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        require(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        require(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        require(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        require(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        require(bool(self.output_dir), "output_dir must be set")

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Build from a mapping of field names; raises ValueError on unknown keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"training config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: PathLike, overrides: Iterable[str] = ()) -> "TrainConfig":
        """Read a YAML or JSON file, then apply ``key=value`` overrides."""
        return cls.from_dict(apply_overrides(read_mapping(path), overrides))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable dict; ``from_dict(to_dict())`` gives an equal config."""
        return dataclasses.asdict(self)

    def to_json(self, path: PathLike | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def read_mapping(path: PathLike) -> Dict[str, Any]:
    """Parse a YAML (``.yaml``/``.yml``) or JSON file holding one mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"{path}: config must be .yaml, .yml or .json")
    except (json.JSONDecodeError, ImportError) as exc:
        raise ValueError(f"{path}: cannot parse ({exc})") from exc
    except Exception as exc:  # yaml.YAMLError
        if isinstance(exc, ValueError):
            raise
        raise ValueError(f"{path}: cannot parse ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must contain a mapping, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """A YAML scalar/flow value (``1e-4`` -> 1e-4, ``true`` -> True, ``null`` -> None)."""
    import yaml

    value = yaml.safe_load(text)
    # YAML 1.1 reads "1e-4" (no dot) as a string; accept it as a float.
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Return a copy of ``data`` with ``key=value`` (or ``mapping_key.entry=value``) applied."""
    out = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not key=value")
        value = parse_value(raw)
        if "." in key:
            outer, _, inner = key.partition(".")
            nested = dict(out.get(outer) or {})
            nested[inner] = value
            out[outer] = nested
        else:
            out[key] = value
    return out
