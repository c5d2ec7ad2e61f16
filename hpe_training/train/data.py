"""Pair datasets for the trainer, built from dataset roots in the VGGT-HPE on-disk layout.

Wraps :class:`hpe_training.data.pairs.HeadPairDataset` (anchor/query pairs sharing identity
and lighting, random face crops, shared colour augmentation; randomness keyed by
(seed, epoch, index)) and converts its samples to the trainer's contract
(:mod:`hpe_training.train.batch`): ``images [2,3,S,S]``, ``pose_enc [2,9]`` and
``abs_rotation [2,3,3]`` (the rotation block of its ``T_abs``).

``TrainConfig.data_options`` are passed to ``PairConfig`` (``margin_range``, ``max_shift``,
``augment``); ``size``, ``mode`` and ``seed`` come from the training config. The validation
set never augments colours.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from hpe_training.train.config import TrainConfig


class ContractPairs(Dataset):
    """Adapter: a ``HeadPairDataset`` whose samples follow the trainer's contract."""

    def __init__(self, pairs: Dataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch (partners, crops and augmentation depend on it)."""
        setter = getattr(self.pairs, "set_epoch", None)
        if callable(setter):
            setter(epoch)

    def __getitem__(self, index: int) -> Dict[str, Tensor]:
        return to_contract(self.pairs[index])


def to_contract(sample: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``HeadPairDataset`` sample -> ``{"images", "pose_enc", "abs_rotation"}``."""
    for key in ("images", "pose_enc", "T_abs"):
        if key not in sample:
            raise ValueError(f"pair sample lacks {key!r}; has {sorted(sample)}")
    return {"images": torch.as_tensor(sample["images"], dtype=torch.float32),
            "pose_enc": torch.as_tensor(sample["pose_enc"], dtype=torch.float32),
            "abs_rotation": torch.as_tensor(sample["T_abs"], dtype=torch.float32)[:, :3, :3].contiguous()}


def pair_config(cfg: TrainConfig, train: bool):
    """``PairConfig`` for the training (``train=True``) or validation set."""
    from hpe_training.data.pairs import PairConfig

    options = dict(cfg.data_options)
    known = {f.name for f in dataclasses.fields(PairConfig)} - {"size", "mode", "seed"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"data_options {unknown} not understood; allowed: {sorted(known)}")
    for pair_option in ("margin_range", "aligned_margin_range"):
        if pair_option in options:
            options[pair_option] = tuple(options[pair_option])
    if not train:
        options["augment"] = False
    return PairConfig(size=cfg.image_size, mode="absolute" if cfg.absolute else "relative", seed=cfg.seed,
                      **options)


def build_pair_dataset(root: str, cfg: TrainConfig, train: bool) -> ContractPairs:
    """Pairs of all views under ``root`` (raises FileNotFoundError when it holds none)."""
    from hpe_training.data.layout import LayoutReader
    from hpe_training.data.pairs import HeadPairDataset

    return ContractPairs(HeadPairDataset(LayoutReader(root), pair_config(cfg, train)))


def build_datasets(cfg: TrainConfig) -> Tuple[ContractPairs, Optional[ContractPairs]]:
    """(train, validation or None) datasets of a training config."""
    if not cfg.train_root:
        raise ValueError("train_root is not set")
    train = build_pair_dataset(cfg.train_root, cfg, train=True)
    val = build_pair_dataset(cfg.val_root, cfg, train=False) if cfg.val_root else None
    return train, val
