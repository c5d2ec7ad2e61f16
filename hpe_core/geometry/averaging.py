"""Averaging of rotations (and rigid poses) with per-input disagreement.

Used when several anchors each give an estimate of the same query pose: the caller fuses the
estimates and reports how far each one lies from the fused result.

* ``chordal_mean_rotation``: weighted chordal L2 mean, the rotation closest in the Frobenius
  norm to ``sum_i w_i R_i`` (SVD projection with the determinant fixed to +1). Closed form,
  but an outlier pulls it in proportion to its weight.
* ``geodesic_median_rotation``: weighted geodesic L1 median on SO(3) by the Weiszfeld
  iteration of Hartley et al. (IJCV 2013), started from the chordal mean. Much less sensitive
  to a single wrong estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.geometry.rotations import geodesic_angle_deg, project_to_so3, so3_exp, so3_log

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RotationMean:
    """Result of a rotation average.

    Attributes:
        rotation: ``[3, 3]`` the fused rotation.
        residuals_deg: ``[N]`` geodesic angle (degrees) of each input from ``rotation``.
        iterations: iterations run (0 for closed-form means).
        converged: whether the tolerance was reached within the iteration cap.
    """

    rotation: FloatArray
    residuals_deg: FloatArray
    iterations: int
    converged: bool


@dataclass(frozen=True)
class PoseMean:
    """Result of a rigid-pose average.

    Attributes:
        transform: ``[4, 4]`` fused transform.
        rotation_residuals_deg: ``[N]`` geodesic angle (degrees) of each input rotation.
        translation_residuals: ``[N]`` Euclidean distance of each input translation (input units).
    """

    transform: FloatArray
    rotation_residuals_deg: FloatArray
    translation_residuals: FloatArray


def _check_inputs(rotations: ArrayLike, weights: Optional[ArrayLike]) -> tuple[FloatArray, FloatArray]:
    Rs = np.asarray(rotations, dtype=np.float64)
    if Rs.ndim != 3 or Rs.shape[1:] != (3, 3) or Rs.shape[0] == 0:
        raise ValueError(f"rotations must be [N, 3, 3] with N >= 1, got {Rs.shape}")
    if weights is None:
        w = np.ones(Rs.shape[0])
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape[0] != Rs.shape[0]:
            raise ValueError(f"weights must have length {Rs.shape[0]}, got {w.shape[0]}")
        if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
    return Rs, w / w.sum()


def chordal_mean_rotation(rotations: ArrayLike, weights: Optional[ArrayLike] = None) -> RotationMean:
    """Weighted chordal L2 mean of rotations.

    Args:
        rotations: ``[N, 3, 3]`` rotations (all in the same frames, e.g. ``R_cam_from_head``).
        weights: ``[N]`` non-negative weights (normalised here); ``None`` for equal weights.

    Returns:
        ``RotationMean`` with ``rotation = argmin_R sum_i w_i ||R - R_i||_F^2``.
    """
    Rs, w = _check_inputs(rotations, weights)
    R = project_to_so3(np.einsum("n,nij->ij", w, Rs))
    return RotationMean(R, geodesic_angle_deg(R[None], Rs), 0, True)


def geodesic_median_rotation(
    rotations: ArrayLike,
    weights: Optional[ArrayLike] = None,
    max_iterations: int = 100,
    tolerance_rad: float = 1e-10,
) -> RotationMean:
    """Weighted geodesic L1 median on SO(3) (Weiszfeld iteration).

    Minimises ``sum_i w_i d(R, R_i)`` with ``d`` the geodesic angle. Each step maps the inputs
    to the tangent space at the current estimate (``v_i = log(R^T R_i)``), takes the
    Weiszfeld step ``delta = sum(w_i v_i / |v_i|) / sum(w_i / |v_i|)`` and updates
    ``R <- R exp(delta)``. When the estimate sits on an input (``|v_i| <= 1e-9``) the
    Vardi-Zhang rule is used: it stops there if the other inputs' pull does not exceed that
    input's weight (the median is that input), else it takes a shortened step.

    Args:
        rotations: ``[N, 3, 3]`` rotations.
        weights: ``[N]`` non-negative weights; ``None`` for equal weights.
        max_iterations: iteration cap (>= 1).
        tolerance_rad: stop when the step angle falls below this (radians).

    Returns:
        ``RotationMean`` with the median, per-input residual angles (degrees), iterations run
        and convergence flag.
    """
    if max_iterations < 1:
        raise ValueError("max_iterations must be >= 1")
    Rs, w = _check_inputs(rotations, weights)
    # The heaviest input is the median when the others' pull there does not exceed its weight
    # (the Vardi-Zhang condition; always so when it outweighs all others together). Weiszfeld
    # creeps towards such a point slowly, so it is tested first.
    heaviest = int(np.argmax(w))
    v0 = so3_log(np.swapaxes(Rs[heaviest], -1, -2)[None] @ Rs)
    n0 = np.linalg.norm(v0, axis=-1)
    away = (n0 > 1e-9) & (w > 0)
    pull0 = np.linalg.norm((w[away, None] * v0[away] / n0[away, None]).sum(axis=0)) if np.any(away) else 0.0
    if pull0 <= w[~away].sum():
        R = Rs[heaviest].copy()
        return RotationMean(R, geodesic_angle_deg(R[None], Rs), 0, True)
    R = chordal_mean_rotation(Rs, w).rotation
    converged = False
    it = 0
    for it in range(1, max_iterations + 1):
        v = so3_log(np.swapaxes(R, -1, -2)[None] @ Rs)  # [N, 3] tangent at R
        n = np.linalg.norm(v, axis=-1)
        at = n <= 1e-9  # inputs the estimate sits on
        keep = ~at & (w > 0)
        if not np.any(keep):
            converged = True
            break
        inv = w[keep] / n[keep]
        delta = (inv[:, None] * v[keep]).sum(axis=0) / inv.sum()
        w_at = w[at].sum()
        if w_at > 0:
            # Vardi-Zhang: on an input point, stay if the pull of the others (norm of the sum
            # of their weighted unit directions) does not exceed that point's weight;
            # otherwise take a shortened Weiszfeld step.
            pull = np.linalg.norm((w[keep, None] * v[keep] / n[keep, None]).sum(axis=0))
            if pull <= w_at:
                converged = True
                break
            delta = (1.0 - w_at / pull) * delta
        R = project_to_so3(R @ so3_exp(delta))
        if np.linalg.norm(delta) < tolerance_rad:
            converged = True
            break
    return RotationMean(R, geodesic_angle_deg(R[None], Rs), it, converged)


def average_transforms(
    transforms: ArrayLike, weights: Optional[ArrayLike] = None, robust: bool = True,
    tolerance_rad: float = 1e-10,
) -> PoseMean:
    """Fuse several estimates of one rigid pose.

    Rotation: geodesic median (``robust=True``) or chordal mean. Translation: weighted
    geometric median (Weiszfeld in R^3, ``robust=True``) or weighted arithmetic mean.

    Args:
        transforms: ``[N, 4, 4]`` estimates of the same transform (e.g. ``T_cam_from_head``).
        weights: ``[N]`` non-negative weights; ``None`` for equal weights.
        robust: choose the median (True) or the mean (False) for both parts.
        tolerance_rad: stopping step of the rotation median (radians); per-frame callers can
            use a looser one (1e-6 rad is 6e-5 deg) for far fewer iterations.

    Returns:
        ``PoseMean`` with the fused ``[4, 4]`` transform and per-input residuals.
    """
    Ts = np.asarray(transforms, dtype=np.float64)
    if Ts.ndim != 3 or Ts.shape[1:] != (4, 4):
        raise ValueError(f"transforms must be [N, 4, 4], got {Ts.shape}")
    Rs, ts = Ts[:, :3, :3], Ts[:, :3, 3]
    _, w = _check_inputs(Rs, weights)
    rot = geodesic_median_rotation(Rs, w, tolerance_rad=tolerance_rad) if robust else chordal_mean_rotation(Rs, w)
    t = _geometric_median(ts, w) if robust else (w[:, None] * ts).sum(axis=0)
    T = np.eye(4)
    T[:3, :3] = rot.rotation
    T[:3, 3] = t
    return PoseMean(T, rot.residuals_deg, np.linalg.norm(ts - t, axis=-1))


def _geometric_median(points: FloatArray, w: FloatArray, max_iterations: int = 200, tol: float = 1e-12) -> FloatArray:
    """Weighted geometric median of ``[N, 3]`` points (Weiszfeld with the Vardi-Zhang rule,
    tested first at the heaviest point, which is the median when the others' pull there does
    not exceed its weight)."""
    heaviest = int(np.argmax(w))
    diff0 = points - points[heaviest]
    d0 = np.linalg.norm(diff0, axis=-1)
    away = (d0 > tol) & (w > 0)
    pull0 = np.linalg.norm((w[away, None] * diff0[away] / d0[away, None]).sum(axis=0)) if np.any(away) else 0.0
    if pull0 <= w[~away].sum():
        return points[heaviest].copy()
    x = (w[:, None] * points).sum(axis=0)
    for _ in range(max_iterations):
        diff = points - x
        d = np.linalg.norm(diff, axis=-1)
        at = d <= tol
        keep = ~at & (w > 0)
        if not np.any(keep):
            break
        inv = w[keep] / d[keep]
        x_new = (inv[:, None] * points[keep]).sum(axis=0) / inv.sum()
        w_at = w[at].sum()
        if w_at > 0:
            pull = np.linalg.norm((w[keep, None] * diff[keep] / d[keep, None]).sum(axis=0))
            if pull <= w_at:
                break
            x_new = x + (1.0 - w_at / pull) * (x_new - x)
        step = np.linalg.norm(x_new - x)
        x = x_new
        if step < tol:
            break
    return x
