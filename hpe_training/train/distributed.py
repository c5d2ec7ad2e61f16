"""torch.distributed set-up for ``torchrun`` (env:// rendezvous): gloo on CPU, nccl on CUDA."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process runs.

    rank / world_size / local_rank: from torchrun's environment (0 / 1 / 0 without it);
    device: ``cuda:<local_rank>`` or ``cpu``; distributed: a process group was initialised here.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA device ``local_rank`` when available, else CPU; ``cuda`` fails without CUDA."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Initialise the default process group when launched by torchrun with WORLD_SIZE > 1.

    Uses ``init_method="env://"`` (MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE), backend nccl on
    CUDA and gloo on CPU, and selects ``cuda:LOCAL_RANK``. A plain process gets world size 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size <= 1:
        return DistContext(0, 1, 0, device, distributed=False)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, device, distributed=True)


def shutdown_distributed(ctx: DistContext) -> None:
    """Destroy the process group that :func:`init_distributed` created."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 tensor over ranks (identity on one process); returns a CPU tensor."""
    if not ctx.distributed:
        return values
    buffer = values.to(ctx.device)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.cpu()
