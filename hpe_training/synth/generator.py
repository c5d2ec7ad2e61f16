"""Dataset generation: identities x lightings x expressions x views -> on-disk layout."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hpe_training.data.camera import project_points
from hpe_training.synth.background import load_photos
from hpe_training.synth.expression import sample_expressions
from hpe_training.synth.head import LANDMARK_NAMES, HeadModel, build_head, shader_params
from hpe_training.synth.identity import sample_identity
from hpe_training.synth.render import HeadRenderer
from hpe_training.synth.scene import (ViewSample, body_transform, head_transform, sample_lighting,
                                      sample_object_transform, sample_view)
from hpe_training.synth.writer import encode_png, view_dir, write_json, write_view

GENERATOR_VERSION = "1.0.0"

HEAD_FRAME_CONVENTION = (
    "Head frame: origin at the head centre (midway between the ears); axes parallel to the "
    "OpenCV camera optical frame when the person faces the camera squarely: x to the image "
    "right (the person's left), y down, z away from the camera, so the face/nose points "
    "along head -z. Head-to-camera rotation = identity means facing the camera (as in BIWI). "
    "Units: metres.")
CAMERA_CONVENTION = (
    "output_opencv_camera.pkl: R [3,3], t [3] world-to-camera (X_cam = R X_world + t, OpenCV "
    "optical frame x right, y down, z forward, metres), K [3,3] pixels with principal point "
    "(W/2, H/2) and pixel centres at integer coordinates. "
    "output_object_transform_post_render.pkl: R_world [3,3], t_world [3] head-to-world. "
    "Head-to-camera: R = R_w2c @ R_world, t = R_w2c @ t_world + t.")


@dataclass(frozen=True)
class SynthConfig:
    """Generation settings (counts per identity; ``identity_offset`` shifts identity indices)."""

    out: Path
    identities: int = 10
    lightings: int = 2
    expressions: int = 10
    views: int = 5
    size: int = 256
    seed: int = 0
    identity_offset: int = 0
    mesh_level: int = 5
    msaa: int = 4
    photos: bool = True
    png_compression: int = 3
    writer_threads: int = 2
    near_fraction: float = 0.0
    near_max_deg: float = 35.0

    def __post_init__(self) -> None:
        for name in ("identities", "lightings", "expressions", "views"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 16 <= self.size <= 4096:
            raise ValueError(f"size must be in [16, 4096], got {self.size}")
        if self.identity_offset < 0 or self.seed < 0:
            raise ValueError("seed and identity_offset must be >= 0")
        if not 3 <= self.mesh_level <= 7:
            raise ValueError("mesh_level must be in [3, 7]")
        if self.msaa not in (0, 1, 2, 4, 8):
            raise ValueError("msaa must be one of 0, 1, 2, 4, 8")
        if not 0.0 <= self.near_fraction <= 1.0:
            raise ValueError(f"near_fraction must be in [0, 1], got {self.near_fraction}")
        if not 0.0 < self.near_max_deg <= 180.0:
            raise ValueError(f"near_max_deg must be in (0, 180], got {self.near_max_deg}")


@dataclass
class RenderedView:
    """One rendered view and its annotations.

    Attributes:
        rgba: [S, S, 4] uint8 (alpha = head/body coverage).
        K: [3, 3]; R_w2c, t_w2c: world-to-camera; R_h2w, t_h2w: head-to-world.
        bbox: [4] face box (x0, y0, x1, y1) pixels, clipped to the image.
        landmarks: [6, 2] pixels, order LANDMARK_NAMES.
    """

    rgba: np.ndarray
    K: np.ndarray
    R_w2c: np.ndarray
    t_w2c: np.ndarray
    R_h2w: np.ndarray
    t_h2w: np.ndarray
    bbox: np.ndarray
    landmarks: np.ndarray
    view: ViewSample


def face_bbox(head: HeadModel, view: ViewSample, size: int) -> np.ndarray:
    """Face box [4] (x0, y0, x1, y1, pixels) from the projected face-region vertices."""
    pts = head.mesh.positions[head.face_vertices]
    uv = project_points(view.K, view.R_h2c, view.t_h2c, pts)
    lo = np.clip(uv.min(axis=0), 0, size)
    hi = np.clip(uv.max(axis=0), 0, size)
    return np.array([lo[0], lo[1], hi[0], hi[1]], np.float32)


def render_view(renderer: HeadRenderer, head: HeadModel, view: ViewSample, lighting, r_h2w: np.ndarray,
                t_h2w: np.ndarray, background: bool = True) -> RenderedView:
    """Render one view of the head currently uploaded to ``renderer`` and annotate it."""
    rgba = renderer.render(view.K, head_transform(view), body_transform(view), lighting,
                           view.background if background else None)
    r_w2c = view.R_h2c @ r_h2w.T
    t_w2c = view.t_h2c - r_w2c @ t_h2w
    lm = project_points(view.K, view.R_h2c, view.t_h2c, head.landmarks).astype(np.float32)
    return RenderedView(rgba=rgba, K=view.K, R_w2c=r_w2c, t_w2c=t_w2c, R_h2w=r_h2w, t_h2w=t_h2w,
                        bbox=face_bbox(head, view, renderer.size), landmarks=lm, view=view)


def dataset_meta(cfg: SynthConfig) -> dict:
    """The dataset-level ``meta.json`` content."""
    return {
        "generator": "hpe-synth",
        "version": GENERATOR_VERSION,
        "seed": cfg.seed,
        "identity_offset": cfg.identity_offset,
        "counts": {"identities": cfg.identities, "lightings": cfg.lightings,
                   "expressions": cfg.expressions, "views": cfg.views,
                   "frames": cfg.identities * cfg.lightings * cfg.expressions * cfg.views},
        "image_size": [cfg.size, cfg.size],
        "mesh_level": cfg.mesh_level,
        "msaa_samples": cfg.msaa,
        "near_views": {"fraction": cfg.near_fraction, "max_deg": cfg.near_max_deg},
        "photo_backgrounds": cfg.photos,
        "units": "metres",
        "head_frame": HEAD_FRAME_CONVENTION,
        "camera": CAMERA_CONVENTION,
        "landmark_names": list(LANDMARK_NAMES),
        "landmarks_2d": "view_XX/landmarks.npy: [6, 2] float32 pixels (u, v) in LANDMARK order",
        "landmarks_3d": "identity_XXXX/landmarks_3d.json: head-frame metres per expression",
        "face_bbox": "view_XX/face_bbox.npy: [4] float32 x0, y0, x1, y1 pixels (projected face region)",
    }


def generate(cfg: SynthConfig, progress: bool = True) -> dict:
    """Generate the dataset described by ``cfg``.

    Returns:
        Timing statistics: frames, render_s (GPU-side rendering and readback only),
        total_s (end to end including mesh building and file writing), fps values.
    """
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    photos = load_photos() if cfg.photos else ()
    renderer = HeadRenderer(cfg.size, photos, samples=cfg.msaa)
    total = cfg.identities * cfg.lightings * cfg.expressions * cfg.views
    render_s = 0.0
    t0 = time.perf_counter()
    pending = []
    with ThreadPoolExecutor(max_workers=max(1, cfg.writer_threads)) as pool, \
            tqdm(total=total, desc="hpe-synth", unit="img", disable=not progress) as bar:
        for k in range(cfg.identities):
            ident = cfg.identity_offset + k
            idp = sample_identity(cfg.seed, ident)
            exprs = sample_expressions(cfg.seed, ident, cfg.expressions)
            lm3d = {}
            for e, expr in enumerate(exprs):
                head = build_head(idp, expr, level=cfg.mesh_level)
                lm3d[f"expr_{e:02d}"] = head.landmarks.tolist()
                renderer.set_mesh(head.mesh, shader_params(idp, expr))
                for li in range(cfg.lightings):
                    light = sample_lighting(cfg.seed, ident, li)
                    r_h2w, t_h2w = sample_object_transform(cfg.seed, ident, li, e)
                    for v in range(cfg.views):
                        view = sample_view(cfg.seed, ident, li, e, v, cfg.size, len(photos),
                                           near_fraction=cfg.near_fraction, near_max_deg=cfg.near_max_deg)
                        t1 = time.perf_counter()
                        rv = render_view(renderer, head, view, light, r_h2w, t_h2w)
                        render_s += time.perf_counter() - t1
                        out_dir = view_dir(root, ident, li, e, v)
                        pending.append(pool.submit(_write, out_dir, rv, cfg.png_compression))
                        bar.update(1)
                    while len(pending) > 64:
                        pending.pop(0).result()
            write_json(root / f"identity_{ident:04d}" / "identity.json",
                       {"identity": idp.to_json(), "expressions": [x.to_json() for x in exprs]})
            write_json(root / f"identity_{ident:04d}" / "landmarks_3d.json",
                       {"frame": "head", "units": "metres", "names": list(LANDMARK_NAMES), "expressions": lm3d})
        for fut in pending:
            fut.result()
    write_json(root / "meta.json", dataset_meta(cfg))
    renderer.release()
    total_s = time.perf_counter() - t0
    return {"frames": total, "render_s": render_s, "total_s": total_s,
            "render_fps": total / max(render_s, 1e-9), "end_to_end_fps": total / max(total_s, 1e-9)}


def _write(out_dir: Path, rv: RenderedView, compression: int) -> None:
    write_view(out_dir, encode_png(np.ascontiguousarray(rv.rgba[:, :, :3]), compression), rv.K,
               rv.R_w2c, rv.t_w2c, rv.R_h2w, rv.t_h2w, rv.bbox, rv.landmarks)
