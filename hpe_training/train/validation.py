"""Validation: loss and yaw/pitch/roll errors (BIWI convention, degrees) of the query's rotation.

Relative mode: the predicted query rotation is ``R_q = R_rel_pred @ R_a_true`` (the anchor's
true head-to-camera rotation, as at test time); absolute mode: ``R_q`` is predicted directly.
Errors follow :mod:`hpe_core.geometry.euler` (angles of ``R_cam_from_head``, wrapped at 360).
Sums are all-reduced over ranks so every rank gets the metrics of the whole validation set.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from hpe_core.geometry.euler import angle_error_deg, yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.torch_ops import matrix_from_quat_xyzw
from hpe_training.train.distributed import DistContext, all_reduce_sum
from hpe_training.train.loss import PoseLossConfig, pose_loss


def query_rotation(final_pose_enc: Tensor, anchor_rotation: Tensor, absolute: bool) -> Tensor:
    """Predicted absolute query rotations ``[B, 3, 3]``.

    Args:
        final_pose_enc: ``[B, 2, 9]`` last camera-head stage.
        anchor_rotation: ``[B, 3, 3]`` true anchor ``R_cam_from_head``.
        absolute: the model predicts each view's own pose (no composition).
    """
    R_pred = matrix_from_quat_xyzw(final_pose_enc[:, 1, 3:7].double())
    return R_pred if absolute else R_pred @ anchor_rotation.double()


def euler_abs_errors(pred_R: Tensor, true_R: Tensor) -> np.ndarray:
    """``[B, 3]`` absolute (yaw, pitch, roll) errors in degrees."""
    pred = yaw_pitch_roll_deg_from_matrix(pred_R.detach().cpu().double().numpy())
    true = yaw_pitch_roll_deg_from_matrix(true_R.detach().cpu().double().numpy())
    return angle_error_deg(pred, true)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], device: torch.device,
             absolute: bool, loss_cfg: PoseLossConfig, ctx: DistContext,
             autocast_bf16: bool = False) -> Dict[str, float]:
    """Mean loss and Euler errors over all ranks' batches.

    Returns ``{"loss", "yaw", "pitch", "roll", "mae", "pairs"}`` (degrees; ``mae`` the mean of
    the three); NaN metrics when the set is empty. The model is put back in its previous mode.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(6, dtype=torch.float64)  # loss*B, yaw, pitch, roll, pairs, batches
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                if autocast_bf16 and device.type == "cuda" else contextlib.nullcontext())
    for batch in batches:
        images = batch["images"].to(device, non_blocking=True)
        target = batch["pose_enc"].to(device)
        with autocast:
            predictions = model(images)
        predictions = [p.float() for p in predictions]
        loss, _ = pose_loss(predictions, target, loss_cfg)
        rotations = batch["abs_rotation"].double()
        pred_R = query_rotation(predictions[-1].cpu(), rotations[:, 0], absolute)
        errors = euler_abs_errors(pred_R, rotations[:, 1])
        b = images.shape[0]
        sums += torch.tensor([float(loss) * b, *errors.sum(axis=0).tolist(), b, 1], dtype=torch.float64)
    sums = all_reduce_sum(sums, ctx)
    model.train(was_training)
    pairs = float(sums[4])
    if pairs == 0:
        nan = float("nan")
        return {"loss": nan, "yaw": nan, "pitch": nan, "roll": nan, "mae": nan, "pairs": 0.0}
    yaw, pitch, roll = (float(v) / pairs for v in sums[1:4])
    return {"loss": float(sums[0]) / pairs, "yaw": yaw, "pitch": pitch, "roll": roll,
            "mae": (yaw + pitch + roll) / 3.0, "pairs": pairs}
