"""Lazily computed, per-anchor cached estimator features.

An anchor's patch tokens never change, so they are computed once (in one batched call for all
anchors that lack them) and kept on :attr:`Anchor.features` as a length-1 ``AnchorFeatures``.
A cache entry made by another estimator or model (different ``producer``) is recomputed.
Each anchor's crop camera (:attr:`Anchor.crop_camera`) goes with its crop. Features an estimator
marks ``persistable`` (the face mesh's landmarks) are saved with the pool and reused after a
load when the producer matches; others are recomputed.

The estimator is duck-typed (anything with ``feature_key`` and ``embed_anchors``, e.g.
:class:`hpe_core.estimator.interface.RelativePoseEstimator`), so this module does not import
the estimator stack.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np
from numpy.typing import NDArray

from hpe_core.anchors.anchor import Anchor


class FeatureEstimator(Protocol):
    """What :func:`anchor_features` needs from an estimator."""

    @property
    def feature_key(self) -> str: ...

    def embed_anchors(self, anchor_crops: NDArray[np.uint8], cameras: Any = None) -> Any: ...


def _is_current(features: Any, key: str) -> bool:
    return features is not None and getattr(features, "producer", None) == key and len(features) == 1


def anchor_features(anchors: Sequence[Anchor], estimator: FeatureEstimator) -> Any:
    """Features of ``anchors`` in order, embedding only those not cached for this estimator.

    Args:
        anchors: K >= 1 anchors whose crops all have the estimator's input size
            (``uint8 [H, W, 3]``).
        estimator: provides ``feature_key`` and ``embed_anchors(crops [N, H, W, 3]) ->
            AnchorFeatures`` of length N.

    Returns:
        The K anchors' features joined in order (``AnchorFeatures`` of length K, ``[K, P, C]``).
    """
    if len(anchors) == 0:
        raise ValueError("anchor_features needs at least one anchor")
    key = estimator.feature_key
    missing = [a for a in anchors if not _is_current(a.features, key)]
    if missing:
        cameras = [a.crop_camera for a in missing]
        computed = estimator.embed_anchors(np.stack([a.crop for a in missing]),
                                           None if any(c is None for c in cameras) else cameras)
        if len(computed) != len(missing):
            raise ValueError(f"embed_anchors returned {len(computed)} entries for {len(missing)} crops")
        for i, a in enumerate(missing):
            a.features = computed[i]
    parts = [a.features for a in anchors]
    return type(parts[0]).concatenate(parts)
