"""Hostile input reaching the core runtime (issue 17): requests refused without changing
anything, stamps that must not poison the order check, bounded people, detector settings that
apply at run time. Real parts: MTCNN on the astronaut photo, a random-weight tiny VGGT."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hpe_core.anchors.anchor import MAX_POSE_DISTANCE_M, AnchorSource
from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector
from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
from hpe_core.frame_order import FrameOrderGate
from hpe_core.pipeline import HeadPosePipeline, PipelineConfig
from hpe_core.tracking.tracker import TrackerConfig
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera

NOW = 1.8e9  # a wall-clock time, seconds


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def estimator() -> TorchRelativePoseEstimator:
    torch.manual_seed(0)
    return TorchRelativePoseEstimator(VGGTCamera(get_preset("tiny")).eval())


@pytest.fixture(scope="module")
def detector() -> MtcnnFaceDetector:
    return MtcnnFaceDetector(MtcnnConfig(min_face_size=40))


def canvas_with(photo: np.ndarray, shift: int = 0) -> np.ndarray:
    canvas = np.zeros((480, 640, 3), np.uint8)
    canvas[0:480, 40 + shift:40 + shift + 512] = photo[0:480]
    return canvas


# -- stamps -------------------------------------------------------------------------------------
def test_a_frame_stamped_far_ahead_is_dropped_and_not_remembered():
    gate = FrameOrderGate(max_age_s=1.0, max_ahead_s=10.0)
    ahead = gate.admit(NOW + 3600.0, now_s=NOW)
    assert not ahead.admitted and ahead.kind == "ahead" and gate.ahead == 1
    assert not gate.admit(2.0**31 - 1, now_s=NOW).admitted
    good = gate.admit(NOW + 0.01, now_s=NOW)  # before the fix: "too old" against the future stamp
    assert good.admitted, good.reason
    gate.processed(NOW + 0.01)
    assert gate.admit(NOW + 0.05, now_s=NOW).admitted


def test_a_clock_at_zero_does_not_judge_stamps_ahead():
    gate = FrameOrderGate(max_ahead_s=10.0)
    assert gate.admit(NOW, now_s=0.0).admitted  # sim time before the first /clock


# -- capture requests ---------------------------------------------------------------------------
def _bootstrapped(estimator, detector, photo) -> tuple[HeadPosePipeline, int, str]:
    pipe = HeadPosePipeline(estimator, detector, PipelineConfig(tracker=TrackerConfig(min_hits=1), bootstrap="frontal"))
    result = pipe.process(canvas_with(photo), 0.0)
    assert result.heads and result.heads[0].source == "bootstrapped"
    track = result.heads[0].track_id
    return pipe, track, pipe.person_of(track)


@pytest.mark.parametrize("bad", ["nan", "far", "behind"])
def test_a_refused_capture_keeps_the_bootstrapped_anchor(estimator, detector, photo, bad):
    pipe, track, person = _bootstrapped(estimator, detector, photo)
    before = [a.anchor_id for a in pipe.pool.anchors(person)]
    assert [a.source for a in pipe.pool.anchors(person)] == [AnchorSource.BOOTSTRAPPED]
    pose = np.eye(4)
    pose[:3, 3] = {"nan": [np.nan, 0, 1], "far": [0, 0, 1e300], "behind": [0, 0, -1.0]}[bad]
    with pytest.raises(ValueError):
        pipe.capture_anchor(track, pose)
    assert [a.anchor_id for a in pipe.pool.anchors(person)] == before


def test_a_capture_within_range_replaces_the_guess(estimator, detector, photo):
    pipe, track, person = _bootstrapped(estimator, detector, photo)
    pose = np.eye(4)
    pose[:3, 3] = [0.0, 0.0, min(1.2, MAX_POSE_DISTANCE_M)]
    anchor = pipe.capture_anchor(track, pose)
    assert [a.anchor_id for a in pipe.pool.anchors(person)] == [anchor.anchor_id]


# -- bounded people -----------------------------------------------------------------------------
def test_faces_that_come_and_go_do_not_grow_the_pool_without_bound(estimator, detector, photo):
    """Each frame shows three small faces at new places (new tracks, new people); with
    max_people 6 the pool and the track map stay bounded (before: one person per track)."""
    face = photo[20:260, 120:340]  # the astronaut's head and shoulders, 240x220
    small = face[::2, ::2]
    rng = np.random.default_rng(3)
    config = PipelineConfig(tracker=TrackerConfig(min_hits=1, max_missed=1), bootstrap="frontal", max_people=6)
    pipe = HeadPosePipeline(estimator, detector, config)
    people_seen = set()
    for i in range(14):
        canvas = np.zeros((480, 640, 3), np.uint8)
        for k in range(3):
            y = int(rng.integers(0, 480 - small.shape[0]))
            x = int(rng.integers(0, 640 - small.shape[1]))
            canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        result = pipe.process(canvas, float(i))
        people_seen |= {h.person for h in result.heads}
    assert len(people_seen) > 6, "the test must bring more people than max_people"
    assert len(pipe.pool.tracks()) <= 6
    assert len(pipe._person_of_track) <= pipe.scheduler.tracker.num_tracks


# -- detector settings at run time --------------------------------------------------------------
def test_mtcnn_reconfigure_applies_to_the_next_detection(detector, photo):
    local = MtcnnFaceDetector(MtcnnConfig(min_face_size=40))
    image = canvas_with(photo)
    assert local.detect(image)
    local.reconfigure(400, 0.9)  # no face that large in the frame
    assert local.config.min_face_size == 400 and local.detect(image) == []
    local.reconfigure(40, 0.9)
    assert local.detect(image)
    with pytest.raises(ValueError):
        local.reconfigure(5, 0.9)
    assert local.config.min_face_size == 40
