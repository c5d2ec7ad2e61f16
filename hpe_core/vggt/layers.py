"""Transformer building blocks shared by the patch-embed ViT, the aggregator and the camera head.

One :class:`Block` class serves all three; they differ only in options:

=====================  =========  ========  ==========
user                   qk_norm    RoPE      norm eps
=====================  =========  ========  ==========
DINOv2 patch embed     no         no        1e-6
aggregator blocks      yes        yes       1e-5
camera-head trunk      no         no        1e-5
=====================  =========  ========  ==========

Parameter names (``norm1``, ``attn.qkv``, ``attn.q_norm``, ``attn.k_norm``, ``attn.proj``,
``ls1.gamma``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, ``ls2.gamma``) equal the official ones.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hpe_core.vggt.rope import RopeTables, apply_rope_2d


class Mlp(nn.Module):
    """Two-layer perceptron with exact GELU: [..., in] -> [..., out]."""

    def __init__(self, in_features: int, hidden_features: int, out_features: Optional[int] = None,
                 bias: bool = True) -> None:
        super().__init__()
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learned scale ``x * gamma``, gamma [dim] initialised to ``init_values``."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention with optional per-head LayerNorm on q/k and optional 2D RoPE.

    Input and output [B, N, dim]. q/k normalisation happens before the rotary embedding.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True,
                 qk_norm: bool = False, qk_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide dim ({dim})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, rope: Optional[RopeTables] = None) -> Tensor:
        """x [B, N, dim]; rope: (cos, sin) tables [N, head_dim] or None."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, heads, N, head_dim]
        q = self.q_norm(q)
        k = self.k_norm(k)
        if rope is not None:
            q = apply_rope_2d(q, rope)
            k = apply_rope_2d(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x))); x + ls2(mlp(norm2(x)))``.

    Input and output [B, N, dim].
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False,
                 init_values: float = 1.0, norm_eps: float = 1e-5, qkv_bias: bool = True,
                 proj_bias: bool = True, ffn_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: Tensor, rope: Optional[RopeTables] = None) -> Tensor:
        """x [B, N, dim]; rope: optional (cos, sin) tables [N, head_dim]."""
        x = x + self.ls1(self.attn(self.norm1(x), rope=rope))
        x = x + self.ls2(self.mlp(self.norm2(x)))
        return x
