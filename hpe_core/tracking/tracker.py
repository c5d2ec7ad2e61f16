"""Multi-face tracker: stable integer ids from per-frame face detections.

Each track keeps its box as centre/size ``[cx, cy, w, h]`` (pixels) plus a velocity
``[vcx, vcy, vw, vh]`` (pixels per second) and the time of its last matched detection.

* Prediction (constant velocity): ``box(t) = box(t_last) + velocity * (t - t_last)``.
  :meth:`FaceTracker.predict` evaluates this for any time without changing the tracks, so it
  is the cheap step used on frames where the detector does not run.
* Association: IoU between predicted track boxes and the detections, assigned optimally with
  the Hungarian method (``scipy.optimize.linear_sum_assignment``); pairs below
  ``iou_threshold`` are never matched.
* Update (alpha-beta filter with alpha = 1): a matched track takes the detected box as is (the
  pose model was trained on the detector's boxes, so they are not smoothed) and corrects its
  velocity by ``velocity_gain * residual / dt``; the first velocity is the plain difference
  of the first two boxes.
* Birth hysteresis: a new track is *tentative* until it has been matched ``min_hits`` times;
  a tentative track that misses once is dropped, so a one-frame false detection never becomes
  a confirmed track.
* Death hysteresis: a confirmed track is removed after ``max_missed`` consecutive detection
  rounds without a match; a face that is missed fewer times keeps its id.
* Ids are positive integers from a counter; an id is never reused.
* A lone face that jumps (``reassociate_lone_face``): when the tracker holds exactly one track
  and the frame exactly one detection, and IoU cannot match them (photos of one person, a
  cut, a fast move at a low frame rate), they are matched anyway if their sizes are within
  ``lone_face_max_size_ratio`` of each other; the velocity restarts (a jump is not a motion).
  Without it a face that jumps every frame never confirms its track and never gets a pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from hpe_core.tracking.boxes import cxcywh_from_xyxy, iou_matrix, xyxy_from_cxcywh

if TYPE_CHECKING:  # runtime import would be circular (detection.scheduler uses tracking)
    from hpe_core.detection.types import Detection

FloatArray = NDArray[np.float64]

_MIN_SIDE_PX = 1.0
_NO_MATCH_COST = 1e6


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings.

    Attributes:
        iou_threshold: minimum IoU between a predicted track box and a detection to match,
            in (0, 1].
        min_hits: matched detections needed before a track is confirmed (>= 1).
        max_missed: consecutive unmatched detection rounds after which a confirmed track is
            removed (>= 1).
        velocity_gain: beta of the alpha-beta filter, in [0, 1]; 0 freezes the velocity.
        use_velocity: predict with constant velocity (``False``: boxes stay where they were
            last detected; only useful as a baseline).
        reassociate_lone_face: match a lone track and a lone detection that IoU cannot match
            (module docstring).
        lone_face_max_size_ratio: largest ratio of box sides (either way) for that match, >= 1.
    """

    iou_threshold: float = 0.3
    min_hits: int = 3
    max_missed: int = 5
    velocity_gain: float = 0.5
    use_velocity: bool = True
    reassociate_lone_face: bool = True
    lone_face_max_size_ratio: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.max_missed < 1:
            raise ValueError(f"max_missed must be >= 1, got {self.max_missed}")
        if not 0.0 <= self.velocity_gain <= 1.0:
            raise ValueError(f"velocity_gain must be in [0, 1], got {self.velocity_gain}")
        if not self.lone_face_max_size_ratio >= 1.0:
            raise ValueError(f"lone_face_max_size_ratio must be >= 1, got {self.lone_face_max_size_ratio}")


@dataclass(frozen=True)
class TrackedFace:
    """Snapshot of one track at one time.

    Attributes:
        track_id: stable positive id.
        box_xyxy: ``[4]`` box in pixels (the detection when ``detected``, else predicted).
        score: score of the last matched detection.
        landmarks5: ``[5, 2]`` landmarks in pixels, moved and scaled with the box since the
            last detection, or ``None`` if the detector gives none.
        detected: ``True`` when a detection was matched to this track at this time.
        confirmed: ``True`` once the track has ``min_hits`` matches.
        hits: matched detections so far.
        missed: consecutive detection rounds without a match.
    """

    track_id: int
    box_xyxy: FloatArray
    score: float
    landmarks5: Optional[FloatArray]
    detected: bool
    confirmed: bool
    hits: int
    missed: int


@dataclass
class _Track:
    track_id: int
    box_cxcywh: FloatArray
    stamp_s: float
    score: float
    landmarks_in_box: Optional[FloatArray]  # [5, 2], (landmark - centre) / size
    velocity: FloatArray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1
    missed: int = 0
    has_velocity: bool = False

    def box_at(self, stamp_s: float, use_velocity: bool) -> FloatArray:
        box = self.box_cxcywh.copy()
        if use_velocity:
            box += self.velocity * (stamp_s - self.stamp_s)
        box[2:] = np.maximum(box[2:], _MIN_SIDE_PX)
        return box

    def snapshot(
        self, box_cxcywh: FloatArray, detected: bool, min_hits: int
    ) -> TrackedFace:
        landmarks = None
        if self.landmarks_in_box is not None:
            landmarks = box_cxcywh[:2] + self.landmarks_in_box * box_cxcywh[2:]
        return TrackedFace(
            track_id=self.track_id,
            box_xyxy=xyxy_from_cxcywh(box_cxcywh),
            score=self.score,
            landmarks5=landmarks,
            detected=detected,
            confirmed=self.hits >= min_hits,
            hits=self.hits,
            missed=self.missed,
        )


def _landmarks_in_box(detection: Detection, box_cxcywh: FloatArray) -> Optional[FloatArray]:
    if detection.landmarks5 is None:
        return None
    return (detection.landmarks5 - box_cxcywh[:2]) / box_cxcywh[2:]


class FaceTracker:
    """Tracks faces across frames; see the module docstring for the model."""

    def __init__(self, config: Optional[TrackerConfig] = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_stamp_s: Optional[float] = None

    def _check_stamp(self, stamp_s: float) -> None:
        if self._last_stamp_s is not None and stamp_s < self._last_stamp_s:
            raise ValueError(
                f"stamps must not go backwards: {stamp_s} < {self._last_stamp_s} (seconds)"
            )

    def predict(self, stamp_s: float, include_tentative: bool = False) -> list[TrackedFace]:
        """Predicted boxes at ``stamp_s`` (seconds) without changing any track.

        Args:
            stamp_s: time of the frame, not earlier than the last :meth:`update`.
            include_tentative: also return tracks that are not confirmed yet.

        Returns:
            Tracks ordered by id, with ``detected=False``.
        """
        self._check_stamp(stamp_s)
        return [
            track.snapshot(track.box_at(stamp_s, self.config.use_velocity), False,
                           self.config.min_hits)
            for track in sorted(self._tracks, key=lambda t: t.track_id)
            if include_tentative or track.hits >= self.config.min_hits
        ]

    def update(
        self, detections: Sequence[Detection], stamp_s: float, include_tentative: bool = False
    ) -> list[TrackedFace]:
        """Associate one frame's detections with the tracks and update them.

        Args:
            detections: all detections of the frame (pixels of the same camera image).
            stamp_s: time of the frame in seconds (non-decreasing across calls).
            include_tentative: also return tracks that are not confirmed yet.

        Returns:
            Tracks ordered by id: matched ones with their detected box, confirmed unmatched
            ones with their predicted box.
        """
        self._check_stamp(stamp_s)
        cfg = self.config
        predicted = [t.box_at(stamp_s, cfg.use_velocity) for t in self._tracks]
        matches, unmatched_tracks, unmatched_dets = self._associate(predicted, detections)
        jumped: set[int] = set()
        if (cfg.reassociate_lone_face and len(self._tracks) == 1 and len(detections) == 1
                and unmatched_tracks and unmatched_dets
                and self._similar_size(self._tracks[0].box_cxcywh, cxcywh_from_xyxy(detections[0].box_xyxy))):
            matches, unmatched_tracks, unmatched_dets = [(0, 0)], [], []
            jumped.add(0)

        out_boxes: dict[int, tuple[FloatArray, bool]] = {}
        for track_index, det_index in matches:
            track = self._tracks[track_index]
            if track_index in jumped:  # restart the motion model where the face is now
                track.velocity, track.has_velocity = np.zeros(4), False
                predicted[track_index] = track.box_cxcywh = cxcywh_from_xyxy(detections[det_index].box_xyxy)
                track.stamp_s = stamp_s
            self._correct(track, predicted[track_index], detections[det_index], stamp_s)
            out_boxes[track.track_id] = (track.box_cxcywh.copy(), True)

        survivors = []
        unmatched = set(unmatched_tracks)
        for index, track in enumerate(self._tracks):
            if index in unmatched:
                track.missed += 1
                confirmed = track.hits >= cfg.min_hits
                if not confirmed or track.missed >= cfg.max_missed:
                    continue
                out_boxes[track.track_id] = (predicted[index], False)
            survivors.append(track)
        for det_index in unmatched_dets:
            detection = detections[det_index]
            box = cxcywh_from_xyxy(detection.box_xyxy)
            track = _Track(
                track_id=self._next_id,
                box_cxcywh=box,
                stamp_s=stamp_s,
                score=detection.score,
                landmarks_in_box=_landmarks_in_box(detection, box),
            )
            self._next_id += 1
            survivors.append(track)
            out_boxes[track.track_id] = (box.copy(), True)
        self._tracks = survivors
        self._last_stamp_s = stamp_s

        return [
            track.snapshot(*out_boxes[track.track_id], cfg.min_hits)
            for track in sorted(self._tracks, key=lambda t: t.track_id)
            if include_tentative or track.hits >= cfg.min_hits
        ]

    def _similar_size(self, box_a: FloatArray, box_b: FloatArray) -> bool:
        ratio = self.config.lone_face_max_size_ratio
        side_a, side_b = float(max(box_a[2], box_a[3])), float(max(box_b[2], box_b[3]))
        return side_a > 0 and side_b > 0 and 1.0 / ratio <= side_a / side_b <= ratio

    def _associate(
        self, predicted: list[FloatArray], detections: Sequence[Detection]
    ) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        """Hungarian assignment on IoU; returns (matches, unmatched tracks, unmatched dets)."""
        if not predicted or not detections:
            return [], list(range(len(predicted))), list(range(len(detections)))
        iou = iou_matrix(
            xyxy_from_cxcywh(np.stack(predicted)), np.stack([d.box_xyxy for d in detections])
        )
        valid = iou >= self.config.iou_threshold
        cost = np.where(valid, 1.0 - iou, _NO_MATCH_COST)
        rows, cols = linear_sum_assignment(cost)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols) if valid[r, c]]
        matched_tracks = {r for r, _ in matches}
        matched_dets = {c for _, c in matches}
        return (
            matches,
            [i for i in range(len(predicted)) if i not in matched_tracks],
            [j for j in range(len(detections)) if j not in matched_dets],
        )

    def _correct(
        self, track: _Track, predicted: FloatArray, detection: Detection, stamp_s: float
    ) -> None:
        """Alpha-beta correction (alpha = 1) of a matched track."""
        measured = cxcywh_from_xyxy(detection.box_xyxy)
        dt = stamp_s - track.stamp_s
        if dt > 0.0:
            if not track.has_velocity:
                track.velocity = (measured - track.box_cxcywh) / dt
                track.has_velocity = True
            else:
                track.velocity = track.velocity + self.config.velocity_gain * (
                    measured - predicted
                ) / dt
        track.box_cxcywh = measured
        track.stamp_s = stamp_s
        track.score = detection.score
        track.landmarks_in_box = _landmarks_in_box(detection, measured)
        track.hits += 1
        track.missed = 0

    def live_track_ids(self) -> set[int]:
        """Ids of the live tracks (tentative and coasting ones included); a dead id never returns."""
        return {track.track_id for track in self._tracks}

    @property
    def num_tracks(self) -> int:
        """Number of live tracks, tentative ones included."""
        return len(self._tracks)

    def reset(self) -> None:
        """Drop all tracks (ids keep counting up, so old ids are still never reused)."""
        self._tracks = []
        self._last_stamp_s = None
