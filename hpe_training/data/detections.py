"""MTCNN run on every view of a dataset, as at run time, for training on the run-time crops.

The node cuts its face crops from MTCNN's box and five landmarks, not from a render's exact box.
Training on landmark-aligned crops (:mod:`hpe_core.aligned_crop`) must see the same detector
noise, so this module runs the node's detector (MTCNN, facenet-pytorch's weights) once over a
dataset and stores its answer beside each view. Its stage thresholds default to 0.5 (the node's last
stage uses 0.9): our renders score lower than real faces, and what training needs from the
detector is its box convention and landmark noise, on as many views as it can give them.

``<view dir>/mtcnn_face.npy``: ``float32 [15]`` = box ``x0, y0, x1, y1`` (pixels), the five
landmarks ``u, v`` in MTCNN order (left eye, right eye, nose, left and right mouth corner;
"left" = image left), the score; all NaN when MTCNN found no face overlapping the view's face
box (IoU >= :data:`MIN_IOU`): a profile view the node would not see either.

    python -m hpe_training.data.detections --root .hpe/data/train

Files are written atomically (temporary file, then rename); views that already have one are
skipped unless ``--overwrite``, so an interrupted run continues where it stopped.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hpe_training.data.layout import LayoutReader, Sample

DETECTION_NAME = "mtcnn_face.npy"
#: Smallest overlap between MTCNN's box and the view's face box for the detection to count.
MIN_IOU = 0.3
#: MTCNN stage thresholds and smallest face (pixels) of the offline pass (module docstring).
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_FACE_PX = 20


@dataclass(frozen=True)
class FaceDetection:
    """MTCNN's answer for one view: ``box_xyxy [4]`` and ``landmarks5 [5, 2]`` pixels, ``score``."""

    box_xyxy: np.ndarray
    landmarks5: np.ndarray
    score: float


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[4]`` ``x0, y0, x1, y1`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def encode(detection: Optional[FaceDetection]) -> np.ndarray:
    """``float32 [15]`` record of a detection (all NaN for ``None``)."""
    if detection is None:
        return np.full(15, np.nan, np.float32)
    return np.concatenate([np.asarray(detection.box_xyxy, np.float64).reshape(4),
                           np.asarray(detection.landmarks5, np.float64).reshape(10),
                           [float(detection.score)]]).astype(np.float32)


def decode(record: np.ndarray) -> Optional[FaceDetection]:
    """The detection of a ``[15]`` record, or ``None`` when it is a miss or malformed."""
    r = np.asarray(record, np.float64).reshape(-1)
    if r.shape != (15,) or not np.all(np.isfinite(r)) or r[2] <= r[0] or r[3] <= r[1]:
        return None
    return FaceDetection(r[:4].copy(), r[4:14].reshape(5, 2).copy(), float(r[14]))


def load_detection(sample: Sample) -> Optional[FaceDetection]:
    """The stored detection of a view; ``None`` when missed or never detected."""
    path = sample.directory / DETECTION_NAME
    if not path.is_file():
        return None
    return decode(np.load(path, allow_pickle=False))


def has_detection_file(sample: Sample) -> bool:
    """Whether the detector has been run on this view (hit or miss)."""
    return (sample.directory / DETECTION_NAME).is_file()


def best_match(detections, face_box: Optional[np.ndarray]) -> Optional[FaceDetection]:
    """The detection overlapping ``face_box`` most (IoU >= :data:`MIN_IOU`); the top-scoring one
    when the view has no face box."""
    best, best_iou = None, MIN_IOU
    for d in detections:
        if d.landmarks5 is None:
            continue
        iou = box_iou(np.asarray(d.box_xyxy), face_box) if face_box is not None else 1.0
        if iou >= best_iou:
            best, best_iou = d, iou
            if face_box is None:
                break
    if best is None:
        return None
    return FaceDetection(np.asarray(best.box_xyxy, np.float64), np.asarray(best.landmarks5, np.float64), float(best.score))


def write_record(path: Path, record: np.ndarray) -> None:
    """Write ``record`` to ``path`` atomically."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, record, allow_pickle=False)
    os.replace(tmp, path)


@dataclass(frozen=True)
class DetectionSummary:
    """How a dataset run went: views detected now, skipped (already done), faces found, missed."""

    detected: int
    skipped: int
    found: int
    missed: int


def build_offline_detector(threshold: float = DEFAULT_THRESHOLD, min_face_px: int = DEFAULT_MIN_FACE_PX):
    """MTCNN on the CPU with all three stage thresholds at ``threshold``."""
    from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector

    return MtcnnFaceDetector(MtcnnConfig(min_face_size=min_face_px, thresholds=(threshold,) * 3))


def detect_dataset(root: Path, detector=None, overwrite: bool = False, progress: bool = True) -> DetectionSummary:
    """Run MTCNN (``detector``, default :func:`build_offline_detector`) on every view under
    ``root`` and store :data:`DETECTION_NAME` beside each."""
    reader = LayoutReader(root)
    if detector is None:
        detector = build_offline_detector()
    samples = reader.samples
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(samples), desc="mtcnn", unit="view")
    detected = skipped = found = missed = 0
    for sample in samples:
        path = sample.directory / DETECTION_NAME
        if path.is_file() and not overwrite:
            skipped += 1
        else:
            ann = reader.load_annotation(sample)
            face_box = None if ann.bbox is None else np.asarray(ann.bbox, np.float64)
            match = best_match(detector.detect(reader.load_image(sample)), face_box)
            write_record(path, encode(match))
            detected += 1
            found += match is not None
            missed += match is None
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return DetectionSummary(detected, skipped, found, missed)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Run the node's MTCNN on every view of a dataset "
                                            "(for training on landmark-aligned crops)")
    p.add_argument("--root", type=Path, required=True, help="dataset root in the VGGT-HPE layout")
    p.add_argument("--overwrite", action="store_true", help="detect again where a result exists")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="MTCNN stage thresholds, in (0, 1)")
    p.add_argument("--min-face", type=int, default=DEFAULT_MIN_FACE_PX, help="smallest face searched for, pixels")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        detector = build_offline_detector(args.threshold, args.min_face)
        s = detect_dataset(args.root, detector, overwrite=args.overwrite, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"detections: {exc}", file=sys.stderr)
        return 2
    print(f"detections: {s.detected} views detected ({s.found} faces found, {s.missed} missed), "
          f"{s.skipped} already done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
