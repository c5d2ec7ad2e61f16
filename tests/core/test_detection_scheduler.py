"""Rate-limited detection with tracker prediction in between."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hpe_core.detection import (
    Detection,
    DetectionScheduleConfig,
    DetectionScheduler,
    FaceDetector,
)
from hpe_core.tracking import FaceTracker, TrackerConfig

FPS = 30.0
WIDTH, HEIGHT = 320, 240


class BrightBlobDetector:
    """A real (if trivial) detector for synthetic scenes: every bright blob is a "face"."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        self.calls += 1
        mask = (image_rgb[:, :, 0] > 128).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        return [
            Detection(np.array([x, y, x + w, y + h], float), 1.0)
            for x, y, w, h, _ in stats[1:count]
        ]


def render(boxes):
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for x1, y1, x2, y2 in boxes:
        image[int(y1) : int(y2), int(x1) : int(x2)] = 255
    return image


def true_box(k):
    """Face moving 3 px/frame right and 1 px/frame down, 30x36 px."""
    x, y = 40 + 3 * k, 50 + 1 * k
    return np.array([x, y, x + 30, y + 36], float)


def run(config, n_frames=30, min_hits=2):
    detector = BrightBlobDetector()
    assert isinstance(detector, FaceDetector)
    scheduler = DetectionScheduler(
        detector, FaceTracker(TrackerConfig(min_hits=min_hits)), config
    )
    frames = [scheduler.process(render([true_box(k)]), k / FPS) for k in range(n_frames)]
    return detector, scheduler, frames


def test_every_n_frames():
    detector, scheduler, frames = run(DetectionScheduleConfig(every_n_frames=4))
    ran = [k for k, f in enumerate(frames) if f.detector_ran]
    assert ran == list(range(0, 30, 4))
    assert detector.calls == scheduler.detector_runs == len(ran)


def test_rate_cap_on_stamps():
    # 30 fps camera, at most 7 detections per second -> every 5th frame (4 frames = 0.133 s
    # is below the 0.143 s period); stamps jitter by +-2 ms.
    detector = BrightBlobDetector()
    scheduler = DetectionScheduler(detector, config=DetectionScheduleConfig(max_rate_hz=7.0))
    rng = np.random.default_rng(0)
    ran = []
    for k in range(60):
        stamp = k / FPS + rng.uniform(-0.002, 0.002)
        if scheduler.process(render([true_box(k)]), stamp).detector_ran:
            ran.append(k)
    assert ran == list(range(0, 60, 5))
    assert np.diff(ran).min() / FPS >= 0.95 / 7.0


def test_every_frame_gets_a_box_that_follows_the_face():
    _, _, frames = run(DetectionScheduleConfig(every_n_frames=3), min_hits=2)
    # Confirmed at the second detection (frame 3); from then on every frame has the face.
    for k, frame in enumerate(frames):
        if k < 3:
            assert frame.faces == []
            continue
        (face,) = frame.faces
        assert face.track_id == 1
        assert face.detected == frame.detector_ran
        # Constant velocity: predictions between detections are exact.
        np.testing.assert_allclose(face.box_xyxy, true_box(k), atol=1e-9)


def test_config_validation():
    with pytest.raises(ValueError):
        DetectionScheduleConfig(every_n_frames=0)
    with pytest.raises(ValueError):
        DetectionScheduleConfig(max_rate_hz=0.0)


def test_with_mtcnn_on_a_moving_photo():
    """Real detector on the astronaut photo panning 5 px per frame, detecting every 3rd frame:
    box centres predicted between detections follow the face to within 5 % of its width
    (MTCNN's own box jitter is a few pixels, so sizes are not compared tightly)."""
    from skimage import data

    from hpe_core.detection import MtcnnConfig, MtcnnFaceDetector

    photo = data.astronaut()[:480]

    def frame(k):
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[:, 20 + 5 * k : 20 + 5 * k + 512] = photo
        return canvas

    detector = MtcnnFaceDetector(MtcnnConfig(min_face_size=40))  # face is ~90 px wide
    scheduler = DetectionScheduler(
        detector, FaceTracker(TrackerConfig(min_hits=1)), DetectionScheduleConfig(every_n_frames=3)
    )
    results = [scheduler.process(frame(k), k / FPS) for k in range(7)]
    assert [r.detector_ran for r in results] == [True, False, False, True, False, False, True]
    first = results[0].faces[0]
    first_center = 0.5 * (first.box_xyxy[:2] + first.box_xyxy[2:])
    width = first.box_xyxy[2] - first.box_xyxy[0]
    ids = {f.track_id for r in results for f in r.faces}
    assert ids == {1}
    for k in range(1, 7):
        (face,) = results[k].faces
        center = 0.5 * (face.box_xyxy[:2] + face.box_xyxy[2:])
        if k in (1, 2):  # no velocity yet: the box stays where it was first detected
            np.testing.assert_allclose(center, first_center)
        else:
            assert np.linalg.norm(center - (first_center + [5.0 * k, 0.0])) < 0.05 * width
