"""Training checkpoints: weights in safetensors, the rest as tensors/primitives for
``torch.load(weights_only=True)``.

Layout of ``<output_dir>/checkpoints/step_<00000123>/``:

* ``weights.safetensors``: :func:`hpe_training.train.modes.saved_state` (trainable parameters
  in lora/head-only mode, the whole state dict otherwise);
* ``adapter/`` (lora mode): the adapter of :func:`hpe_core.vggt.lora.save_adapter`
  (``adapter_config.json`` + ``adapter_model.safetensors``: the LoRA factors;
  ``camera_head.safetensors``: the trained camera head), loadable with
  :func:`hpe_core.vggt.lora.load_adapter`;
* ``trainer_state.pt``: ``{"format", "version", "step", "optimizer", "scheduler", "rng",
  "config"}`` (optimizer/scheduler ``state_dict``s, RNG states as tensors and ints, the
  training config as a plain dict).

``checkpoints/latest`` names the newest complete directory; a directory is written under a
temporary name and renamed when complete, so an interrupted save never becomes ``latest``.
"""
from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import Tensor

STATE_FORMAT = "hpe-train-state"
STATE_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "trainer_state.pt"
ADAPTER_DIR = "adapter"
LATEST_FILE = "latest"


@dataclass
class LoadedCheckpoint:
    """What :func:`read_checkpoint` returns: the directory, weights and trainer state."""

    directory: Path
    weights: Dict[str, Tensor]
    state: Dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def rng_state() -> Dict[str, Any]:
    """CPU/CUDA torch, NumPy (global) and Python ``random`` states as tensors and primitives."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`rng_state` (CUDA states restored when present and CUDA is available)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(output_dir: str | Path, step: int, weights: Dict[str, Tensor],
                     trainer_state: Dict[str, Any], adapter_module: Optional[torch.nn.Module] = None,
                     keep: int = 3) -> Path:
    """Write ``checkpoints/step_<step>/`` atomically, point ``latest`` at it and delete all but
    the ``keep`` newest checkpoints. Returns the directory."""
    from safetensors.torch import save_file

    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": STATE_FORMAT, "step": str(step)})
    state = dict(trainer_state)
    state.update(format=STATE_FORMAT, version=STATE_VERSION, step=int(step))
    torch.save(state, tmp / STATE_FILE)
    if adapter_module is not None:
        from hpe_core.vggt.lora import save_adapter

        save_adapter(adapter_module, tmp / ADAPTER_DIR)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest_tmp = root / f".{LATEST_FILE}.tmp"
    latest_tmp.write_text(name + "\n")
    os.replace(latest_tmp, root / LATEST_FILE)
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(output_dir: str | Path) -> Optional[Path]:
    """Directory named by ``checkpoints/latest`` (None when there is none)."""
    root = checkpoint_root(output_dir)
    pointer = root / LATEST_FILE
    if not pointer.is_file():
        return None
    directory = root / pointer.read_text().strip()
    return directory if directory.is_dir() else None


def read_checkpoint(directory: str | Path) -> LoadedCheckpoint:
    """Read weights (safetensors) and trainer state (``torch.load(weights_only=True)``)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    weights = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"{directory / STATE_FILE}: not an {STATE_FORMAT} file")
    if int(state.get("version", -1)) != STATE_VERSION:
        raise ValueError(f"{directory / STATE_FILE}: version {state.get('version')} (expected {STATE_VERSION})")
    return LoadedCheckpoint(directory, weights, state)
