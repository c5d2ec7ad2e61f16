"""Face detection: the detector interface, MTCNN, and rate-limited detection with tracking.

``MtcnnFaceDetector`` (which loads torch and facenet-pytorch) is imported lazily, so the
interface and the scheduler can be used without torch.
"""

from typing import Any

from hpe_core.detection.scheduler import (
    DetectionScheduleConfig,
    DetectionScheduler,
    ScheduledFrame,
)
from hpe_core.detection.types import Detection, FaceDetector

__all__ = [
    "Detection",
    "DetectionScheduleConfig",
    "DetectionScheduler",
    "FaceDetector",
    "MtcnnConfig",
    "MtcnnFaceDetector",
    "ScheduledFrame",
]


def __getattr__(name: str) -> Any:
    if name in ("MtcnnConfig", "MtcnnFaceDetector"):
        from hpe_core.detection import mtcnn

        return getattr(mtcnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
