"""The managed anchor pool of VGGT-HPE: anchors, selection, multi-anchor consensus, keyframes,
eviction and persistence. Pure numpy; no ROS.

Typical use per frame of a track::

    sel = pool.select(track_id, last_rotation_cam, query_virtual_from_cam)
    rel = estimator.estimate(anchor_features(sel.anchors, estimator), query_crop)
    fused = fuse_relative_estimates(sel.anchors, rel.rotation, rel.translation,
                                    query_virtual_from_cam)
    pool.maybe_add_keyframe(track_id, query_crop, fused)
"""

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.consensus import ConsensusParams, FusedPose, fuse_relative_estimates
from hpe_core.anchors.features import anchor_features
from hpe_core.anchors.persistence import AnchorPoolFileError, load, save
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool, AnchorPoolFullError, KeyframeDecision, TrackCounts
from hpe_core.anchors.selection import AnchorSelection, rotation_gaps_deg, select_anchors

__all__ = [
    "Anchor",
    "AnchorPolicy",
    "AnchorPool",
    "AnchorPoolFileError",
    "AnchorPoolFullError",
    "AnchorSelection",
    "AnchorSource",
    "ConsensusParams",
    "FusedPose",
    "KeyframeDecision",
    "TrackCounts",
    "anchor_features",
    "fuse_relative_estimates",
    "load",
    "rotation_gaps_deg",
    "save",
    "select_anchors",
]
