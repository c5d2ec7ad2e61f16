"""hpe-eval: the BIWI reader on a BIWI-layout fixture our generator writes, the protocols, and
the whole benchmark with known answers.

Known answers come from a *truth estimator*: an estimator (the real interface) whose output is
computed from the generator's own RGB-camera poses (``fixture_truth.json``), never from the
BIWI files. The benchmark reads the files (depth-frame poses, two calibration files with a
non-trivial depth-to-RGB transform), crops with the real MTCNN, and composes through the
virtual crop cameras; only if every one of those conventions is right do its errors come out
zero (and exactly the injected bias for a biased estimator). The shipped model then runs the
same benchmark through the command line.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hpe_core.estimator.interface import RelativePoseEstimator
from hpe_core.geometry.rotations import geodesic_angle_deg, quat_xyzw_from_matrix
from hpe_core.geometry.transforms import invert_transform
from hpe_core.virtual_camera import head_pose_cam_to_virtual
from hpe_training.evaluation import protocols
from hpe_training.evaluation.biwi import BiwiFormatError, read_biwi, read_pose
from hpe_training.synth.render import egl_available

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    if not egl_available():
        pytest.skip("no headless EGL/OpenGL 3.3 (Mesa llvmpipe) here")
    from hpe_training.evaluation.biwi_fixture import FixtureConfig, write_fixture

    root = tmp_path_factory.mktemp("biwi")
    write_fixture(root, FixtureConfig(subjects=2, frames=16), progress=False)
    return root


def truth(root: Path) -> dict[str, np.ndarray]:
    data = json.loads((root / "fixture_truth.json").read_text())
    return {name: np.asarray(poses) for name, poses in data["subjects"].items()}


# ---------------------------------------------------------------------------------- reader
def test_reader_moves_depth_poses_to_the_rgb_camera(fixture_root):
    subjects = read_biwi(fixture_root)
    expected = truth(fixture_root)
    assert [s.name for s in subjects] == ["01", "02"]
    for s in subjects:
        assert len(s.frames) == 16 and s.frames[0].index == 3
        T_rgb = np.stack([f.T_rgb_from_head for f in s.frames])
        np.testing.assert_allclose(T_rgb, expected[s.name], atol=1e-6)
        # the file poses (depth camera) really differ from the RGB ones: the conversion matters
        T_depth = np.stack([f.T_depth_from_head for f in s.frames])
        gaps = geodesic_angle_deg(T_depth[:, :3, :3], T_rgb[:, :3, :3])
        assert np.all(gaps > 3.0)
        assert np.all(np.linalg.norm(T_depth[:, :3, 3] - T_rgb[:, :3, 3], axis=1) > 0.01)
        assert s.K_rgb[0, 0] > 500 and s.frames[0].load_image().shape == (480, 640, 3)


def test_reader_rejects_broken_files(fixture_root, tmp_path):
    pose = tmp_path / "frame_00001_pose.txt"
    pose.write_text("1 0 0\n0 1 0\n")
    with pytest.raises(BiwiFormatError, match="at least 3 lines"):
        read_pose(pose)
    pose.write_text("1 0 0\n0 2 0\n0 0 1\n\n1 2 3\n")
    with pytest.raises(BiwiFormatError, match="not a rotation"):
        read_pose(pose)
    pose.write_text("1 0 0\n0 1 0\n0 0 1\n\n")
    with pytest.raises(BiwiFormatError, match="centre"):
        read_pose(pose)
    subject = tmp_path / "01"
    subject.mkdir()
    (subject / "rgb.cal").write_text((fixture_root / "01" / "rgb.cal").read_text())
    with pytest.raises(BiwiFormatError, match="depth.cal"):
        read_biwi(tmp_path)
    with pytest.raises(FileNotFoundError, match="no subject folders"):
        read_biwi(tmp_path / "01")


# ---------------------------------------------------------------------------------- protocols
def _rotations_about_y(angles_deg) -> np.ndarray:
    return Rotation.from_euler("y", np.asarray(angles_deg, dtype=float).reshape(-1, 1), degrees=True).as_matrix()


def test_easy_hard_pick_frontal_anchors_and_extreme_queries():
    angles = [40, 2, -70, 10, 1, 75, -3, 20, 66, -25, 30, -80, 5, 50]
    pairs = protocols.easy_hard_pairs(_rotations_about_y(angles))
    anchors = {a for a, _ in pairs["hard"]}
    assert anchors == {1, 4, 6}  # |angle| 2, 1, 3
    assert {q for _, q in pairs["hard"]} == {11, 5, 2, 8, 13}  # 80, 75, 70, 66, 50
    assert {q for _, q in pairs["easy"]} == {12, 3, 7, 9, 10}  # 5, 10, 20, 25, 30
    assert len(pairs["easy"]) == len(pairs["hard"]) == 15
    with pytest.raises(ValueError, match="13 frames"):
        protocols.easy_hard_pairs(_rotations_about_y(angles[:12]))


def test_sampled_and_close_anchor_pairs():
    pairs = protocols.sampled_pairs(10, 40, seed=1)
    assert len(pairs) == len(set(pairs)) == 40 and all(a != q and 0 <= a < 10 and 0 <= q < 10 for a, q in pairs)
    assert len(protocols.sampled_pairs(4, 100, seed=1)) == 12
    R = _rotations_about_y([0, 3, 20, 24, 60, 60])  # the last two are the same pose
    close = protocols.close_anchor_pairs(R, 5.0)
    assert close == [(1, 0), (0, 1), (3, 2), (2, 3)]  # 60/60 are one pose repeated: not anchors
    np.testing.assert_allclose(protocols.gap_deg(R, close), [3, 3, 4, 4], atol=1e-9)


def test_pair_errors_match_hand_computed_values():
    R_true = _rotations_about_y([0, 30, -45])
    # estimates off by 10 deg of yaw (about camera y), and one by 20 deg of roll (camera z)
    R_est = _rotations_about_y([10, 40, -45]) @ np.stack([np.eye(3), np.eye(3),
                                                          Rotation.from_euler("z", 20, degrees=True).as_matrix()])
    errors = protocols.PairErrors.compute(R_est, R_true, np.array([5.0, 12.0, 50.0]))
    np.testing.assert_allclose(errors.ypr_error_deg[:2], [[10, 0, 0], [10, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(errors.geodesic_deg, [10, 10, 20], atol=1e-9)
    s = errors.summary()
    assert s["pairs"] == 3 and s["mean_gap_deg"] == pytest.approx(67 / 3)
    bins = errors.binned(errors.gap_deg, 5.0)
    assert [b["bin_deg"] for b in bins] == [[5.0, 10.0], [10.0, 15.0], [50.0, 55.0]]
    assert bins[0]["yaw"] == pytest.approx(10.0) and bins[0]["mae"] == pytest.approx(10 / 3)
    # wrap at 360: rolls of 179 and -179 deg differ by 2, not 358
    roll = Rotation.from_euler("z", [[179.0], [-179.0]], degrees=True).as_matrix()
    wrapped = protocols.PairErrors.compute(roll[:1], roll[1:], np.zeros(1))
    np.testing.assert_allclose(wrapped.ypr_error_deg, [[0.0, 0.0, 2.0]], atol=1e-9)


# ---------------------------------------------------------------------------------- benchmark
class TruthEstimator(RelativePoseEstimator):
    """The estimator interface answering from a table of crops -> (true pose, virtual rotation).

    Relative mode returns ``T_rel = T_q_virt inv(T_a_virt)`` (what a perfect network predicts),
    optionally left-multiplied by ``bias`` (a rotation in the query's virtual frame); absolute
    mode returns the query's own virtual-camera pose.
    """

    name = "truth"

    def __init__(self, table: dict[str, tuple[np.ndarray, np.ndarray]], size: int, absolute: bool = False,
                 bias: np.ndarray | None = None) -> None:
        self.keys = sorted(table)
        self.table = table
        self.size = size
        self.absolute = absolute
        self.bias = np.eye(3) if bias is None else bias

    input_size = property(lambda self: (self.size, self.size))
    device = property(lambda self: "cpu")
    precision = property(lambda self: "fp32")
    feature_key = property(lambda self: f"truth-{self.absolute}")

    @staticmethod
    def key(crop_uint8: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(crop_uint8).tobytes()).hexdigest()

    def _embed(self, images):
        crops = np.rint(images.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)
        return np.array([[[self.keys.index(self.key(c))]] for c in crops], dtype=np.float32)

    def _virtual_pose(self, token) -> np.ndarray:
        T_cam, R_virt = self.table[self.keys[int(np.asarray(token).reshape(-1)[0])]]
        return head_pose_cam_to_virtual(T_cam, R_virt)

    def _query_pose_encoding(self, anchor_tokens, query_tokens):
        T_q = self._virtual_pose(query_tokens[0])
        out = []
        for token in anchor_tokens:
            T = T_q if self.absolute else T_q @ invert_transform(self._virtual_pose(token))
            R = self.bias @ T[:3, :3]
            out.append(np.concatenate([T[:3, 3], quat_xyzw_from_matrix(R), [0.8, 0.8]]))
        return np.asarray(out)


class AlignedTruthEstimator(TruthEstimator):
    """:class:`TruthEstimator` on landmark-aligned crops, with its own absolute pose (the truth).

    Every crop must come with its :class:`~hpe_core.crop_camera.CropCamera`, the aligned crop's
    (checked against the table's virtual rotation), as the face mesh needs it. ``blind``: table
    keys of crops it "sees no face" in (``absolute_pose`` is None there), as the face mesh's
    kind reports it, to check that such pairs are counted and left out.
    """

    name = "aligned-truth"

    def __init__(self, table, size, blind: frozenset = frozenset(), kind: str = "vggt") -> None:
        super().__init__(table, size)
        self.blind = blind
        self.estimator_kind = kind

    crop_mode = property(lambda self: "aligned")
    feature_key = property(lambda self: "aligned-truth")

    def _check_camera(self, crop, camera) -> None:
        assert camera is not None, "the crop's camera was not passed"
        np.testing.assert_allclose(camera.virtual_from_cam, self.table[self.key(crop)][1], atol=1e-12)

    def embed_anchors(self, anchor_crops, cameras=None):
        assert cameras is not None and len(cameras) == len(anchor_crops)
        for crop, camera in zip(anchor_crops, cameras):
            self._check_camera(crop, camera)
        return super().embed_anchors(anchor_crops, cameras)

    def estimate(self, anchor_features, query_crop, camera=None):
        self._check_camera(query_crop, camera)
        return super().estimate(anchor_features, query_crop, camera)

    def absolute_pose(self, crop, camera=None):
        from hpe_core.estimator.interface import AbsolutePose

        self._check_camera(crop, camera)
        if self.key(crop) in self.blind:
            return None
        T_cam, R_virt = self.table[self.key(crop)]
        return AbsolutePose(head_pose_cam_to_virtual(T_cam, R_virt), residual=0.25)


@pytest.fixture(scope="module")
def crops(fixture_root):
    """The real MTCNN crops of every fixture frame, and the truth tables of the estimators:
    paper crops (``table``) and aligned crops (``aligned``), cut around the same faces."""
    from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector
    from hpe_training.evaluation.benchmark import biwi_subjects
    from hpe_training.evaluation.runner import FaceCropper

    boxes = json.loads((fixture_root / "fixture_truth.json").read_text())["boxes"]
    subjects = biwi_subjects(fixture_root, known_boxes=boxes)
    cropper = FaceCropper(MtcnnFaceDetector(MtcnnConfig(min_face_size=40)), 64)
    aligned_cropper = FaceCropper(None, 64, mode="aligned", finder=cropper.finder)
    expected = np.concatenate([truth(fixture_root)[s.name] for s in subjects])
    table, aligned, rolls = {}, {}, []
    frames = [f for s in subjects for f in s.frames]
    for k, frame in enumerate(frames):
        c = cropper.crop(k, frame)
        if c is not None:
            table[TruthEstimator.key(c.crop)] = (expected[k], c.R_virt_from_cam)
            a = aligned_cropper.crop(k, frame)
            aligned[TruthEstimator.key(a.crop)] = (expected[k], a.R_virt_from_cam)
            rolls.append(float(geodesic_angle_deg(a.R_virt_from_cam, c.R_virt_from_cam)))
    assert not cropper.skipped  # the known boxes fill MTCNN's misses
    # (each scan ends where it started: its first and last frames are the same image and pose)
    assert len(table) == len(aligned) == len(frames) - len(subjects)
    assert len(cropper.missed) < len(frames) / 2, f"MTCNN missed {cropper.missed}"
    # the aligned crops' virtual cameras really differ from the paper crops' (the levelled
    # roll): composing through the wrong one would show as an error
    assert max(rolls) > 5.0, rolls
    return subjects, cropper, table, aligned


def test_benchmark_with_a_perfect_estimator_has_zero_error(crops):
    from hpe_training.evaluation.benchmark import run_benchmark

    subjects, cropper, table, _ = crops
    result = run_benchmark(subjects, None, TruthEstimator(table, 64), TruthEstimator(table, 64, absolute=True),
                           progress=False, cropper=cropper)
    counts = result["protocol_pairs"]
    assert counts["full"] == 30 and counts["easy"] == counts["hard"] == 30 and counts["gap"] == 400
    for method in ("relative", "absolute"):
        report = result["methods"][method]
        for protocol in ("full", "easy", "hard", "gap_all"):
            assert report[protocol]["pairs"] == counts[protocol.split("_")[0]], (method, protocol)
            assert report[protocol]["geodesic_deg"] < 1e-3 and report[protocol]["mae"] < 1e-3, (method, protocol)
        assert sum(b["pairs"] for b in report["by_gap"]) == report["gap_all"]["pairs"]
    assert result["methods"]["relative"]["predicted_anchor"]["geodesic_deg"] < 1e-3
    hard = result["methods"]["relative"]["hard"]
    assert hard["mean_gap_deg"] > 45.0  # the scan reaches 70 deg of yaw


def test_benchmark_reports_an_injected_bias_exactly(crops):
    from hpe_training.evaluation.benchmark import run_benchmark

    subjects, cropper, table, _ = crops
    bias = Rotation.from_euler("y", 8.0, degrees=True).as_matrix()
    result = run_benchmark(subjects, None, TruthEstimator(table, 64, bias=bias), progress=False, cropper=cropper)
    for protocol in ("full", "easy", "hard", "gap_all"):
        assert result["methods"]["relative"][protocol]["geodesic_deg"] == pytest.approx(8.0, abs=1e-6)
    assert "absolute" not in result["methods"]


def test_benchmark_gives_each_estimator_its_crops_and_cameras(crops):
    from hpe_training.evaluation.benchmark import run_benchmark

    subjects, cropper, table, aligned = crops
    result = run_benchmark(subjects, None, {"paper": TruthEstimator(table, 64),
                                            "aligned": AlignedTruthEstimator(aligned, 64)},
                           progress=False, cropper=cropper)
    counts = result["protocol_pairs"]
    for method in ("paper", "aligned"):
        report = result["methods"][method]
        for protocol in ("full", "easy", "hard", "gap_all", "close_anchor"):
            key = {"gap_all": "gap", "close_anchor": "close"}.get(protocol, protocol)
            assert report[protocol]["pairs"] == counts[key], (method, protocol)
            assert report[protocol]["geodesic_deg"] < 1e-3 and report[protocol]["mae"] < 1e-3, (method, protocol)
        assert not any(report["pairs_without_face"].values())
    info = result["method_estimators"]
    assert info["paper"]["crop_mode"] == "paper" and info["aligned"]["crop_mode"] == "aligned"
    # the aligned oracle has its own absolute pose: the predicted anchors are its own (exact)
    assert info["aligned"]["predicted_anchor_from"] == "aligned"
    assert result["methods"]["aligned"]["predicted_anchor"]["pairs"] == counts["full"]
    assert result["methods"]["aligned"]["predicted_anchor"]["geodesic_deg"] < 1e-3
    assert "predicted_anchor" not in result["methods"]["paper"]  # no absolute pose anywhere
    assert result["frames_without_face"] == len(cropper.missed)  # one MTCNN pass shared by both


def test_per_pair_records_hold_what_an_error_model_needs(crops, fixture_root):
    from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
    from hpe_training.evaluation.benchmark import PAIR_COLUMNS, run_benchmark

    subjects, cropper, _, aligned = crops
    result = run_benchmark(subjects, None, {"aligned": AlignedTruthEstimator(aligned, 64)},
                           progress=False, cropper=cropper)
    records = result["pairs"]["aligned"]
    assert records["columns"] == list(PAIR_COLUMNS)
    rows = [dict(zip(records["columns"], r)) for r in records["rows"]]
    report = result["methods"]["aligned"]
    for protocol, summary in (("full", "full"), ("hard", "hard"), ("gap", "gap_all"), ("close", "close_anchor"),
                              ("predicted", "predicted_anchor")):
        assert sum(r["protocol"] == protocol for r in rows) == report[summary]["pairs"], protocol
    by_name = {s.name: s for s in subjects}
    boxes = json.loads((fixture_root / "fixture_truth.json").read_text())["boxes"]
    keys = {s.name: sum(len(t.frames) for t in subjects[:i]) for i, s in enumerate(subjects)}
    for r in rows:
        frames = by_name[r["subject"]].frames
        R_a, R_q = frames[r["anchor"]].T_cam_from_head[:3, :3], frames[r["query"]].T_cam_from_head[:3, :3]
        true_gap = float(geodesic_angle_deg(R_q @ R_a.T, np.eye(3)))
        assert r["true_gap_deg"] == pytest.approx(true_gap, abs=1e-3)
        assert r["error_deg"] < 2e-3 and r["pred_gap_deg"] == pytest.approx(true_gap, abs=3e-3)  # oracle
        assert r["query_abs_yaw_deg"] == pytest.approx(abs(yaw_pitch_roll_deg_from_matrix(R_q)[0]), abs=1e-3)
        assert r["residual"] is None  # VGGT-style output: no residual
        face = cropper.finder.found(keys[r["subject"]] + r["query"])
        assert r["query_box_detected"] == face.detected and r["query_box_px"] == pytest.approx(face.size_px, abs=1e-3)
        if not face.detected:  # the generator's box stood in: its size is the known one
            x0, y0, x1, y1 = boxes[r["subject"]][r["query"]]
            assert r["query_box_px"] == pytest.approx(max(x1 - x0, y1 - y0), abs=1e-3)
        assert 20.0 < r["anchor_box_px"] < 400.0
    assert max(r["true_gap_deg"] for r in rows) > 60.0


def test_pairs_an_estimator_sees_no_face_in_are_counted_and_left_out(crops):
    from hpe_training.evaluation.benchmark import run_benchmark
    from hpe_training.evaluation.runner import FaceCropper

    subjects, cropper, _, aligned = crops
    frames = [f for s in subjects for f in s.frames]
    aligned_cropper = FaceCropper(None, 64, mode="aligned", finder=cropper.finder)
    blind_frames = {3: ("01", 3), 20: ("02", 4)}  # frame keys (subjects end to end) -> (subject, frame)
    blind = frozenset(TruthEstimator.key(aligned_cropper.crop(k, frames[k]).crop) for k in blind_frames)
    # a kind whose absolute_pose is None exactly on the crops it sees no face in (the face mesh's)
    est = AlignedTruthEstimator(aligned, 64, blind=blind, kind="facemesh")
    result = run_benchmark(subjects, None, {"mesh": est}, progress=False, cropper=cropper)
    report, counts = result["methods"]["mesh"], result["protocol_pairs"]
    rows = [dict(zip(result["pairs"]["mesh"]["columns"], r)) for r in result["pairs"]["mesh"]["rows"]]
    seen = set(blind_frames.values())
    for protocol, summary in (("full", "full"), ("gap", "gap_all"), ("predicted", "predicted_anchor")):
        kept = [r for r in rows if r["protocol"] == protocol]
        assert not any((r["subject"], r["anchor"]) in seen or (r["subject"], r["query"]) in seen for r in kept)
        total = counts["full" if protocol == "predicted" else protocol]
        assert report[summary]["pairs"] + report["pairs_without_face"][protocol] == total, protocol
        assert report[summary]["geodesic_deg"] < 1e-3
    assert report["pairs_without_face"]["full"] == report["pairs_without_face"]["predicted"] == 2
    assert report["pairs_without_face"]["gap"] > 0
    assert {r["residual"] for r in rows} == {None}


def test_hpe_eval_biwi_with_the_shipped_model_writes_reports(fixture_root, tmp_path, capsys):
    from hpe_training.evaluation.cli import main

    out = tmp_path / "report"
    assert main(["biwi", "--root", str(fixture_root), "--out", str(out), "--gap-pairs", "10", "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())
    rel = result["methods"]["relative"]
    missed = result["frames_skipped"]  # real-data mode: frames without an MTCNN face are skipped
    assert missed == result["frames_without_face"] < 16
    assert 0 < rel["full"]["pairs"] <= 30 and 0 < rel["hard"]["pairs"] <= 30
    assert all(np.isfinite(rel[p]["mae"]) for p in ("full", "easy", "hard"))
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("method,protocol,bin_lo_deg") and any(",hard," in r for r in rows)
    for name in ("error_vs_gap.png", "error_vs_pose_close_anchor.png"):
        assert (out / name).stat().st_size > 5000
    assert "| relative | hard |" in capsys.readouterr().out
    assert main(["biwi", "--root", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    # --estimators vggt is the default 'relative' method under the estimator's name
    named = tmp_path / "named"
    assert main(["biwi", "--root", str(fixture_root), "--out", str(named), "--gap-pairs", "10", "--quiet",
                 "--estimators", "vggt"]) == 0
    again = json.loads((named / "results.json").read_text())
    assert list(again["methods"]) == ["vggt"] and again["methods"]["vggt"] == rel
    assert again["pairs"]["vggt"] == result["pairs"]["relative"]
    assert main(["biwi", "--root", str(fixture_root), "--out", str(named), "--no-relative",
                 "--absolute-model", str(tmp_path), "--estimators", "vggt"]) == 2


def test_hpe_eval_biwi_runs_the_face_mesh_end_to_end(fixture_root, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert", reason="the face mesh's runtime (ai-edge-litert) is not installed")
    from hpe_training.evaluation.cli import main

    out = tmp_path / "mesh"
    assert main(["biwi", "--root", str(fixture_root), "--out", str(out), "--estimators", "facemesh",
                 "--gap-pairs", "10", "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert list(result["methods"]) == ["facemesh"] and result["run"]["estimators"] == ["facemesh"]
    info = result["method_estimators"]["facemesh"]
    assert info["estimator"] == "facemesh" and info["crop_mode"] == "aligned" and info["input_size"] == 192
    assert info["predicted_anchor_from"] == "facemesh"  # its own absolute pose (canonical-face fit)
    mesh, counts = result["methods"]["facemesh"], result["protocol_pairs"]
    rows = [dict(zip(result["pairs"]["facemesh"]["columns"], r)) for r in result["pairs"]["facemesh"]["rows"]]
    for protocol, summary in (("full", "full"), ("easy", "easy"), ("hard", "hard"), ("gap", "gap_all"),
                              ("close", "close_anchor"), ("predicted", "predicted_anchor")):
        # real-data mode: pairs with a frame MTCNN missed are skipped; the rest are estimated or counted
        estimated, total = mesh[summary]["pairs"], counts["full" if protocol == "predicted" else protocol]
        assert estimated + mesh["pairs_without_face"][protocol] <= total
        assert sum(r["protocol"] == protocol for r in rows) == estimated
    assert mesh["full"]["pairs"] > 0 and np.isfinite(mesh["full"]["mae"]) and np.isfinite(mesh["gap_all"]["mae"])
    # the face mesh reports its fit residual (mm) for every relative estimate
    assert all(r["residual"] is not None and r["residual"] >= 0.0 for r in rows)
    assert all(np.isfinite(r["error_deg"]) and r["query_box_detected"] for r in rows)
    assert "| facemesh | full |" in capsys.readouterr().out


def test_hpe_eval_real_accepts_every_estimator_of_the_factory():
    from hpe_core.pipeline_factory import ESTIMATORS
    from hpe_training.evaluation.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["real", "--out", "o"]).estimators == ["facemesh", "vggt"]  # the default
    assert parser.parse_args(["real", "--out", "o", "--estimators", *sorted(ESTIMATORS)]).estimators == sorted(ESTIMATORS)
