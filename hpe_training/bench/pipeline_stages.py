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


def time_pipeline_stages(estimator, detector, stream: Stream, warmup: int = 3) -> dict[str, Any]:
    """Stage latencies over the stream (frames after ``warmup`` are timed)."""
    from hpe_core.pipeline import HeadPosePipeline, PipelineConfig

    pipeline = HeadPosePipeline(estimator, detector, PipelineConfig())
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
    return {"faces": stream.faces, "frames_timed": len(heads), "mean_heads_estimated": float(np.mean(heads)),
            "stages": stats, "memory": memory_mib()}


def format_stages(rows: list[dict[str, Any]]) -> str:
    """Plain-text table: one line per (backend, faces)."""
    header = f"{'backend':<56} {'faces':>5} {'heads':>5}  " + "  ".join(f"{s + ' med/p90':>16}" for s in STAGES)
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = "  ".join(f"{r['stages'][s]['median_ms']:>7.1f} /{r['stages'][s]['p90_ms']:>7.1f}" for s in STAGES)
        lines.append(f"{r['backend']:<56} {r['faces']:>5} {r['mean_heads_estimated']:>5.1f}  {cells}")
    lines.append("milliseconds per frame; detection on every frame; heads = mean heads estimated per frame")
    return "\n".join(lines)
