"""Export a ``VGGTCamera`` to the two ONNX graphs of :mod:`hpe_core.estimator.onnx_format`.

* ``patch_embed.onnx``: ``images [N, 3, H, W]`` (float32 RGB in [0, 1]) -> ``patch_tokens
  [N, P, C]``; dynamic N. Exported at one fixed input size with the (possibly bicubic,
  antialiased) interpolated positional embedding precomputed as a constant
  (:class:`FixedSizePosEmbed`), because antialiased bicubic resampling has no ONNX operator.
* ``relative_pose.onnx``: ``anchor_patch_tokens [K, P, C]``, ``query_patch_tokens [Q, P, C]``
  -> ``pose_enc [K, 9]``, the query frame of each (anchor, query) pair after the last
  refinement iteration; dynamic K, and Q = 1 or K (one query per pair, several faces in one
  call; the TorchScript exporter only, ``torch.export`` keeps Q = 1).

The model is put in eval mode and dry-run before export; afterwards ONNX Runtime runs both
graphs at batch sizes other than the traced ones and must match PyTorch fp32 (the plain
``model.forward`` on image pairs) within a tolerance, or the export fails.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from hpe_core.estimator import onnx_format as fmt

#: Default opsets: the TorchScript exporter emits opset 17 (LayerNormalization, understood by
#: TensorRT >= 8.6); the dynamo exporter builds opset 18 and its down-conversion to 17 produced
#: invalid Split nodes with torch 2.13, so it keeps 18.
DEFAULT_OPSET = 17
DEFAULT_DYNAMO_OPSET = 18
DEFAULT_TOLERANCE = 1e-4
#: Graphs whose weights exceed this many bytes keep them in one external ``.data`` file.
EXTERNAL_DATA_BYTES = 1_800_000_000


class ExportVerificationError(RuntimeError):
    """ONNX Runtime's outputs differ from PyTorch's by more than the tolerance."""


def hpe_version() -> str:
    """Installed version of the ``hpe`` distribution (``"unknown"`` when not installed)."""
    try:
        return importlib_metadata.version("hpe")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _pos_embed_owners(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if callable(getattr(type(m), "interpolate_pos_embed", None))]


class FixedSizePosEmbed(contextlib.AbstractContextManager):
    """Freeze the patch embed's positional embedding at one input size while exporting.

    Inside the ``with`` block, every module of ``model`` that has an
    ``interpolate_pos_embed(grid_h, grid_w)`` method returns a precomputed constant
    ``[1, 1 + grid_h * grid_w, C]`` for the export grid (and refuses any other grid), so the
    traced graph contains no bicubic resampling. Leaving the block restores the method.

    Args:
        model: the model to export (a ``VGGTCamera``).
        input_size: ``(H, W)`` in pixels, multiples of ``model.config.patch_size``.
    """

    def __init__(self, model: nn.Module, input_size: tuple[int, int]) -> None:
        patch = int(model.config.patch_size)
        self._grid = (input_size[0] // patch, input_size[1] // patch)
        self._owners = _pos_embed_owners(model)
        if not self._owners:
            raise ValueError("model has no module with interpolate_pos_embed(); cannot fix its size")

    def __enter__(self) -> "FixedSizePosEmbed":
        for owner in self._owners:
            with torch.no_grad():
                table = owner.interpolate_pos_embed(*self._grid).detach().clone()
            grid = self._grid

            def fixed(grid_h: int, grid_w: int, _table: Tensor = table) -> Tensor:
                if (grid_h, grid_w) != grid:
                    raise ValueError(f"exported for a {grid} patch grid, got {(grid_h, grid_w)}")
                return _table

            owner.interpolate_pos_embed = fixed  # instance attribute shadows the method
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner in self._owners:
            owner.__dict__.pop("interpolate_pos_embed", None)


class PatchEmbedGraph(nn.Module):
    """``images [N, 3, H, W]`` in [0, 1] -> ``patch_tokens [N, P, C]`` (``model.embed_frames``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.embed_frames(images)


class RelativePoseGraph(nn.Module):
    """Anchor ``[K, P, C]`` and query ``[Q, P, C]`` tokens -> query pose encodings ``[K, 9]``.

    ``Q`` is 1 (one query shared by the K pairs) or K (pair k's own query: several faces'
    pairs in one call). Builds K pairs ``[K, 2, P, C]`` (anchor = frame 0) and returns frame 1
    of the last refinement iteration of ``model.forward_from_patch_tokens``.
    """

    def __init__(self, model: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def forward(self, anchor_patch_tokens: Tensor, query_patch_tokens: Tensor) -> Tensor:
        pairs = torch.stack([anchor_patch_tokens, query_patch_tokens.expand_as(anchor_patch_tokens)], dim=1)
        return self.model.forward_from_patch_tokens(pairs, self.input_size)[-1][:, 1]


@dataclass
class CheckResult:
    """One numerical comparison done during export."""

    name: str
    max_abs_diff: float
    tolerance: float
    passed: bool
    detail: str = ""


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and checked."""

    output_dir: Path
    input_size: tuple[int, int]
    files: dict[str, dict[str, Any]]
    checks: list[CheckResult] = field(default_factory=list)
    exporter: str = "torchscript"
    opset: int = DEFAULT_OPSET
    seconds: float = 0.0

    @property
    def query_axis(self) -> Any:
        """The query input's first axis as the manifest records it: ``"Q"`` (1 or K) or 1."""
        return 1 if self.exporter == "dynamo" else fmt.QUERY_AXIS


def _test_images(n: int, input_size: tuple[int, int], seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, input_size[0], input_size[1], generator=generator)


def _export_module(module: nn.Module, args: tuple[Tensor, ...], path: Path, input_names: list[str],
                   output_names: list[str], dynamic_axes: dict[str, dict[int, str]], opset: int,
                   dynamo: bool) -> None:
    """Export ``module`` to ``path`` (weights possibly in external files beside it)."""
    if dynamo:
        shapes = {name: ({axis: torch.export.Dim.DYNAMIC for axis in dynamic_axes[name]}
                         if name in dynamic_axes else None) for name in input_names}
        torch.onnx.export(module, args, str(path), dynamo=True, input_names=input_names,
                          output_names=output_names, dynamic_shapes=shapes, opset_version=opset,
                          external_data=True)
        return
    with warnings.catch_warnings():
        # The tracer warns about Python-side shape checks; they run at trace time only, and the
        # graph is verified at other batch sizes afterwards.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
                          dynamo=False)


def _finalise_graph(exported: Path, final: Path, graph: str, config_json: str,
                    input_size: tuple[int, int]) -> None:
    """Add the metadata to an exported graph and save it as ``final``.

    Weights stay inside the file unless they exceed :data:`EXTERNAL_DATA_BYTES`, in which case
    they go to one ``<final name>.data`` file beside it (protobuf files are limited to 2 GB).
    """
    import onnx

    proto = onnx.load(str(exported))  # also reads external data written by the exporter
    props = {
        fmt.METADATA_KEYS["format_version"]: str(fmt.FORMAT_VERSION),
        fmt.METADATA_KEYS["hpe_version"]: hpe_version(),
        fmt.METADATA_KEYS["graph"]: graph,
        fmt.METADATA_KEYS["model_config"]: config_json,
        fmt.METADATA_KEYS["preprocessing"]: json.dumps(fmt.preprocessing_description(input_size)),
    }
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "hpe"
    proto.producer_version = hpe_version()
    for stale in final.parent.glob(final.name + ".data*"):
        stale.unlink()
    weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    if weight_bytes > EXTERNAL_DATA_BYTES:
        onnx.save_model(proto, str(final), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=final.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(proto, str(final))


def _file_entry(path: Path) -> dict[str, Any]:
    extra = sorted(path.parent.glob(path.name + ".data*"))
    return {"sha256": fmt.sha256_file(path), "bytes": path.stat().st_size,
            "external_data": [{"file": p.name, "bytes": p.stat().st_size, "sha256": fmt.sha256_file(p)}
                              for p in extra]}


def verify_with_onnxruntime(model: nn.Module, output_dir: Path, input_size: tuple[int, int],
                            tolerance: float = DEFAULT_TOLERANCE, seed: int = 0,
                            anchor_counts: Sequence[int] = (1, 3)) -> list[CheckResult]:
    """Compare ONNX Runtime (CPU) with PyTorch fp32 on random images.

    Checks the patch tokens of ``max(anchor_counts) + 1`` images, and for each K in
    ``anchor_counts`` the ORT chain (patch_embed -> relative_pose) against
    ``model.forward`` on the K image pairs ``[K, 2, 3, H, W]`` (query = frame 1).
    """
    import onnxruntime as ort

    embed_path, pose_path = fmt.graph_paths(output_dir)
    options = ort.SessionOptions()
    embed = ort.InferenceSession(str(embed_path), options, providers=["CPUExecutionProvider"])
    pose = ort.InferenceSession(str(pose_path), options, providers=["CPUExecutionProvider"])
    k_max = max(anchor_counts)
    images = _test_images(k_max + 1, input_size, seed)
    results = []
    with torch.inference_mode():
        ref_tokens = model.embed_frames(images).numpy()
    (ort_tokens,) = embed.run([fmt.PATCH_EMBED_OUTPUT], {fmt.PATCH_EMBED_INPUT: images.numpy()})
    diff = float(np.abs(ort_tokens - ref_tokens).max())
    results.append(CheckResult(f"patch_embed N={k_max + 1}", diff, tolerance, diff <= tolerance,
                               "onnxruntime vs model.embed_frames"))
    query = images[-1:]
    for k in anchor_counts:
        anchors = images[:k]
        pairs = torch.stack([anchors, query.expand_as(anchors)], dim=1)
        with torch.inference_mode():
            ref_pose = model(pairs)[-1][:, 1].numpy()
        feeds = {fmt.ANCHOR_TOKENS_INPUT: ort_tokens[:k], fmt.QUERY_TOKENS_INPUT: ort_tokens[-1:]}
        (ort_pose,) = pose.run([fmt.POSE_OUTPUT], feeds)
        diff = float(np.abs(ort_pose - ref_pose).max())
        results.append(CheckResult(f"relative_pose K={k}", diff, tolerance, diff <= tolerance,
                                   "onnxruntime chain vs model.forward on image pairs"))
    if fmt.accepts_pair_queries(pose) and k_max >= 2:
        # pair k's own query (several faces in one call): queries = the images in reverse order
        order = list(range(k_max, 0, -1))
        anchors = images[:k_max]
        pairs = torch.stack([anchors, images[order]], dim=1)
        with torch.inference_mode():
            ref_pose = model(pairs)[-1][:, 1].numpy()
        feeds = {fmt.ANCHOR_TOKENS_INPUT: ort_tokens[:k_max], fmt.QUERY_TOKENS_INPUT: ort_tokens[order]}
        (ort_pose,) = pose.run([fmt.POSE_OUTPUT], feeds)
        diff = float(np.abs(ort_pose - ref_pose).max())
        results.append(CheckResult(f"relative_pose K={k_max} pair queries", diff, tolerance, diff <= tolerance,
                                   "onnxruntime chain with one query per pair vs model.forward"))
    return results


def export_onnx(model: nn.Module, output_dir: Path, input_size: Optional[tuple[int, int]] = None,
                opset: Optional[int] = None, dynamo: bool = False, tolerance: float = DEFAULT_TOLERANCE,
                verify: bool = True, log: Callable[[str], None] = print) -> ExportResult:
    """Export both graphs into ``output_dir``, write metadata, and verify with ONNX Runtime.

    Args:
        model: a ``VGGTCamera`` (LoRA merged); moved to the CPU in fp32 and put in eval mode.
        output_dir: created if needed; existing graphs are overwritten.
        input_size: ``(H, W)`` in pixels (multiples of the patch size); default the model
            config's square ``default_input_size`` (the size it was trained at, else ``img_size``).
        opset: ONNX opset (default :data:`DEFAULT_OPSET`, or :data:`DEFAULT_DYNAMO_OPSET` with dynamo).
        dynamo: use the ``torch.export``-based exporter instead of the TorchScript one.
        tolerance: maximum absolute difference ONNX Runtime vs PyTorch (fp32).
        verify: run the ONNX Runtime comparison (raises :class:`ExportVerificationError`).
        log: progress printer.
    """
    started = time.perf_counter()
    if opset is None:
        opset = DEFAULT_DYNAMO_OPSET if dynamo else DEFAULT_OPSET
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model = model.to(device="cpu", dtype=torch.float32).eval()
    config = model.config
    size = input_size if input_size is not None else (config.default_input_size, config.default_input_size)
    size = (int(size[0]), int(size[1]))
    patch = int(config.patch_size)
    if size[0] % patch or size[1] % patch:
        raise ValueError(f"input size {size} must be multiples of the patch size {patch}")
    config_json = config.to_json()
    images = _test_images(2, size, seed=1234)
    embed_graph = PatchEmbedGraph(model).eval()
    pose_graph = RelativePoseGraph(model, size).eval()
    embed_path = output_dir / fmt.PATCH_EMBED_FILE
    pose_path = output_dir / fmt.RELATIVE_POSE_FILE
    exporter = "dynamo" if dynamo else "torchscript"
    with tempfile.TemporaryDirectory(prefix=".export-", dir=output_dir) as scratch_dir:
        scratch = Path(scratch_dir)
        with FixedSizePosEmbed(model, size), torch.no_grad():
            log("dry run of both graphs in PyTorch")
            tokens = embed_graph(images)
            dry_pose = pose_graph(tokens[:2], tokens[1:2])
            if not (torch.isfinite(tokens).all() and torch.isfinite(dry_pose).all()):
                raise RuntimeError("dry run produced non-finite values; refusing to export")
            log(f"exporting {embed_path.name} ({exporter} exporter, opset {opset}, input {size[0]}x{size[1]})")
            _export_module(embed_graph, (images,), scratch / embed_path.name, [fmt.PATCH_EMBED_INPUT],
                           [fmt.PATCH_EMBED_OUTPUT],
                           {fmt.PATCH_EMBED_INPUT: {0: "N"}, fmt.PATCH_EMBED_OUTPUT: {0: "N"}}, opset, dynamo)
            log(f"exporting {pose_path.name}")
            pose_axes = {fmt.ANCHOR_TOKENS_INPUT: {0: "K"}, fmt.POSE_OUTPUT: {0: "K"}}
            if not dynamo:  # torch.export would specialise the example's size-1 query axis
                pose_axes[fmt.QUERY_TOKENS_INPUT] = {0: fmt.QUERY_AXIS}
            _export_module(pose_graph, (tokens[:2].contiguous(), tokens[1:2].contiguous()),
                           scratch / pose_path.name, [fmt.ANCHOR_TOKENS_INPUT, fmt.QUERY_TOKENS_INPUT],
                           [fmt.POSE_OUTPUT], pose_axes, opset, dynamo)
        _finalise_graph(scratch / embed_path.name, embed_path, "patch_embed", config_json, size)
        _finalise_graph(scratch / pose_path.name, pose_path, "relative_pose", config_json, size)
    files = {path.name: _file_entry(path) for path in (embed_path, pose_path)}
    result = ExportResult(output_dir, size, files, exporter=exporter, opset=opset)
    if verify:
        log(f"verifying ONNX Runtime against PyTorch fp32 (tolerance {tolerance:g})")
        result.checks = verify_with_onnxruntime(model, output_dir, size, tolerance)
        for check in result.checks:
            log(f"  {check.name}: max |diff| = {check.max_abs_diff:.3g} "
                f"({'ok' if check.passed else 'FAILED'})")
        failed = [c for c in result.checks if not c.passed]
        if failed:
            names = ", ".join(f"{c.name} ({c.max_abs_diff:.3g})" for c in failed)
            raise ExportVerificationError(f"ONNX Runtime differs from PyTorch by more than {tolerance:g}: {names}")
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def manifest_dict(result: ExportResult, model_config: dict[str, Any], source: dict[str, Any],
                  extra_checks: Sequence[dict[str, Any]] = (), tensorrt: Optional[dict[str, Any]] = None
                  ) -> dict[str, Any]:
    """The ``manifest.json`` content for an export."""
    return {
        "format_version": fmt.FORMAT_VERSION,
        "hpe_version": hpe_version(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "exporter": {"kind": result.exporter, "opset": result.opset, "torch": torch.__version__},
        "files": result.files,
        "graphs": {
            fmt.PATCH_EMBED_FILE: {"inputs": {fmt.PATCH_EMBED_INPUT: ["N", 3, *result.input_size]},
                                   "outputs": {fmt.PATCH_EMBED_OUTPUT: ["N", "P", "C"]}},
            fmt.RELATIVE_POSE_FILE: {"inputs": {fmt.ANCHOR_TOKENS_INPUT: ["K", "P", "C"],
                                                fmt.QUERY_TOKENS_INPUT: [result.query_axis, "P", "C"]},
                                     "outputs": {fmt.POSE_OUTPUT: ["K", 9]}},
        },
        "input_size_hw": list(result.input_size),
        "preprocessing": fmt.preprocessing_description(result.input_size),
        "model_config": model_config,
        "source": source,
        "checks": [asdict(c) for c in result.checks] + list(extra_checks),
        "tensorrt": tensorrt if tensorrt is not None else {"status": "not attempted"},
    }


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` into ``output_dir``; returns its path."""
    path = Path(output_dir) / fmt.MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path
