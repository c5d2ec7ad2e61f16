"""Fuse the query poses implied by K anchors into one pose with a confidence.

For each anchor ``i`` the estimator predicts the query's pose relative to it, in virtual
frames: ``T_rel_i = T_q_virt @ inv(T_a_virt_i)``. Composing with the anchor's known pose gives
one estimate of the query pose per anchor, ``T_q_virt_i = T_rel_i @ T_a_virt_i``, converted to
the real camera with the query crop's ``R_virt_from_cam``. The estimates are fused robustly:
weighted geodesic L1 median of the rotations and weighted geometric median of the translations
(:func:`hpe_core.geometry.averaging.average_transforms`).

Weights (:meth:`ConsensusParams.weight`): an anchor counts more when it is trusted (quality),
when its own pose is certain (accumulated uncertainty ``U``) and when it is near the query
(rotation gap ``g``, since the relative error grows with the gap)::

    w = quality / (1 + (g / gap_scale)^2) / (1 + U / uncertainty_scale)

The gap is first the rotation angle of each predicted ``T_rel_i`` (the network's own gap),
then, after a coarse first fusion of the rotations, the gap between each anchor and that
estimate, and the pose is fused again with those weights (so a wrong ``T_rel`` that claims a
small gap does not keep a large weight). The reported ``gaps_deg`` are measured to the final
fused rotation.

Outputs for the caller:

* ``disagreement_deg``: weighted mean of the per-anchor rotation residuals from the fused
  rotation (0 with a single anchor: one anchor cannot disagree with itself).
* ``excess_disagreement_deg``: the same, counting for each anchor only the part of its residual
  beyond the error expected of it (its accumulated uncertainty plus the hop error at its gap).
  Far or uncertain anchors are expected to scatter; only scatter beyond that signals a wrong
  estimate (an outlier, a bad anchor).
* ``confidence`` in [0, 1]: ``exp(-excess_disagreement / disagreement_scale) *
  exp(-max(0, nearest_gap - gap_free) / gap_decay)``.
* ``accumulated_uncertainty_deg``: weighted mean over anchors of their expected error
  (anchor uncertainty + hop error at that gap) plus the excess disagreement. The hop error
  model ``hop_base + hop_slope * gap`` is a linear fit to the VGGT-HPE BIWI numbers (about
  0.96 deg at a 3.8 deg gap, 8.87 deg at about 70 deg: base 0.5 deg, slope 0.12 deg/deg).

With fitted error models (:class:`EstimateErrors`, :mod:`hpe_core.error_model`) the weights and
the expected error come from them instead: each estimate's expected error is
``e_i = sqrt(U_i^2 + hop_i^2)`` with ``hop_i`` its estimator's fitted model at its gap, the face's
size, the query's yaw and the estimator's own residual; the weight is ``quality / e_i^2``; the
pose's ``expected_error_deg`` is :func:`~hpe_core.error_model.combine_expected_errors` of the
``e_i`` (estimates of one estimator correlated, different estimators independent, grown by the
estimates' scatter beyond their expected errors) through the setting's head calibration; the
confidence is derived from it. Without error models (a model without an ``error_model.json``)
``expected_error_deg`` is ``accumulated_uncertainty_deg`` below and the confidence the
heuristic below.

An estimator may give several estimates per anchor (the fused estimator: one per estimator);
``anchors`` then repeats each anchor once per estimate.

Default scales: with a 5/30 deg disagreement/gap scale a keyframe at the default 15 deg
keyframe gap could hardly reach the default 0.7 keyframe confidence (exp(-10/30) = 0.72 before
any disagreement), so the defaults are 10 deg and 60 deg: a clean estimate 15 deg from its
nearest anchor scores 0.85, with 1 deg of excess disagreement 0.77, with 2 deg 0.69; 30 deg
from the nearest anchor scores at most 0.66.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.anchors.anchor import Anchor, check_rotation
from hpe_core.error_model import (HeadCalibration, HopErrorModel, combine_expected_errors,
                                  confidence_from_expected_error)
from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.averaging import average_transforms, geodesic_median_rotation
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import head_pose_virtual_to_cam

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ConsensusParams:
    """Scales (degrees) of the weighting, confidence and uncertainty model (module docstring).

    All must be finite and > 0, except ``gap_free_deg``, ``hop_base_deg`` and ``hop_slope``
    (>= 0); ``__post_init__`` raises ``ValueError`` otherwise.
    """

    gap_scale_deg: float = 10.0
    uncertainty_scale_deg: float = 5.0
    disagreement_scale_deg: float = 10.0
    gap_free_deg: float = 5.0
    gap_decay_deg: float = 60.0
    hop_base_deg: float = 0.5
    hop_slope: float = 0.12

    def __post_init__(self) -> None:
        for name in ("gap_scale_deg", "uncertainty_scale_deg", "disagreement_scale_deg", "gap_decay_deg"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"ConsensusParams.{name} must be a finite number > 0, got {v!r}")
        for name in ("gap_free_deg", "hop_base_deg", "hop_slope"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"ConsensusParams.{name} must be a finite number >= 0, got {v!r}")

    def weight(self, quality: ArrayLike, gap_deg: ArrayLike, uncertainty_deg: ArrayLike) -> FloatArray:
        """``[K]`` unnormalised fusion weights (see the module docstring)."""
        q = np.asarray(quality, dtype=np.float64)
        g = np.asarray(gap_deg, dtype=np.float64)
        u = np.asarray(uncertainty_deg, dtype=np.float64)
        return q / (1.0 + (g / self.gap_scale_deg) ** 2) / (1.0 + u / self.uncertainty_scale_deg)

    def confidence(self, disagreement_deg: float, nearest_gap_deg: float) -> float:
        """Confidence in [0, 1] from the anchors' (excess) disagreement and the nearest
        anchor's gap, both in degrees."""
        return float(
            math.exp(-max(0.0, disagreement_deg) / self.disagreement_scale_deg)
            * math.exp(-max(0.0, nearest_gap_deg - self.gap_free_deg) / self.gap_decay_deg)
        )

    def hop_error_deg(self, gap_deg: ArrayLike) -> FloatArray:
        """Expected rotation error (degrees) of one relative estimate at a gap (degrees)."""
        return self.hop_base_deg + self.hop_slope * np.asarray(gap_deg, dtype=np.float64)


@dataclass(frozen=True)
class EstimateErrors:
    """What the fusion needs to state the expected error of M estimates (module docstring).

    Attributes:
        hop_models: ``[M]`` the fitted model of the estimator that made each estimate.
        sources: ``[M]`` the estimator kind of each (estimates of one kind are correlated).
        face_px: the face box's longer side in the source image, pixels.
        residuals: ``[M]`` each estimate's own error signal (``RelativePose.residual``) or ``None``.
        head_calibration: the setting's :class:`HeadCalibration`, or ``None`` (raw combination).
    """

    hop_models: tuple[HopErrorModel, ...]
    sources: tuple[str, ...]
    face_px: float
    residuals: Optional[FloatArray] = None
    head_calibration: Optional[HeadCalibration] = None

    def hop_error_deg(self, gaps_deg: FloatArray, yaw_deg: FloatArray) -> FloatArray:
        """``[M]`` expected error of each estimate at its gap and query yaw (degrees)."""
        out = np.empty(len(self.hop_models))
        residuals = self.residuals if self.residuals is not None else np.full(len(out), np.nan)
        for model in dict.fromkeys(self.hop_models):
            idx = np.array([m == model for m in self.hop_models])
            out[idx] = model.expected_error_deg(np.asarray(gaps_deg)[idx], self.face_px,
                                                np.broadcast_to(yaw_deg, out.shape)[idx], residuals[idx])
        return out


def _yaw_deg(R_virt: FloatArray) -> FloatArray:
    """``[K]`` yaw (degrees, BIWI convention) of ``[K, 3, 3]`` head rotations in their virtual cameras."""
    return np.asarray(yaw_pitch_roll_deg_from_matrix(R_virt), dtype=np.float64).reshape(-1, 3)[:, 0]


@dataclass(frozen=True)
class FusedPose:
    """The query head pose fused over K anchors.

    Attributes:
        pose_cam: ``[4, 4]`` fused ``T_cam_from_head`` in the real camera optical frame (m).
        confidence: 0..1, see :meth:`ConsensusParams.confidence`.
        anchor_ids: ids of the K anchors used, in input order.
        nearest_anchor_id: the used anchor with the smallest gap to the fused rotation.
        nearest_gap_deg: that gap (degrees, in the virtual frames the estimator sees).
        gaps_deg: ``[K]`` gap of each anchor to the fused rotation (degrees).
        residuals_deg: ``[K]`` rotation angle of each anchor's estimate from the fused one.
        translation_residuals_m: ``[K]`` distance of each anchor's translation from the fused
            one (metres).
        weights: ``[K]`` normalised fusion weights (sum 1).
        disagreement_deg: weighted mean of ``residuals_deg`` (degrees).
        excess_disagreement_deg: weighted mean of the residuals beyond each estimate's expected
            error (anchor uncertainty + hop error at its gap), degrees; drives the confidence.
        accumulated_uncertainty_deg: expected rotation error of ``pose_cam`` (degrees).
        query_virtual_from_cam: ``[3, 3]`` the query crop's ``R_virt_from_cam``.
        per_anchor_poses_cam: ``[K, 4, 4]`` the query pose implied by each anchor (real
            camera frame), before fusion.
        expected_error_deg: the stated expected rotation error of ``pose_cam`` (degrees).
        estimate_expected_deg: ``[K]`` each estimate's expected error ``sqrt(U^2 + hop^2)``.
        sources: ``[K]`` the estimator kind of each estimate (``()`` when not known).
        query_yaw_deg: the fused pose's yaw in the query's virtual camera (degrees).
        raw_expected_error_deg: :func:`~hpe_core.error_model.combine_expected_errors` before
            the head calibration (``nan`` without error models).
        estimate_anchor_ids: ``[K]`` the anchor of each estimate (``anchor_ids`` holds each
            anchor once; with one estimate per anchor the two are equal).
    """

    pose_cam: FloatArray
    confidence: float
    anchor_ids: tuple[str, ...]
    nearest_anchor_id: str
    nearest_gap_deg: float
    gaps_deg: FloatArray
    residuals_deg: FloatArray
    translation_residuals_m: FloatArray
    weights: FloatArray
    disagreement_deg: float
    excess_disagreement_deg: float
    accumulated_uncertainty_deg: float
    query_virtual_from_cam: FloatArray
    per_anchor_poses_cam: FloatArray
    expected_error_deg: float = float("nan")
    estimate_expected_deg: Optional[FloatArray] = None
    sources: tuple[str, ...] = ()
    query_yaw_deg: float = float("nan")
    raw_expected_error_deg: float = float("nan")
    estimate_anchor_ids: tuple[str, ...] = ()

    @property
    def rotation_cam(self) -> FloatArray:
        """``[3, 3]`` fused ``R_cam_from_head``."""
        return self.pose_cam[:3, :3]

    @property
    def translation_m(self) -> FloatArray:
        """``[3]`` fused head position in the camera frame (metres)."""
        return self.pose_cam[:3, 3]


def _normalised(w: FloatArray) -> FloatArray:
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    total = w.sum()
    return w / total if total > 0 else np.full(w.shape, 1.0 / w.shape[0])


def fuse_relative_estimates(
    anchors: Sequence[Anchor],
    rel_rotations: ArrayLike,
    rel_translations: ArrayLike,
    query_virtual_from_cam: Optional[ArrayLike] = None,
    params: ConsensusParams = ConsensusParams(),
    errors: Optional[EstimateErrors] = None,
) -> FusedPose:
    """Compose each relative estimate with its anchor and fuse them (module docstring).

    Args:
        anchors: the K anchors the estimator was run with, in the same order.
        rel_rotations: ``[K, 3, 3]`` rotations of ``T_rel_i`` (virtual frames), e.g.
            ``RelativePose.rotation``.
        rel_translations: ``[K, 3]`` translations of ``T_rel_i`` in metres, e.g.
            ``RelativePose.translation``.
        query_virtual_from_cam: ``[3, 3]`` ``R_virt_from_cam`` of the query crop; identity
            when ``None`` (crop centred on the optical axis).
        params: weighting and confidence scales (used without ``errors``).
        errors: fitted error models of the K estimates (module docstring), or ``None``.

    Returns:
        :class:`FusedPose`.
    """
    k = len(anchors)
    if k == 0:
        raise ValueError("fuse_relative_estimates needs at least one anchor")
    R_rel = np.asarray(rel_rotations, dtype=np.float64)
    t_rel = np.asarray(rel_translations, dtype=np.float64)
    if R_rel.shape != (k, 3, 3) or t_rel.shape != (k, 3):
        raise ValueError(f"expected rel_rotations [{k}, 3, 3] and rel_translations [{k}, 3], got {R_rel.shape} and {t_rel.shape}")
    if not (np.all(np.isfinite(R_rel)) and np.all(np.isfinite(t_rel))):
        raise ValueError("relative estimates must be finite")
    R_vq = np.eye(3) if query_virtual_from_cam is None else check_rotation(query_virtual_from_cam, "query_virtual_from_cam")

    T_anchor_virt = np.stack([a.pose_virtual for a in anchors])  # [K, 4, 4]
    T_query_virt = make_transform(R_rel, t_rel) @ T_anchor_virt  # [K, 4, 4]
    T_query_cam = head_pose_virtual_to_cam(T_query_virt, R_vq)  # [K, 4, 4]

    quality = np.array([a.quality for a in anchors])
    uncertainty = np.array([a.accumulated_uncertainty_deg for a in anchors])
    R_anchor_virt = T_anchor_virt[:, :3, :3]
    if errors is not None and len(errors.hop_models) != k:
        raise ValueError(f"errors describe {len(errors.hop_models)} estimates, not {k}")

    def expected_of(gaps_deg: FloatArray, yaw_deg: FloatArray) -> FloatArray:
        if errors is None:
            return uncertainty + params.hop_error_deg(gaps_deg)
        return np.sqrt(uncertainty ** 2 + errors.hop_error_deg(gaps_deg, yaw_deg) ** 2)

    def weights_of(gaps_deg: FloatArray, yaw_deg: FloatArray) -> FloatArray:
        if errors is None:
            return _normalised(params.weight(quality, gaps_deg, uncertainty))
        return _normalised(quality / np.maximum(expected_of(gaps_deg, yaw_deg), 1e-6) ** 2)

    # Pass 1: gaps as predicted by the network (angle of each T_rel); a coarse robust
    # rotation median is enough to re-measure the gaps.
    gaps = np.asarray(geodesic_angle_deg(R_rel, np.eye(3)[None]), dtype=np.float64)
    weights = weights_of(gaps, _yaw_deg(T_query_virt[:, :3, :3]))
    coarse = geodesic_median_rotation(T_query_cam[:, :3, :3], weights, max_iterations=20, tolerance_rad=1e-5)
    # Pass 2: gaps between each anchor and that estimate; final robust fusion.
    R_coarse_virt = R_vq @ coarse.rotation
    gaps = np.asarray(geodesic_angle_deg(R_anchor_virt, R_coarse_virt[None]), dtype=np.float64)
    weights = weights_of(gaps, _yaw_deg(R_coarse_virt[None]))
    fused = average_transforms(T_query_cam, weights, robust=True, tolerance_rad=1e-6)
    R_fused_virt = R_vq @ fused.transform[:3, :3]
    gaps = np.asarray(geodesic_angle_deg(R_anchor_virt, R_fused_virt[None]), dtype=np.float64)
    query_yaw = float(_yaw_deg(R_fused_virt[None])[0])

    residuals = np.asarray(fused.rotation_residuals_deg, dtype=np.float64)
    expected = expected_of(gaps, np.full(k, query_yaw))  # [K] expected error of each estimate
    disagreement = float(np.sum(weights * residuals)) if k > 1 else 0.0
    excess = float(np.sum(weights * np.maximum(0.0, residuals - expected))) if k > 1 else 0.0
    nearest = int(np.argmin(gaps))
    nearest_gap = float(gaps[nearest])
    if errors is None:
        raw = float("nan")
        stated = float(np.sum(weights * expected)) + excess
    else:
        raw = combine_expected_errors(expected, errors.sources, weights, residuals)
        stated = errors.head_calibration(raw) if errors.head_calibration is not None else raw
    uncertainty_out = stated
    return FusedPose(
        pose_cam=fused.transform,
        confidence=(params.confidence(excess, nearest_gap) if errors is None
                    else confidence_from_expected_error(stated)),
        anchor_ids=tuple(dict.fromkeys(a.anchor_id for a in anchors)),
        nearest_anchor_id=anchors[nearest].anchor_id,
        nearest_gap_deg=nearest_gap,
        gaps_deg=gaps,
        residuals_deg=residuals,
        translation_residuals_m=np.asarray(fused.translation_residuals, dtype=np.float64),
        weights=weights,
        disagreement_deg=disagreement,
        excess_disagreement_deg=excess,
        accumulated_uncertainty_deg=uncertainty_out,
        query_virtual_from_cam=R_vq.copy(),
        per_anchor_poses_cam=T_query_cam,
        expected_error_deg=float(stated),
        estimate_expected_deg=expected,
        sources=tuple(errors.sources) if errors is not None else (),
        query_yaw_deg=query_yaw,
        raw_expected_error_deg=raw,
        estimate_anchor_ids=tuple(a.anchor_id for a in anchors),
    )
