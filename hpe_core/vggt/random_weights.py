"""Non-degenerate random weights for tests and export checks.

A freshly initialised VGGTCamera hides whole paths: LayerScale starts at 0.01, the learned
camera/register tokens at ~1e-6 and LoRA B at zero, so a wrong implementation of those paths
can still produce nearly the right numbers. :func:`randomize_parameters` gives every
parameter values of order one (LayerScale gammas about 0.3, as in the shared oracle).
"""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_parameters(model: nn.Module, seed: int = 0, std: float = 0.2) -> nn.Module:
    """Overwrite every floating-point parameter of ``model`` in place with reproducible random
    values: LayerNorm weights 1 + N(0, std), LayerScale gammas 0.3 + N(0, 0.05), everything
    else N(0, std). Returns ``model``."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if not param.dtype.is_floating_point or param.device.type == "meta":
            continue
        noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            values = 0.3 + 0.05 * noise
        elif leaf == "weight" and param.dim() == 1:
            values = 1.0 + std * noise
        else:
            values = std * noise
        param.copy_(values.to(param.dtype))
    return model
