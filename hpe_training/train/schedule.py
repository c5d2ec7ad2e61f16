"""Learning-rate schedule: linear warm-up, then cosine decay to a floor (per optimizer step)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict

from torch.optim import Optimizer


@dataclass
class WarmupCosine:
    """lr(step) for optimizer steps ``0 .. total_steps - 1``.

    ``W = round(warmup_fraction * total_steps)`` warm-up steps with ``lr = base_lr * (s + 1) / W``
    (the first step already moves the weights; step ``W - 1`` reaches ``base_lr``), then
    ``lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2`` with
    ``p = (s - W) / (total_steps - W - 1)`` going from 0 (``base_lr``) to 1 (``min_lr`` at the
    last step). Steps past the end stay at ``min_lr``.
    """

    base_lr: float
    min_lr: float
    total_steps: int
    warmup_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if not 0 <= self.min_lr <= self.base_lr:
            raise ValueError(f"need 0 <= min_lr <= base_lr, got {self.min_lr}, {self.base_lr}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")

    @property
    def warmup_steps(self) -> int:
        return min(int(round(self.warmup_fraction * self.total_steps)), self.total_steps - 1)

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        warm = self.warmup_steps
        if step < warm:
            return self.base_lr * (step + 1) / warm
        decay_steps = self.total_steps - warm - 1
        if decay_steps <= 0:
            return self.base_lr if step < self.total_steps else self.min_lr
        progress = min((step - warm) / decay_steps, 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class StepScheduler:
    """Sets every param group's ``lr`` to ``schedule(step)`` before each optimizer step.

    Call :meth:`apply` before ``optimizer.step()`` and :meth:`advance` after it. Its state is
    the step counter only (``{"step": int}``), loadable with ``torch.load(weights_only=True)``.
    """

    def __init__(self, optimizer: Optimizer, schedule: WarmupCosine) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.step_count = 0
        self.apply()

    def current_lr(self) -> float:
        return self.schedule(self.step_count)

    def apply(self) -> float:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advance(self) -> None:
        self.step_count += 1
        self.apply()

    def state_dict(self) -> Dict[str, int]:
        return {"step": self.step_count}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.step_count = int(state["step"])
        self.apply()
