"""The VGGT-HPE evaluation protocols as pair lists, and their error statistics (pure numpy).

A *subject* is a sequence of frames of one person with known head rotations ``R_cam_from_head``
(``[N, 3, 3]``, the camera's OpenCV optical frame). A protocol picks (anchor, query) frame
index pairs inside each subject (VGGT-HPE paper, Sec. 4, and ``../shared/notes/vggt-hpe-facts.md``):

* ``full``: the subject's first frame is the anchor, every other frame a query;
* ``easy`` / ``hard``: the 3 frames closest to the identity rotation are anchors; hard queries
  are the 5 frames farthest from the identity, easy queries the next 5 most frontal frames
  after the anchors (3 x 5 pairs of each per subject; 360 on BIWI's 24 subjects);
* ``gap``: pairs sampled inside each subject, for the error as a function of the anchor-query
  rotation gap in 5-degree bins;
* ``close``: every query with its nearest other frame as anchor when that is within 5 degrees,
  for the error as a function of the query's own angle from frontal.

Errors follow the BIWI / FSA-Net / 6DRepNet convention: absolute yaw, pitch and roll
differences in degrees with wrap at 360 (:mod:`hpe_core.geometry.euler`), MAE = their mean;
the geodesic angle is reported beside them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray

from hpe_core.geometry.euler import angle_error_deg, yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.rotations import geodesic_angle_deg

FloatArray = NDArray[np.float64]
Pair = tuple[int, int]

EASY_HARD_ANCHORS = 3
EASY_HARD_QUERIES = 5
GAP_BIN_DEG = 5.0
CLOSE_ANCHOR_DEG = 5.0
POSE_BIN_DEG = 10.0


def angle_from_identity_deg(rotations: FloatArray) -> FloatArray:
    """``[N]`` geodesic angle of each ``[N, 3, 3]`` rotation from the identity (frontal), degrees."""
    return np.asarray(geodesic_angle_deg(rotations, np.eye(3)), dtype=np.float64).reshape(-1)


def gap_deg(rotations: FloatArray, pairs: Sequence[Pair]) -> FloatArray:
    """``[P]`` anchor-query rotation gaps ``angle(R_q R_a^T)`` of index pairs, degrees."""
    if not pairs:
        return np.zeros(0)
    a = rotations[[p[0] for p in pairs]]
    q = rotations[[p[1] for p in pairs]]
    return np.asarray(geodesic_angle_deg(q @ np.swapaxes(a, -1, -2), np.eye(3)), dtype=np.float64).reshape(-1)


def full_pairs(n_frames: int) -> list[Pair]:
    """First frame as anchor, each later frame a query."""
    return [(0, q) for q in range(1, n_frames)]


def easy_hard_pairs(rotations: FloatArray) -> dict[str, list[Pair]]:
    """``{"easy": [...], "hard": [...]}`` pairs of one subject (module docstring).

    Raises ``ValueError`` when the subject has fewer than 13 frames (3 anchors, 5 + 5 queries).
    """
    n = len(rotations)
    need = EASY_HARD_ANCHORS + 2 * EASY_HARD_QUERIES
    if n < need:
        raise ValueError(f"easy/hard protocol needs >= {need} frames per subject, got {n}")
    order = np.argsort(angle_from_identity_deg(rotations), kind="stable")  # most frontal first
    anchors = [int(i) for i in order[:EASY_HARD_ANCHORS]]
    easy = [int(i) for i in order[EASY_HARD_ANCHORS:EASY_HARD_ANCHORS + EASY_HARD_QUERIES]]
    hard = [int(i) for i in order[::-1][:EASY_HARD_QUERIES]]
    return {"easy": [(a, q) for a in anchors for q in easy], "hard": [(a, q) for a in anchors for q in hard]}


def sampled_pairs(n_frames: int, n_pairs: int, seed: int) -> list[Pair]:
    """Up to ``n_pairs`` distinct ordered pairs ``(a, q)``, ``a != q``, drawn without replacement."""
    total = n_frames * (n_frames - 1)
    if n_pairs >= total:
        return [(a, q) for a in range(n_frames) for q in range(n_frames) if a != q]
    rng = np.random.default_rng(seed)
    picks = rng.choice(total, size=n_pairs, replace=False)
    out = []
    for k in sorted(int(p) for p in picks):
        a, r = divmod(k, n_frames - 1)
        out.append((a, r if r < a else r + 1))
    return out


def close_anchor_pairs(rotations: FloatArray, max_gap_deg: float = CLOSE_ANCHOR_DEG) -> list[Pair]:
    """Each query with its nearest *other* frame as anchor, kept when within ``max_gap_deg``.

    Frames whose rotation is identical to the query's (a repeated frame) are skipped as anchors,
    so that a query is never its own anchor in disguise.
    """
    n = len(rotations)
    if n < 2:
        return []
    cos = (np.einsum("iab,jab->ij", rotations, rotations) - 1.0) / 2.0
    gaps = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    np.fill_diagonal(gaps, np.inf)
    gaps[gaps < 1e-6] = np.inf
    out = []
    for q in range(n):
        a = int(np.argmin(gaps[q]))
        if gaps[q, a] <= max_gap_deg:
            out.append((a, q))
    return out


@dataclass(frozen=True)
class PairErrors:
    """Per-pair errors of one protocol.

    Attributes:
        gap_deg: ``[P]`` true anchor-query gaps (NaN for absolute methods' query-only rows).
        query_angle_deg: ``[P]`` the query's true angle from frontal.
        ypr_error_deg: ``[P, 3]`` absolute yaw, pitch, roll errors (wrapped).
        geodesic_deg: ``[P]`` angle between estimated and true query rotations.
    """

    gap_deg: FloatArray
    query_angle_deg: FloatArray
    ypr_error_deg: FloatArray
    geodesic_deg: FloatArray

    @classmethod
    def compute(cls, R_est: FloatArray, R_true: FloatArray, gaps: FloatArray) -> "PairErrors":
        """Errors of ``[P, 3, 3]`` estimates against ``[P, 3, 3]`` truths."""
        R_est = np.asarray(R_est, dtype=np.float64).reshape(-1, 3, 3)
        R_true = np.asarray(R_true, dtype=np.float64).reshape(-1, 3, 3)
        if len(R_est) == 0:
            z = np.zeros(0)
            return cls(z, z, np.zeros((0, 3)), z)
        ypr = angle_error_deg(yaw_pitch_roll_deg_from_matrix(R_est), yaw_pitch_roll_deg_from_matrix(R_true))
        geo = np.asarray(geodesic_angle_deg(R_est, R_true), dtype=np.float64).reshape(-1)
        return cls(np.asarray(gaps, dtype=np.float64).reshape(-1), angle_from_identity_deg(R_true),
                   np.asarray(ypr, dtype=np.float64).reshape(-1, 3), geo)

    @classmethod
    def concatenate(cls, parts: Sequence["PairErrors"]) -> "PairErrors":
        if not parts:
            return cls.compute(np.zeros((0, 3, 3)), np.zeros((0, 3, 3)), np.zeros(0))
        return cls(np.concatenate([p.gap_deg for p in parts]), np.concatenate([p.query_angle_deg for p in parts]),
                   np.concatenate([p.ypr_error_deg for p in parts]), np.concatenate([p.geodesic_deg for p in parts]))

    def __len__(self) -> int:
        return int(self.geodesic_deg.shape[0])

    def summary(self, mask: NDArray[np.bool_] | None = None) -> dict[str, Any]:
        """``{"pairs", "yaw", "pitch", "roll", "mae", "geodesic_deg", "mean_gap_deg"}`` (degrees)."""
        m = np.ones(len(self), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if not m.any():
            return {"pairs": 0}
        e = self.ypr_error_deg[m]
        gaps = self.gap_deg[m]
        return {"pairs": int(m.sum()), "yaw": float(e[:, 0].mean()), "pitch": float(e[:, 1].mean()),
                "roll": float(e[:, 2].mean()), "mae": float(e.mean()),
                "geodesic_deg": float(self.geodesic_deg[m].mean()),
                "mean_gap_deg": float(np.nanmean(gaps)) if np.isfinite(gaps).any() else None}

    def binned(self, values: FloatArray, width: float) -> list[dict[str, Any]]:
        """Summaries per ``[k w, (k+1) w)`` bin of ``values`` (non-empty bins only)."""
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            return []
        out = []
        for k in range(int(np.floor(values[finite].max() / width)) + 1):
            lo, hi = k * width, (k + 1) * width
            mask = finite & (values >= lo) & (values < hi)
            if mask.any():
                out.append({"bin_deg": [lo, hi], **self.summary(mask)})
        return out
