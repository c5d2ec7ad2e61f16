"""VGGT camera head: iterative refinement of a 9-D pose encoding from the camera token.

Pose encoding ``absT_quaR_FoV`` = [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]: the frame's
OpenCV camera-from-world extrinsics (translation in the scene's units, quaternion
scalar-last) and its vertical/horizontal field of view in radians. Frame 0 is the reference
(world) frame.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hpe_core.vggt.config import CameraHeadConfig
from hpe_core.vggt.layers import Block, Mlp


def _activate(x: Tensor, kind: str) -> Tensor:
    if kind == "linear":
        return x
    if kind == "relu":
        return F.relu(x)
    if kind == "exp":
        return torch.exp(x)
    if kind == "inv_log":
        return torch.sign(x) * torch.expm1(torch.abs(x))
    raise ValueError(f"unknown activation {kind!r}")


def activate_pose(raw: Tensor, trans_act: str, quat_act: str, fl_act: str) -> Tensor:
    """Apply the per-part output activations to a raw [..., 9] pose encoding."""
    return torch.cat((_activate(raw[..., :3], trans_act),
                      _activate(raw[..., 3:7], quat_act),
                      _activate(raw[..., 7:], fl_act)), dim=-1)


class CameraHead(nn.Module):
    """Camera head with official key names (``token_norm``, ``trunk``, ``trunk_norm``,
    ``empty_pose_tokens``, ``embed_pose``, ``poseLN_modulation``, ``pose_branch``)."""

    def __init__(self, cfg: CameraHeadConfig) -> None:
        super().__init__()
        dim = cfg.dim_in
        self.num_iterations = cfg.num_iterations
        self.acts = (cfg.trans_act, cfg.quat_act, cfg.fl_act)
        pose_dim = cfg.pose_dim
        self.token_norm = nn.LayerNorm(dim)
        self.trunk = nn.Sequential(*[
            Block(dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qk_norm=False,
                  init_values=cfg.init_values, norm_eps=1e-5)
            for _ in range(cfg.trunk_depth)
        ])
        self.trunk_norm = nn.LayerNorm(dim)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, pose_dim))
        self.embed_pose = nn.Linear(pose_dim, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, pose_dim)

    def forward(self, aggregated: Sequence[Tensor], num_iterations: int | None = None) -> List[Tensor]:
        """aggregated: the aggregator's list of [B, S, T, 2C] (only the last is used; token 0 of
        every frame is its camera token) -> list of ``num_iterations`` pose encodings [B, S, 9]."""
        iters = self.num_iterations if num_iterations is None else num_iterations
        camera_tokens = self.token_norm(aggregated[-1][:, :, 0])  # [B, S, 2C]
        b, s, _ = camera_tokens.shape
        normed = self.adaln_norm(camera_tokens)
        raw: Tensor | None = None
        outputs: List[Tensor] = []
        for _ in range(iters):
            if raw is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(b, s, -1))
            else:
                condition = self.embed_pose(raw.detach())
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            x = gate * (normed * (1 + scale) + shift) + camera_tokens
            x = self.trunk(x)
            delta = self.pose_branch(self.trunk_norm(x))
            raw = delta if raw is None else raw + delta
            outputs.append(activate_pose(raw, *self.acts))
        return outputs
