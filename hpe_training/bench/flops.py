"""Floating-point work of one cached estimate, and what fraction of a GPU's peak it reaches.

One cached ``estimate`` with K anchors = the patch embed of the query (1 image) + the
aggregator and camera head over K (anchor, query) pairs. :func:`cached_estimate_flops` counts
its FLOPs with ``torch.utils.flop_counter`` (matrix multiplies and attention; elementwise work
is not counted, as is usual for such figures) on the ``meta`` device, so the 1B model costs no
memory. Achieved throughput = FLOPs / measured median latency; fraction of peak = that / the
GPU's dense tensor-core peak for the precision.

Peak figures (dense, no sparsity), from NVIDIA's data sheets: H100 SXM and H200 SXM 989 TFLOP/s
in bf16 and fp16 (the H100 PCIe 756); A100 312. A device not in the table gives no fraction
unless ``--gpu-peak-tflops`` names it.
"""
from __future__ import annotations

from typing import Optional

import torch

#: (substring of torch.cuda.get_device_name(), dense bf16/fp16 tensor-core TFLOP/s)
GPU_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0),
)


def peak_tflops(device_name: Optional[str]) -> Optional[float]:
    """Dense bf16/fp16 peak of a named GPU (first table entry whose key is in the name)."""
    if not device_name:
        return None
    for key, value in GPU_PEAK_TFLOPS:
        if key in device_name:
            return value
    return None


def cached_estimate_flops(config, k: int, input_hw: tuple[int, int]) -> int:
    """FLOPs of one cached estimate with ``k`` anchors (module docstring), counted on ``meta``."""
    from torch.utils.flop_counter import FlopCounterMode

    from hpe_core.vggt.model import VGGTCamera

    with torch.device("meta"):
        model = VGGTCamera(config).eval().requires_grad_(False)
        query = torch.zeros(1, 3, *input_hw)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        tokens = model.embed_frames(query)  # [1, P, C]
        pairs = torch.cat([tokens.expand(k, -1, -1)[:, None], tokens.expand(k, -1, -1)[:, None]], dim=1)
        model.forward_from_patch_tokens(pairs, input_hw)
    return int(counter.get_total_flops())


def fraction_of_peak(flops: int, median_ms: float, peak: Optional[float]) -> dict[str, Optional[float]]:
    """``{"achieved_tflops", "fraction_of_peak"}`` (the latter None without a known peak)."""
    achieved = flops / (median_ms * 1e-3) / 1e12
    return {"achieved_tflops": achieved, "fraction_of_peak": None if not peak else achieved / peak}
