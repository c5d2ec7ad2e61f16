"""Camera-branch VGGT: the part of VGGT that head-pose estimation needs.

``VGGTCamera`` has exactly two submodules, ``aggregator`` and ``camera_head``, so its
``state_dict`` keys equal the official ``aggregator.*`` / ``camera_head.*`` keys.

Two entry points compute the same thing:

* ``forward(images)`` with images [B, S, 3, H, W] in [0, 1];
* ``forward_from_patch_tokens(embed_frames(images.flatten(0, 1)).unflatten(0, (B, S)), (H, W))``,
  which lets a caller cache an anchor frame's patch tokens and only embed the query.
"""
from __future__ import annotations

import re
from typing import List, Sequence, Tuple

from torch import Tensor, nn

from hpe_core.vggt.aggregator import Aggregator
from hpe_core.vggt.camera_head import CameraHead
from hpe_core.vggt.config import VGGTConfig

#: Linear layers that VGGT-HPE adapts with LoRA, as suffixes of module names.
LORA_TARGET_SUFFIXES: Tuple[str, ...] = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
#: Block lists whose linear layers are LoRA targets (NOT the patch embed, NOT the camera head).
LORA_TARGET_BLOCKS: Tuple[str, ...] = ("aggregator.frame_blocks", "aggregator.global_blocks")
#: Regex matching exactly the LoRA target module names (full-match, peft-compatible).
LORA_TARGET_REGEX: str = (
    r"aggregator\.(frame_blocks|global_blocks)\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)"
)


def lora_target_module_names(model: nn.Module) -> List[str]:
    """Names of the nn.Linear modules of ``model`` that LoRA adapts (aggregator frame and global
    blocks' attn.qkv / attn.proj / mlp.fc1 / mlp.fc2), in module order."""
    pattern = re.compile(LORA_TARGET_REGEX)
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and pattern.fullmatch(name)]


class VGGTCamera(nn.Module):
    """VGGT aggregator + camera head.

    Output pose encodings are [B, S, 9] = [t (3), quaternion xyzw (4), fov_h, fov_w (rad)],
    OpenCV camera-from-world relative to frame 0 of each sequence.
    """

    def __init__(self, config: VGGTConfig) -> None:
        super().__init__()
        if not isinstance(config, VGGTConfig):
            raise TypeError(f"config must be a VGGTConfig, got {type(config).__name__}")
        self.config = config
        self.aggregator = Aggregator(config)
        self.camera_head = CameraHead(config.camera_head)

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    def forward(self, images: Tensor) -> List[Tensor]:
        """images [B, S, 3, H, W] in [0, 1] (H, W multiples of the patch size)
        -> list of K = num_iterations pose encodings [B, S, 9]; the last is the prediction."""
        aggregated, _ = self.aggregator(images)
        return self.camera_head(aggregated)

    def embed_frames(self, images: Tensor) -> Tensor:
        """images [N, 3, H, W] in [0, 1] -> normalised patch tokens [N, P, C] (the per-frame
        part of the computation, cacheable for an anchor frame)."""
        return self.aggregator.embed_frames(images)

    def forward_from_patch_tokens(self, patch_tokens: Tensor, image_hw: Sequence[int]) -> List[Tensor]:
        """patch_tokens [B, S, P, C] from :meth:`embed_frames`, image_hw = (H, W) pixels
        -> list of K pose encodings [B, S, 9] (identical to :meth:`forward` on the images)."""
        aggregated, _ = self.aggregator.forward_from_patch_tokens(patch_tokens, image_hw)
        return self.camera_head(aggregated)

    def lora_target_module_names(self) -> List[str]:
        """See :func:`lora_target_module_names`."""
        return lora_target_module_names(self)
