"""``hpe-bench``: latency of the relative pose estimator per backend and number of anchors.

CPU mode (default): a preset model (``small`` by default, random weights) on torch eager,
optionally torch.compile (``--compile``), and ONNX Runtime (the model is exported to a
temporary directory first). For K = 1, 2, 4, 8 anchors it times

* ``cached``: ``estimate(anchor_features, query)``, anchors embedded once beforehand;
* ``uncached``: ``estimate_from_crops(anchor_crops, query)``, anchors embedded every call;

reports median and p90 over ``--runs`` calls after ``--warmup`` calls, the saving from caching,
and each backend's ratio to torch eager, and names the machine. Then, per backend, the
per-frame pipeline's stages (detection, crop, estimate, fuse; :mod:`.pipeline_stages`) on
rendered 640x480 frames with one and with three faces (``--pipeline-frames``, 0 skips), the
same for the shipped face-mesh estimator (one and two workers), the estimate stage with a
frame's faces in one ``estimate_batch`` call against one call per face
(``--batched-frames``, :func:`~hpe_training.bench.pipeline_stages.compare_batched_faces`), and
the process memory (resident and peak) after each backend. With ``--node-seconds S``, finally the
node end to end (its own process, default backend) under a 640x480 30 Hz stream with one and
with three faces for S seconds each (:mod:`.soak`): output rate, latency percentiles, drops and
the node's memory.

GPU mode (``--gpu``): the ``vggt-1b`` preset at 518x518 on CUDA in fp16 and bf16 (autocast),
eager, torch.compile and torch.compile with CUDA graphs (``reduce-overhead``), plus TensorRT
fp16 engines where TensorRT is installed; each row also gives the achieved TFLOP/s of the
cached estimate and its fraction of the GPU's dense peak (:mod:`.flops`). It runs only where
torch sees a CUDA GPU, and says so (exit status 2) otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from hpe_core.estimator.interface import RelativePoseEstimator
from hpe_training.bench.flops import cached_estimate_flops, fraction_of_peak, peak_tflops
from hpe_training.bench.machine import describe_machine, machine_info
from hpe_training.bench.pipeline_stages import (compare_batched_faces, format_batched, format_stages, memory_mib,
                                                time_pipeline_stages)
from hpe_training.bench.timing import measure_latency

DEFAULT_ANCHOR_COUNTS = (1, 2, 4, 8)
EXIT_NO_CUDA = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpe-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default=None,
                        help="model preset (default: small on the CPU, vggt-1b with --gpu); random weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--anchors", type=int, nargs="+", default=list(DEFAULT_ANCHOR_COUNTS),
                        help="anchor counts K to time (default 1 2 4 8)")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--no-onnxruntime", action="store_true", help="skip the ONNX Runtime backend")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch and ONNX Runtime (0: leave the defaults)")
    parser.add_argument("--pipeline-frames", type=int, default=20,
                        help="frames of the 1- and 3-face pipeline-stage runs per backend (0: skip)")
    parser.add_argument("--batched-frames", type=int, default=40,
                        help="frames of the faces-batched comparison per estimator and stream (0: skip)")
    parser.add_argument("--node-seconds", type=float, default=0.0,
                        help="also run the node end to end on 1- and 3-face 30 Hz streams this long (0: skip)")
    parser.add_argument("--node-estimator", default="",
                        help="node parameter estimator for the end-to-end runs (facemesh, vggt, fused; empty: the node's default)")
    parser.add_argument("--node-faces", nargs="+", choices=("1", "3"), default=["1", "3"],
                        help="streams of the end-to-end runs (default: 1 and 3 faces)")
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="further node parameters of the end-to-end runs (repeatable)")
    parser.add_argument("--gpu", action="store_true", help="GPU mode: vggt-1b, 518x518, fp16/bf16 on CUDA")
    parser.add_argument("--gpu-peak-tflops", type=float, default=None,
                        help="dense bf16/fp16 peak of the GPU, TFLOP/s (default: from the built-in table)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


def random_crops(count: int, input_size: tuple[int, int], seed: int) -> np.ndarray:
    """``count`` random uint8 RGB crops ``[count, H, W, 3]`` (latency does not depend on content)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, input_size[0], input_size[1], 3), dtype=np.uint8)


def time_estimator(estimator: RelativePoseEstimator, anchors: np.ndarray, query: np.ndarray,
                   anchor_counts: Sequence[int], runs: int, warmup: int,
                   progress: Optional[tqdm] = None) -> list[dict[str, Any]]:
    """Cached and uncached latency of one estimator for each K (one row per K)."""
    rows = []
    for k in anchor_counts:
        features = estimator.embed_anchors(anchors[:k])
        cached = measure_latency(lambda: estimator.estimate(features, query), runs, warmup)
        uncached = measure_latency(lambda: estimator.estimate_from_crops(anchors[:k], query), runs, warmup)
        rows.append({"backend": estimator.describe(), "K": k, "cached": cached.as_dict(),
                     "uncached": uncached.as_dict(),
                     "cache_saving": 1.0 - cached.median_ms / uncached.median_ms})
        if progress is not None:
            progress.update(1)
    return rows


def add_ratios(rows: list[dict[str, Any]], reference: str) -> None:
    """Add ``ratio_to_reference`` (median cached latency / the reference backend's, same K)."""
    ref = {row["K"]: row["cached"]["median_ms"] for row in rows if row["backend"] == reference}
    for row in rows:
        if row["K"] in ref:
            row["ratio_to_reference"] = row["cached"]["median_ms"] / ref[row["K"]]


def add_gpu_throughput(rows: list[dict[str, Any]], config, input_size: tuple[int, int],
                       peak: Optional[float]) -> None:
    """Add ``flops``, ``achieved_tflops`` and ``fraction_of_peak`` (cached estimate) to each row."""
    flops = {k: cached_estimate_flops(config, k, input_size) for k in sorted({r["K"] for r in rows})}
    for row in rows:
        row["flops"] = flops[row["K"]]
        row.update(fraction_of_peak(flops[row["K"]], row["cached"]["median_ms"], peak))


def format_table(rows: list[dict[str, Any]], reference: str) -> str:
    """Plain-text table of the rows."""
    header = (f"{'backend':<56} {'K':>2}  {'cached med/p90 ms':>18}  {'uncached med/p90 ms':>20}  "
              f"{'cache saving':>12}  {'x ' + 'ref':>6}")
    lines = [header, "-" * len(header)]
    for row in rows:
        c, u = row["cached"], row["uncached"]
        ratio = row.get("ratio_to_reference")
        ratio_text = f"{ratio:>6.2f}" if ratio is not None else f"{'-':>6}"
        lines.append(f"{row['backend']:<56} {row['K']:>2}  {c['median_ms']:>8.1f} /{c['p90_ms']:>8.1f}  "
                     f"{u['median_ms']:>9.1f} /{u['p90_ms']:>9.1f}  {100 * row['cache_saving']:>11.0f}%  "
                     f"{ratio_text}")
    for row in rows:
        if "achieved_tflops" in row:
            frac = row["fraction_of_peak"]
            lines.append(f"{row['backend']:<56} K={row['K']}: {row['flops'] / 1e12:.2f} TFLOP per cached estimate, "
                         f"{row['achieved_tflops']:.1f} TFLOP/s" + (f" = {100 * frac:.1f} % of peak" if frac else ""))
    lines.append(f"x ref = cached median / cached median of: {reference}")
    return "\n".join(lines)


def _cpu_estimators(args: argparse.Namespace, model: torch.nn.Module, workdir: Path
                    ) -> list[Callable[[], RelativePoseEstimator]]:
    from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator

    makers: list[Callable[[], RelativePoseEstimator]] = [
        lambda: TorchRelativePoseEstimator(model, device="cpu")]
    if args.compile:
        makers.append(lambda: TorchRelativePoseEstimator(model, device="cpu", compile=True))
    if not args.no_onnxruntime:
        def make_ort() -> RelativePoseEstimator:
            from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator
            from hpe_training.export.onnx_export import export_onnx

            export_onnx(model, workdir / "onnx", log=lambda msg: tqdm.write(f"[export] {msg}"))
            return OnnxRuntimeRelativePoseEstimator(workdir / "onnx", intra_op_threads=args.threads)
        makers.append(make_ort)
    return makers


def _facemesh_estimators() -> list[Callable[[], Any]]:
    """The shipped face-mesh estimator (the node's default) with one and with two workers, where
    ai-edge-litert is installed (pipeline stages and the faces-batched comparison only)."""
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        print("[hpe-bench] facemesh not timed: ai-edge-litert is not installed", flush=True)
        return []
    from hpe_core.facemesh.estimator import FaceMeshEstimator

    return [lambda w=workers: FaceMeshEstimator(workers=w) for workers in (1, 2)]


def _gpu_estimators(args: argparse.Namespace, model: torch.nn.Module, workdir: Path
                    ) -> list[Callable[[], RelativePoseEstimator]]:
    from hpe_core.estimator.tensorrt_backend import tensorrt_availability
    from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator

    makers: list[Callable[[], RelativePoseEstimator]] = []
    for precision in ("fp16", "bf16"):
        for compiled, mode in ((False, "default"), (True, "default"), (True, "reduce-overhead")):
            makers.append(lambda p=precision, c=compiled, m=mode: TorchRelativePoseEstimator(
                model, device="cuda", precision=p, compile=c, compile_mode=m))
    reason = tensorrt_availability()
    if reason is not None:
        print(f"[hpe-bench] TensorRT not timed: {reason}", flush=True)
        return makers

    def make_tensorrt() -> RelativePoseEstimator:
        import copy

        from hpe_core.estimator.tensorrt_backend import TensorRTRelativePoseEstimator
        from hpe_training.export.onnx_export import export_onnx

        # export a CPU fp32 copy: export_onnx moves the model it is given to the CPU
        export_onnx(copy.deepcopy(model).cpu(), workdir / "onnx", log=lambda msg: tqdm.write(f"[export] {msg}"))
        return TensorRTRelativePoseEstimator(workdir / "onnx", device="cuda", precision="fp16",
                                             cache_dir=workdir / "engines", log=tqdm.write)
    makers.append(make_tensorrt)
    return makers


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by parsed ``args``; returns the results dict."""
    threads_before = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads_before)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from hpe_core.vggt.config import get_preset
    from hpe_core.vggt.model import VGGTCamera

    preset = args.preset or ("vggt-1b" if args.gpu else "small")
    config = get_preset(preset)
    torch.manual_seed(args.seed)
    device = "cuda" if args.gpu else "cpu"
    print(f"[hpe-bench] building preset {preset!r} with random weights on {device}", flush=True)
    with torch.device(device):
        model = VGGTCamera(config).eval()
    input_size = (config.default_input_size, config.default_input_size)
    info = machine_info()
    anchors = random_crops(max(args.anchors), input_size, args.seed)
    query = random_crops(1, input_size, args.seed + 1)[0]
    rows: list[dict[str, Any]] = []
    stage_rows: list[dict[str, Any]] = []
    batched_rows: list[dict[str, Any]] = []
    reference = ""
    streams, detector = [], None
    if args.pipeline_frames > 0 or args.batched_frames > 0:
        from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector
        from hpe_training.bench.streams import face_stream

        print("[hpe-bench] rendering the 1- and 3-face 640x480 streams", flush=True)
        frames = max(args.pipeline_frames, args.batched_frames)
        streams = [face_stream(n, frames) for n in (1, 3)]
        detector = MtcnnFaceDetector(MtcnnConfig(device=device, min_face_size=40, thresholds=(0.6, 0.7, 0.9)))
    with tempfile.TemporaryDirectory(prefix="hpe-bench-") as tmp:
        makers = (_gpu_estimators if args.gpu else _cpu_estimators)(args, model, Path(tmp))
        mesh_makers = [] if args.gpu else _facemesh_estimators()
        stage_streams = [s.head(args.pipeline_frames) for s in streams] if args.pipeline_frames > 0 else []
        batch_streams = [s.head(args.batched_frames) for s in streams] if args.batched_frames > 0 else []
        total = (len(makers) * (len(args.anchors) + len(stage_streams) + len(batch_streams))
                 + len(mesh_makers) * (len(stage_streams) + len(batch_streams)))
        with tqdm(total=total, desc="hpe-bench", unit="setting") as progress:
            for make in makers + mesh_makers:
                estimator = make()
                relative = isinstance(estimator, RelativePoseEstimator)
                if relative:
                    reference = reference or estimator.describe()
                progress.set_postfix_str(estimator.describe())
                if relative:
                    rows.extend(time_estimator(estimator, anchors, query, args.anchors, args.runs, args.warmup,
                                               progress))
                    rows[-1]["memory_after"] = memory_mib()
                for stream in stage_streams:
                    stage_rows.append({"backend": estimator.describe(),
                                       **time_pipeline_stages(estimator, detector, stream)})
                    progress.update(1)
                for stream in batch_streams:
                    batched_rows.append({"backend": estimator.describe(),
                                         **compare_batched_faces(estimator, detector, stream)})
                    progress.update(1)
    add_ratios(rows, reference)
    if args.gpu:
        add_gpu_throughput(rows, config, input_size, args.gpu_peak_tflops or peak_tflops(info.get("cuda_device")))
    return {"mode": "gpu" if args.gpu else "cpu", "preset": preset, "input_size_hw": list(input_size),
            "parameters": sum(p.numel() for p in model.parameters()),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": info,
            "reference_backend": reference, "results": rows, "pipeline_stages": stage_rows,
            "faces_batched": batched_rows,
            "memory_end": memory_mib()}


def run_node_streams(seconds: float, estimator: str = "", faces_list: Sequence[str] = ("1", "3"),
                     params: Sequence[str] = ()) -> list[dict[str, Any]]:
    """:mod:`.soak` summaries of the node on the 1- and 3-face streams, ``seconds`` each, with
    node parameter ``estimator`` (empty: the node's default) and further ``NAME:=VALUE`` params."""
    from hpe_training.bench import soak

    extra = [f"estimator:={estimator}"] if estimator else []
    extra += list(params)
    out = []
    with tempfile.TemporaryDirectory(prefix="hpe-bench-node-") as tmp:
        for faces in faces_list:
            path = Path(tmp) / f"soak_{faces}.json"
            argv = ["--minutes", str(seconds / 60.0), "--faces", faces, "--progress-s", "30", "--json", str(path)]
            for p in extra:
                argv += ["-p", p]
            if soak.main(argv) != 0:
                raise RuntimeError(f"the node run with {faces} face(s) failed")
            summary = json.loads(path.read_text())
            summary.pop("rss_series", None)
            summary["estimator"] = estimator or "default"
            summary["params"] = extra
            out.append(summary)
    return out


def format_node(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of the node end-to-end rows."""
    header = f"{'estimator':>9} {'faces':>5} {'in Hz':>6} {'out Hz':>6} {'dropped':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'RSS MB':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.get('estimator', 'default'):>9} {r['faces']:>5} {r['input_rate_hz']:>6.1f} {r['output_rate_hz']:>6.1f} {r['dropped']:>8} "
                     f"{r.get('latency_p50_ms', float('nan')):>7.0f} {r.get('latency_p90_ms', float('nan')):>7.0f} "
                     f"{r.get('latency_p99_ms', float('nan')):>7.0f} {r.get('rss_max_mb', float('nan')):>7.0f}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``hpe-bench``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        print("[hpe-bench] --gpu: torch sees no CUDA GPU on this machine, so the GPU benchmark "
              "(vggt-1b, 518x518, fp16/bf16, eager vs compiled) was not run.", file=sys.stderr)
        return EXIT_NO_CUDA
    results = run(args)
    results["node_end_to_end"] = (run_node_streams(args.node_seconds, args.node_estimator, args.node_faces, args.node_param)
                                  if args.node_seconds > 0 else [])
    print(f"\nmachine: {describe_machine(results['machine'])}")
    print(f"model: preset {results['preset']} ({results['parameters'] / 1e6:.1f} M parameters, random weights), "
          f"input {results['input_size_hw'][0]}x{results['input_size_hw'][1]}, "
          f"{args.runs} timed runs after {args.warmup} warm-up, {results['date_utc']}\n")
    print(format_table(results["results"], results["reference_backend"]))
    if results["pipeline_stages"]:
        print("\npipeline stages (640x480 stream, random weights of the same preset):")
        print(format_stages(results["pipeline_stages"]))
    if results["faces_batched"]:
        print("\nfaces batched (estimate stage, the same 640x480 streams):")
        print(format_batched(results["faces_batched"]))
    if results["node_end_to_end"]:
        print("\nnode end to end (640x480 at 30 Hz; latency = image publish to /head_pose):")
        print(format_node(results["node_end_to_end"]))
    mem = results["memory_end"]
    if mem:
        print(f"\nprocess memory: resident {mem.get('rss_mib', 0):.0f} MiB, peak {mem.get('peak_rss_mib', 0):.0f} MiB")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"\n[hpe-bench] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
