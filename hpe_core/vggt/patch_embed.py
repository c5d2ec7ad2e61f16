"""DINOv2-with-registers vision transformer used as VGGT's per-frame patch embedding.

Token layout inside the ViT: [cls, registers (R), patches (P)]. The positional embedding
covers cls + the patch grid of the configured image size and is resampled (bicubic, with
antialiasing, offset 0 by default) for other grid sizes. Only the final-normed patch tokens
(``x_norm_patchtokens`` in DINOv2 terms) are returned.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hpe_core.vggt.config import PatchEmbedConfig
from hpe_core.vggt.layers import Block


class ConvPatchEmbed(nn.Module):
    """Non-overlapping patch projection: [N, 3, H, W] -> [N, (H/p)*(W/p), dim], row-major."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV2PatchEmbed(nn.Module):
    """DINOv2 ViT with register tokens; returns normalised patch tokens.

    Args:
        img_size: square image side (pixels) the positional embedding was built for.
        patch_size: patch side (pixels).
        embed_dim: token width C.
        num_register_tokens: R register tokens.
        cfg: depth, heads, MLP ratio, LayerScale init, interpolation settings, LayerNorm eps.
    """

    def __init__(self, img_size: int, patch_size: int, embed_dim: int, num_register_tokens: int,
                 cfg: PatchEmbedConfig) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = cfg.interpolate_antialias
        self.interpolate_offset = cfg.interpolate_offset
        grid = img_size // patch_size
        self.pos_grid = grid

        self.patch_embed = ConvPatchEmbed(patch_size, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        # Unused at inference (masked-image pretraining); kept so official keys load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            Block(embed_dim, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qk_norm=False,
                  init_values=cfg.init_values, norm_eps=cfg.norm_eps)
            for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=cfg.norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DINOv2-style init of the learned tokens (blocks keep torch defaults)."""
        if self.pos_embed.device.type == "meta":
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_embed(self, grid_h: int, grid_w: int) -> Tensor:
        """Positional embedding for a grid_h x grid_w patch grid: [1, 1 + grid_h*grid_w, C]."""
        m = self.pos_grid
        if grid_h == m and grid_w == m:
            return self.pos_embed
        dtype = self.pos_embed.dtype
        pos = self.pos_embed.float()
        cls_pos = pos[:, :1]
        patch_pos = pos[:, 1:].reshape(1, m, m, self.embed_dim).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            scale = ((grid_h + self.interpolate_offset) / m, (grid_w + self.interpolate_offset) / m)
            patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic",
                                      antialias=self.interpolate_antialias)
        else:
            patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic",
                                      antialias=self.interpolate_antialias)
        if patch_pos.shape[-2:] != (grid_h, grid_w):
            raise RuntimeError(f"positional embedding resampled to {tuple(patch_pos.shape[-2:])}, "
                               f"expected {(grid_h, grid_w)}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, self.embed_dim)
        return torch.cat((cls_pos, patch_pos), dim=1).to(dtype)

    def forward(self, images: Tensor) -> Tensor:
        """images [N, 3, H, W] (already ImageNet-normalised), H and W multiples of the patch size
        -> normalised patch tokens [N, (H/p)*(W/p), C]."""
        n, _, h, w = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        grid_h, grid_w = h // self.patch_size, w // self.patch_size
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)
        x = x + self.interpolate_pos_embed(grid_h, grid_w)
        x = torch.cat((x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]), dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1 + self.num_register_tokens:]

