"""PyTorch backend of the relative pose estimator (CPU or CUDA; fp32, bf16 or fp16).

Reduced precisions run under ``torch.autocast`` (weights stay fp32, matmuls run in the low
precision, normalisations and softmax in fp32), as the official VGGT inference does.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional, Union

import numpy as np
import torch
from numpy.typing import NDArray

from hpe_core.estimator.interface import RelativePoseEstimator

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def resolve_torch_device(device: str) -> torch.device:
    """Parse ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; raise a clear error if CUDA is absent."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available to torch")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'cpu' or 'cuda[:N]'")
    return dev


class TorchRelativePoseEstimator(RelativePoseEstimator):
    """Runs :class:`hpe_core.vggt.model.VGGTCamera` directly.

    Args:
        model: a ``VGGTCamera`` (LoRA merged, if any); put in eval mode and moved to ``device``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast).
        input_size: ``(H, W)`` crop size in pixels; defaults to the model config's square
            ``default_input_size`` (the size it was trained at, else ``img_size``). Both must be
            multiples of the patch size.
        compile: wrap the two model stages in ``torch.compile``.
        compile_mode: ``torch.compile`` mode when ``compile`` is set: ``"default"``, or
            ``"reduce-overhead"`` (CUDA graphs on a GPU: the kernel launches of a call are
            recorded once and replayed), or ``"max-autotune"``.
    """

    name = "torch"

    def __init__(
        self,
        model: torch.nn.Module,
        device: str = "cpu",
        precision: str = "fp32",
        input_size: Optional[tuple[int, int]] = None,
        compile: bool = False,
        compile_mode: str = "default",
    ) -> None:
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, got {compile_mode!r}")
        if precision not in PRECISION_DTYPES:
            raise ValueError(f"precision must be one of {sorted(PRECISION_DTYPES)}, got {precision!r}")
        self._device = resolve_torch_device(device)
        self._precision = precision
        self._model = model.eval().to(self._device)
        config = model.config
        side = config.default_input_size
        size = input_size if input_size is not None else (side, side)
        self._input_size = (int(size[0]), int(size[1]))
        patch = int(config.patch_size)
        if self._input_size[0] % patch or self._input_size[1] % patch:
            raise ValueError(f"input_size {self._input_size} must be multiples of the patch size {patch}")
        self._embed_fn: Callable[..., Any] = model.embed_frames
        self._pose_fn: Callable[..., Any] = model.forward_from_patch_tokens
        if compile:
            self._embed_fn = torch.compile(self._embed_fn, mode=compile_mode)
            self._pose_fn = torch.compile(self._pose_fn, mode=compile_mode)
        self._compiled = compile
        self._compile_mode = compile_mode
        config_digest = hashlib.sha256(config.to_json().encode()).hexdigest()[:12]
        self._feature_key = f"torch:{id(self._model):x}:{config_digest}:{self._precision}"

    @property
    def model(self) -> torch.nn.Module:
        """The wrapped model (eval mode, on :attr:`device`)."""
        return self._model

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @property
    def crop_mode(self) -> str:
        """The crop the model was trained on (its config's ``trained_crop``)."""
        return self._model.config.crop_mode

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def feature_key(self) -> str:
        return self._feature_key

    def describe(self) -> str:
        suffix = ""
        if self._compiled:
            suffix = ", torch.compile" + ("" if self._compile_mode == "default" else f" {self._compile_mode}")
        return super().describe() + suffix

    def _autocast(self) -> ContextManager[Any]:
        if self._precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=PRECISION_DTYPES[self._precision])

    def _to_device(self, array: Union[NDArray[np.float32], torch.Tensor]) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            return array.to(self._device)
        return torch.from_numpy(array).to(self._device, non_blocking=True)

    @torch.inference_mode()
    def _embed(self, images: NDArray[np.float32]) -> torch.Tensor:
        """Patch tokens ``[N, P, C]`` (on :attr:`device`) of images ``[N, 3, H, W]`` in [0, 1]."""
        with self._autocast():
            return self._embed_fn(self._to_device(images))

    @property
    def supports_pair_queries(self) -> bool:
        return True

    @torch.inference_mode()
    def _query_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.float32]:
        """``[K, 9]`` query pose encodings from anchor ``[K, P, C]`` and query ``[1, P, C]`` tokens."""
        anchors = self._to_device(anchor_tokens)
        return self._pairs_pose_encoding(anchors, self._to_device(query_tokens).expand_as(anchors))

    @torch.inference_mode()
    def _pairs_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.float32]:
        """``[M, 9]`` query pose encodings of M pairs from anchor and query tokens ``[M, P, C]``."""
        anchors = self._to_device(anchor_tokens)
        query = self._to_device(query_tokens)
        if query.dtype != anchors.dtype:
            query = query.to(anchors.dtype)
        pairs = torch.stack([anchors, query], dim=1)  # [M, 2, P, C]
        with self._autocast():
            encodings = self._pose_fn(pairs, self._input_size)
        return encodings[-1][:, 1].float().cpu().numpy()


def load_torch_estimator(
    model_dir: Union[str, Path],
    device: str = "cpu",
    precision: str = "fp32",
    input_size: Optional[tuple[int, int]] = None,
    compile: bool = False,
) -> TorchRelativePoseEstimator:
    """Load a model from our checkpoint directory (``config.json`` + ``model.safetensors``)."""
    from hpe_core.vggt.checkpoints import load_model

    model = load_model(model_dir)
    return TorchRelativePoseEstimator(model, device=device, precision=precision,
                                      input_size=input_size, compile=compile)
