"""Tests of the multi-face tracker on synthetic box trajectories (pixels, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from hpe_core.detection.types import Detection
from hpe_core.tracking import FaceTracker, TrackerConfig, iou_matrix

FPS = 30.0


def box_at(center_xy, size=40.0):
    cx, cy = center_xy
    half = size / 2.0
    return np.array([cx - half, cy - half, cx + half, cy + half])


def det(center_xy, size=40.0, score=0.99, landmarks=None):
    return Detection(box_xyxy=box_at(center_xy, size), score=score, landmarks5=landmarks)


def crossing_scenario(n_frames=21):
    """Face A moves right, face B left, 20 px/frame, 10 px apart vertically.

    They cross between frames 10 and 11 (A at 310, B at 330 at frame 10, then A at 330 and B
    at 310): at the crossing the boxes overlap with IoU 0.6, more than each face overlaps its
    own previous box (IoU 0.33), so matching on last-seen boxes alone swaps the ids.
    """
    frames = []
    for k in range(n_frames):
        a = (110.0 + 20.0 * k, 200.0)
        b = (530.0 - 20.0 * k, 210.0)
        frames.append((a, b))
    return frames


def run_crossing(config):
    tracker = FaceTracker(config)
    ids_a, ids_b = [], []
    for k, (a, b) in enumerate(crossing_scenario()):
        faces = tracker.update([det(a), det(b)], stamp_s=k / FPS)
        by_center = {}
        for face in faces:
            center = 0.5 * (face.box_xyxy[:2] + face.box_xyxy[2:])
            by_center[tuple(np.round(center, 6))] = face.track_id
        if faces:
            ids_a.append(by_center[a])
            ids_b.append(by_center[b])
    return ids_a, ids_b


def test_iou_matrix_known_overlaps():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    # Half-shifted square: intersection 50, union 150.
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1.0 / 3.0, 0.0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_crossing_faces_keep_their_ids():
    ids_a, ids_b = run_crossing(TrackerConfig(min_hits=3, max_missed=3))
    assert len(ids_a) == 21 - 2  # confirmed from the third frame on
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1
    assert ids_a[0] != ids_b[0]


def test_crossing_swaps_without_motion_prediction():
    """The scenario is hard: a tracker without velocity swaps the ids at the crossing."""
    ids_a, ids_b = run_crossing(TrackerConfig(min_hits=3, max_missed=3, use_velocity=False))
    assert len(set(ids_a)) == 2 and len(set(ids_b)) == 2


def test_spurious_single_frame_detection_never_confirmed():
    tracker = FaceTracker(TrackerConfig(min_hits=3, max_missed=5))
    confirmed_ids = set()
    for k in range(15):
        detections = [det((200.0 + 3.0 * k, 150.0))]
        if k == 6:
            detections.append(det((500.0, 400.0), size=30.0, score=0.95))
        faces = tracker.update(detections, stamp_s=k / FPS)
        confirmed_ids |= {f.track_id for f in faces}
        if k == 6:
            assert tracker.num_tracks == 2  # the spurious one exists, tentatively
            tentative = tracker.predict(k / FPS, include_tentative=True)
            assert [f.confirmed for f in tentative] == [True, False]
    assert confirmed_ids == {1}
    assert tracker.num_tracks == 1


def test_birth_after_min_hits():
    tracker = FaceTracker(TrackerConfig(min_hits=4))
    confirmed_at = None
    for k in range(6):
        faces = tracker.update([det((300.0, 200.0))], stamp_s=k / FPS)
        if faces and confirmed_at is None:
            confirmed_at = k
            assert faces[0].hits == 4 and faces[0].confirmed
    assert confirmed_at == 3


def test_short_disappearance_keeps_id_long_one_gets_new_id():
    max_missed = 5
    tracker = FaceTracker(TrackerConfig(min_hits=2, max_missed=max_missed))
    velocity = 4.0  # px/frame

    def center(k):
        return (150.0 + velocity * k, 240.0)

    k = 0
    for _ in range(5):
        tracker.update([det(center(k))], k / FPS)
        k += 1
    (face,) = tracker.predict(k / FPS)
    first_id = face.track_id
    # Gone for max_missed - 1 frames: the predicted box keeps following the motion.
    for _ in range(max_missed - 1):
        faces = tracker.update([], k / FPS)
        assert [f.track_id for f in faces] == [first_id]
        assert not faces[0].detected and faces[0].missed >= 1
        np.testing.assert_allclose(faces[0].box_xyxy, box_at(center(k)), atol=1e-6)
        k += 1
    faces = tracker.update([det(center(k))], k / FPS)
    assert [f.track_id for f in faces] == [first_id] and faces[0].detected
    k += 1
    # Gone for max_missed frames: the track dies; the face comes back under a new id.
    for _ in range(max_missed):
        tracker.update([], k / FPS)
        k += 1
    assert tracker.num_tracks == 0
    seen = set()
    for _ in range(3):
        seen |= {f.track_id for f in tracker.update([det(center(k))], k / FPS)}
        k += 1
    assert len(seen) == 1 and min(seen) > first_id


def test_predict_is_constant_velocity_and_does_not_change_tracks():
    tracker = FaceTracker(TrackerConfig(min_hits=2))
    # Box moves (+30, -12) px/s and grows 6 px/s in size.
    def box(t):
        return box_at((100.0 + 30.0 * t, 300.0 - 12.0 * t), size=50.0 + 6.0 * t)

    for t in (0.0, 0.5, 1.0):
        tracker.update([Detection(box(t), 0.9)], t)
    for t in (1.1, 1.7, 1.25):  # any order after the last update: predict is stateless
        (face,) = tracker.predict(t)
        np.testing.assert_allclose(face.box_xyxy, box(t), atol=1e-9)
    with pytest.raises(ValueError):
        tracker.predict(0.9)


def test_landmarks_follow_the_predicted_box():
    tracker = FaceTracker(TrackerConfig(min_hits=1))
    landmarks = np.array([[90, 95], [110, 95], [100, 100], [92, 110], [108, 110]], float)
    tracker.update([Detection(box_at((100, 100)), 0.9, landmarks)], 0.0)
    tracker.update([Detection(box_at((110, 100)), 0.9, landmarks + [10, 0])], 0.1)
    (face,) = tracker.predict(0.2)
    np.testing.assert_allclose(face.landmarks5, landmarks + [20, 0], atol=1e-9)


def test_hungarian_beats_greedy_assignment():
    """Greedy best-IoU-first would give track 1 the detection both overlap most, leaving
    track 2 unmatched; the optimal assignment matches both."""
    tracker = FaceTracker(TrackerConfig(min_hits=1, iou_threshold=0.2, use_velocity=False))
    t1 = np.array([0.0, 0.0, 40.0, 40.0])
    t2 = np.array([24.0, 0.0, 64.0, 40.0])
    faces = tracker.update([Detection(t1, 0.9), Detection(t2, 0.9)], 0.0)
    ids = {tuple(f.box_xyxy): f.track_id for f in faces}
    d_mid = np.array([8.0, 0.0, 48.0, 40.0])  # IoU 0.67 with t1, 0.43 with t2
    d_left = np.array([-16.0, 0.0, 24.0, 40.0])  # IoU 0.43 with t1, 0 with t2
    iou = iou_matrix(np.stack([t1, t2]), np.stack([d_mid, d_left]))
    assert iou[0, 0] == iou.max() and iou[1, 1] < 0.2 and iou[0, 1] >= 0.2 and iou[1, 0] >= 0.2
    faces = tracker.update([Detection(d_mid, 0.9), Detection(d_left, 0.9)], 0.1)
    got = {tuple(f.box_xyxy): f.track_id for f in faces}
    assert got[tuple(d_left)] == ids[tuple(t1)]
    assert got[tuple(d_mid)] == ids[tuple(t2)]
    assert tracker.num_tracks == 2


def test_config_validation():
    with pytest.raises(ValueError):
        TrackerConfig(min_hits=0)
    with pytest.raises(ValueError):
        TrackerConfig(max_missed=0)
    with pytest.raises(ValueError):
        TrackerConfig(iou_threshold=0.0)


def test_a_lone_face_that_jumps_keeps_its_track_and_confirms():
    """Issue 16: a face jumping 300 px every frame (photos, cuts) used to start a new tentative
    track every frame and never be confirmed; now it keeps one track."""
    tracker = FaceTracker(TrackerConfig(min_hits=3))
    places = [(100, 100), (400, 300), (120, 350), (500, 80), (260, 220)]
    outputs = [tracker.update([det(c, size=80.0)], 0.1 * i) for i, c in enumerate(places)]
    assert [len(o) for o in outputs] == [0, 0, 1, 1, 1]  # confirmed at the third sight
    assert {o[0].track_id for o in outputs[2:]} == {1}
    assert np.allclose(outputs[-1][0].box_xyxy, box_at((260, 220), 80.0))  # no velocity from the jumps
    predicted = tracker.predict(0.5)[0].box_xyxy
    assert np.allclose(predicted, box_at((260, 220), 80.0))


def test_lone_face_reassociation_needs_one_face_and_a_similar_size():
    two = FaceTracker(TrackerConfig(min_hits=1))
    first = two.update([det((100, 100)), det((400, 100))], 0.0)
    moved = two.update([det((100, 400)), det((400, 400))], 0.1)  # two faces jump: no guessing
    assert {f.track_id for f in first}.isdisjoint({f.track_id for f in moved if f.detected})
    sized = FaceTracker(TrackerConfig(min_hits=1))
    (a,) = sized.update([det((100, 100), size=40.0)], 0.0)
    now = sized.update([det((400, 300), size=200.0)], 0.1)  # 5x larger: another face
    assert a.track_id not in {f.track_id for f in now if f.detected}
    off = FaceTracker(TrackerConfig(min_hits=1, reassociate_lone_face=False))
    (b,) = off.update([det((100, 100))], 0.0)
    assert b.track_id not in {f.track_id for f in off.update([det((400, 300))], 0.1) if f.detected}
