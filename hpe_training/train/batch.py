"""The pair-sample contract between pair datasets and the trainer.

One sample (a dict of tensors; the DataLoader stacks them into a batch with a leading B):

* ``images`` ``[2, 3, S, S]`` float32 RGB in [0, 1]; frame 0 the anchor, frame 1 the query.
* ``pose_enc`` ``[2, 9]`` float32 target ``absT_quaR_FoV`` encodings (metres, quaternion xyzw
  with ``qw >= 0``, fov in radians). Relative mode: anchor = identity rotation and zero
  translation, query = ``T_q inv(T_a)``; absolute mode: each view's own head-to-camera pose.
  The fields of view are each view's own in both modes.
* ``abs_rotation`` ``[2, 3, 3]`` float32 true head-to-camera rotations ``R_cam_from_head`` of
  anchor and query (OpenCV camera frame), used by validation to compose the query's absolute
  rotation from a relative prediction.

:func:`make_pair_sample` builds a sample from per-view head-to-camera poses and intrinsics.
"""
from __future__ import annotations

from typing import Dict, Mapping, Sequence

import torch
from torch import Tensor

from hpe_core.geometry.torch_ops import pose_encoding_from_extrinsics_intrinsics, relative_transform

SAMPLE_KEYS = ("images", "pose_enc", "abs_rotation")


def _homogeneous(R: Tensor, t: Tensor) -> Tensor:
    T = torch.zeros(R.shape[:-2] + (4, 4), dtype=R.dtype)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1
    return T


def make_pair_sample(images: Tensor, R_head_to_cam: Tensor, t_head_to_cam: Tensor,
                     intrinsics: Tensor, absolute: bool) -> Dict[str, Tensor]:
    """Build a contract sample.

    Args:
        images: ``[2, 3, S, S]`` in [0, 1] (anchor, query) of one square size S.
        R_head_to_cam: ``[2, 3, 3]``; t_head_to_cam: ``[2, 3]`` metres (X_cam = R X_head + t).
        intrinsics: ``[2, 3, 3]`` pixels, for the ``S x S`` images.
        absolute: targets are the views' own poses instead of poses relative to the anchor.
    """
    images = torch.as_tensor(images, dtype=torch.float32)
    if images.dim() != 4 or images.shape[0] != 2 or images.shape[1] != 3:
        raise ValueError(f"images must be [2, 3, S, S], got {tuple(images.shape)}")
    R = torch.as_tensor(R_head_to_cam, dtype=torch.float64)
    t = torch.as_tensor(t_head_to_cam, dtype=torch.float64)
    K = torch.as_tensor(intrinsics, dtype=torch.float64)
    if R.shape != (2, 3, 3) or t.shape != (2, 3) or K.shape != (2, 3, 3):
        raise ValueError(f"need R [2,3,3], t [2,3], K [2,3,3]; got {tuple(R.shape)}, {tuple(t.shape)}, "
                         f"{tuple(K.shape)}")
    T = _homogeneous(R, t)
    if not absolute:
        T = relative_transform(T, T[0:1].expand(2, 4, 4))  # T_i inv(T_a): anchor -> identity
    hw = (float(images.shape[-2]), float(images.shape[-1]))
    pose_enc = pose_encoding_from_extrinsics_intrinsics(T[:, :3, :], K, hw)
    return {"images": images.contiguous(), "pose_enc": pose_enc.float(), "abs_rotation": R.float()}


def check_sample(sample: Mapping[str, Tensor]) -> None:
    """Raise ValueError when a sample breaks the contract (keys and shapes)."""
    missing = [k for k in SAMPLE_KEYS if k not in sample]
    if missing:
        raise ValueError(f"pair sample lacks {missing}; has {sorted(sample)}")
    images, pose, rot = sample["images"], sample["pose_enc"], sample["abs_rotation"]
    if images.dim() != 4 or images.shape[:2] != (2, 3):
        raise ValueError(f"images must be [2, 3, S, S], got {tuple(images.shape)}")
    if tuple(pose.shape) != (2, 9):
        raise ValueError(f"pose_enc must be [2, 9], got {tuple(pose.shape)}")
    if tuple(rot.shape) != (2, 3, 3):
        raise ValueError(f"abs_rotation must be [2, 3, 3], got {tuple(rot.shape)}")


def collate_pairs(samples: Sequence[Mapping[str, Tensor]]) -> Dict[str, Tensor]:
    """Stack contract samples into ``images [B,2,3,S,S]``, ``pose_enc [B,2,9]``,
    ``abs_rotation [B,2,3,3]`` (other keys are dropped)."""
    if not samples:
        raise ValueError("collate_pairs: empty batch")
    for sample in samples:
        check_sample(sample)
    return {key: torch.stack([torch.as_tensor(s[key]) for s in samples]) for key in SAMPLE_KEYS}
