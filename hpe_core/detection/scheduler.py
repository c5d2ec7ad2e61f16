"""Run the face detector at a configurable rate and give every frame its face boxes.

The detector (MTCNN: about 0.1-0.3 s per 640x480 frame on a CPU) is far slower than a camera.
:class:`DetectionScheduler` runs it only on some frames, chosen by a frame count
(``every_n_frames``) and/or a rate cap (``max_rate_hz``). On detection frames the detections
update the :class:`~hpe_core.tracking.FaceTracker`; on all other frames the tracker's
constant-velocity prediction gives each confirmed track its box, so every frame gets a crop.
The prediction is a few numpy operations per track (microseconds): it evaluates
``box(t_last) + velocity * (t - t_last)`` and does not touch the image. Its error grows with
the time since the last detection and with acceleration, which is why the gap is configurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numpy.typing import NDArray

from hpe_core.detection.types import FaceDetector
from hpe_core.tracking.tracker import FaceTracker, TrackedFace

# Fraction of the rate-cap period forgiven, so that stamp jitter (a frame arriving a little
# early) does not push the next detection a whole frame later.
_RATE_SLACK = 0.05


@dataclass(frozen=True)
class DetectionScheduleConfig:
    """When to run the detector.

    Attributes:
        every_n_frames: run on the first frame and then at most every N-th frame (>= 1).
        max_rate_hz: if set, also at most this many detections per second of stamp time
            (> 0); a frame qualifies when at least ``(1 - 5 %) / max_rate_hz`` seconds passed
            since the last detection.
    """

    every_n_frames: int = 1
    max_rate_hz: Optional[float] = None

    def __post_init__(self) -> None:
        if self.every_n_frames < 1:
            raise ValueError(f"every_n_frames must be >= 1, got {self.every_n_frames}")
        if self.max_rate_hz is not None and not self.max_rate_hz > 0.0:
            raise ValueError(f"max_rate_hz must be > 0 when set, got {self.max_rate_hz}")


@dataclass(frozen=True)
class ScheduledFrame:
    """Result for one frame.

    Attributes:
        faces: confirmed tracks with their box at this frame's stamp.
        detector_ran: whether the detector ran on this frame.
    """

    faces: list[TrackedFace]
    detector_ran: bool


class DetectionScheduler:
    """Detector + tracker at a reduced detection rate (see module docstring)."""

    def __init__(
        self,
        detector: FaceDetector,
        tracker: Optional[FaceTracker] = None,
        config: Optional[DetectionScheduleConfig] = None,
    ) -> None:
        self.detector = detector
        self.tracker = tracker if tracker is not None else FaceTracker()
        self.config = config if config is not None else DetectionScheduleConfig()
        self._frames_since_detection: Optional[int] = None
        self._last_detection_stamp_s: Optional[float] = None
        self.frames_seen = 0
        self.detector_runs = 0

    def should_detect(self, stamp_s: float) -> bool:
        """Whether the frame at ``stamp_s`` (seconds) is a detection frame."""
        if self._frames_since_detection is None or self._last_detection_stamp_s is None:
            return True
        if self._frames_since_detection + 1 < self.config.every_n_frames:
            return False
        if self.config.max_rate_hz is not None:
            period = 1.0 / self.config.max_rate_hz
            if stamp_s - self._last_detection_stamp_s < period * (1.0 - _RATE_SLACK):
                return False
        return True

    def process(self, image_rgb: NDArray[np.uint8], stamp_s: float) -> ScheduledFrame:
        """Handle one camera frame.

        Args:
            image_rgb: ``[H, W, 3]`` uint8 RGB frame.
            stamp_s: its capture time in seconds (non-decreasing).

        Returns:
            The confirmed faces at this frame: detected boxes on detection frames (or the
            prediction for a track the detector missed), predicted boxes otherwise.
        """
        self.frames_seen += 1
        if self.should_detect(stamp_s):
            detections = self.detector.detect(image_rgb)
            faces = self.tracker.update(detections, stamp_s)
            self._frames_since_detection = 0
            self._last_detection_stamp_s = stamp_s
            self.detector_runs += 1
            return ScheduledFrame(faces=faces, detector_ran=True)
        assert self._frames_since_detection is not None
        self._frames_since_detection += 1
        return ScheduledFrame(faces=self.tracker.predict(stamp_s), detector_ran=False)
