"""``hpe-video INPUT``: run the head pose pipeline on a video file or an image folder.

An image folder is taken as a set of photos of the same scene or person (``--sequence``: as the
frames of a video): the detector runs on every image and a face is estimated from the first image
it appears in; a lone face keeps one track (and its anchors) when it moves between photos.

Writes ``poses.csv`` and ``poses.json`` (one row per head per frame: track, position in metres,
quaternion x,y,z,w and BIWI yaw/pitch/roll in degrees in the camera optical frame, confidence,
expected orientation error in degrees (empty in the CSV, null in the JSON, when unknown),
anchors, gap) and, with ``--annotate``, ``annotated.mp4`` with boxes and head axes.

Anchors: ``--calibrate-first`` takes the (largest) face of the first frame in which a face is
tracked as the calibrated anchor
at ``--anchor-ypr`` (yaw, pitch, roll in degrees relative to facing the camera; default 0 0 0);
otherwise each person is bootstrapped as the node does (first sight taken as facing the camera).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.rotations import quat_xyzw_from_matrix
from hpe_core.pipeline import FrameResult, HeadPosePipeline, PipelineConfig, frontal_pose_from_box
from hpe_core.pipeline_factory import DEFAULT_FACEMESH_WORKERS, ESTIMATORS, PipelineSettings, build_pipeline
from hpe_core.tracking.tracker import TrackerConfig
from hpe_core.visualization import DebugFace, draw_debug_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CSV_FIELDS = ["frame", "stamp_s", "track_id", "x_m", "y_m", "z_m", "qx", "qy", "qz", "qw",
              "yaw_deg", "pitch_deg", "roll_deg", "confidence", "expected_error_deg", "anchor_gap_deg",
              "facing_camera", "anchor_ids", "source"]


def read_frames(source: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """``(stamp_s, rgb uint8 [H, W, 3])`` from a video file or a folder of images (sorted by
    name, stamped at ``fps``)."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
        for i, path in enumerate(files):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot read image {path}")
            yield i / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {source}")
    video_fps = capture.get(cv2.CAP_PROP_FPS) or fps
    i = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield i / video_fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        capture.release()


def photo_tracker() -> TrackerConfig:
    """Tracker settings for a folder of photos: a face is confirmed on the first image it is
    detected in (``min_hits`` 1: no video to confirm it over), and a lone face that moves
    between photos keeps its track (``reassociate_lone_face``), so it keeps its anchors."""
    return TrackerConfig(min_hits=1, reassociate_lone_face=True)


def _known(value: float) -> Optional[float]:
    """``value`` when finite, else ``None`` (an empty CSV cell, JSON ``null``: "unknown")."""
    return float(value) if math.isfinite(value) else None


def head_rows(frame_index: int, stamp_s: float, result: FrameResult) -> list[dict]:
    """One row (``CSV_FIELDS``) per head with a pose: metres, degrees, camera optical frame."""
    rows = []
    for head in result.heads:
        if head.pose_cam is None:
            continue
        q = quat_xyzw_from_matrix(head.pose_cam[:3, :3])
        t = head.pose_cam[:3, 3]
        yaw, pitch, roll = head.yaw_pitch_roll_deg
        rows.append({
            "frame": frame_index, "stamp_s": round(stamp_s, 6), "track_id": head.track_id,
            "x_m": t[0], "y_m": t[1], "z_m": t[2], "qx": q[0], "qy": q[1], "qz": q[2], "qw": q[3],
            "yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll, "confidence": head.confidence,
            "expected_error_deg": _known(head.expected_error_deg),
            "anchor_gap_deg": head.nearest_gap_deg, "facing_camera": head.facing_camera,
            "anchor_ids": " ".join(head.anchor_ids), "source": head.source,
        })
    return rows


def run(pipeline: HeadPosePipeline, source: Path, out_dir: Path, fps: float = 30.0,
        annotate: bool = False, calibrate_first: bool = False,
        anchor_ypr_deg: tuple[float, float, float] = (0.0, 0.0, 0.0), max_frames: Optional[int] = None,
        progress: bool = True) -> list[dict]:
    """Process ``source`` and write the outputs into ``out_dir``; returns the rows."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    writer = None
    calibrated = False
    frames = read_frames(source, fps)
    bar = tqdm(frames, desc="hpe-video", unit="frame", disable=not progress)
    try:
        for index, (stamp, rgb) in enumerate(bar):
            if max_frames is not None and index >= max_frames:
                break
            result = pipeline.process(rgb, stamp)
            if calibrate_first and not calibrated and result.heads:
                calibrated = True
                head = max(result.heads, key=lambda h: (h.box_xyxy[2] - h.box_xyxy[0]) * (h.box_xyxy[3] - h.box_xyxy[1]))
                R = matrix_from_yaw_pitch_roll_deg(*anchor_ypr_deg)
                pipeline.capture_anchor(head.track_id, frontal_pose_from_box(head.box_xyxy, result.intrinsics, R))
                result = pipeline.process(rgb, stamp)
            rows += head_rows(index, stamp, result)
            if annotate:
                faces = [DebugFace(h.box_xyxy, h.track_id, h.pose_cam) for h in result.heads]
                image = draw_debug_image(rgb, result.intrinsics, faces)
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(str(out_dir / "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    if calibrate_first and not calibrated:
        raise RuntimeError("--calibrate-first: no face was found in the input")
    write_rows(rows, out_dir)
    return rows


def write_rows(rows: list[dict], out_dir: Path) -> None:
    """``poses.csv`` (columns ``CSV_FIELDS``) and ``poses.json`` (a list of the rows) in
    ``out_dir``; an unknown value (``None``) is an empty cell in the CSV and ``null`` in the JSON."""
    with open(out_dir / "poses.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    (out_dir / "poses.json").write_text(json.dumps(rows, indent=1, default=float))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hpe-video", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="video file or folder of images")
    parser.add_argument("--output-dir", "-o", type=Path, default=Path("hpe_video_out"))
    parser.add_argument("--estimator", default="facemesh", choices=sorted(ESTIMATORS),
                        help="head-pose estimator (default facemesh: the better on real faces; vggt: our VGGT "
                             "model on --backend; fused: the two on every face, fused by their error models)")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                        help="VGGT's backend")
    parser.add_argument("--model-path", default="", help="model directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--facemesh-workers", type=int, default=DEFAULT_FACEMESH_WORKERS,
                        help="face-mesh runtimes a frame's faces are shared across (CPU cores)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of an image folder")
    parser.add_argument("--hfov", type=float, default=60.0, help="horizontal field of view, degrees")
    parser.add_argument("--detect-every", type=int, default=1, help="run the face detector every N frames")
    parser.add_argument("--annotate", action="store_true", help="also write annotated.mp4")
    parser.add_argument("--calibrate-first", action="store_true", help="first frame's face = calibrated anchor")
    parser.add_argument("--anchor-ypr", type=float, nargs=3, default=(0.0, 0.0, 0.0),
                        metavar=("YAW", "PITCH", "ROLL"), help="pose of that anchor relative to facing the camera, degrees")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--sequence", action="store_true",
                        help="treat an image folder as the frames of a video (default: a folder is a set of photos)")
    args = parser.parse_args(argv)
    photos = args.input.is_dir() and not args.sequence
    settings = PipelineSettings(
        estimator=args.estimator, backend=args.backend, model_path=args.model_path, device=args.device,
        detection_every_n_frames=1 if photos else args.detect_every, facemesh_workers=args.facemesh_workers,
        pipeline=PipelineConfig(default_hfov_deg=args.hfov, bootstrap="none" if args.calibrate_first else "absolute",
                                tracker=photo_tracker() if photos else TrackerConfig()),
    )
    try:
        pipeline = build_pipeline(settings)
        rows = run(pipeline, args.input, args.output_dir, args.fps, args.annotate, args.calibrate_first,
                   tuple(args.anchor_ypr), args.max_frames)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"hpe-video: {exc}", file=sys.stderr)
        return 1
    print(f"hpe-video: {len(rows)} head poses written to {args.output_dir}/poses.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
