"""Deterministic data order and per-sample randomness, keyed by (seed, epoch, position).

Exact resume needs the batch seen at optimizer step ``s`` to be the same whether or not the
run was interrupted. :class:`EpochSampler` draws the epoch's permutation from
``(seed, epoch)``, shards it over ranks like ``DistributedSampler`` (padding by wrapping
around) and can start part-way through; it yields ``(dataset_index, sample_seed)`` where
``sample_seed`` depends on ``(seed, epoch, position in the epoch)`` only.
:class:`SeededDataset` seeds Python's ``random``, NumPy's global generator and torch's CPU
generator with that seed around the wrapped dataset's ``__getitem__`` (restoring them
afterwards), so augmentations drawn from those generators repeat exactly whatever the worker,
process count or resume point. A dataset that instead accepts an explicit seed can define
``get_seeded(index, seed)``, which is then called.
"""
from __future__ import annotations

import math
import random
from typing import Any, Iterator, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

_VALIDATION_STREAM = 2**31 - 1


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A 32-bit seed for the sample at ``position`` of epoch ``epoch`` (SeedSequence mixing)."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


def step_seed(seed: int, step: int, rank: int) -> int:
    """A 32-bit seed for the model-side randomness (e.g. LoRA dropout) of one optimizer step."""
    return int(np.random.SeedSequence([seed, 7919, step, rank]).generate_state(1)[0])


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(num_samples)`` used in ``epoch`` (same on every rank)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
    return rng.permutation(num_samples)


class EpochSampler(Sampler[Tuple[int, int]]):
    """Yields this rank's ``(index, sample_seed)`` pairs of one epoch.

    Args:
        num_samples: dataset length N.
        seed, epoch: key of the permutation and of the per-sample seeds.
        rank, world_size: the rank takes global positions ``rank, rank + W, ...`` of the
            permutation padded (wrapping around) to ``ceil(N / W) * W``.
        start: number of this rank's leading samples to skip (resume part-way).
        shuffle: False gives the identity order (validation).
    """

    def __init__(self, num_samples: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 start: int = 0, shuffle: bool = True) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.num_samples, self.seed, self.epoch = num_samples, seed, epoch
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.per_rank = math.ceil(num_samples / world_size)
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start {start} outside [0, {self.per_rank}]")
        self.start = start

    def __len__(self) -> int:
        return self.per_rank - self.start

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        order = epoch_permutation(self.num_samples, self.seed, self.epoch) if self.shuffle \
            else np.arange(self.num_samples)
        for local in range(self.start, self.per_rank):
            position = self.rank + local * self.world_size  # < per_rank * world_size
            yield int(order[position % self.num_samples]), sample_seed(self.seed, self.epoch, position)


class ShardSampler(Sampler[Tuple[int, int]]):
    """Validation order: positions ``rank, rank + W, ...`` of ``range(N)`` without padding (each
    sample counted once over all ranks), with seeds keyed by ``(seed, position)``."""

    def __init__(self, num_samples: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.positions = list(range(rank, num_samples, world_size))
        self.seed = seed

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for position in self.positions:
            yield position, sample_seed(self.seed, _VALIDATION_STREAM, position)


class SeededDataset(Dataset):
    """Wraps a dataset so that ``dataset[(index, seed)]`` is a pure function of (index, seed)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Tuple[int, int]) -> Any:
        index, seed = key
        getter = getattr(self.dataset, "get_seeded", None)
        if callable(getter):
            return getter(index, seed)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                random.seed(seed)
                np.random.seed(seed)
                torch.manual_seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def dataset_length(dataset: Sequence[Any] | Dataset) -> int:
    """``len(dataset)`` with a clear error for iterable-style datasets."""
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError("the trainer needs a map-style dataset with __len__") from exc
