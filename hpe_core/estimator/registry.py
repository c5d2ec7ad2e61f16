"""Backend registry: ``create_estimator(backend, path, device=..., precision=...)``.

=============  ===================================  =================  =====================
backend        path                                 devices            precisions
=============  ===================================  =================  =====================
torch          checkpoint dir (config.json +        cpu, cuda[:N]      fp32, bf16, fp16
               model.safetensors)
onnxruntime    hpe-export dir (two ONNX graphs)     cpu, cuda[:N]      fp32
tensorrt       hpe-export dir (two ONNX graphs)     cuda[:N]           fp16, fp32
=============  ===================================  =================  =====================

Backends are imported only when chosen, so a missing optional package (onnxruntime,
tensorrt) matters only to the backend that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

from hpe_core.estimator.interface import RelativePoseEstimator

PathLike = Union[str, Path]


@dataclass(frozen=True)
class BackendInfo:
    """What one backend loads and supports."""

    name: str
    loads: str
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    default_precision: str
    factory: Callable[..., RelativePoseEstimator]


def _torch_factory(path: PathLike, device: str, precision: str, **options: Any) -> RelativePoseEstimator:
    from hpe_core.estimator.torch_backend import load_torch_estimator

    return load_torch_estimator(path, device=device, precision=precision, **options)


def _onnxruntime_factory(path: PathLike, device: str, precision: str, **options: Any) -> RelativePoseEstimator:
    from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator

    return OnnxRuntimeRelativePoseEstimator(path, device=device, precision=precision, **options)


def _tensorrt_factory(path: PathLike, device: str, precision: str, **options: Any) -> RelativePoseEstimator:
    from hpe_core.estimator.tensorrt_backend import TensorRTRelativePoseEstimator

    return TensorRTRelativePoseEstimator(path, device=device, precision=precision, **options)


BACKENDS: dict[str, BackendInfo] = {
    "torch": BackendInfo("torch", "checkpoint directory", ("cpu", "cuda"), ("fp32", "bf16", "fp16"),
                         "fp32", _torch_factory),
    "onnxruntime": BackendInfo("onnxruntime", "export directory", ("cpu", "cuda"), ("fp32",),
                               "fp32", _onnxruntime_factory),
    "tensorrt": BackendInfo("tensorrt", "export directory", ("cuda",), ("fp16", "fp32"),
                            "fp16", _tensorrt_factory),
}


def create_estimator(
    backend: str,
    model_dir_or_onnx_dir: PathLike,
    device: str = "cpu",
    precision: str | None = None,
    **options: Any,
) -> RelativePoseEstimator:
    """Build an estimator by backend name.

    Args:
        backend: ``"torch"``, ``"onnxruntime"`` or ``"tensorrt"``.
        model_dir_or_onnx_dir: checkpoint directory (torch) or ``hpe-export`` directory.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``; ``None`` picks the backend default.
        options: backend-specific keywords (torch: ``input_size``, ``compile``;
            onnxruntime: ``intra_op_threads``; tensorrt: ``cache_dir``, ``log``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    info = BACKENDS[backend]
    chosen = precision if precision is not None else info.default_precision
    if chosen not in info.precisions:
        raise ValueError(f"backend {backend!r} supports precisions {info.precisions}, got {chosen!r}")
    if device.split(":")[0] not in info.devices:
        raise ValueError(f"backend {backend!r} runs on {info.devices}, got device {device!r}")
    return info.factory(model_dir_or_onnx_dir, device=device, precision=chosen, **options)
