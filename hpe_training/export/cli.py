"""``hpe-export``: checkpoint (+ optional LoRA adapter) -> two ONNX graphs, manifest, TensorRT engines.

Steps, each printed as it runs:

1. load the model: our checkpoint directory (``--model-dir``), or a preset with random
   weights (``--preset NAME --random-init --seed N``, for tests and benchmarks);
2. merge a peft LoRA adapter (``--adapter DIR``) and check the merged model's outputs equal the
   adapter model's, on images at the export input size (``--input-size``, default the config's);
3. export ``patch_embed.onnx`` and ``relative_pose.onnx`` and check ONNX Runtime against
   PyTorch fp32 (``--tolerance``, default 1e-4; the export fails otherwise);
4. where TensorRT and a CUDA GPU exist, build (or reuse from the cache) the engines and check
   them against ONNX Runtime; otherwise say plainly that this step was skipped and why;
5. write ``manifest.json`` (files, hashes, config, input size, checks done).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from hpe_training.export.onnx_export import (
    DEFAULT_DYNAMO_OPSET,
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    ExportVerificationError,
    export_onnx,
    manifest_dict,
    write_manifest,
)

#: TensorRT vs ONNX Runtime tolerance on the pose encoding, per engine precision.
TENSORRT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}


def _log(message: str) -> None:
    print(f"[hpe-export] {message}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpe-export", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="checkpoint directory (config.json + model.safetensors)")
    source.add_argument("--preset", help="build a preset configuration (tiny, small, vggt-1b); needs --random-init")
    parser.add_argument("--random-init", action="store_true", help="random weights for --preset (tests, benchmarks)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-init (default 0)")
    parser.add_argument("--adapter", type=Path, help="peft LoRA adapter directory to merge before export")
    parser.add_argument("--output", "-o", type=Path, required=True, help="export directory (created)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="crop size in pixels (default: the size the model was trained at, square: "
                             "the config's trained_img_size, else its img_size)")
    parser.add_argument("--opset", type=int, help=f"ONNX opset (default {DEFAULT_OPSET}, {DEFAULT_DYNAMO_OPSET} with --dynamo)")
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export-based ONNX exporter")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="max |ONNX Runtime - PyTorch| (fp32), default 1e-4")
    parser.add_argument("--tensorrt", choices=("auto", "skip", "require"), default="auto",
                        help="build TensorRT engines: where available (auto), never, or fail without it")
    parser.add_argument("--trt-precision", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument("--trt-cache-dir", type=Path,
                        help="engine cache (default: <output>/tensorrt_engines)")
    return parser


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, Any], list[dict[str, Any]]]:
    """The model to export (eval, CPU, fp32), a description of its source, and merge checks."""
    from hpe_core.vggt.config import get_preset
    from hpe_core.vggt.model import VGGTCamera

    if args.preset is not None:
        if not args.random_init:
            raise SystemExit("hpe-export: --preset needs --random-init (there are no preset weights to fetch)")
        _log(f"building preset {args.preset!r} with random weights (seed {args.seed})")
        torch.manual_seed(args.seed)
        model = VGGTCamera(get_preset(args.preset))
        source: dict[str, Any] = {"preset": args.preset, "random_init": True, "seed": args.seed}
    else:
        from hpe_core.vggt.checkpoints import load_model as load_checkpoint

        _log(f"loading checkpoint {args.model_dir}")
        model = load_checkpoint(args.model_dir)
        source = {"model_dir": str(args.model_dir.resolve())}
    model = model.eval()
    checks: list[dict[str, Any]] = []
    if args.adapter is not None:
        input_size = tuple(args.input_size) if args.input_size else None
        model, check = merge_adapter(model, args.adapter, args.tolerance, input_size=input_size)
        source["adapter"] = str(args.adapter.resolve())
        checks.append(check)
    return model, source, checks


def merge_adapter(model: torch.nn.Module, adapter_dir: Path, tolerance: float,
                  input_size: Optional[tuple[int, int]] = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Attach a peft adapter, merge it, and check that the outputs did not change.

    The check runs the adapter model and the merged model on two random image pairs
    ``[2, 2, 3, H, W]`` at ``input_size = (H, W)`` pixels: the export input size (the merge
    check at 518 px doubled the export time of a model exported at 224 px), by default the
    config's square ``default_input_size`` (the size it was trained at, else ``img_size``), as
    the export's. The check dict records the size used (``input_size_hw``).
    """
    from hpe_core.vggt.lora import load_adapter, merge_lora

    config = model.config
    side = config.default_input_size
    h, w = (int(input_size[0]), int(input_size[1])) if input_size is not None else (side, side)
    patch = int(config.patch_size)
    if h % patch or w % patch:
        raise ValueError(f"input size {(h, w)} must be multiples of the patch size {patch}")
    _log(f"merging LoRA adapter {adapter_dir} (check at {h}x{w})")
    images = torch.rand(2, 2, 3, h, w, generator=torch.Generator().manual_seed(7))
    peft_model = load_adapter(model, adapter_dir).eval()
    with torch.inference_mode():
        before = peft_model(images)[-1]
    merged = merge_lora(peft_model).eval()
    with torch.inference_mode():
        after = merged(images)[-1]
    diff = float((before - after).abs().max())
    passed = diff <= tolerance
    _log(f"  merged vs adapter outputs: max |diff| = {diff:.3g} ({'ok' if passed else 'FAILED'})")
    if not passed:
        raise ExportVerificationError(f"LoRA merge changed the outputs by {diff:.3g} > {tolerance:g}")
    return merged, {"name": "lora merge", "max_abs_diff": diff, "tolerance": tolerance, "passed": passed,
                    "detail": "merged model vs adapter model, pose encodings", "input_size_hw": [h, w]}


def tensorrt_step(output_dir: Path, mode: str, precision: str, cache_dir: Path,
                  input_size: tuple[int, int]) -> dict[str, Any]:
    """Build and check TensorRT engines, or report why not (``{"status": ...}``)."""
    from hpe_core.estimator.tensorrt_backend import TensorRTRelativePoseEstimator, tensorrt_availability

    if mode == "skip":
        _log("TensorRT step skipped: --tensorrt skip")
        return {"status": "skipped", "reason": "--tensorrt skip"}
    reason = tensorrt_availability()
    if reason is not None:
        _log(f"TensorRT step skipped: {reason}")
        if mode == "require":
            raise SystemExit("hpe-export: --tensorrt require, but TensorRT cannot run here")
        return {"status": "skipped", "reason": reason}
    from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator

    _log(f"building TensorRT engines ({precision}) in {cache_dir}")
    engine = TensorRTRelativePoseEstimator(output_dir, device="cuda", precision=precision,
                                           cache_dir=cache_dir, log=_log)
    reference = OnnxRuntimeRelativePoseEstimator(output_dir)
    rng = np.random.default_rng(3)
    h, w = input_size
    anchors = rng.integers(0, 256, size=(4, h, w, 3), dtype=np.uint8)
    query = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    got = engine.estimate(engine.embed_anchors(anchors), query).pose_encoding
    want = reference.estimate(reference.embed_anchors(anchors), query).pose_encoding
    diff = float(np.abs(got - want).max())
    tolerance = TENSORRT_TOLERANCE[precision]
    passed = diff <= tolerance
    _log(f"  TensorRT vs ONNX Runtime, K=4: max |diff| = {diff:.3g} ({'ok' if passed else 'FAILED'})")
    if not passed:
        raise ExportVerificationError(f"TensorRT differs from ONNX Runtime by {diff:.3g} > {tolerance:g}")
    return {"status": "built", "precision": precision,
            "engines": {name: str(path) for name, path in engine.engine_paths.items()},
            "check": {"name": "tensorrt vs onnxruntime K=4", "max_abs_diff": diff,
                      "tolerance": tolerance, "passed": passed}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``hpe-export``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        model, source, merge_checks = load_model(args)
        input_size = tuple(args.input_size) if args.input_size else None
        result = export_onnx(model, args.output, input_size=input_size, opset=args.opset,
                             dynamo=args.dynamo, tolerance=args.tolerance, log=_log)
        cache_dir = args.trt_cache_dir or (args.output / "tensorrt_engines")
        trt = tensorrt_step(args.output, args.tensorrt, args.trt_precision, cache_dir, result.input_size)
    except ExportVerificationError as exc:
        _log(f"FAILED: {exc}")
        return 1
    manifest = manifest_dict(result, model.config.to_dict(), source, merge_checks, trt)
    path = write_manifest(args.output, manifest)
    _log(f"wrote {path} ({result.seconds:.1f} s for ONNX export and checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
