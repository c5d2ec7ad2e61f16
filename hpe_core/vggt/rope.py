"""2D rotary position embedding (RoPE) as used by the VGGT aggregator.

Each token has an integer grid position (row, col). The attention head dimension ``Dh``
is split into two halves of ``D = Dh / 2``: the first half is rotated by the row, the
second by the column. Within a half, the "rotate-half" layout is used: feature ``j`` and
``j + D/2`` form a pair rotated by angle ``pos * base^(-2j/D)``.

Everything here is written for export: the position grid is built from Python ints with
``arange``/``expand``/``stack`` (no ``torch.cartesian_prod``), and the cos/sin tables are
computed directly from the positions (no ``int(positions.max())`` lookup-table sizing).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

RopeTables = Tuple[Tensor, Tensor]


def patch_grid_positions(grid_h: int, grid_w: int, num_special: int,
                         device: torch.device | None = None) -> Tensor:
    """Integer positions of one frame's tokens.

    Args:
        grid_h, grid_w: patch grid size (rows, columns).
        num_special: number of special tokens (camera + registers) placed before the patches;
            they get position (0, 0) and the patches (row + 1, col + 1) when ``num_special > 0``
            (patches start at (0, 0) otherwise).
    Returns:
        Long tensor [num_special + grid_h * grid_w, 2] of (row, col), patches in row-major order.
    """
    rows = torch.arange(grid_h, device=device, dtype=torch.long).view(grid_h, 1).expand(grid_h, grid_w)
    cols = torch.arange(grid_w, device=device, dtype=torch.long).view(1, grid_w).expand(grid_h, grid_w)
    patch_pos = torch.stack((rows, cols), dim=-1).reshape(grid_h * grid_w, 2)
    if num_special <= 0:
        return patch_pos
    special = torch.zeros(num_special, 2, device=device, dtype=torch.long)
    return torch.cat((special, patch_pos + 1), dim=0)


def rope_tables(positions: Tensor, head_dim: int, base: float, dtype: torch.dtype) -> RopeTables:
    """Cos/sin tables for :func:`apply_rope_2d`.

    Args:
        positions: integer positions [N, 2] (row, col).
        head_dim: attention head dimension ``Dh`` (multiple of 4).
        base: frequency base (100 in VGGT).
        dtype: dtype of the tokens the tables will be applied to.
    Returns:
        (cos, sin), each [N, Dh]: columns [0, Dh/2) belong to the row half and
        [Dh/2, Dh) to the column half.
    """
    if head_dim % 4 != 0:
        raise ValueError(f"head_dim must be a multiple of 4 for 2D RoPE, got {head_dim}")
    half = head_dim // 2
    exponents = torch.arange(0, half, 2, device=positions.device).float() / half
    inv_freq = 1.0 / (base ** exponents)  # [half/2], float32
    tables_cos = []
    tables_sin = []
    for axis in range(2):
        angles = positions[:, axis].to(torch.float32)[:, None] * inv_freq[None, :]  # [N, half/2]
        angles = angles.to(dtype)
        angles = torch.cat((angles, angles), dim=-1)  # [N, half]
        tables_cos.append(angles.cos())
        tables_sin.append(angles.sin())
    return torch.cat(tables_cos, dim=-1), torch.cat(tables_sin, dim=-1)


def _rotate_half(x: Tensor) -> Tensor:
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def apply_rope_2d(x: Tensor, tables: RopeTables) -> Tensor:
    """Rotate queries or keys by their 2D positions.

    Args:
        x: [B, heads, N, Dh] queries or keys.
        tables: (cos, sin) from :func:`rope_tables`, each [N, Dh] (broadcast over B and heads).
    Returns:
        Tensor of the same shape as ``x``.
    """
    cos, sin = tables
    half = x.shape[-1] // 2
    rotated = []
    for i in range(2):
        part = x[..., i * half:(i + 1) * half]
        c = cos[..., i * half:(i + 1) * half]
        s = sin[..., i * half:(i + 1) * half]
        rotated.append(part * c + _rotate_half(part) * s)
    return torch.cat(rotated, dim=-1)
