"""VGGT-HPE training loss on the camera head's iterative pose encodings.

Pose encodings are ``absT_quaR_FoV`` vectors ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``
(translation in metres, quaternion scalar-last, fields of view in radians). Frame 0 of each
pair is the anchor, frame 1 the query; only the query is supervised.

Per camera-head iteration (stage) ``k = 1..K``::

    L_k = lambda_t * mean|t_pred - t_true|
        + lambda_q * mean|q_pred - canon(q_true)|
        + lambda_f * mean|r_pred - r_true|,      r = log tan(fov_q / 2) - log tan(fov_a / 2)

where each ``mean`` is over the batch and the vector components (3 for t, 4 for q, 2 for the
(fov_h, fov_w) ratios), ``canon`` flips a target quaternion to ``qw >= 0`` (``q`` and ``-q``
are the same rotation; the prediction is left as it is, so the network learns the
``qw >= 0`` hemisphere, which contains the identity that relative targets cluster around) and
``r`` is the focal-length ratio between the query and the anchor in log space
(``log tan(fov/2) = log((H/2)/f)``, so ``r = log(f_a / f_q)`` for equal image sizes); the
predicted ``r`` uses the predicted fields of view of both frames.

Total (the averaging of the official VGGT camera loss)::

    L = (1 / K) * sum_k gamma^(K - k) * L_k

i.e. the stage-weighted losses are summed and divided by the number of stages K (a plain mean
over stages of the weighted terms, NOT normalised by the sum of the weights). With K = 4 and
gamma = 0.6 the weights are 0.216, 0.36, 0.6, 1.0 for stages 1..4 and the last stage counts
``1/K``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor

from hpe_core.geometry.torch_ops import canonical_quat_xyzw

#: Field-of-view clamp (radians) before ``log tan(fov / 2)``: keeps the log finite when the
#: ReLU-activated prediction is 0 (or a wild one exceeds pi).
FOV_CLAMP: Tuple[float, float] = (1e-4, math.pi - 1e-4)
ANCHOR, QUERY = 0, 1


@dataclass
class PoseLossConfig:
    """Weights of the VGGT-HPE loss (defaults: the paper's values)."""

    gamma: float = 0.6
    lambda_translation: float = 1.0
    lambda_quaternion: float = 1.0
    lambda_focal: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        for name in ("lambda_translation", "lambda_quaternion", "lambda_focal"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def stage_weights(num_stages: int, gamma: float) -> list[float]:
    """``[gamma^(K-1), ..., gamma^0]`` for stages ``k = 1..K`` (the last stage has weight 1)."""
    if num_stages < 1:
        raise ValueError(f"num_stages must be >= 1, got {num_stages}")
    return [gamma ** (num_stages - k) for k in range(1, num_stages + 1)]


def log_focal_ratio(pose_enc: Tensor) -> Tensor:
    """``[B, 2]``: ``log tan(fov_q / 2) - log tan(fov_a / 2)`` for (fov_h, fov_w).

    Args:
        pose_enc: ``[B, S >= 2, 9]``; frame 0 anchor, frame 1 query; fov in radians,
            clamped to :data:`FOV_CLAMP` first.
    """
    fov = pose_enc[..., 7:9].clamp(*FOV_CLAMP)
    log_tan = torch.log(torch.tan(fov / 2))
    return log_tan[:, QUERY] - log_tan[:, ANCHOR]


def stage_loss(pred: Tensor, target: Tensor, cfg: PoseLossConfig) -> Dict[str, Tensor]:
    """Unweighted loss terms of one stage on the query frame.

    Args:
        pred: ``[B, S, 9]`` predicted pose encodings.
        target: ``[B, S, 9]`` ground-truth encodings (same frame order).

    Returns:
        ``{"translation", "quaternion", "focal", "total"}`` scalars; ``total`` applies the lambdas.
    """
    p, t = pred[:, QUERY].float(), target[:, QUERY].float()
    q_true = canonical_quat_xyzw(t[:, 3:7])
    terms = {
        "translation": (p[:, 0:3] - t[:, 0:3]).abs().mean(),
        "quaternion": (p[:, 3:7] - q_true).abs().mean(),
        "focal": (log_focal_ratio(pred.float()) - log_focal_ratio(target.float())).abs().mean(),
    }
    terms["total"] = (cfg.lambda_translation * terms["translation"]
                      + cfg.lambda_quaternion * terms["quaternion"]
                      + cfg.lambda_focal * terms["focal"])
    return terms


def pose_loss(predictions: Sequence[Tensor], target: Tensor,
              cfg: PoseLossConfig | None = None) -> Tuple[Tensor, Dict[str, Tensor]]:
    """VGGT-HPE loss over all camera-head stages (see the module docstring for the formula).

    Args:
        predictions: K tensors ``[B, S, 9]`` (the camera head's iterations, last = final).
        target: ``[B, S, 9]`` ground-truth pose encodings (relative or absolute targets).
        cfg: loss weights; the paper's defaults when None.

    Returns:
        ``(total, components)``: ``total`` is a differentiable scalar; ``components`` holds
        detached scalars ``translation``, ``quaternion``, ``focal`` (each stage-weighted and
        averaged like the total, without its lambda) and ``final_translation``,
        ``final_quaternion``, ``final_focal`` (last stage only, unweighted).
    """
    cfg = cfg or PoseLossConfig()
    if len(predictions) == 0:
        raise ValueError("pose_loss: no predictions")
    if target.dim() != 3 or target.shape[-1] != 9 or target.shape[1] < 2:
        raise ValueError(f"pose_loss: target must be [B, S>=2, 9], got {tuple(target.shape)}")
    for pred in predictions:
        if pred.shape != target.shape:
            raise ValueError(f"pose_loss: prediction {tuple(pred.shape)} vs target {tuple(target.shape)}")
    num_stages = len(predictions)
    weights = stage_weights(num_stages, cfg.gamma)
    sums: Dict[str, Tensor] = {}
    last: Dict[str, Tensor] = {}
    for weight, pred in zip(weights, predictions):
        last = stage_loss(pred, target, cfg)
        for name, value in last.items():
            sums[name] = sums.get(name, 0.0) + weight * value
    total = sums.pop("total") / num_stages
    components = {name: (value / num_stages).detach() for name, value in sums.items()}
    components.update({f"final_{name}": last[name].detach() for name in ("translation", "quaternion", "focal")})
    return total, components
