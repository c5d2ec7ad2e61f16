"""All protocols of :mod:`hpe_training.evaluation.protocols` for a relative model and, when
given, an absolute model, on a list of subjects (BIWI or our rendered BIWI-layout set).

Result (JSON-ready)::

    {"frames": N, "frames_without_face": M, "subjects": S,
     "methods": {"relative": {"full": {...}, "easy": {...}, "hard": {...},
                              "by_gap": [{"bin_deg": [0, 5], ...}, ...],
                              "close_anchor": {...}, "close_anchor_by_pose": [...],
                              "predicted_anchor": {...}},            # needs the absolute model
                 "absolute": {...the same protocols, each query evaluated alone...}}}

Each summary holds ``pairs``, ``yaw``, ``pitch``, ``roll``, ``mae`` and ``geodesic_deg``
(degrees). The absolute method is scored on exactly the queries of each protocol's pairs, so
its rows compare with the relative ones pair for pair; its gap is the one of the pair it stands
for (the absolute model never sees that anchor).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from hpe_training.evaluation.protocols import (CLOSE_ANCHOR_DEG, GAP_BIN_DEG, POSE_BIN_DEG, PairErrors,
                                               close_anchor_pairs, easy_hard_pairs, full_pairs, gap_deg,
                                               sampled_pairs)
from hpe_training.evaluation.runner import FaceCropper, FrameInput, PairRunner


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


def _errors(frames: Sequence[FrameInput], pairs: Sequence[tuple[int, int]], R_est: np.ndarray) -> PairErrors:
    R_all = np.stack([f.T_cam_from_head[:3, :3] for f in frames])
    R_true = R_all[[q for _, q in pairs]] if pairs else np.zeros((0, 3, 3))
    return PairErrors.compute(R_est, R_true, gap_deg(R_all, pairs))


def _method_report(errors: dict[str, PairErrors]) -> dict[str, Any]:
    report: dict[str, Any] = {name: errors[name].summary() for name in ("full", "easy", "hard")}
    report["by_gap"] = errors["gap"].binned(errors["gap"].gap_deg, GAP_BIN_DEG)
    report["gap_all"] = errors["gap"].summary()
    report["close_anchor"] = errors["close"].summary()
    report["close_anchor_by_pose"] = errors["close"].binned(errors["close"].query_angle_deg, POSE_BIN_DEG)
    if "predicted" in errors:
        report["predicted_anchor"] = errors["predicted"].summary()
    return report


def run_benchmark(subjects: Sequence[EvalSubject], detector, relative=None, absolute=None,
                  config: BenchmarkConfig = BenchmarkConfig(), progress: bool = True,
                  cropper: Optional[FaceCropper] = None) -> dict[str, Any]:
    """Run every protocol; ``relative`` / ``absolute`` are :class:`RelativePoseEstimator` or None.

    ``cropper``: the crops to use (keys = frame positions with subjects laid end to end);
    default a new MTCNN :class:`FaceCropper` with ``detector`` at the models' input size.
    """
    if relative is None and absolute is None:
        raise ValueError("give a relative model, an absolute model, or both")
    sizes = {m.input_size[0] for m in (relative, absolute) if m is not None}
    if len(sizes) != 1:
        raise ValueError(f"the relative and absolute models must share an input size, got {sorted(sizes)}")
    frames = [f for s in subjects for f in s.frames]
    size = sizes.pop()
    intermediate = PAPER_INTERMEDIATE_SIZE if config.paper_resize and size > PAPER_INTERMEDIATE_SIZE else None
    cropper = cropper if cropper is not None else FaceCropper(detector, size, intermediate_size=intermediate)
    runner = PairRunner(frames, cropper, relative, absolute, progress)
    pairs = _protocol_pairs(subjects, config)
    methods: dict[str, Any] = {}
    if relative is not None:
        errs = {}
        for name, plist in pairs.items():
            kept, R = runner.run_relative(plist, desc=f"relative {name}")
            errs[name] = _errors(frames, kept, R)
        if absolute is not None:
            kept, R = runner.run_relative(pairs["full"], anchor_from_absolute=True, desc="relative predicted anchor")
            errs["predicted"] = _errors(frames, kept, R)
        methods["relative"] = _method_report(errs)
    if absolute is not None:
        errs = {}
        for name, plist in pairs.items():
            kept_q, R_q = runner.run_absolute(sorted({q for _, q in plist}), desc=f"absolute {name}")
            by_query = dict(zip(kept_q, R_q))
            kept = [(a, q) for a, q in plist if q in by_query]
            R = np.stack([by_query[q] for _, q in kept]) if kept else np.zeros((0, 3, 3))
            errs[name] = _errors(frames, kept, R)
        methods["absolute"] = _method_report(errs)
    return {"subjects": len(subjects), "frames": len(frames),
            "frames_without_face": len(runner.cropper.missed),
            "frames_skipped": len(runner.cropper.skipped),
            "protocol_pairs": {k: len(v) for k, v in pairs.items()}, "methods": methods}


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
