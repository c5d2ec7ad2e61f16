"""Multi-face tracking: stable ids, constant-velocity prediction between detections."""

from hpe_core.tracking.boxes import cxcywh_from_xyxy, iou_matrix, xyxy_from_cxcywh
from hpe_core.tracking.tracker import FaceTracker, TrackedFace, TrackerConfig

__all__ = [
    "FaceTracker",
    "TrackedFace",
    "TrackerConfig",
    "cxcywh_from_xyxy",
    "iou_matrix",
    "xyxy_from_cxcywh",
]
