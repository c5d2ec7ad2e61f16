"""VGGT aggregator: per-frame DINOv2 patch tokens refined by alternating frame/global attention.

Per frame the token sequence is [camera token, R register tokens, P patch tokens]
(``patch_start_idx = 1 + R``). The camera and register tokens are learned with shape
[1, 2, n, C]: index 0 is used for the first frame of every sequence (the reference frame),
index 1 for all other frames.

Frame attention runs on [B*S, T, C] (tokens of one frame), global attention on
[B, S*T, C] (all frames of a sequence). Every step's output is the concatenation of the
frame and global block outputs: [B, S, T, 2C].
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from hpe_core.vggt.config import VGGTConfig
from hpe_core.vggt.layers import Block
from hpe_core.vggt.patch_embed import DinoV2PatchEmbed
from hpe_core.vggt.rope import RopeTables, patch_grid_positions, rope_tables

IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)


def _first_and_rest(token: Tensor, batch: int, seq: int) -> Tensor:
    """Learned [1, 2, n, C] token -> [B*S, n, C]: index 0 for frame 0, index 1 for frames 1..S-1."""
    first = token[:, :1].expand(batch, 1, -1, -1)
    rest = token[:, 1:2].expand(batch, seq - 1, -1, -1)
    both = torch.cat((first, rest), dim=1)  # [B, S, n, C]
    return both.reshape(batch * seq, token.shape[2], token.shape[3])


class Aggregator(nn.Module):
    """Alternating-attention aggregator (official key names: ``patch_embed``, ``camera_token``,
    ``register_token``, ``frame_blocks``, ``global_blocks``)."""

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        c = config
        self.patch_size = c.patch_size
        self.embed_dim = c.embed_dim
        self.head_dim = c.head_dim
        self.rope_freq = float(c.rope_freq)
        self.aa_order: Tuple[str, ...] = tuple(c.aa_order)
        self.aa_block_size = c.aa_block_size
        self.patch_start_idx = c.patch_start_idx

        self.patch_embed = DinoV2PatchEmbed(c.img_size, c.patch_size, c.embed_dim,
                                            c.num_register_tokens, c.patch_embed)
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, c.embed_dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, c.num_register_tokens, c.embed_dim))

        def make_block() -> Block:
            return Block(c.embed_dim, c.num_heads, mlp_ratio=c.mlp_ratio, qk_norm=c.qk_norm,
                         init_values=c.init_values, norm_eps=c.norm_eps)

        self.frame_blocks = nn.ModuleList(make_block() for _ in range(c.depth))
        self.global_blocks = nn.ModuleList(make_block() for _ in range(c.depth))
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if self.camera_token.device.type != "meta":
            nn.init.normal_(self.camera_token, std=1e-6)
            nn.init.normal_(self.register_token, std=1e-6)

    # ------------------------------------------------------------------ stages
    def embed_frames(self, images: Tensor) -> Tensor:
        """images [N, 3, H, W] in [0, 1] -> normalised DINOv2 patch tokens [N, P, C],
        P = (H/p)*(W/p) in row-major order."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"embed_frames expects [N, 3, H, W], got {tuple(images.shape)}")
        normalised = (images - self.image_mean) / self.image_std
        return self.patch_embed(normalised)

    def forward(self, images: Tensor) -> Tuple[List[Tensor], int]:
        """images [B, S, 3, H, W] in [0, 1] -> (list of ``depth`` tensors [B, S, T, 2C],
        patch_start_idx), T = patch_start_idx + P."""
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f"aggregator expects [B, S, 3, H, W], got {tuple(images.shape)}")
        b, s, _, h, w = images.shape
        tokens = self.embed_frames(images.reshape(b * s, 3, h, w))
        return self.forward_from_patch_tokens(tokens.reshape(b, s, tokens.shape[1], tokens.shape[2]), (h, w))

    def forward_from_patch_tokens(self, patch_tokens: Tensor,
                                  image_hw: Sequence[int]) -> Tuple[List[Tensor], int]:
        """patch_tokens [B, S, P, C] from :meth:`embed_frames`, image_hw = (H, W) in pixels
        -> (list of ``depth`` tensors [B, S, T, 2C], patch_start_idx)."""
        if patch_tokens.dim() != 4:
            raise ValueError(f"patch_tokens must be [B, S, P, C], got {tuple(patch_tokens.shape)}")
        b, s, p, c = patch_tokens.shape
        h, w = int(image_hw[0]), int(image_hw[1])
        grid_h, grid_w = h // self.patch_size, w // self.patch_size
        if grid_h * grid_w != p:
            raise ValueError(f"{p} patch tokens do not match image size {h}x{w} "
                             f"(patch {self.patch_size} -> {grid_h}x{grid_w})")
        if c != self.embed_dim:
            raise ValueError(f"patch token width {c} != embed_dim {self.embed_dim}")

        camera = _first_and_rest(self.camera_token, b, s).to(patch_tokens.dtype)
        registers = _first_and_rest(self.register_token, b, s).to(patch_tokens.dtype)
        tokens = torch.cat((camera, registers, patch_tokens.reshape(b * s, p, c)), dim=1)
        t = tokens.shape[1]

        positions = patch_grid_positions(grid_h, grid_w, self.patch_start_idx, device=tokens.device)
        frame_rope = rope_tables(positions, self.head_dim, self.rope_freq, tokens.dtype)
        global_rope: RopeTables = (frame_rope[0].repeat(s, 1), frame_rope[1].repeat(s, 1))

        outputs: List[Tensor] = []
        frame_idx = 0
        global_idx = 0
        for _ in range(len(self.frame_blocks) // self.aa_block_size):
            frame_out: List[Tensor] = []
            global_out: List[Tensor] = []
            for kind in self.aa_order:
                if kind == "frame":
                    tokens = tokens.reshape(b * s, t, c)
                    for _ in range(self.aa_block_size):
                        tokens = self.frame_blocks[frame_idx](tokens, rope=frame_rope)
                        frame_idx += 1
                        frame_out.append(tokens.reshape(b, s, t, c))
                else:
                    tokens = tokens.reshape(b, s * t, c)
                    for _ in range(self.aa_block_size):
                        tokens = self.global_blocks[global_idx](tokens, rope=global_rope)
                        global_idx += 1
                        global_out.append(tokens.reshape(b, s, t, c))
            for f_out, g_out in zip(frame_out, global_out):
                outputs.append(torch.cat((f_out, g_out), dim=-1))
        return outputs, self.patch_start_idx
