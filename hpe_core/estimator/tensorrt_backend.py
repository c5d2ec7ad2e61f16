"""TensorRT backend of the relative pose estimator (NVIDIA GPU, TensorRT >= 8.6).

Builds one plain TensorRT plan per exported ONNX graph (``patch_embed``, ``relative_pose``)
with fp16 kernels where the GPU has fast fp16, and an optimisation profile over the number of
anchors: ``relative_pose`` takes K in [1, 8] (optimised for 4); ``patch_embed`` takes N in
[1, 9] images (optimised for 4; 9 = 8 anchors + the query of the uncached path).

Engines are cached in a directory, keyed by the SHA-256 of the ONNX file (and of its external
data files), the TensorRT version, the GPU name, the precision and the profile. Each engine is
a plain serialised plan (``<graph>-<key>.plan``, nothing prepended) with a JSON sidecar
(``<graph>-<key>.json``) that records what the key was made from. Engines run with torch CUDA
tensors as input and output bindings on torch's current CUDA stream.

``tensorrt`` is imported lazily: importing this module works everywhere; constructing the
estimator without TensorRT or CUDA raises :class:`TensorRTUnavailableError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from numpy.typing import NDArray

from hpe_core.bounded_json import load_bounded
from hpe_core.estimator import onnx_format as fmt
from hpe_core.estimator.interface import RelativePoseEstimator

MIN_ANCHORS = 1
OPT_ANCHORS = 4
MAX_ANCHORS = 8
DEFAULT_WORKSPACE_BYTES = 4 << 30


class TensorRTUnavailableError(RuntimeError):
    """TensorRT (the ``tensorrt`` Python package) or a CUDA GPU is missing."""


def import_tensorrt() -> Any:
    """Import ``tensorrt`` or raise :class:`TensorRTUnavailableError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "the 'tensorrt' backend needs NVIDIA TensorRT >= 8.6 with its Python bindings "
            "(pip install tensorrt from NVIDIA's index, or the TensorRT of your JetPack/CUDA "
            f"installation); import failed: {exc}"
        ) from exc
    major_minor = tuple(int(part) for part in tensorrt.__version__.split(".")[:2])
    if major_minor < (8, 6):
        raise TensorRTUnavailableError(f"TensorRT >= 8.6 is needed, found {tensorrt.__version__}")
    return tensorrt


def tensorrt_availability() -> Optional[str]:
    """``None`` when the TensorRT backend can run here, else the reason it cannot."""
    try:
        import_tensorrt()
    except TensorRTUnavailableError as exc:
        return str(exc)
    if not torch.cuda.is_available():
        return "TensorRT is installed but torch sees no CUDA GPU"
    return None


def default_cache_dir() -> Path:
    """``$HPE_TRT_CACHE``, else ``$XDG_CACHE_HOME/hpe/tensorrt`` (``~/.cache/hpe/tensorrt``)."""
    if os.environ.get("HPE_TRT_CACHE"):
        return Path(os.environ["HPE_TRT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "hpe" / "tensorrt"


@dataclass(frozen=True)
class ShapeProfile:
    """Min/opt/max shapes of every input of one graph (``{name: (min, opt, max)}``)."""

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def as_json(self) -> dict[str, list[list[int]]]:
        return {name: [list(s) for s in triple] for name, triple in sorted(self.shapes.items())}


def graph_profile(graph: str, input_size: tuple[int, int], tokens_pc: tuple[int, int]) -> ShapeProfile:
    """The optimisation profile of ``"patch_embed"`` or ``"relative_pose"``.

    Args:
        graph: graph name.
        input_size: ``(H, W)`` image size in pixels.
        tokens_pc: ``(P, C)`` patch tokens per frame and channels.
    """
    h, w = input_size
    p, c = tokens_pc
    if graph == "patch_embed":
        return ShapeProfile({fmt.PATCH_EMBED_INPUT: (
            (MIN_ANCHORS, 3, h, w), (OPT_ANCHORS, 3, h, w), (MAX_ANCHORS + 1, 3, h, w))})
    if graph == "relative_pose":
        return ShapeProfile({
            fmt.ANCHOR_TOKENS_INPUT: ((MIN_ANCHORS, p, c), (OPT_ANCHORS, p, c), (MAX_ANCHORS, p, c)),
            fmt.QUERY_TOKENS_INPUT: ((1, p, c), (1, p, c), (1, p, c)),
        })
    raise ValueError(f"unknown graph {graph!r}")


def onnx_content_hash(onnx_path: Path) -> str:
    """SHA-256 over the ONNX file and any external-data files beside it (sorted by name)."""
    digest = hashlib.sha256(fmt.sha256_file(onnx_path).encode())
    for extra in sorted(onnx_path.parent.glob(onnx_path.name + ".data*")):
        digest.update(extra.name.encode())
        digest.update(fmt.sha256_file(extra).encode())
    return digest.hexdigest()


def engine_cache_key(onnx_hash: str, trt_version: str, gpu_name: str, precision: str,
                     profile: ShapeProfile) -> str:
    """Hex key naming one engine in the cache."""
    blob = json.dumps({"onnx_sha256": onnx_hash, "tensorrt": trt_version, "gpu": gpu_name,
                       "precision": precision, "profile": profile.as_json()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _torch_dtype(trt: Any, trt_dtype: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.int8: torch.int8, trt.bool: torch.bool}
    for name, dtype in (("bfloat16", torch.bfloat16), ("int64", torch.int64)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = dtype
    if trt_dtype not in table:
        raise TypeError(f"unsupported TensorRT tensor dtype {trt_dtype}")
    return table[trt_dtype]


def build_engine(onnx_path: Path, profile: ShapeProfile, precision: str,
                 workspace_bytes: int = DEFAULT_WORKSPACE_BYTES) -> tuple[bytes, dict[str, Any]]:
    """Parse an ONNX graph and build a serialised TensorRT plan.

    Args:
        onnx_path: graph file (external data beside it is found by the parser).
        profile: the optimisation profile of its inputs.
        precision: ``"fp16"`` (fp16 kernels where the GPU has fast fp16, fp32 elsewhere) or
            ``"fp32"`` (TF32 disabled).
        workspace_bytes: builder workspace limit.

    Returns:
        ``(plan bytes, build facts for the sidecar)``.
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    fp16_used = False
    if precision == "fp16":
        if getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(trt.BuilderFlag.FP16)
            fp16_used = True
    elif precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    else:
        raise ValueError(f"TensorRT precision must be 'fp16' or 'fp32', got {precision!r}")
    opt_profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if all(int(d) >= 0 for d in tensor.shape):
            continue  # static input: nothing to optimise over
        if tensor.name not in profile.shapes:
            raise ValueError(f"{onnx_path}: dynamic input {tensor.name!r} has no optimisation profile")
        lo, opt, hi = profile.shapes[tensor.name]
        opt_profile.set_shape(tensor.name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    started = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    facts = {"fp16_kernels_enabled": fp16_used, "build_seconds": round(time.perf_counter() - started, 2),
             "workspace_bytes": int(workspace_bytes)}
    return bytes(plan), facts


def read_cached_plan(plan_path: Path, key: str) -> Optional[bytes]:
    """The cached plan at ``plan_path`` if its sidecar (``.json``) names ``key`` and the plan's
    size and SHA-256; ``None`` (rebuild) for a missing, truncated, foreign or corrupt plan or
    sidecar. Needs no TensorRT, so it is tested everywhere.
    """
    sidecar_path = plan_path.with_suffix(".json")
    try:
        sidecar = load_bounded(sidecar_path, max_bytes=1 << 20)
        plan = plan_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict) or sidecar.get("key") != key:
        return None
    if sidecar.get("plan_bytes") != len(plan) or sidecar.get("plan_sha256") != hashlib.sha256(plan).hexdigest():
        return None
    return plan


def load_or_build_engine(onnx_path: Path, graph: str, profile: ShapeProfile, precision: str,
                         cache_dir: Path, log: Any = print) -> tuple[bytes, Path]:
    """Return a plan from the cache, building and caching it first if needed.

    Returns:
        ``(plan bytes, plan path)``; the sidecar is the plan path with suffix ``.json``.
    """
    trt = import_tensorrt()
    gpu_name = torch.cuda.get_device_name()
    onnx_hash = onnx_content_hash(onnx_path)
    key = engine_cache_key(onnx_hash, trt.__version__, gpu_name, precision, profile)
    plan_path = Path(cache_dir) / f"{graph}-{key[:24]}.plan"
    sidecar_path = plan_path.with_suffix(".json")
    cached = read_cached_plan(plan_path, key)
    if cached is not None:
        return cached, plan_path
    if plan_path.is_file():
        log(f"ignoring cached engine {plan_path}: its sidecar is missing or does not match it")
    log(f"building TensorRT engine for {onnx_path.name} ({precision}); this takes a while")
    plan, facts = build_engine(onnx_path, profile, precision)
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan_path.with_suffix(".plan.tmp")
    tmp.write_bytes(plan)
    os.replace(tmp, plan_path)
    sidecar = {"key": key, "graph": graph, "onnx_file": str(onnx_path.resolve()),
               "onnx_sha256": onnx_hash, "tensorrt_version": trt.__version__, "gpu_name": gpu_name,
               "precision": precision, "profile": profile.as_json(),
               "plan_sha256": hashlib.sha256(plan).hexdigest(), "plan_bytes": len(plan),
               "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **facts}
    tmp_sidecar = sidecar_path.with_suffix(".json.tmp")
    tmp_sidecar.write_text(json.dumps(sidecar, indent=1) + "\n")
    os.replace(tmp_sidecar, sidecar_path)
    log(f"cached {plan_path} ({facts['build_seconds']} s)")
    return plan, plan_path


class TensorRTGraph:
    """One deserialised engine, run with torch CUDA tensors as bindings."""

    def __init__(self, plan: bytes, device: torch.device) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self._device = device
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise RuntimeError("TensorRT could not deserialise the engine (built by another version or GPU?)")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self.inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: _torch_dtype(trt, self._engine.get_tensor_dtype(n)) for n in names}

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run on ``{input name: tensor}``; returns ``{output name: CUDA tensor}``."""
        keep = []
        for name in self.inputs:
            tensor = feeds[name].to(self._device, self._dtypes[name]).contiguous()
            keep.append(tensor)
            self._context.set_input_shape(name, tuple(tensor.shape))
            self._context.set_tensor_address(name, int(tensor.data_ptr()))
        results = {}
        for name in self.outputs:
            shape = tuple(self._context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self._dtypes[name], device=self._device)
            results[name] = out
            self._context.set_tensor_address(name, int(out.data_ptr()))
        stream = torch.cuda.current_stream(self._device)
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return results


class TensorRTRelativePoseEstimator(RelativePoseEstimator):
    """Runs TensorRT engines built from an ``hpe-export`` directory.

    Args:
        export_dir: directory with ``patch_embed.onnx`` and ``relative_pose.onnx``.
        device: ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp16"`` (default; fp16 where supported) or ``"fp32"``.
        cache_dir: engine cache (default :func:`default_cache_dir`).
        log: progress printer.
    """

    name = "tensorrt"

    def __init__(self, export_dir: Union[str, Path], device: str = "cuda", precision: str = "fp16",
                 cache_dir: Optional[Union[str, Path]] = None, log: Any = print) -> None:
        reason = tensorrt_availability()
        if reason is not None:
            raise TensorRTUnavailableError(reason)
        if not device.startswith("cuda"):
            raise ValueError(f"the tensorrt backend runs on 'cuda[:N]', got device {device!r}")
        self._device = torch.device(device)
        if self._device.index is None:
            self._device = torch.device("cuda", torch.cuda.current_device())
        self._precision = precision
        embed_path, pose_path = fmt.graph_paths(export_dir)
        fmt.verify_export_files(export_dir)
        import onnx  # only for the metadata of the graphs (no weights are loaded)

        props = {p.key: p.value for p in onnx.load(str(embed_path), load_external_data=False).metadata_props}
        self._metadata = fmt.GraphMetadata.from_props(props, str(embed_path))
        self._input_size = self._metadata.input_size
        cfg = self._metadata.model_config
        patch = int(cfg["patch_size"])
        tokens_pc = ((self._input_size[0] // patch) * (self._input_size[1] // patch), int(cfg["embed_dim"]))
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.engine_paths: dict[str, Path] = {}
        graphs = {}
        with torch.cuda.device(self._device):
            for graph, path in (("patch_embed", embed_path), ("relative_pose", pose_path)):
                profile = graph_profile(graph, self._input_size, tokens_pc)
                plan, plan_path = load_or_build_engine(path, graph, profile, precision, cache, log)
                self.engine_paths[graph] = plan_path
                graphs[graph] = TensorRTGraph(plan, self._device)
        self._embed_graph = graphs["patch_embed"]
        self._pose_graph = graphs["relative_pose"]
        self._feature_key = f"tensorrt:{self.engine_paths['patch_embed'].stem}:{self._device}"

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @property
    def crop_mode(self) -> str:
        """The crop the exported model was trained on (its config's ``trained_crop``)."""
        return fmt.crop_mode_of(self._metadata.model_config)

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def feature_key(self) -> str:
        return self._feature_key

    def _embed(self, images: NDArray[np.float32]) -> torch.Tensor:
        """Patch tokens ``[N, P, C]`` (CUDA tensor) of images ``[N, 3, H, W]`` in [0, 1], N <= 9."""
        if not MIN_ANCHORS <= images.shape[0] <= MAX_ANCHORS + 1:
            raise ValueError(f"the TensorRT patch-embed engine takes 1..{MAX_ANCHORS + 1} images, got {images.shape[0]}")
        feeds = {fmt.PATCH_EMBED_INPUT: torch.from_numpy(images)}
        return self._embed_graph(feeds)[fmt.PATCH_EMBED_OUTPUT]

    def _query_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.float32]:
        """``[K, 9]`` query pose encodings from anchor ``[K, P, C]`` and query ``[1, P, C]`` tokens."""
        anchors = torch.as_tensor(anchor_tokens)
        if not MIN_ANCHORS <= anchors.shape[0] <= MAX_ANCHORS:
            raise ValueError(f"the TensorRT engine takes 1..{MAX_ANCHORS} anchors per call, got {anchors.shape[0]}")
        feeds = {fmt.ANCHOR_TOKENS_INPUT: anchors, fmt.QUERY_TOKENS_INPUT: torch.as_tensor(query_tokens)}
        pose = self._pose_graph(feeds)[fmt.POSE_OUTPUT]
        return pose.float().cpu().numpy()
