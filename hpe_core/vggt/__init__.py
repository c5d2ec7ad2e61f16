"""Our implementation of the camera branch of VGGT (aggregator + camera head).

Public entry points: :class:`hpe_core.vggt.config.VGGTConfig`,
:func:`hpe_core.vggt.config.get_preset` and :class:`hpe_core.vggt.model.VGGTCamera`;
weight formats in :mod:`hpe_core.vggt.checkpoints`; LoRA in :mod:`hpe_core.vggt.lora`
(imports peft lazily); oracle parity check in :mod:`hpe_core.vggt.parity_cli`.
"""
from hpe_core.vggt.config import VGGTConfig, get_preset
from hpe_core.vggt.model import VGGTCamera

__all__ = ["VGGTConfig", "VGGTCamera", "get_preset"]
