"""Per-stage latency of the per-frame pipeline (detection, crop, estimate, fuse) and memory.

Runs :class:`hpe_core.pipeline.HeadPosePipeline` (the node's pipeline, without ROS) with the
given estimator over a :mod:`.streams` stream, detection on every frame, and reports the
median and p90 of each stage's time from the pipeline's own per-frame timings (milliseconds,
wall clock), plus the process's resident memory (VmRSS now, VmHWM = peak) in MiB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hpe_training.bench.streams import Stream

STAGES = ("detect", "crop", "estimate", "fuse", "total")


def memory_mib() -> dict[str, float]:
    """``{"rss_mib", "peak_rss_mib"}`` of this process (Linux ``/proc/self/status``)."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"
                out[key] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def time_pipeline_stages(estimator, detector, stream: Stream, warmup: int = 3,
                         batch_faces: bool = True) -> dict[str, Any]:
    """Stage latencies over the stream (frames after ``warmup`` are timed); ``batch_faces``:
    a frame's faces in one ``estimate_batch`` call, else one ``estimate`` call per face."""
    from hpe_core.pipeline import HeadPosePipeline, PipelineConfig

    pipeline = HeadPosePipeline(estimator, detector, PipelineConfig(batch_faces=batch_faces))
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    heads = []
    for i, frame in enumerate(stream.frames):
        result = pipeline.process(frame, i / 30.0, stream.K)
        if i >= warmup:
            for s in STAGES:
                timings[s].append(result.timings_ms[s])
            heads.append(len(result.heads))
    stats = {s: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))}
             for s, v in timings.items() if v}
    return {"faces": stream.faces, "batched": bool(batch_faces), "frames_timed": len(heads),
            "mean_heads_estimated": float(np.mean(heads)), "stages": stats, "memory": memory_mib()}


def format_stages(rows: list[dict[str, Any]]) -> str:
    """Plain-text table: one line per (backend, faces, batched)."""
    header = (f"{'backend':<64} {'faces':>5} {'calls':>9} {'heads':>5}  "
              + "  ".join(f"{s + ' med/p90':>16}" for s in STAGES))
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = "  ".join(f"{r['stages'][s]['median_ms']:>7.1f} /{r['stages'][s]['p90_ms']:>7.1f}" for s in STAGES)
        calls = "batched" if r.get("batched", True) else "per face"
        lines.append(f"{r['backend']:<64} {r['faces']:>5} {calls:>9} {r['mean_heads_estimated']:>5.1f}  {cells}")
    lines.append("milliseconds per frame; detection on every frame; heads = mean heads estimated per frame; "
                 "calls: the frame's faces in one estimate_batch call, or one estimate call per face")
    return "\n".join(lines)


def compare_batched_faces(estimator, detector, stream: Stream, warmup: int = 3) -> dict[str, Any]:
    """The estimate stage with a frame's faces in one ``estimate_batch`` call vs one
    ``estimate`` call per face, on the same estimator and stream.

    Two pipelines (``batch_faces`` on and off) take each frame in turn, so both see the same
    machine load; their answers are the same (``tests/core/test_estimate_batch.py``).

    Returns:
        ``{"faces", "frames_timed", "per_face_ms", "batched_ms", "speedup"}``: medians of the
        estimate stage in milliseconds per frame, and per-face / batched.
    """
    from hpe_core.pipeline import HeadPosePipeline, PipelineConfig

    pipelines = {mode: HeadPosePipeline(estimator, detector, PipelineConfig(batch_faces=mode == "batched"))
                 for mode in ("per_face", "batched")}
    spent: dict[str, list[float]] = {mode: [] for mode in pipelines}
    for i, frame in enumerate(stream.frames):
        order = ("per_face", "batched") if i % 2 == 0 else ("batched", "per_face")
        for mode in order:
            result = pipelines[mode].process(frame, i / 30.0, stream.K)
            if i >= warmup:
                spent[mode].append(result.timings_ms["estimate"])
    per_face, batched = (float(np.median(spent[m])) for m in ("per_face", "batched"))
    return {"faces": stream.faces, "frames_timed": len(spent["batched"]), "per_face_ms": per_face,
            "batched_ms": batched, "speedup": per_face / batched if batched > 0 else float("nan")}


def format_batched(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`compare_batched_faces` rows."""
    header = f"{'estimator':<72} {'faces':>5} {'per face ms':>11} {'batched ms':>10} {'speed-up':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['backend']:<72} {r['faces']:>5} {r['per_face_ms']:>11.1f} {r['batched_ms']:>10.1f} "
                     f"{r['speedup']:>7.2f}x")
    lines.append("median estimate stage per frame (all faces); per face = one estimate call per face, "
                 "batched = one estimate_batch call per frame; both pipelines take each frame in turn")
    return "\n".join(lines)
