"""HeadPosePipeline mechanics with real parts: MTCNN on a real photo, a (random-weight) tiny VGGT
estimator, the tracker and the anchor pool. Accuracy with the trained model is tested elsewhere;
here: bootstrapping, capture, keyframe bookkeeping, people and tracks, errors, timings."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hpe_core.anchors.anchor import AnchorSource
from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector
from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
from hpe_core.pipeline import (BackendError, HeadPosePipeline, PipelineConfig, PipelineError, StaleFrameError,
                               facing_angle_deg, frontal_pose_from_box)
from hpe_core.tracking.tracker import TrackerConfig
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera


@pytest.fixture(scope="module")
def astronaut_frames() -> list[np.ndarray]:
    """640x480 frames of the astronaut photo panning slowly to the right."""
    from skimage import data

    photo = data.astronaut()  # 512x512 RGB, face near (x 230, y 120)
    frames = []
    for shift in range(0, 40, 8):
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[0:480, 40 + shift:40 + shift + 512] = photo[0:480]
        frames.append(canvas)
    return frames


@pytest.fixture(scope="module")
def estimator() -> TorchRelativePoseEstimator:
    torch.manual_seed(0)
    model = VGGTCamera(get_preset("tiny")).eval()
    return TorchRelativePoseEstimator(model)


@pytest.fixture(scope="module")
def detector() -> MtcnnFaceDetector:
    return MtcnnFaceDetector(MtcnnConfig(min_face_size=40))


def make_pipeline(estimator, detector, **kw) -> HeadPosePipeline:
    config = PipelineConfig(tracker=TrackerConfig(min_hits=1), **kw)
    return HeadPosePipeline(estimator, detector, config)


def test_bootstrap_then_estimates_from_the_bootstrapped_anchor(estimator, detector, astronaut_frames):
    pipe = make_pipeline(estimator, detector)
    first = pipe.process(astronaut_frames[0], 0.0)
    assert len(first.heads) == 1
    head = first.heads[0]
    assert head.source == "bootstrapped" and head.pose_cam is not None
    anchors = pipe.pool.anchors(head.person)
    assert [a.source for a in anchors] == [AnchorSource.BOOTSTRAPPED]
    # The bootstrap pose faces the camera: forward axis along the ray to the camera.
    assert head.facing_camera and head.facing_angle_deg < 1e-6
    second = pipe.process(astronaut_frames[1], 0.1)
    h2 = second.heads[0]
    assert h2.track_id == head.track_id and h2.person == head.person
    assert h2.source == "estimated" and h2.anchor_ids == (anchors[0].anchor_id,)
    assert np.isfinite(h2.pose_cam).all() and 0.0 <= h2.confidence <= 1.0
    assert set(second.timings_ms) == {"detect", "crop", "estimate", "fuse", "total"}
    assert second.timings_ms["estimate"] > 0


def test_capture_replaces_guesses_and_clear_removes(estimator, detector, astronaut_frames):
    pipe = make_pipeline(estimator, detector)
    pipe.process(astronaut_frames[0], 0.0)
    person = pipe.process(astronaut_frames[1], 0.1).heads[0].person
    given = frontal_pose_from_box([200, 100, 300, 220], np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]))
    anchor = pipe.capture_anchor(None, given)
    assert anchor.source is AnchorSource.CALIBRATED
    assert np.allclose(anchor.pose_cam, given)
    sources = [a.source for a in pipe.pool.anchors(person)]
    assert sources.count(AnchorSource.BOOTSTRAPPED) == 0 and sources.count(AnchorSource.CALIBRATED) == 1
    with pytest.raises(PipelineError):
        pipe.capture_anchor(999)
    assert pipe.clear_anchors(None) == 1
    assert len(pipe.pool) == 0


def test_bootstrap_none_waits_for_capture(estimator, detector, astronaut_frames):
    pipe = make_pipeline(estimator, detector, bootstrap="none")
    head = pipe.process(astronaut_frames[0], 0.0).heads[0]
    assert head.source == "no_anchor" and head.pose_cam is None
    pipe.capture_anchor()
    head = pipe.process(astronaut_frames[1], 0.1).heads[0]
    assert head.source == "estimated" and head.pose_cam is not None


def test_lone_new_track_adopts_the_lost_persons_anchors(estimator, detector, astronaut_frames):
    pipe = make_pipeline(estimator, detector, bootstrap="none")
    pipe.process(astronaut_frames[0], 0.0)
    anchor = pipe.capture_anchor()
    first_track = pipe.tracks_in_view()[0]
    blank = np.zeros_like(astronaut_frames[0])
    for i in range(12):  # the face leaves long enough for its track to die
        pipe.process(blank, 0.1 + 0.1 * i)
    head = pipe.process(astronaut_frames[2], 5.0).heads[0]
    assert head.track_id != first_track  # tracker ids are never reused ...
    assert anchor.anchor_id in head.anchor_ids  # ... but the person keeps the calibration


def test_bad_inputs(estimator, detector, astronaut_frames):
    pipe = make_pipeline(estimator, detector)
    pipe.process(astronaut_frames[0], 1.0)
    with pytest.raises(StaleFrameError, match="older"):
        pipe.process(astronaut_frames[1], 0.5)
    with pytest.raises(ValueError, match="uint8"):
        pipe.process(astronaut_frames[1].astype(np.float32), 2.0)
    with pytest.raises(PipelineError):
        make_pipeline(estimator, detector).capture_anchor()


class _SwitchableFailure:
    """The real estimator, except that it raises while ``failing`` is set (a backend fault)."""

    def __init__(self, inner) -> None:
        self.inner, self.failing = inner, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def estimate(self, features, crop, camera=None):
        if self.failing:
            raise RuntimeError("device lost")
        return self.inner.estimate(features, crop, camera)

    def estimate_batch(self, requests):
        if self.failing:
            raise RuntimeError("device lost")
        return self.inner.estimate_batch(requests)


def test_backend_failure_is_a_backend_error_and_the_next_frame_works(estimator, detector, astronaut_frames):
    flaky = _SwitchableFailure(estimator)
    pipe = make_pipeline(flaky, detector)
    pipe.process(astronaut_frames[0], 1.0)  # bootstraps the anchor (no network call)
    flaky.failing = True
    with pytest.raises(BackendError, match="device lost") as info:
        pipe.process(astronaut_frames[1], 1.1)
    assert isinstance(info.value.__cause__, RuntimeError)
    flaky.failing = False
    heads = pipe.process(astronaut_frames[2], 1.2).heads
    assert len(heads) == 1 and heads[0].source == "estimated" and heads[0].pose_cam is not None


def test_facing_angle():
    T = np.eye(4)
    T[2, 3] = 1.0  # head 1 m in front, looking back at the camera
    assert facing_angle_deg(T) == pytest.approx(0.0)
    yaw30 = np.eye(4)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    yaw30[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    yaw30[2, 3] = 1.0
    assert facing_angle_deg(yaw30) == pytest.approx(30.0)
