"""ONNX Runtime backend of the relative pose estimator (CPU; CUDA provider when present).

Runs the two exported graphs (see :mod:`hpe_core.estimator.onnx_format`): ``patch_embed``
for anchors (once, cached by the caller) and the query, ``relative_pose`` for the K pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from numpy.typing import NDArray

from hpe_core.estimator import onnx_format as fmt
from hpe_core.estimator.interface import RelativePoseEstimator


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the 'onnxruntime' backend needs the onnxruntime package (pip install onnxruntime, "
            "or onnxruntime-gpu for the CUDA provider)"
        ) from exc
    return onnxruntime


def providers_for_device(device: str, available: list[str]) -> list[str]:
    """Execution providers for ``"cpu"`` or ``"cuda[:N]"``; raise if CUDA's is unavailable."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                f"device {device!r} needs onnxruntime's CUDAExecutionProvider (install onnxruntime-gpu); "
                f"available providers: {available}"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"unsupported device {device!r} for onnxruntime; use 'cpu' or 'cuda[:N]'")


class OnnxRuntimeRelativePoseEstimator(RelativePoseEstimator):
    """Runs ``patch_embed.onnx`` and ``relative_pose.onnx`` from an export directory.

    Args:
        export_dir: directory written by ``hpe-export``.
        device: ``"cpu"`` or ``"cuda[:N]"`` (CUDA execution provider).
        precision: only ``"fp32"`` (the exported graphs are fp32).
        intra_op_threads: threads per operator; 0 lets ONNX Runtime choose.
    """

    name = "onnxruntime"

    def __init__(
        self,
        export_dir: Union[str, Path],
        device: str = "cpu",
        precision: str = "fp32",
        intra_op_threads: int = 0,
    ) -> None:
        if precision != "fp32":
            raise ValueError(f"the onnxruntime backend runs the fp32 graphs only, got precision {precision!r}")
        ort = _import_onnxruntime()
        embed_path, pose_path = fmt.graph_paths(export_dir)
        fmt.verify_export_files(export_dir)
        providers = providers_for_device(device, ort.get_available_providers())
        provider_options: Optional[list[dict[str, Any]]] = None
        if device.startswith("cuda:"):
            provider_options = [{"device_id": int(device.split(":", 1)[1])}, {}]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._embed_session = ort.InferenceSession(
            str(embed_path), sess_options=options, providers=providers, provider_options=provider_options
        )
        self._pose_session = ort.InferenceSession(
            str(pose_path), sess_options=options, providers=providers, provider_options=provider_options
        )
        embed_meta = fmt.GraphMetadata.from_props(
            self._embed_session.get_modelmeta().custom_metadata_map, str(embed_path)
        )
        pose_meta = fmt.GraphMetadata.from_props(
            self._pose_session.get_modelmeta().custom_metadata_map, str(pose_path)
        )
        if embed_meta.model_config != pose_meta.model_config or embed_meta.input_size != pose_meta.input_size:
            raise ValueError(f"{export_dir}: the two graphs come from different models or input sizes")
        self._pair_queries = fmt.accepts_pair_queries(self._pose_session)
        self._input_size = embed_meta.input_size
        self._metadata = embed_meta
        self._device = device
        manifest = fmt.read_manifest(export_dir)
        embed_hash = manifest.get("files", {}).get(fmt.PATCH_EMBED_FILE, {}).get("sha256")
        model_id = embed_hash[:16] if embed_hash else str(Path(embed_path).resolve())
        self._feature_key = f"onnxruntime:{model_id}"

    @property
    def metadata(self) -> fmt.GraphMetadata:
        """Metadata of the exported graphs (config, input size, versions)."""
        return self._metadata

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @property
    def crop_mode(self) -> str:
        """The crop the exported model was trained on (its config's ``trained_crop``)."""
        return fmt.crop_mode_of(self._metadata.model_config)

    @property
    def device(self) -> str:
        return self._device

    @property
    def precision(self) -> str:
        return "fp32"

    @property
    def feature_key(self) -> str:
        return self._feature_key

    @property
    def supports_pair_queries(self) -> bool:
        """Exports made since the batched-faces change take one query per pair; older ones not."""
        return self._pair_queries

    def _embed(self, images: NDArray[np.float32]) -> NDArray[np.float32]:
        """Patch tokens ``[N, P, C]`` float32 of images ``[N, 3, H, W]`` in [0, 1]."""
        (tokens,) = self._embed_session.run([fmt.PATCH_EMBED_OUTPUT], {fmt.PATCH_EMBED_INPUT: images})
        return tokens

    def _query_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.float32]:
        """``[K, 9]`` query pose encodings from anchor ``[K, P, C]`` and query ``[1, P, C]`` tokens."""
        feeds = {
            fmt.ANCHOR_TOKENS_INPUT: np.ascontiguousarray(anchor_tokens, dtype=np.float32),
            fmt.QUERY_TOKENS_INPUT: np.ascontiguousarray(query_tokens, dtype=np.float32),
        }
        (pose,) = self._pose_session.run([fmt.POSE_OUTPUT], feeds)
        return pose

    def _pairs_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.float32]:
        """``[M, 9]`` query pose encodings of M pairs from anchor and query tokens ``[M, P, C]``."""
        if not self._pair_queries:
            raise NotImplementedError("this export takes one query per call (export it again for pair queries)")
        return self._query_pose_encoding(anchor_tokens, query_tokens)
