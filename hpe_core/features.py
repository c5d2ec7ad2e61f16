"""Cached per-anchor estimator features: :class:`AnchorFeatures` (numpy, or torch on a device).

Kept free of a torch import (torch is imported only when the features are torch tensors), so
the anchor pool and its persistence can hold and save features without the model stack.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np
from numpy.typing import NDArray

IndexLike = Union[int, slice, Sequence[int], NDArray[np.integer]]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


@dataclass(frozen=True)
class AnchorFeatures:
    """Cached per-anchor features ``[K, ...]`` (VGGT: patch tokens ``[K, P, C]``; face mesh:
    3-D landmarks ``[K, N, 4]``).

    ``values`` is a numpy array or a torch tensor, whichever the producing estimator computes
    with (on its device). ``producer`` names the estimator and model that made them
    (:attr:`PoseEstimator.feature_key`); an estimator refuses features of another.
    ``persistable`` marks small numpy features that are worth saving with an anchor pool
    (the face mesh's landmarks) rather than recomputing. Index with an int, a slice or a
    sequence of ints to pick anchors (the anchor axis is kept), and join cached entries with
    :meth:`concatenate`.
    """

    values: Any
    producer: str
    persistable: bool = False

    def __post_init__(self) -> None:
        if len(self.values.shape) < 2:
            raise ValueError(f"anchor features must be [K, ...], got {tuple(self.values.shape)}")

    @property
    def patch_tokens(self) -> Any:
        """VGGT's name for :attr:`values`: ``[K, P, C]`` patch tokens."""
        return self.values

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def token_shape(self) -> tuple[int, ...]:
        """The shape of one anchor's features (VGGT: ``(P, C)``)."""
        return tuple(int(d) for d in self.values.shape[1:])

    def __getitem__(self, index: IndexLike) -> "AnchorFeatures":
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"anchor index {index} out of range for {n} anchors")
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        elif not isinstance(index, slice):
            index_list = [int(i) for i in np.asarray(index).reshape(-1)]
            if _is_torch(self.values):
                import torch

                index = torch.as_tensor(index_list, dtype=torch.long, device=self.values.device)
            else:
                index = np.asarray(index_list, dtype=np.int64)
        return AnchorFeatures(self.values[index], self.producer, self.persistable)

    @staticmethod
    def concatenate(features: Sequence["AnchorFeatures"]) -> "AnchorFeatures":
        """Join features of the same producer along the anchor axis (order kept)."""
        if not features:
            raise ValueError("concatenate needs at least one AnchorFeatures")
        producer = features[0].producer
        for f in features[1:]:
            if f.producer != producer:
                raise ValueError(
                    f"cannot concatenate features of different producers: {producer!r} vs {f.producer!r}"
                )
            if f.token_shape != features[0].token_shape:
                raise ValueError(f"feature shapes differ: {features[0].token_shape} vs {f.token_shape}")
        tokens = [f.values for f in features]
        if _is_torch(tokens[0]):
            import torch

            joined: Any = torch.cat(tokens, dim=0)
        else:
            joined = np.concatenate(tokens, axis=0)
        return AnchorFeatures(joined, producer, features[0].persistable)
