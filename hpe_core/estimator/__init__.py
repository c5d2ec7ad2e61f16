"""Relative head-pose estimation: interface, anchor-feature caching and inference backends.

``create_estimator("torch" | "onnxruntime" | "tensorrt", path, device=..., precision=...)``
returns a :class:`RelativePoseEstimator`; see :mod:`hpe_core.estimator.interface`.
"""

from hpe_core.estimator.interface import (
    AnchorFeatures,
    EstimateRequest,
    PoseEstimator,
    RelativePose,
    RelativePoseEstimator,
    compose_with_anchor_poses,
    crops_to_float,
)
from hpe_core.estimator.registry import BACKENDS, create_estimator

__all__ = [
    "BACKENDS",
    "AnchorFeatures",
    "EstimateRequest",
    "PoseEstimator",
    "RelativePose",
    "RelativePoseEstimator",
    "compose_with_anchor_poses",
    "create_estimator",
    "crops_to_float",
]
