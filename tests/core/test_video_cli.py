"""hpe-video on an image folder (a rendered head turning) with the shipped default model."""
from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_core.pipeline import FrameResult, HeadEstimate
from hpe_core.video_cli import CSV_FIELDS, head_rows, main, write_rows
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
    # the expected error: degrees >= 0, or unknown (empty in the CSV, null in the JSON)
    records = json.loads((out / "poses.json").read_text())
    assert len(records) == len(rows)
    for row, record in zip(rows, records):
        assert (row["expected_error_deg"] == "") == (record["expected_error_deg"] is None)
        if record["expected_error_deg"] is not None:
            assert float(row["expected_error_deg"]) == record["expected_error_deg"] >= 0.0


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


def _posed_head(track_id: int, expected_error_deg: float) -> HeadEstimate:
    T = np.eye(4)
    T[:3, 3] = [0.1 * track_id, 0.0, 0.8]
    return HeadEstimate(track_id=track_id, person=f"person_{track_id}", box_xyxy=np.array([10.0, 10.0, 60.0, 70.0]),
                        pose_cam=T, confidence=0.7, anchor_ids=("a1",), nearest_gap_deg=3.0,
                        yaw_pitch_roll_deg=yaw_pitch_roll_deg_from_matrix(T[:3, :3]), facing_camera=True,
                        facing_angle_deg=7.0, keyframe_added=None, source="estimated",
                        expected_error_deg=expected_error_deg)


def test_rows_carry_the_expected_error_and_unknown_is_empty(tmp_path):
    result = FrameResult(heads=(_posed_head(1, 3.5), _posed_head(2, float("nan"))), detector_ran=True,
                         intrinsics=np.eye(3), timings_ms={"total": 1.0})
    rows = head_rows(0, 0.0, result)
    assert [r["expected_error_deg"] for r in rows] == [3.5, None]
    write_rows(rows, tmp_path)
    with open(tmp_path / "poses.csv") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_FIELDS and "expected_error_deg" in CSV_FIELDS
        assert [r["expected_error_deg"] for r in reader] == ["3.5", ""]
    records = json.loads((tmp_path / "poses.json").read_text())  # strict JSON: no NaN token
    assert [r["expected_error_deg"] for r in records] == [3.5, None]
    assert not any(isinstance(v, float) and math.isnan(v) for r in records for v in r.values())


def test_estimator_choices_are_the_factorys(capsys):
    from hpe_core.pipeline_factory import ESTIMATORS

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--estimator {" + ",".join(sorted(ESTIMATORS)) + "}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["input", "--estimator", "no_such_estimator"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
