"""Rendered sequences with known poses: trajectory, determinism, boxes, disk round trip, MTCNN."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_training.synth.render import egl_available
from hpe_training.synth.sequence import (SequenceConfig, head_trajectory, load_sequence, main, ray_relative_rotation,
                                         render_sequence, save_sequence, trajectory_poses)

needs_egl = pytest.mark.skipif(not egl_available(), reason="no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")

#: Small, fast settings for the rendering tests (the trajectory does not depend on the size).
SMALL = dict(width=160, height=120, mesh_level=4, msaa=0)


def test_config_validation():
    with pytest.raises(ValueError):
        SequenceConfig(kind="spin")
    with pytest.raises(ValueError):
        SequenceConfig(n_frames=1)
    with pytest.raises(ValueError):
        SequenceConfig(max_yaw_deg=95.0)
    with pytest.raises(ValueError):
        SequenceConfig(expression="angry_smile")
    with pytest.raises(ValueError):
        SequenceConfig(msaa=3)
    assert SequenceConfig().n_heads == 1
    assert SequenceConfig(kind="crossing", identity=4).identities == (4, 5)
    assert SequenceConfig(kind="crossing", identity=4, second_identity=9).identities == (4, 9)


@pytest.mark.parametrize("n_frames", [21, 90])
def test_yaw_sweep_follows_the_trajectory(n_frames):
    cfg = SequenceConfig(kind="yaw_sweep", n_frames=n_frames, max_yaw_deg=60.0)
    poses = trajectory_poses(cfg)
    assert poses.shape == (n_frames, 1, 4, 4)
    np.testing.assert_allclose(poses[..., :3, :3] @ np.swapaxes(poses[..., :3, :3], -1, -2),
                               np.broadcast_to(np.eye(3), (n_frames, 1, 3, 3)), atol=1e-12)
    # camera-axes angles: exactly the trajectory
    ypr = yaw_pitch_roll_deg_from_matrix(poses[:, 0, :3, :3])
    angles, _ = head_trajectory(cfg)
    np.testing.assert_allclose(ypr, angles[:, 0], atol=1e-9)
    # relative to facing the viewing ray (what a crop-based estimator sees): still within 1 deg
    yaw_ray = yaw_pitch_roll_deg_from_matrix(ray_relative_rotation(poses[:, 0]))[:, 0]
    assert abs(yaw_ray[0]) < 1.0 and abs(yaw_ray[-1]) < 1.0
    assert abs(np.abs(yaw_ray).max() - 60.0) < 1.0
    assert np.abs(yaw_ray - ypr[:, 0]).max() < 1.0
    # frontal -> +max -> -max -> frontal, in that order
    assert np.argmax(ypr[:, 0]) < np.argmin(ypr[:, 0])
    assert ypr[np.argmax(ypr[:, 0]), 0] > 59.0 and ypr[np.argmin(ypr[:, 0]), 0] < -59.0
    # smooth: no jumps larger than the sine's maximal step
    assert np.abs(np.diff(ypr[:, 0])).max() <= 60.0 * 2 * np.pi / (n_frames - 1) + 1e-9
    # small pitch wave, head near the optical axis at the requested depth
    assert 0.0 < np.abs(ypr[:, 1]).max() <= cfg.pitch_amp_deg + 1e-9
    t = poses[:, 0, :3, 3]
    assert np.abs(t[:, :2]).max() <= cfg.drift_m + 1e-12 and np.allclose(t[:, 2], cfg.distance_m)


def test_ray_relative_rotation_is_identity_when_facing_the_lens():
    # a head 30 deg to the right of the optical axis, turned by the ray angle, faces the lens
    pose = np.eye(4)
    pose[:3, 3] = [np.tan(np.radians(30.0)), 0.0, 1.0]
    from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg

    pose[:3, :3] = matrix_from_yaw_pitch_roll_deg(30.0, 0.0, 0.0)
    np.testing.assert_allclose(ray_relative_rotation(pose), np.eye(3), atol=1e-12)
    pose[:3, :3] = np.eye(3)  # parallel to the image plane: -30 deg yaw relative to the ray
    assert yaw_pitch_roll_deg_from_matrix(ray_relative_rotation(pose))[0] == pytest.approx(-30.0)


def test_crossing_heads_pass_each_other():
    cfg = SequenceConfig(kind="crossing", n_frames=31)
    poses = trajectory_poses(cfg)
    assert poses.shape == (31, 2, 4, 4)
    x0, x1 = poses[:, 0, 0, 3] / poses[:, 0, 2, 3], poses[:, 1, 0, 3] / poses[:, 1, 2, 3]
    assert x0[0] < x1[0] and x0[-1] > x1[-1]  # they swap sides in the image
    assert np.all(np.diff(x0) > 0) and np.all(np.diff(x1) < 0)
    assert np.all(poses[:, 1, 2, 3] > poses[:, 0, 2, 3])  # head 1 always behind head 0


def test_static_pose_is_constant():
    cfg = SequenceConfig(kind="static", n_frames=5, static_yaw_deg=20.0)
    poses = trajectory_poses(cfg)
    np.testing.assert_allclose(poses, np.broadcast_to(poses[0], poses.shape))
    assert yaw_pitch_roll_deg_from_matrix(poses[0, 0, :3, :3])[0] == pytest.approx(20.0)


@needs_egl
def test_render_is_deterministic_and_boxes_contain_the_head_centre():
    cfg = SequenceConfig(kind="yaw_sweep", n_frames=9, max_yaw_deg=45.0, **SMALL)
    a, b = render_sequence(cfg), render_sequence(cfg)
    assert a.frames.shape == (9, 120, 160, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames[0], a.frames[2])  # the head moves
    other = render_sequence(SequenceConfig(kind="yaw_sweep", n_frames=9, max_yaw_deg=45.0, seed=1, **SMALL))
    assert not np.array_equal(a.frames[0], other.frames[0])
    np.testing.assert_allclose(a.stamps_s, np.arange(9) / cfg.fps)
    assert a.K[0, 0] == pytest.approx(80.0 / np.tan(np.radians(30.0)))
    for i in range(9):
        uvw = a.K @ a.poses_cam[i, 0, :3, 3]
        u, v = uvw[:2] / uvw[2]
        x0, y0, x1, y1 = a.boxes[i, 0]
        assert x0 < u < x1 and y0 < v < y1, (i, (u, v), a.boxes[i, 0])
        # the box lies on the rendered head: it is not the background colour there
        cx, cy = int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))
        corner = a.frames[i, 2, 2].astype(int)
        assert np.abs(a.frames[i, cy, cx].astype(int) - corner).sum() > 30
    # the face box is about 0.12 m wide at 0.8 m: f * 0.12 / 0.8 pixels, frontal frame
    width = a.boxes[0, 0, 2] - a.boxes[0, 0, 0]
    assert 0.7 * a.K[0, 0] * 0.12 / 0.8 < width < 1.4 * a.K[0, 0] * 0.12 / 0.8


@needs_egl
def test_two_heads_are_composited_by_depth():
    cfg = SequenceConfig(kind="crossing", n_frames=3, **SMALL)
    seq = render_sequence(cfg)
    assert seq.poses_cam.shape == (3, 2, 4, 4) and seq.boxes.shape == (3, 2, 4)
    # first frame: both faces visible side by side, head 0 (nearer) larger
    w0 = seq.boxes[0, 0, 2] - seq.boxes[0, 0, 0]
    w1 = seq.boxes[0, 1, 2] - seq.boxes[0, 1, 0]
    assert w0 > w1 * 1.2 and seq.boxes[0, 0, 2] < seq.boxes[0, 1, 0]
    # middle frame (s = 0.5): both heads on the optical axis, head 0 in front. Changing the
    # hidden far head must not change head 0's face; in the first frame it must show.
    other = render_sequence(SequenceConfig(kind="crossing", n_frames=3, second_identity=7, **SMALL))
    x0, y0, x1, y1 = seq.boxes[1, 0]
    mx, my = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    inner = (slice(int(y0 + my), int(y1 - my)), slice(int(x0 + mx), int(x1 - mx)))
    assert np.array_equal(seq.frames[1][inner], other.frames[1][inner])
    x0, y0, x1, y1 = seq.boxes[0, 1].astype(int)
    assert not np.array_equal(seq.frames[0, y0:y1, x0:x1], other.frames[0, y0:y1, x0:x1])


@needs_egl
def test_save_load_round_trip(tmp_path: Path):
    cfg = SequenceConfig(kind="crossing", n_frames=3, **SMALL)
    seq = render_sequence(cfg)
    path = save_sequence(seq, tmp_path / "seq")
    assert path.name == "sequence.json"
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == [
        "frame_0000.png", "frame_0001.png", "frame_0002.png", "sequence.json"]
    doc = json.loads(path.read_text())
    assert np.array(doc["poses_cam"]).shape == (3, 2, 4, 4) and doc["config"]["kind"] == "crossing"
    back = load_sequence(tmp_path / "seq")
    assert back.config == cfg
    assert np.array_equal(back.frames, seq.frames)  # PNG is lossless
    np.testing.assert_allclose(back.poses_cam, seq.poses_cam, atol=0)
    np.testing.assert_allclose(back.K, seq.K, atol=0)
    np.testing.assert_allclose(back.boxes, seq.boxes, atol=0)
    np.testing.assert_allclose(back.stamps_s, seq.stamps_s, atol=0)
    # saving a shorter sequence into the same folder leaves no stale frames behind
    short = dataclasses.replace(seq, frames=seq.frames[:2], poses_cam=seq.poses_cam[:2], boxes=seq.boxes[:2],
                                landmarks=seq.landmarks[:2], stamps_s=seq.stamps_s[:2],
                                yaw_pitch_roll_deg=seq.yaw_pitch_roll_deg[:2],
                                config=dataclasses.replace(cfg, n_frames=2))
    save_sequence(short, tmp_path / "seq")
    assert not (tmp_path / "seq" / "frame_0002.png").exists() and len(load_sequence(tmp_path / "seq")) == 2
    (tmp_path / "seq" / "frame_0001.png").unlink()
    with pytest.raises(FileNotFoundError):
        load_sequence(tmp_path / "seq")


@needs_egl
def test_cli_writes_a_sequence(tmp_path: Path):
    out = tmp_path / "cli"
    assert main(["--out", str(out), "--kind", "static", "--frames", "2", "--width", "96", "--height", "64",
                 "--mesh-level", "3", "--msaa", "0", "--quiet"]) == 0
    seq = load_sequence(out)
    assert seq.frames.shape == (2, 64, 96, 3) and seq.config.kind == "static"
    assert main(["--out", str(tmp_path / "bad"), "--frames", "1", "--quiet"]) == 2
    assert not (tmp_path / "bad").exists()


@needs_egl
def test_mtcnn_detects_the_frontal_head():
    try:
        from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector

        detector = MtcnnFaceDetector(MtcnnConfig(min_face_size=40))
    except ImportError as exc:  # facenet-pytorch / torch not installed
        pytest.skip(f"MTCNN unavailable: {exc}")

    seq = render_sequence(SequenceConfig(kind="yaw_sweep", n_frames=2))  # 640x480; frame 0 is frontal
    assert abs(seq.yaw_pitch_roll_deg[0, 0, 0]) < 1e-9
    detections = detector.detect(seq.frames[0])
    assert detections, "MTCNN found no face in the frontal frame"
    box = seq.boxes[0, 0]
    best = detections[0].box_xyxy
    inter = np.prod(np.clip(np.minimum(best[2:], box[2:]) - np.maximum(best[:2], box[:2]), 0, None))
    union = np.prod(best[2:] - best[:2]) + np.prod(box[2:] - box[:2]) - inter
    assert inter / union > 0.4
    assert 80.0 <= best[2] - best[0] <= 160.0  # face size chosen for the detector


def test_hold_first_frame_prepends_copies_of_frame_zero():
    from hpe_training.synth.sequence import SequenceConfig, hold_first_frame, render_sequence

    seq = render_sequence(SequenceConfig(kind="yaw_sweep", n_frames=4, width=160, height=120,
                                         mesh_level=3, msaa=0, seed=2))
    held = hold_first_frame(seq, 3)
    assert len(held) == 7
    for i in range(4):
        np.testing.assert_array_equal(held.frames[i], seq.frames[0])
        np.testing.assert_array_equal(held.poses_cam[i], seq.poses_cam[0])
    np.testing.assert_array_equal(held.frames[4:], seq.frames[1:])
    assert np.all(np.diff(held.stamps_s) > 0)
