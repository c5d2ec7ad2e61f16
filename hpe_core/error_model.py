"""Expected rotation errors: fitted per estimator, combined per head, calibrated on held-out data.

Two fitted layers, both written by ``hpe-eval errors`` (:mod:`hpe_training.evaluation.error_fit`)
from data with truth (rendered heads of held-out identities and real photos whose poses are
exact: rolls, mirrors and rescales of labelled photos):

* a :class:`HopErrorModel` per estimator (``facemesh``, ``vggt``): the expected rotation error,
  in degrees, of one relative estimate composed with a perfect anchor, as a function of what the
  estimator can see::

      E[err | x] = exp(c . x),  x = [1, log1p(gap), log(face_px / 100), |yaw| / 45, log1p(residual)]

  ``gap``: rotation gap between anchor and query (degrees, virtual frames; the fusion measures it
  to its fused estimate); ``face_px``: the face box's longer side in the source image (pixels);
  ``yaw``: the query's yaw in its virtual camera (degrees; from the estimate itself);
  ``residual``: the estimator's own error signal (the face mesh's weighted RMS fit residual in
  millimetres; VGGT has none and its model has no residual term). Fitted as a log-linear mean
  (quasi-Poisson regression, :func:`fit_log_linear_mean`), so it states a mean error, not a
  median.
* a :class:`HeadCalibration` per estimator setting (``facemesh``, ``vggt``, ``fused``): the head's
  stated expected error ``scale * raw ** exponent`` from the raw combination
  (:func:`combine_expected_errors`) of its estimates' expected errors. Fitted the same way on the
  heads' measured errors.

Combination (:func:`combine_expected_errors`): each estimate ``i`` has an expected error
``e_i = sqrt(U_i^2 + hop_i^2)`` (``U_i``: its anchor's own expected error). Estimates of one
estimator share the query image, so their errors are taken as fully correlated (a weighted mean
of their ``e_i``); different estimators as independent (inverse-variance combination). Where the
estimates scatter beyond their expected errors, the result grows by the Birge ratio
``sqrt(sum_i (r_i / e_i)^2 / (M - 1))`` (``r_i``: each estimate's angle from the fused rotation),
so two estimators that disagree beyond what their models allow give a large expected error.

``confidence`` (0..1) is derived from the stated expected error (:func:`confidence_from_expected_error`).

Files: ``error_model.json`` (:class:`ErrorModels`, plain JSON, written atomically) beside a VGGT
model (its ``vggt`` hop model and the ``vggt`` / ``fused`` head calibrations) and in
``hpe_core/models/facemesh/`` (beside its canonical face) for the face mesh.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: The features of a :class:`HopErrorModel`, in coefficient order.
HOP_FEATURES = ("intercept", "log1p_gap_deg", "log_face_px_over_100", "abs_yaw_over_45", "log1p_residual")
#: Confidence is ``exp(-expected_error / CONFIDENCE_SCALE_DEG)``: 2 deg -> 0.87, 5 deg -> 0.70
#: (the default keyframe threshold), 10 deg -> 0.49, 30 deg -> 0.12.
CONFIDENCE_SCALE_DEG = 14.0
#: Smallest expected error a model states for one estimate, degrees (labels are not better).
MIN_EXPECTED_ERROR_DEG = 0.3
#: Largest, degrees (a rotation error cannot exceed 180).
MAX_EXPECTED_ERROR_DEG = 180.0
#: Format version of ``error_model.json``.
FORMAT_VERSION = 1
#: File name of the fitted models beside a model.
ERROR_MODEL_FILE = "error_model.json"


def confidence_from_expected_error(expected_error_deg: float) -> float:
    """Confidence in [0, 1] from an expected rotation error in degrees (``nan`` -> 0)."""
    e = float(expected_error_deg)
    if not math.isfinite(e):
        return 0.0
    return float(math.exp(-max(0.0, e) / CONFIDENCE_SCALE_DEG))


def hop_features(gap_deg: ArrayLike, face_px: ArrayLike, yaw_deg: ArrayLike,
                 residual: Optional[ArrayLike] = None) -> FloatArray:
    """``[M, 5]`` design matrix of :data:`HOP_FEATURES` (inputs broadcast to ``[M]``).

    Non-finite or missing residuals count as 0; face sizes are clipped to >= 8 px.
    """
    gap = np.abs(np.asarray(gap_deg, dtype=np.float64)).reshape(-1)
    m = gap.shape[0]
    face = np.broadcast_to(np.asarray(face_px, dtype=np.float64), (m,))
    yaw = np.broadcast_to(np.abs(np.asarray(yaw_deg, dtype=np.float64)), (m,))
    res = np.zeros(m) if residual is None else np.broadcast_to(np.asarray(residual, dtype=np.float64), (m,))
    res = np.where(np.isfinite(res), np.maximum(res, 0.0), 0.0)
    face = np.where(np.isfinite(face), np.maximum(face, 8.0), 100.0)
    yaw = np.where(np.isfinite(yaw), yaw, 0.0)
    return np.stack([np.ones(m), np.log1p(gap), np.log(face / 100.0), yaw / 45.0, np.log1p(res)], axis=1)


def fit_log_linear_mean(X: ArrayLike, y: ArrayLike, ridge: float = 1e-3, iterations: int = 100) -> FloatArray:
    """Coefficients ``c`` of ``E[y | x] = exp(X @ c)`` by quasi-Poisson IRLS (mean, not median).

    With an intercept column the fitted means sum to the observed ones on the fitting data.

    Args:
        X: ``[N, D]`` design matrix (first column the intercept).
        y: ``[N]`` observed errors (>= 0).
        ridge: L2 penalty on the non-intercept coefficients (keeps small sets stable).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < X.shape[1]:
        raise ValueError(f"need [N, D] features and [N] targets with N >= D, got {X.shape} and {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y)) and np.all(y >= 0)):
        raise ValueError("features and targets must be finite, targets >= 0")
    c = np.zeros(X.shape[1])
    c[0] = math.log(max(float(y.mean()), 1e-6))
    penalty = np.full(X.shape[1], ridge * X.shape[0])
    penalty[0] = 0.0
    for _ in range(iterations):
        eta = np.clip(X @ c, -20.0, 20.0)
        mu = np.exp(eta)
        z = eta + (y - mu) / mu
        A = X.T @ (mu[:, None] * X) + np.diag(penalty)
        c_new = np.linalg.solve(A, X.T @ (mu * z))
        if np.max(np.abs(c_new - c)) < 1e-9:
            c = c_new
            break
        c = c_new
    return c


@dataclass(frozen=True)
class HopErrorModel:
    """Expected rotation error of one relative estimate (module docstring).

    Attributes:
        estimator: the estimator kind it describes (``facemesh``, ``vggt``).
        coefficients: one per :data:`HOP_FEATURES`.
        samples: estimates it was fitted on.
    """

    estimator: str
    coefficients: tuple[float, ...]
    samples: int = 0

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(HOP_FEATURES) or not all(math.isfinite(c) for c in self.coefficients):
            raise ValueError(f"HopErrorModel needs {len(HOP_FEATURES)} finite coefficients, got {self.coefficients!r}")

    def expected_error_deg(self, gap_deg: ArrayLike, face_px: ArrayLike, yaw_deg: ArrayLike,
                           residual: Optional[ArrayLike] = None) -> FloatArray:
        """``[M]`` expected errors (degrees) of M estimates (arguments as :func:`hop_features`)."""
        eta = hop_features(gap_deg, face_px, yaw_deg, residual) @ np.asarray(self.coefficients)
        return np.clip(np.exp(np.clip(eta, -20.0, 20.0)), MIN_EXPECTED_ERROR_DEG, MAX_EXPECTED_ERROR_DEG)

    @classmethod
    def fit(cls, estimator: str, gap_deg: ArrayLike, face_px: ArrayLike, yaw_deg: ArrayLike,
            residual: Optional[ArrayLike], error_deg: ArrayLike) -> "HopErrorModel":
        X = hop_features(gap_deg, face_px, yaw_deg, residual)
        coef = fit_log_linear_mean(X, np.asarray(error_deg, dtype=np.float64).reshape(-1))
        if residual is None:
            coef[-1] = 0.0
        return cls(estimator, tuple(float(c) for c in coef), int(X.shape[0]))


@dataclass(frozen=True)
class HeadCalibration:
    """Stated expected error of a head ``scale * raw ** exponent`` (degrees), from the raw
    combination of its estimates' expected errors."""

    scale: float = 1.0
    exponent: float = 1.0
    samples: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0 and math.isfinite(self.exponent) and self.exponent > 0):
            raise ValueError(f"HeadCalibration needs finite scale > 0 and exponent > 0, got {self.scale}, {self.exponent}")

    def __call__(self, raw_deg: float) -> float:
        raw = min(max(float(raw_deg), MIN_EXPECTED_ERROR_DEG), MAX_EXPECTED_ERROR_DEG)
        return float(min(self.scale * raw ** self.exponent, MAX_EXPECTED_ERROR_DEG))

    @classmethod
    def fit(cls, raw_deg: ArrayLike, error_deg: ArrayLike) -> "HeadCalibration":
        raw = np.clip(np.asarray(raw_deg, dtype=np.float64).reshape(-1), MIN_EXPECTED_ERROR_DEG, MAX_EXPECTED_ERROR_DEG)
        X = np.stack([np.ones_like(raw), np.log(raw)], axis=1)
        c = fit_log_linear_mean(X, np.asarray(error_deg, dtype=np.float64).reshape(-1), ridge=0.0)
        exponent = float(np.clip(c[1], 0.05, 3.0))
        # refit the scale alone with the exponent kept (so the means match on the fitting data)
        err = np.asarray(error_deg, dtype=np.float64).reshape(-1)
        scale = float(err.sum() / max(np.sum(raw ** exponent), 1e-12))
        return cls(max(scale, 1e-6), exponent, int(raw.shape[0]))


def combine_expected_errors(expected_deg: ArrayLike, groups: Sequence[Any], weights: ArrayLike,
                            residuals_deg: Optional[ArrayLike] = None) -> float:
    """Raw expected error (degrees) of a fused rotation from its M estimates (module docstring).

    Args:
        expected_deg: ``[M]`` each estimate's expected error ``sqrt(U^2 + hop^2)``, degrees.
        groups: ``[M]`` which estimator made each (estimates of one group are correlated).
        weights: ``[M]`` fusion weights (normalised here).
        residuals_deg: ``[M]`` each estimate's angle from the fused rotation, or ``None``.
    """
    e = np.maximum(np.asarray(expected_deg, dtype=np.float64).reshape(-1), MIN_EXPECTED_ERROR_DEG)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if e.shape[0] == 0 or w.shape != e.shape or len(groups) != e.shape[0]:
        raise ValueError("expected_deg, groups and weights must have the same length >= 1")
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    w = w / w.sum() if w.sum() > 0 else np.full(e.shape, 1.0 / e.shape[0])
    precision = 0.0
    for g in dict.fromkeys(groups):
        members = np.array([x == g for x in groups])
        wg = w[members]
        eg = float(np.sum(wg * e[members]) / wg.sum()) if wg.sum() > 0 else float(e[members].mean())
        precision += 1.0 / eg ** 2
    combined = 1.0 / math.sqrt(precision)
    if residuals_deg is not None and e.shape[0] > 1:
        r = np.asarray(residuals_deg, dtype=np.float64).reshape(-1)
        birge = math.sqrt(float(np.sum((r / e) ** 2)) / (e.shape[0] - 1))
        combined *= max(1.0, birge)
    return float(min(combined, MAX_EXPECTED_ERROR_DEG))


def keyframe_expected_to_help(keyframe_error_deg: float, parent_uncertainty_deg: float, parent_gap_deg: float,
                              step_deg: float, hop_error_deg) -> bool:
    """Whether a keyframe is expected to help later frames (the pipeline's keyframe rule).

    A head that turns on by ``step_deg`` beyond the keyframe would be estimated either from the
    keyframe (its own expected error, then a hop of ``step_deg``) or from the anchor the keyframe
    would come from (that anchor's uncertainty, then the longer hop of ``parent_gap_deg +
    step_deg``); errors add in quadrature. The keyframe helps when the first is smaller: when the
    hop error grows fast with the gap and the keyframe's own error is small. With a hop error
    that grows much more slowly than the gap, or an estimate already as uncertain as the long
    hop, two hops are expected to be worse than one and no keyframe is added.

    Args:
        keyframe_error_deg: the estimate's stated expected error (degrees).
        parent_uncertainty_deg: the nearest used anchor's own expected error (degrees).
        parent_gap_deg: the estimate's gap to that anchor (degrees).
        step_deg: how much further the head is assumed to turn (degrees).
        hop_error_deg: ``[N] gaps -> [N]`` expected error of one estimate at those gaps.
    """
    hop = np.asarray(hop_error_deg(np.array([step_deg, parent_gap_deg + step_deg], dtype=np.float64)), dtype=np.float64)
    via_keyframe = math.hypot(keyframe_error_deg, float(hop[0]))
    via_parent = math.hypot(parent_uncertainty_deg, float(hop[1]))
    return via_keyframe < via_parent


@dataclass
class ErrorModels:
    """The contents of an ``error_model.json``: hop models by estimator kind, head calibrations
    by estimator setting, and how they were fitted (``provenance``, free-form JSON)."""

    hops: dict[str, HopErrorModel] = field(default_factory=dict)
    heads: dict[str, HeadCalibration] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "features": list(HOP_FEATURES),
            "hops": {k: {"coefficients": list(m.coefficients), "samples": m.samples} for k, m in self.hops.items()},
            "heads": {k: {"scale": c.scale, "exponent": c.exponent, "samples": c.samples} for k, c in self.heads.items()},
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ErrorModels":
        if not isinstance(data, Mapping) or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not an error model file of format {FORMAT_VERSION}")
        if list(data.get("features", [])) != list(HOP_FEATURES):
            raise ValueError(f"error model features {data.get('features')!r} are not {list(HOP_FEATURES)}")
        try:
            hops = {str(k): HopErrorModel(str(k), tuple(float(c) for c in v["coefficients"]), int(v.get("samples", 0)))
                    for k, v in dict(data.get("hops", {})).items()}
            heads = {str(k): HeadCalibration(float(v["scale"]), float(v["exponent"]), int(v.get("samples", 0)))
                     for k, v in dict(data.get("heads", {})).items()}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed error model file: {exc}") from exc
        provenance = data.get("provenance", {})
        return cls(hops, heads, dict(provenance) if isinstance(provenance, Mapping) else {})

    def merged(self, other: "ErrorModels") -> "ErrorModels":
        """This file's entries updated by ``other``'s."""
        return ErrorModels({**self.hops, **other.hops}, {**self.heads, **other.heads},
                           {**self.provenance, **other.provenance})

    def save(self, path: Union[str, Path]) -> Path:
        """Write atomically (a temporary file renamed over ``path``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # a model file, readable like the others (mkstemp makes it 0600)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ErrorModels":
        """Read a file written by :meth:`save` (``ValueError`` for a malformed one)."""
        text = Path(path).read_text()
        if len(text) > 1_000_000:
            raise ValueError(f"{path}: error model file too large")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from exc
        return cls.from_dict(data)


def load_error_models(*directories: Union[str, Path, None]) -> ErrorModels:
    """The ``error_model.json`` files of ``directories`` merged (later ones win); a missing
    file is skipped, a malformed one raises ``ValueError``."""
    models = ErrorModels()
    for d in directories:
        if d is None:
            continue
        path = Path(d) / ERROR_MODEL_FILE
        if path.is_file():
            models = models.merged(ErrorModels.load(path))
    return models
