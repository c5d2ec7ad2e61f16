"""Knobs of the managed anchor pool, validated once on construction.

Defaults follow the VGGT-HPE observation that the relative-pose error stays below about
2 degrees when an anchor lies within 5 degrees of the query and grows with the anchor-query
gap: keep anchors spread over the pose range (a keyframe every ``keyframe_min_gap_deg``), but
stop chains of keyframes before their error compounds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class AnchorPolicy:
    """How the pool selects, adds and evicts anchors.

    Attributes:
        max_anchors_per_track: capacity of one track's pool (>= 1).
        anchors_per_estimate: K, anchors used per estimate (1 <= K <= capacity).
        keyframe_min_gap_deg: a keyframe is added only when the current estimate is at least
            this far (degrees, rotation) from every anchor of the track (> 0).
        keyframe_min_confidence: fused confidence (0..1) needed to add a keyframe.
        max_chain_depth: deepest keyframe allowed (a keyframe's depth is its parent's + 1; >= 0,
            0 disables keyframes).
        max_accumulated_uncertainty_deg: keyframes whose accumulated uncertainty (degrees)
            exceeds this are not added (> 0).
        prefer_calibrated_within_deg: a calibrated anchor within this gap (degrees) of the
            current estimate is selected before any nearer keyframe (>= 0; 0 disables).
        calibrated_never_evicted: calibrated anchors are never evicted to make room.
    """

    max_anchors_per_track: int = 12
    anchors_per_estimate: int = 3
    keyframe_min_gap_deg: float = 15.0
    keyframe_min_confidence: float = 0.7
    max_chain_depth: int = 3
    max_accumulated_uncertainty_deg: float = 10.0
    prefer_calibrated_within_deg: float = 10.0
    calibrated_never_evicted: bool = True

    def __post_init__(self) -> None:
        for name in ("max_anchors_per_track", "anchors_per_estimate", "max_chain_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"AnchorPolicy.{name} must be an int, got {value!r}")
        for name in (
            "keyframe_min_gap_deg",
            "keyframe_min_confidence",
            "max_accumulated_uncertainty_deg",
            "prefer_calibrated_within_deg",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"AnchorPolicy.{name} must be a finite number, got {value!r}")
        if not isinstance(self.calibrated_never_evicted, bool):
            raise ValueError(f"AnchorPolicy.calibrated_never_evicted must be a bool, got {self.calibrated_never_evicted!r}")
        if self.max_anchors_per_track < 1:
            raise ValueError(f"AnchorPolicy.max_anchors_per_track must be >= 1, got {self.max_anchors_per_track}")
        if not 1 <= self.anchors_per_estimate <= self.max_anchors_per_track:
            raise ValueError(
                "AnchorPolicy.anchors_per_estimate must be in [1, max_anchors_per_track="
                f"{self.max_anchors_per_track}], got {self.anchors_per_estimate}"
            )
        if not 0.0 < self.keyframe_min_gap_deg <= 180.0:
            raise ValueError(f"AnchorPolicy.keyframe_min_gap_deg must be in (0, 180] degrees, got {self.keyframe_min_gap_deg}")
        if not 0.0 <= self.keyframe_min_confidence <= 1.0:
            raise ValueError(f"AnchorPolicy.keyframe_min_confidence must be in [0, 1], got {self.keyframe_min_confidence}")
        if self.max_chain_depth < 0:
            raise ValueError(f"AnchorPolicy.max_chain_depth must be >= 0, got {self.max_chain_depth}")
        if self.max_accumulated_uncertainty_deg <= 0.0:
            raise ValueError(
                f"AnchorPolicy.max_accumulated_uncertainty_deg must be > 0 degrees, got {self.max_accumulated_uncertainty_deg}"
            )
        if not 0.0 <= self.prefer_calibrated_within_deg <= 180.0:
            raise ValueError(
                f"AnchorPolicy.prefer_calibrated_within_deg must be in [0, 180] degrees, got {self.prefer_calibrated_within_deg}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for persistence and diagnostics)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "AnchorPolicy":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown AnchorPolicy fields: {unknown}")
        return cls(**dict(values))
