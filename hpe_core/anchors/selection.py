"""Pick the K anchors best placed to estimate a query: nearest in head rotation.

The relative-pose error grows with the anchor-query rotation gap, so the anchors nearest to the
current rotation estimate (the track's last fused pose, or a prediction of it) are used.

Gap ("appearance gap"): the network sees crops, i.e. poses in each crop's virtual camera, so
when the query crop's ``R_virt_from_cam`` is known the gap is measured between virtual-frame
rotations, ``angle(R_virt_q @ R_cam_q, R_virt_a @ R_cam_a)``, which is the rotation angle of
the relative pose the estimator will have to predict. Without it the gap is measured between
the real-camera rotations (identical when all crops are centred on the optical axis).

Ordering: calibrated anchors within ``policy.prefer_calibrated_within_deg`` come first
(nearest first), then every other anchor by gap; equal gaps are broken by higher quality, then
shallower chain depth, then the id (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.anchors.anchor import Anchor, AnchorSource, check_rotation
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.geometry.rotations import geodesic_angle_deg

#: Gaps closer than this (degrees) count as equal for tie-breaking.
GAP_TIE_DEG = 1e-6


def rotation_gaps_deg(
    anchors: Sequence[Anchor],
    rotation_cam: ArrayLike,
    query_virtual_from_cam: Optional[ArrayLike] = None,
) -> NDArray[np.float64]:
    """Rotation gap of each anchor to a head rotation.

    Args:
        anchors: N anchors.
        rotation_cam: ``[3, 3]`` head rotation ``R_cam_from_head`` in the real camera frame.
        query_virtual_from_cam: ``[3, 3]`` ``R_virt_from_cam`` of the query crop; with it the
            gap is measured in virtual frames (see the module docstring), without it in the
            real camera frame.

    Returns:
        ``[N]`` gaps in degrees, in ``[0, 180]``.
    """
    R = check_rotation(rotation_cam, "rotation_cam")
    if len(anchors) == 0:
        return np.zeros(0)
    if query_virtual_from_cam is None:
        R_anchor = np.stack([a.rotation_cam for a in anchors])
        return np.asarray(geodesic_angle_deg(R_anchor, R[None]), dtype=np.float64)
    R_query_virt = check_rotation(query_virtual_from_cam, "query_virtual_from_cam") @ R
    R_anchor_virt = np.stack([a.rotation_virtual for a in anchors])
    return np.asarray(geodesic_angle_deg(R_anchor_virt, R_query_virt[None]), dtype=np.float64)


@dataclass(frozen=True)
class AnchorSelection:
    """Anchors chosen for one estimate.

    Attributes:
        anchors: the chosen anchors, in order of preference (length <= K).
        gaps_deg: ``[len(anchors)]`` rotation gap (degrees) of each to the current rotation.
    """

    anchors: tuple[Anchor, ...]
    gaps_deg: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def anchor_ids(self) -> tuple[str, ...]:
        """Ids of the chosen anchors, in order."""
        return tuple(a.anchor_id for a in self.anchors)


def select_anchors(
    anchors: Sequence[Anchor],
    rotation_cam: ArrayLike,
    policy: AnchorPolicy,
    query_virtual_from_cam: Optional[ArrayLike] = None,
    k: Optional[int] = None,
    expected_error: Optional[Callable[[Sequence[Anchor], NDArray[np.float64]], NDArray[np.float64]]] = None,
) -> AnchorSelection:
    """The ``k`` anchors nearest in rotation, calibrated ones preferred (module docstring);
    with ``expected_error`` the ``k`` whose estimates are expected to be best.

    Args:
        anchors: candidate anchors (one track's pool).
        rotation_cam: ``[3, 3]`` current head-rotation estimate ``R_cam_from_head``.
        policy: supplies ``anchors_per_estimate`` and ``prefer_calibrated_within_deg``.
        query_virtual_from_cam: ``[3, 3]`` query crop's ``R_virt_from_cam``, if known.
        k: how many to pick; ``policy.anchors_per_estimate`` by default.
        expected_error: ``(anchors, gaps_deg [N]) -> [N]`` the expected rotation error (degrees)
            of the estimate each anchor would give (its own uncertainty and the estimator's
            fitted hop error at its gap, :mod:`hpe_core.error_model`); anchors are then ordered
            by it instead of by the gap (calibrated ones within the preference gap still first).

    Returns:
        :class:`AnchorSelection` with ``min(k, len(anchors))`` anchors.
    """
    k = policy.anchors_per_estimate if k is None else int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    gaps = rotation_gaps_deg(anchors, rotation_cam, query_virtual_from_cam)
    score = gaps if expected_error is None or len(anchors) == 0 else np.asarray(expected_error(anchors, gaps), dtype=np.float64)
    if score.shape != gaps.shape:
        raise ValueError(f"expected_error gave {score.shape} values for {gaps.shape[0]} anchors")

    def key(i: int) -> tuple[int, int, float, int, str]:
        a = anchors[i]
        preferred = a.source is AnchorSource.CALIBRATED and gaps[i] <= policy.prefer_calibrated_within_deg
        return (0 if preferred else 1, round(float(score[i]) / GAP_TIE_DEG), -a.quality, a.chain_depth, a.anchor_id)

    order = sorted(range(len(anchors)), key=key)[:k]
    return AnchorSelection(tuple(anchors[i] for i in order), gaps[order].copy())
