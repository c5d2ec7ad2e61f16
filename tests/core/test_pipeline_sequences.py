"""The pipeline on rendered sequences with known poses (our generator), with the node's default
estimator and its fitted error models: a calibrated frontal anchor and a turning head (keyframes
vs one anchor), consensus of several anchors, and two people crossing.
"""
from __future__ import annotations

import numpy as np
import pytest

from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_core.pipeline import HeadPosePipeline, PipelineConfig
from hpe_core.tracking.tracker import TrackerConfig
from hpe_training.synth.sequence import SequenceConfig, hold_first_frame, render_sequence

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detector():
    return MtcnnFaceDetector(MtcnnConfig(min_face_size=40))


@pytest.fixture(scope="module")
def estimator():
    """The node's default estimator, with its fitted error models, as the node builds it."""
    from hpe_core.pipeline_factory import PipelineSettings, build_estimator

    estimator = build_estimator(PipelineSettings())
    yield estimator
    close = getattr(estimator, "close", None)
    if close is not None:
        close()


@pytest.fixture(scope="module")
def sweep():
    """Frontal for 4 frames, then a yaw sweep to +-80 deg (camera axes) with a pitch wave (MTCNN
    loses the face beyond about 65 deg; the tracker's boxes carry it a little further)."""
    config = SequenceConfig(kind="yaw_sweep", n_frames=48, max_yaw_deg=80.0, seed=11, identity=3, msaa=0)
    return hold_first_frame(render_sequence(config), 4)


def run(pipeline: HeadPosePipeline, seq, calibrate_at: tuple[int, ...] = (0,)) -> dict[int, float]:
    """Rotation error (deg) per frame of head 0; anchors captured at the true pose of the
    frames in ``calibrate_at``."""
    errors = {}
    for i, (frame, stamp) in enumerate(zip(seq.frames, seq.stamps_s)):
        result = pipeline.process(frame, float(stamp), seq.K)
        if i in calibrate_at:
            assert result.heads, f"no face tracked at calibration frame {i}"
            pipeline.capture_anchor(result.heads[0].track_id, seq.poses_cam[i, 0])
            result = pipeline.process(frame, float(stamp), seq.K)
        if result.heads and result.heads[0].pose_cam is not None:
            errors[i] = float(geodesic_angle_deg(result.heads[0].pose_cam[:3, :3], seq.poses_cam[i, 0, :3, :3]))
    return errors


def make(estimator, detector, policy: AnchorPolicy) -> HeadPosePipeline:
    return HeadPosePipeline(estimator, detector, PipelineConfig(
        bootstrap="none", policy=policy, tracker=TrackerConfig(min_hits=1)))


def test_keyframes_never_make_the_sweep_worse_than_a_single_anchor(estimator, detector, sweep):
    """Keyframes are added only where the fitted error model expects them to help later frames
    (:func:`hpe_core.error_model.keyframe_expected_to_help`). Before, every confident keyframe
    was added and the sweep got worse (27.4 vs 17.1 deg at |yaw| >= 40 with VGGT, issue 15).
    On this sweep the default estimator's model expects no keyframe to help (its estimates 20 to
    30 deg out are already as uncertain as the longer hop), so none is added and the error at
    large angles is the single anchor's; the issue's "keyframes beat the single anchor" is not
    met here (README, "Expected error")."""
    with_keyframes = run(make(estimator, detector, AnchorPolicy()), sweep)
    single = run(make(estimator, detector, AnchorPolicy(max_chain_depth=0)), sweep)
    yaw = np.abs(sweep.yaw_pitch_roll_deg[:, 0, 0])
    large = [i for i in with_keyframes if yaw[i] >= 40 and i in single]
    assert len(large) >= 6, f"too few large-angle frames tracked: {large}"
    err_kf = np.mean([with_keyframes[i] for i in large])
    err_single = np.mean([single[i] for i in large])
    print(f"large-angle error: keyframes {err_kf:.2f} deg, single anchor {err_single:.2f} deg")
    assert err_kf <= err_single + 0.1


def test_consensus_of_anchors_beats_the_worst_single_anchor(estimator, detector, sweep):
    yaw = sweep.yaw_pitch_roll_deg[:, 0, 0]
    # three calibrated anchors at different yaws (all detected frames)
    anchors_at = (0, int(np.argmin(np.abs(yaw - 25))), int(np.argmin(np.abs(yaw + 25))))
    policy = AnchorPolicy(max_chain_depth=0, anchors_per_estimate=3)
    fused = run(make(estimator, detector, policy), sweep, anchors_at)
    singles = []
    for a in anchors_at:
        singles.append(run(make(estimator, detector, AnchorPolicy(max_chain_depth=0, anchors_per_estimate=1)), sweep, (a,)))
    frames = [i for i in fused if all(i in s for s in singles) and i > max(anchors_at)]
    assert len(frames) >= 5
    err_fused = np.mean([fused[i] for i in frames])
    err_singles = [np.mean([s[i] for i in frames]) for s in singles]
    print(f"fused {err_fused:.2f} deg; single anchors {[round(e, 2) for e in err_singles]}")
    assert err_fused < max(err_singles)


def test_two_faces_keep_their_ids_through_a_crossing(estimator, detector):
    seq = render_sequence(SequenceConfig(kind="crossing", n_frames=30, seed=4, msaa=0))
    pipeline = HeadPosePipeline(estimator, detector, PipelineConfig(tracker=TrackerConfig(min_hits=2)))
    id_of_head: dict[int, set[int]] = {0: set(), 1: set()}
    for frame, stamp, boxes in zip(seq.frames, seq.stamps_s, seq.boxes):
        result = pipeline.process(frame, float(stamp), seq.K)
        centres = [(b[:2] + b[2:]) / 2 for b in boxes]
        if np.linalg.norm(centres[0] - centres[1]) < 80:
            continue  # overlapping faces: which box is which person is ambiguous here
        for head in result.heads:
            centre = (head.box_xyxy[:2] + head.box_xyxy[2:]) / 2
            # which true head is this? the one whose face box centre is nearest
            truth = int(np.argmin([np.linalg.norm(centre - c) for c in centres]))
            id_of_head[truth].add(head.track_id)
    assert id_of_head[0] and id_of_head[1]
    assert id_of_head[0].isdisjoint(id_of_head[1])
    assert len(id_of_head[0]) == 1 and len(id_of_head[1]) == 1, id_of_head
