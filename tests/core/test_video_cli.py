"""hpe-video on an image folder (a rendered head turning) with the shipped default model."""
from __future__ import annotations

import csv

import cv2
import numpy as np

from hpe_core.video_cli import main
from hpe_training.synth.sequence import SequenceConfig, hold_first_frame, render_sequence


def test_hpe_video_writes_poses_and_annotated_video(tmp_path):
    seq = hold_first_frame(render_sequence(SequenceConfig(kind="yaw_sweep", n_frames=8, max_yaw_deg=30.0,
                                                          seed=5, msaa=0)), 3)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, rgb in enumerate(seq.frames):
        cv2.imwrite(str(frames / f"f{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert main([str(frames), "-o", str(out), "--backend", "torch", "--calibrate-first", "--annotate",
                 "--hfov", "60"]) == 0
    rows = list(csv.DictReader(open(out / "poses.csv")))
    assert len(rows) >= len(seq) - 3
    first = rows[0]
    # the first face is the calibrated anchor (facing the camera); its row is the model's
    # estimate of that same crop against itself, so near zero up to the model's error
    assert abs(float(first["yaw_deg"])) < 10.0 and first["source"] == "estimated"
    assert 0.3 < float(first["z_m"]) < 2.0
    q = np.array([float(first[k]) for k in ("qx", "qy", "qz", "qw")])
    assert abs(np.linalg.norm(q) - 1) < 1e-6
    assert (out / "annotated.mp4").stat().st_size > 1000 and (out / "poses.json").is_file()


def test_hpe_video_reports_missing_input(tmp_path, capsys):
    assert main([str(tmp_path / "nothing"), "-o", str(tmp_path / "o"), "--backend", "torch"]) == 1
    assert "hpe-video:" in capsys.readouterr().err


def test_hpe_video_on_a_photo_folder_where_the_face_moves(tmp_path):
    """Issue 16: photos of one person, the face at another place in each: poses from the first
    photo on, one track throughout (the real astronaut photo, the default face-mesh estimator)."""
    from skimage import data

    photo = data.astronaut()
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (x, y) in enumerate([(0, 0), (128, 0), (0, 40), (120, 30)]):
        canvas = np.zeros((560, 640, 3), np.uint8)
        canvas[y:y + 512, x:x + 512] = photo
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    assert main([str(folder), "-o", str(out)]) == 0
    with open(out / "poses.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["frame"]) for r in rows) == [0, 1, 2, 3]
    assert len({r["track_id"] for r in rows}) == 1
