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

More backends can be added without changing this module: :func:`register_backend` adds one,
and the environment variable ``HPE_BACKEND_PLUGINS`` (comma-separated module names) names
modules that are imported on the first lookup of a backend name that is not registered; each
such module calls :func:`register_backend` when imported. The test suite uses this to run the
node with a backend that fails on demand (``tests/ros/faulty_backend.py``).
"""

from __future__ import annotations

import importlib
import os
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


#: Environment variable naming backend plugin modules (comma-separated), see the module docstring.
PLUGINS_ENV = "HPE_BACKEND_PLUGINS"


def register_backend(info: BackendInfo, replace: bool = False) -> None:
    """Make backend ``info.name`` available to :func:`create_estimator`.

    Raises:
        ValueError: the name is taken (and ``replace`` is false).
    """
    if info.name in BACKENDS and not replace:
        raise ValueError(f"backend {info.name!r} is already registered")
    BACKENDS[info.name] = info


def load_backend_plugins(modules: str | None = None) -> list[str]:
    """Import the plugin modules named in ``modules`` (default: ``$HPE_BACKEND_PLUGINS``).

    Returns the names imported. Raises ``ImportError`` for a module that cannot be imported.
    """
    text = os.environ.get(PLUGINS_ENV, "") if modules is None else modules
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        importlib.import_module(name)
    return names


def backend_names() -> tuple[str, ...]:
    """Every registered backend name (plugins named in ``$HPE_BACKEND_PLUGINS`` included)."""
    load_backend_plugins()
    return tuple(BACKENDS)


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
        load_backend_plugins()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    info = BACKENDS[backend]
    chosen = precision if precision is not None else info.default_precision
    if chosen not in info.precisions:
        raise ValueError(f"backend {backend!r} supports precisions {info.precisions}, got {chosen!r}")
    if device.split(":")[0] not in info.devices:
        raise ValueError(f"backend {backend!r} runs on {info.devices}, got device {device!r}")
    return info.factory(model_dir_or_onnx_dir, device=device, precision=chosen, **options)
