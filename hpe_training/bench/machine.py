"""Describe the machine a benchmark ran on (CPU model, cores, library versions, GPU)."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, Any]:
    """Facts that make a latency figure comparable: CPU, cores, threads, versions, GPU."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line for the report header."""
    gpu = f", GPU {info['cuda_device']}" if info.get("cuda_device") else ", no GPU"
    return (f"{info['cpu']}, {info['logical_cores']} logical cores (torch threads {info['torch_threads']}){gpu}; "
            f"torch {info['torch']}, onnxruntime {info['onnxruntime']}, Python {info['python']}")
