"""Throughput of the synthetic renderer: ``python -m hpe_training.synth.bench --size 224``.

Reports wall-clock frames/s and CPU milliseconds per frame (process CPU time, which
includes Mesa llvmpipe's rasterizer threads) for rendering with readback only, and for PNG
encoding. CPU time is the better number on a shared machine: wall time there depends on
what else runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from hpe_training.synth.background import load_photos
from hpe_training.synth.expression import sample_expressions
from hpe_training.synth.head import build_head, shader_params
from hpe_training.synth.identity import sample_identity
from hpe_training.synth.render import HeadRenderer
from hpe_training.synth.scene import body_transform, head_transform, sample_lighting, sample_view
from hpe_training.synth.writer import encode_png


def benchmark(size: int = 224, frames: int = 100, msaa: int = 4, mesh_level: int = 5, seed: int = 0) -> dict:
    """Render ``frames`` views (10 per mesh) and time rendering and PNG encoding separately."""
    photos = load_photos()
    renderer = HeadRenderer(size, photos, samples=msaa)
    views_per_mesh = 10
    try:
        meshes = []
        for k in range(max(1, frames // views_per_mesh)):
            idp = sample_identity(seed, k)
            expr = sample_expressions(seed, k, 2)[k % 2]
            meshes.append((build_head(idp, expr, level=mesh_level), shader_params(idp, expr), k))
        head, uniforms, k = meshes[0]
        renderer.set_mesh(head.mesh, uniforms)  # warm-up: shader JIT compilation
        v = sample_view(seed, 0, 0, 0, 0, size, len(photos))
        renderer.render(v.K, head_transform(v), body_transform(v), sample_lighting(seed, 0, 0), v.background)
        images = []
        wall = cpu = 0.0
        for head, uniforms, k in meshes:
            renderer.set_mesh(head.mesh, uniforms)
            light = sample_lighting(seed, k, 0)
            for j in range(views_per_mesh):
                view = sample_view(seed, k, 0, 0, j, size, len(photos))
                t0, c0 = time.perf_counter(), time.process_time()
                rgba = renderer.render(view.K, head_transform(view), body_transform(view), light, view.background)
                wall += time.perf_counter() - t0
                cpu += time.process_time() - c0
                images.append(np.ascontiguousarray(rgba[:, :, :3]))
        t0, c0 = time.perf_counter(), time.process_time()
        for img in images:
            encode_png(img)
        png_wall, png_cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        renderer.release()
    n = len(images)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"size": size, "msaa": msaa, "mesh_level": mesh_level, "frames": n,
            "triangles": int(len(meshes[0][0].mesh.faces)),
            "render_fps_wall": n / wall, "render_cpu_ms_per_frame": 1000 * cpu / n,
            "png_ms_per_frame_wall": 1000 * png_wall / n, "png_cpu_ms_per_frame": 1000 * png_cpu / n,
            "cpu_count": os.cpu_count(), "load_average_1min": load}


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--msaa", type=int, default=4)
    p.add_argument("--mesh-level", type=int, default=5)
    args = p.parse_args(argv)
    stats = benchmark(args.size, args.frames, args.msaa, args.mesh_level)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
