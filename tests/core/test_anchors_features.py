"""Per-anchor feature caching with a small RelativePoseEstimator (colour statistics as tokens)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hpe_core.anchors.features import anchor_features
from hpe_core.anchors.pool import AnchorPool
from hpe_core.estimator.interface import AnchorFeatures, RelativePoseEstimator
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.transforms import make_transform


class ColourStatsEstimator(RelativePoseEstimator):
    """Tokens = per-quadrant mean colour of each image ([N, 4, 3]); counts embedded images."""

    name = "colour-stats"

    def __init__(self, key: str = "colour-stats:v1") -> None:
        self._key = key
        self.embedded: list[int] = []

    @property
    def input_size(self) -> tuple[int, int]:
        return (8, 8)

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def precision(self) -> str:
        return "fp32"

    @property
    def feature_key(self) -> str:
        return self._key

    def _embed(self, images: np.ndarray) -> Any:
        self.embedded.append(images.shape[0])
        q = [images[:, :, :4, :4], images[:, :, :4, 4:], images[:, :, 4:, :4], images[:, :, 4:, 4:]]
        return np.stack([x.mean(axis=(2, 3)) for x in q], axis=1).astype(np.float32)

    def _query_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> np.ndarray:
        enc = np.zeros((anchor_tokens.shape[0], 9), np.float32)
        enc[:, 6] = 1.0
        return enc


def _pose(yaw: float) -> np.ndarray:
    return make_transform(matrix_from_yaw_pitch_roll_deg(yaw, 0.0, 0.0), [0.0, 0.0, 1.0])


def _pool() -> AnchorPool:
    pool = AnchorPool()
    for i, yaw in enumerate((0.0, 20.0, 40.0)):
        pool.add_calibrated("t", np.full((8, 8, 3), 40 * (i + 1), np.uint8), _pose(yaw))
    return pool


def test_features_are_embedded_once_in_one_batch_and_kept_in_order() -> None:
    pool = _pool()
    est = ColourStatsEstimator()
    anchors = pool.anchors("t")
    first = anchor_features(anchors[:2], est)
    assert est.embedded == [2] and isinstance(first, AnchorFeatures) and len(first) == 2
    feats = anchor_features(anchors[::-1], est)  # only the third anchor is new
    assert est.embedded == [2, 1]
    expected = np.array([120.0, 80.0, 40.0]) / 255.0
    np.testing.assert_allclose(feats.patch_tokens[:, 0, 0], expected, rtol=1e-6)
    anchor_features(anchors, est)
    assert est.embedded == [2, 1]  # all cached now


def test_features_of_another_producer_are_recomputed() -> None:
    pool = _pool()
    anchors = pool.anchors("t")
    anchor_features(anchors, ColourStatsEstimator("model-a"))
    other = ColourStatsEstimator("model-b")
    feats = anchor_features(anchors, other)
    assert other.embedded == [3] and feats.producer == "model-b"


def test_empty_selection_is_an_error() -> None:
    with pytest.raises(ValueError):
        anchor_features((), ColourStatsEstimator())
