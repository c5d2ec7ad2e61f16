"""Weighted, robust rigid and similarity fits between 3-D point sets (Kabsch-Umeyama).

``dst ~ s R src + t`` with weights ``w``: the weighted centroids are removed, ``R`` comes from
the SVD of the weighted cross-covariance with its determinant forced to +1 (Kabsch), and, for a
similarity, ``s = trace(D S) / sum(w |src - mean|^2)`` (Umeyama 1991). :func:`robust_fit`
reweights iteratively (IRLS) with Cauchy weights ``1 / (1 + (r / c)^2)`` of the residuals, so
points the mesh got wrong (occluded, expressive) lose their pull.

Units are the caller's (metres here); rotations are proper (det +1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RigidFit:
    """``dst ~ scale * rotation @ src + translation``.

    Attributes:
        rotation: ``[3, 3]`` proper rotation.
        translation: ``[3]`` in the units of the points.
        scale: 1 for a rigid fit.
        rms: weighted RMS residual, units of the points.
        weights: ``[N]`` final weights (prior times robust), normalised to sum 1.
    """

    rotation: FloatArray
    translation: FloatArray
    scale: float
    rms: float
    weights: FloatArray


def weighted_fit(src: ArrayLike, dst: ArrayLike, weights: ArrayLike, with_scale: bool = False) -> RigidFit:
    """One weighted Kabsch (``with_scale``: Umeyama) fit of ``[N, 3]`` points onto ``[N, 3]``."""
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    w = np.clip(np.asarray(weights, dtype=np.float64).reshape(-1), 0.0, None)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or w.shape[0] != a.shape[0]:
        raise ValueError(f"src, dst must be [N, 3] and weights [N], got {a.shape}, {b.shape}, {w.shape}")
    total = w.sum()
    if not np.isfinite(total) or total <= 0 or np.count_nonzero(w) < 3:
        raise ValueError("a fit needs at least 3 points with positive weight")
    w = w / total
    mu_a, mu_b = w @ a, w @ b
    ca, cb = a - mu_a, b - mu_b
    cov = (cb * w[:, None]).T @ ca
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    scale = 1.0
    if with_scale:
        var_a = float(w @ np.sum(ca * ca, axis=1))
        scale = float(np.trace(np.diag(S) @ D) / var_a) if var_a > 0 else 1.0
    t = mu_b - scale * R @ mu_a
    r = np.linalg.norm(b - (scale * a @ R.T + t), axis=1)
    return RigidFit(R, t, scale, float(np.sqrt(w @ (r * r))), w)


def robust_fit(src: ArrayLike, dst: ArrayLike, prior_weights: ArrayLike, cauchy_scale: float,
               with_scale: bool = False, iterations: int = 6,
               reweight: Optional[Callable[[RigidFit], FloatArray]] = None) -> RigidFit:
    """IRLS fit: :func:`weighted_fit` reweighted by Cauchy weights of the residuals.

    Args:
        src, dst: ``[N, 3]`` corresponding points.
        prior_weights: ``[N]`` weights before robustness (e.g. expression and visibility).
        cauchy_scale: residual (units of the points) at which a point's weight halves.
        with_scale: fit a similarity instead of a rigid transform.
        iterations: reweighting rounds.
        reweight: optional callback giving new prior weights ``[N]`` from the current fit
            (e.g. visibility under the current rotation).

    Returns:
        The last fit; ``rms`` is the prior-weighted RMS residual of all points.
    """
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    prior = np.asarray(prior_weights, dtype=np.float64)
    fit = weighted_fit(a, b, prior, with_scale)
    for _ in range(iterations):
        if reweight is not None:
            prior = np.asarray(prior_weights, dtype=np.float64) * reweight(fit)
        r = np.linalg.norm(b - (fit.scale * a @ fit.rotation.T + fit.translation), axis=1)
        robust = 1.0 / (1.0 + (r / cauchy_scale) ** 2)
        fit = weighted_fit(a, b, prior * robust, with_scale)
    r = np.linalg.norm(b - (fit.scale * a @ fit.rotation.T + fit.translation), axis=1)
    p = prior / prior.sum()
    return RigidFit(fit.rotation, fit.translation, fit.scale, float(np.sqrt(p @ (r * r))), fit.weights)
