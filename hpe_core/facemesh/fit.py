"""Weighted, robust rigid and similarity fits between 3-D point sets (Kabsch-Umeyama), batched.

``dst ~ s R src + t`` with weights ``w``: the weighted centroids are removed, ``R`` comes from
the SVD of the weighted cross-covariance with its determinant forced to +1 (Kabsch), and, for a
similarity, ``s = trace(D S) / sum(w |src - mean|^2)`` (Umeyama 1991). :func:`robust_fit`
reweights iteratively (IRLS) with Cauchy weights ``1 / (1 + (r / c)^2)`` of the residuals, so
points the mesh got wrong (occluded, expressive) lose their pull.

Every fit is computed for a batch of ``B`` independent point-set pairs at once
(:func:`weighted_fits`, :func:`robust_fits`: ``[B, N, 3]`` in, ``[B, ...]`` out), so a frame's
faces and their anchors cost one set of numpy calls; :func:`weighted_fit` and
:func:`robust_fit` are the single-pair forms (a batch of one).

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


@dataclass(frozen=True)
class RigidFits:
    """``B`` fits ``dst[b] ~ scale[b] * rotation[b] @ src[b] + translation[b]``.

    Attributes:
        rotation: ``[B, 3, 3]`` proper rotations.
        translation: ``[B, 3]`` in the units of the points.
        scale: ``[B]`` (ones for rigid fits).
        rms: ``[B]`` weighted RMS residuals, units of the points.
        weights: ``[B, N]`` final weights (prior times robust), each row normalised to sum 1.
    """

    rotation: FloatArray
    translation: FloatArray
    scale: FloatArray
    rms: FloatArray
    weights: FloatArray

    def __len__(self) -> int:
        return int(self.rotation.shape[0])

    def item(self, b: int) -> RigidFit:
        """Fit ``b`` of the batch."""
        return RigidFit(self.rotation[b], self.translation[b], float(self.scale[b]), float(self.rms[b]),
                        self.weights[b])

    def residuals(self, src: FloatArray, dst: FloatArray) -> FloatArray:
        """``[B, N]`` distances ``|dst - (s R src + t)|`` of every point."""
        moved = self.scale[:, None, None] * (src @ self.rotation.transpose(0, 2, 1)) + self.translation[:, None]
        return np.linalg.norm(dst - moved, axis=2)


def _check_batch(src: ArrayLike, dst: ArrayLike, weights: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3 or w.shape != a.shape[:2]:
        raise ValueError(f"src, dst must be [B, N, 3] and weights [B, N], got {a.shape}, {b.shape}, {w.shape}")
    return a, b, w


def weighted_fits(src: ArrayLike, dst: ArrayLike, weights: ArrayLike, with_scale: bool = False) -> RigidFits:
    """Weighted Kabsch (``with_scale``: Umeyama) fits of ``[B, N, 3]`` points onto ``[B, N, 3]``
    with ``[B, N]`` weights (negative weights count as 0).

    Raises:
        ValueError: a pair has fewer than 3 points with positive weight (or non-finite weights).
    """
    a, b, w = _check_batch(src, dst, weights)
    w = np.clip(w, 0.0, None)
    total = w.sum(axis=1)
    if not np.all(np.isfinite(total)) or np.any(total <= 0) or np.any(np.count_nonzero(w, axis=1) < 3):
        raise ValueError("a fit needs at least 3 points with positive weight")
    w = w / total[:, None]
    mu_a = (w[:, None, :] @ a)[:, 0]
    mu_b = (w[:, None, :] @ b)[:, 0]
    ca, cb = a - mu_a[:, None], b - mu_b[:, None]
    cov = (cb * w[:, :, None]).transpose(0, 2, 1) @ ca
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    d[d == 0] = 1.0
    D = np.ones((len(a), 3))
    D[:, 2] = d
    R = (U * D[:, None, :]) @ Vt
    scale = np.ones(len(a))
    if with_scale:
        var_a = np.sum(w * np.sum(ca * ca, axis=2), axis=1)
        positive = var_a > 0
        scale[positive] = np.sum(S * D, axis=1)[positive] / var_a[positive]
    t = mu_b - scale[:, None] * (R @ mu_a[:, :, None])[:, :, 0]
    fits = RigidFits(R, t, scale, np.zeros(len(a)), w)
    r = fits.residuals(a, b)
    return RigidFits(R, t, scale, np.sqrt(np.sum(w * r * r, axis=1)), w)


def robust_fits(src: ArrayLike, dst: ArrayLike, prior_weights: ArrayLike, cauchy_scale: float,
                with_scale: bool = False, iterations: int = 6,
                reweight: Optional[Callable[[RigidFits], FloatArray]] = None) -> RigidFits:
    """IRLS fits: :func:`weighted_fits` reweighted by Cauchy weights of the residuals.

    Args:
        src, dst: ``[B, N, 3]`` corresponding points.
        prior_weights: ``[B, N]`` weights before robustness (e.g. expression and visibility).
        cauchy_scale: residual (units of the points) at which a point's weight halves.
        with_scale: fit similarities instead of rigid transforms.
        iterations: reweighting rounds.
        reweight: optional callback giving new prior weights ``[B, N]`` from the current fits
            (e.g. visibility under the current rotations).

    Returns:
        The last fits; ``rms`` is each pair's prior-weighted RMS residual of all points.
    """
    a, b, prior0 = _check_batch(src, dst, prior_weights)
    prior = prior0
    fits = weighted_fits(a, b, prior, with_scale)
    for _ in range(iterations):
        if reweight is not None:
            prior = prior0 * np.asarray(reweight(fits), dtype=np.float64)
        r = fits.residuals(a, b)
        robust = 1.0 / (1.0 + (r / cauchy_scale) ** 2)
        fits = weighted_fits(a, b, prior * robust, with_scale)
    r = fits.residuals(a, b)
    p = prior / prior.sum(axis=1, keepdims=True)
    return RigidFits(fits.rotation, fits.translation, fits.scale, np.sqrt(np.sum(p * r * r, axis=1)), fits.weights)


def weighted_fit(src: ArrayLike, dst: ArrayLike, weights: ArrayLike, with_scale: bool = False) -> RigidFit:
    """One weighted Kabsch (``with_scale``: Umeyama) fit of ``[N, 3]`` points onto ``[N, 3]``."""
    a, b, w = _single(src, dst, weights)
    return weighted_fits(a, b, w, with_scale).item(0)


def robust_fit(src: ArrayLike, dst: ArrayLike, prior_weights: ArrayLike, cauchy_scale: float,
               with_scale: bool = False, iterations: int = 6,
               reweight: Optional[Callable[[RigidFit], FloatArray]] = None) -> RigidFit:
    """One IRLS fit of ``[N, 3]`` points (:func:`robust_fits` for a batch of one; ``reweight``
    takes and returns the single-pair forms)."""
    a, b, w = _single(src, dst, prior_weights)

    def batch_reweight(fits: RigidFits) -> FloatArray:
        return np.asarray(reweight(fits.item(0)), dtype=np.float64)[None]

    return robust_fits(a, b, w, cauchy_scale, with_scale, iterations,
                       batch_reweight if reweight is not None else None).item(0)


def _single(src: ArrayLike, dst: ArrayLike, weights: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or w.shape[0] != a.shape[0]:
        raise ValueError(f"src, dst must be [N, 3] and weights [N], got {a.shape}, {b.shape}, {w.shape}")
    return a[None], b[None], w[None]
