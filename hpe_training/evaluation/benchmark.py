"""All protocols of :mod:`hpe_training.evaluation.protocols` for any number of relative methods
(each any :class:`~hpe_core.estimator.interface.PoseEstimator`, with the crops it asks for) and,
when given, an absolute baseline, on a list of subjects (BIWI or our rendered BIWI-layout set).

Result (JSON-ready)::

    {"frames": N, "frames_without_face": M, "frames_skipped": M0, "subjects": S,
     "protocol_pairs": {"full": P, ...},
     "methods": {"relative": {"full": {...}, "easy": {...}, "hard": {...},
                              "by_gap": [{"bin_deg": [0, 5], ...}, ...],
                              "close_anchor": {...}, "close_anchor_by_pose": [...],
                              "predicted_anchor": {...},      # needs an absolute pose
                              "pairs_without_face": {"full": n, ...}},
                 "absolute": {...the same protocols, each query evaluated alone...}},
     "method_estimators": {"relative": {"estimator": "vggt", "crop_mode": "paper", ...}, ...},
     "pairs": {"relative": {"columns": [...PAIR_COLUMNS], "rows": [[...], ...]}, ...}}

Method names are the caller's (``hpe-eval``: ``relative`` / ``absolute`` by default, the
estimator names with ``--estimators``). Each summary holds ``pairs``, ``yaw``, ``pitch``,
``roll``, ``mae`` and ``geodesic_deg`` (degrees). ``pairs_without_face`` counts per protocol
the pairs left out because the estimator saw no face in one of the crops (the face mesh;
:func:`~hpe_training.evaluation.runner.PairRunner.sees_face`) or gave a non-finite estimate;
pairs whose frame has no face box at all are in neither (``frames_skipped``). The absolute
method is scored on exactly the queries of each protocol's pairs, so its rows compare with the
relative ones pair for pair; its gap is the one of the pair it stands for (the absolute model
never sees that anchor).

``pairs``: one record per kept pair and protocol (:data:`PAIR_COLUMNS`, 3 decimals), what an
error model of the method is fitted on: the true gap and the predicted one
(``angle(R_q_est R_a^T)``, degrees), the face boxes' larger sides (pixels), the query's true
``|yaw|`` (degrees, BIWI convention), the estimator's residual (``RelativePose.residual``; null
when it has none) and the geodesic error (degrees); ``anchor`` / ``query`` are frame positions
inside ``subject``; ``query_box_detected``: MTCNN found the query's box (else the known box).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from hpe_core.crop import PAPER_MARGIN
from hpe_core.estimator.interface import PoseEstimator
from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_training.evaluation.protocols import (CLOSE_ANCHOR_DEG, GAP_BIN_DEG, POSE_BIN_DEG, PairErrors,
                                               close_anchor_pairs, easy_hard_pairs, full_pairs, gap_deg,
                                               sampled_pairs)
from hpe_training.evaluation.runner import (FaceCropper, FaceFinder, FrameInput, PairEstimate, PairRunner,
                                            has_absolute_pose)


@dataclass(frozen=True)
class EvalSubject:
    """A subject: its name and frames in time order (the first is the ``full`` protocol's anchor)."""

    name: str
    frames: tuple[FrameInput, ...]


#: The paper's BIWI crops are resized to 256 first, then bicubically to the 518 input.
PAPER_INTERMEDIATE_SIZE = 256


@dataclass(frozen=True)
class BenchmarkConfig:
    """``gap_pairs_per_subject``: sampled pairs per subject for the error-vs-gap curve;
    ``paper_resize``: for inputs larger than 256 px, resize crops to 256 first (the paper)."""

    gap_pairs_per_subject: int = 200
    seed: int = 0
    close_anchor_deg: float = CLOSE_ANCHOR_DEG
    paper_resize: bool = True


def _protocol_pairs(subjects: Sequence[EvalSubject], config: BenchmarkConfig) -> dict[str, list[tuple[int, int]]]:
    """Global-index pairs of every protocol (subjects laid end to end)."""
    out: dict[str, list[tuple[int, int]]] = {"full": [], "easy": [], "hard": [], "gap": [], "close": []}
    offset = 0
    for k, subject in enumerate(subjects):
        n = len(subject.frames)
        R = np.stack([f.T_cam_from_head[:3, :3] for f in subject.frames])

        def shift(pairs):
            return [(a + offset, q + offset) for a, q in pairs]

        out["full"] += shift(full_pairs(n))
        if n >= 13:
            eh = easy_hard_pairs(R)
            out["easy"] += shift(eh["easy"])
            out["hard"] += shift(eh["hard"])
        out["gap"] += shift(sampled_pairs(n, config.gap_pairs_per_subject, config.seed + k))
        out["close"] += shift(close_anchor_pairs(R, config.close_anchor_deg))
        offset += n
    return out


#: Columns of the per-pair records (``result["pairs"][method]["rows"]``), degrees and pixels;
#: ``protocol`` is ``full``, ``easy``, ``hard``, ``gap``, ``close`` or ``predicted`` (``full``
#: with predicted anchor poses).
PAIR_COLUMNS = ("protocol", "subject", "anchor", "query", "true_gap_deg", "pred_gap_deg", "query_box_px",
                "anchor_box_px", "query_abs_yaw_deg", "residual", "error_deg", "query_box_detected")


def _errors(frames: Sequence[FrameInput], estimates: Sequence[PairEstimate]) -> PairErrors:
    R_all = np.stack([f.T_cam_from_head[:3, :3] for f in frames])
    pairs = [(e.anchor, e.query) for e in estimates]
    R_est = np.stack([e.R_query for e in estimates]) if estimates else np.zeros((0, 3, 3))
    R_true = R_all[[q for _, q in pairs]] if pairs else np.zeros((0, 3, 3))
    return PairErrors.compute(R_est, R_true, gap_deg(R_all, pairs))


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or not np.isfinite(value) else round(float(value), 3)


def _pair_rows(protocol: str, frames: Sequence[FrameInput], names: Sequence[tuple[str, int]],
               runner: PairRunner, estimates: Sequence[PairEstimate], errors: PairErrors) -> list[list[Any]]:
    """Per-pair records (:data:`PAIR_COLUMNS`, rounded to 3 decimals) of one protocol.

    ``names``: per frame key ``(subject name, frame position in the subject)``. The predicted
    gap is ``angle(R_q_est R_a^T)`` with ``R_a`` the anchor rotation the estimate was composed
    with (for an absolute method, the true one), in the same camera frame as the true gap.
    """
    rows = []
    for e, true_gap, error in zip(estimates, errors.gap_deg, errors.geodesic_deg):
        R_true = frames[e.query].T_cam_from_head[:3, :3]
        pred_gap = float(geodesic_angle_deg(e.R_query @ e.R_anchor.T, np.eye(3)))
        yaw = float(yaw_pitch_roll_deg_from_matrix(R_true)[0])
        query_face = runner.crop(e.query).face
        anchor_face = runner.cropper.finder.found(e.anchor)  # an absolute method may never look at it
        anchor_box = None if anchor_face is None else _round(anchor_face.size_px)
        rows.append([protocol, names[e.query][0], names[e.anchor][1], names[e.query][1], _round(true_gap),
                     _round(pred_gap), _round(query_face.size_px), anchor_box, _round(abs(yaw)),
                     _round(e.residual), _round(error), bool(query_face.detected)])
    return rows


def _method_report(errors: dict[str, PairErrors], no_face: dict[str, int]) -> dict[str, Any]:
    report: dict[str, Any] = {name: errors[name].summary() for name in ("full", "easy", "hard")}
    report["by_gap"] = errors["gap"].binned(errors["gap"].gap_deg, GAP_BIN_DEG)
    report["gap_all"] = errors["gap"].summary()
    report["close_anchor"] = errors["close"].summary()
    report["close_anchor_by_pose"] = errors["close"].binned(errors["close"].query_angle_deg, POSE_BIN_DEG)
    if "predicted" in errors:
        report["predicted_anchor"] = errors["predicted"].summary()
    report["pairs_without_face"] = dict(no_face)
    return report


class _Croppers:
    """One :class:`FaceCropper` per crop kind, all sharing one :class:`FaceFinder`."""

    def __init__(self, finder: FaceFinder, given: Optional[FaceCropper], config: "BenchmarkConfig") -> None:
        self.finder = finder
        self.config = config
        self._by_spec = {} if given is None else {given.spec: given}

    def for_estimator(self, estimator: PoseEstimator) -> FaceCropper:
        size, mode = estimator.input_size[0], estimator.crop_mode
        intermediate = None
        if mode == "paper" and self.config.paper_resize and size > PAPER_INTERMEDIATE_SIZE:
            intermediate = PAPER_INTERMEDIATE_SIZE
        spec = (size, mode, PAPER_MARGIN, intermediate)
        if spec not in self._by_spec:
            self._by_spec[spec] = FaceCropper(None, size, PAPER_MARGIN, intermediate, mode, finder=self.finder)
        return self._by_spec[spec]


def _estimator_info(estimator: PoseEstimator, runner: PairRunner, role: str) -> dict[str, Any]:
    return {"estimator": estimator.estimator_kind, "describe": estimator.describe(), "role": role,
            "crop_mode": runner.cropper.mode, "input_size": runner.cropper.input_size}


def run_benchmark(subjects: Sequence[EvalSubject], detector,
                  relative: Union[PoseEstimator, Mapping[str, PoseEstimator], None] = None,
                  absolute: Optional[PoseEstimator] = None, config: BenchmarkConfig = BenchmarkConfig(),
                  progress: bool = True, cropper: Optional[FaceCropper] = None) -> dict[str, Any]:
    """Run every protocol for every method (module docstring).

    Args:
        subjects: the subjects; frame keys are positions with subjects laid end to end.
        detector: MTCNN (or any face detector) for the face boxes.
        relative: the relative methods: one :class:`PoseEstimator` (method ``relative``) or
            ``{method name: estimator}``; each gets the crops of its own ``crop_mode`` and size.
        absolute: the absolute baseline (method ``absolute``): a VGGT checkpoint trained in
            absolute mode (the query paired with itself), or an estimator with its own
            ``absolute_pose``.
        cropper: crops to reuse for the estimators of its kind (its face finder is then shared
            by all); default new croppers around one MTCNN :class:`FaceFinder` with ``detector``.

    ``predicted_anchor`` of a relative method uses its estimator's own absolute pose for the
    anchor when it has one (the face mesh), else the absolute baseline's, when given.
    """
    methods_in = {} if relative is None else (
        {"relative": relative} if isinstance(relative, PoseEstimator) else dict(relative))
    if not methods_in and absolute is None:
        raise ValueError("give a relative model, an absolute model, or both")
    if absolute is not None and "absolute" in methods_in:
        raise ValueError("the method name 'absolute' is the absolute baseline's")
    frames = [f for s in subjects for f in s.frames]
    names = [(s.name, i) for s in subjects for i in range(len(s.frames))]
    croppers = _Croppers(cropper.finder if cropper is not None else FaceFinder(detector), cropper, config)
    pairs = _protocol_pairs(subjects, config)
    baseline = None
    if absolute is not None:
        baseline = PairRunner(frames, croppers.for_estimator(absolute), absolute,
                              absolute_by_self_pair=not has_absolute_pose(absolute), progress=progress)
    methods: dict[str, Any] = {}
    records: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {}

    def anchor_from(runner: PairRunner) -> Callable[[int], Optional[np.ndarray]]:
        def pose(key: int) -> Optional[np.ndarray]:
            out = runner.absolute_pose(key)
            return None if out is None else out[0]
        return pose

    for name, estimator in methods_in.items():
        runner = PairRunner(frames, croppers.for_estimator(estimator), estimator, progress=progress)
        info[name] = _estimator_info(estimator, runner, "relative")
        errs, no_face, rows = {}, {}, []
        source = runner if runner.has_absolute else baseline
        runs = [(p, pairs[p], None) for p in ("full", "easy", "hard", "gap", "close")]
        if source is not None:
            runs.append(("predicted", pairs["full"], anchor_from(source)))
            info[name]["predicted_anchor_from"] = name if source is runner else "absolute"
        for protocol, plist, anchor_pose in runs:
            kept, no_face[protocol] = runner.run_relative(plist, anchor_pose, desc=f"{name} {protocol}")
            errs[protocol] = _errors(frames, kept)
            rows += _pair_rows(protocol, frames, names, runner, kept, errs[protocol])
        methods[name] = _method_report(errs, no_face)
        records[name] = {"columns": list(PAIR_COLUMNS), "rows": rows}
    if baseline is not None:
        info["absolute"] = _estimator_info(absolute, baseline, "absolute")
        errs, no_face, rows = {}, {}, []
        for protocol in ("full", "easy", "hard", "gap", "close"):
            kept, no_face[protocol] = baseline.run_absolute(pairs[protocol], desc=f"absolute {protocol}")
            errs[protocol] = _errors(frames, kept)
            rows += _pair_rows(protocol, frames, names, baseline, kept, errs[protocol])
        methods["absolute"] = _method_report(errs, no_face)
        records["absolute"] = {"columns": list(PAIR_COLUMNS), "rows": rows}
    return {"subjects": len(subjects), "frames": len(frames),
            "frames_without_face": len(croppers.finder.missed),
            "frames_skipped": len(croppers.finder.skipped),
            "protocol_pairs": {k: len(v) for k, v in pairs.items()}, "methods": methods,
            "method_estimators": info, "pairs": records}


def biwi_subjects(root, names: Optional[Sequence[str]] = None,
                  known_boxes: Optional[dict[str, Sequence[Sequence[float]]]] = None) -> list[EvalSubject]:
    """BIWI subjects as evaluation subjects (poses in the RGB camera, see :mod:`.biwi`).

    ``known_boxes``: per subject name, one face box per frame (frame order), used where MTCNN
    finds no face (our rendered sets only; real BIWI has none).
    """
    from hpe_training.evaluation.biwi import read_biwi

    out = []
    for s in read_biwi(root, names):
        boxes = (known_boxes or {}).get(s.name)
        if boxes is not None and len(boxes) != len(s.frames):
            raise ValueError(f"subject {s.name}: {len(boxes)} known boxes for {len(s.frames)} frames")
        out.append(EvalSubject(s.name, tuple(
            FrameInput(f.load_image, s.K_rgb, f.T_rgb_from_head,
                       None if boxes is None else np.asarray(boxes[i], dtype=np.float64))
            for i, f in enumerate(s.frames))))
    return out
