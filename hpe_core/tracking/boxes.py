"""Axis-aligned box helpers (numpy, float64, pixels).

``xyxy`` = ``[x1, y1, x2, y2]`` corners; ``cxcywh`` = ``[cx, cy, w, h]`` centre and size.
Areas are continuous (``w * h``, no ``+1``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def cxcywh_from_xyxy(boxes_xyxy: ArrayLike) -> FloatArray:
    """``[..., 4]`` corners to ``[..., 4]`` centre/size."""
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    return np.concatenate([0.5 * (b[..., :2] + b[..., 2:]), b[..., 2:] - b[..., :2]], axis=-1)


def xyxy_from_cxcywh(boxes_cxcywh: ArrayLike) -> FloatArray:
    """``[..., 4]`` centre/size to ``[..., 4]`` corners."""
    b = np.asarray(boxes_cxcywh, dtype=np.float64)
    half = 0.5 * b[..., 2:]
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def iou_matrix(boxes_a_xyxy: ArrayLike, boxes_b_xyxy: ArrayLike) -> FloatArray:
    """Pairwise intersection over union.

    Args:
        boxes_a_xyxy: ``[N, 4]`` boxes.
        boxes_b_xyxy: ``[M, 4]`` boxes.

    Returns:
        ``[N, M]`` IoU in ``[0, 1]`` (0 where the union is empty).
    """
    a = np.asarray(boxes_a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b_xyxy, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
