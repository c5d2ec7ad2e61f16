"""The relative head-pose estimator interface shared by every inference backend.

VGGT-HPE runs VGGT on a pair ``(anchor, query)`` with the anchor as frame 0. The query's
predicted camera-from-world extrinsic (world = anchor camera) is the relative head pose
``T_rel = T_q @ inv(T_a)``, where ``T_a`` and ``T_q`` are head poses ``T_cam_from_head``
(4x4, OpenCV optical frame: x right, y down, z forward, translation in metres). The query's
pose follows from a known anchor pose as ``T_q = T_rel @ T_a``.

Each image is first turned into patch tokens by the (per-frame) DINOv2 patch embed; only the
aggregator and camera head look at both frames. An anchor's patch tokens therefore never
change: :meth:`RelativePoseEstimator.embed_anchors` computes them once per anchor, a caller
keeps them (:class:`AnchorFeatures`, sliceable and concatenable), and
:meth:`RelativePoseEstimator.estimate` embeds only the query and runs one batched forward
over the K pairs.

Image inputs ("crops") everywhere in this module are ``uint8`` RGB numpy arrays laid out
``[..., H, W, 3]`` at exactly the model input size :attr:`RelativePoseEstimator.input_size`
(the caller crops and resizes the face; see the VGGT-HPE preprocessing). The backends scale
them to [0, 1]; the ImageNet normalisation happens inside the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence, Union

import numpy as np
import torch
from numpy.typing import NDArray

from hpe_core.geometry.pose_encoding import POSE_ENCODING_DIM
from hpe_core.geometry.rotations import matrix_from_quat_xyzw
from hpe_core.geometry.transforms import apply_relative, make_transform

TokenArray = Union[NDArray[np.float32], torch.Tensor]
IndexLike = Union[int, slice, Sequence[int], NDArray[np.integer]]


@dataclass(frozen=True)
class RelativePose:
    """The query head's pose relative to each of K anchors (``T_rel = T_q @ inv(T_a)``).

    Attributes:
        rotation: ``[K, 3, 3]`` float64 rotation of ``T_rel`` (OpenCV optical frame).
        translation: ``[K, 3]`` float64 translation of ``T_rel`` in metres.
        fov_hw: ``[K, 2]`` float64 predicted field of view of the query image,
            ``(vertical, horizontal)`` in radians.
        pose_encoding: ``[K, 9]`` float64 raw network output
            ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` of the query frame (last
            refinement iteration), kept for diagnostics and parity checks.
    """

    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]
    fov_hw: NDArray[np.float64]
    pose_encoding: NDArray[np.float64]

    def __post_init__(self) -> None:
        k = self.rotation.shape[0]
        expected = {
            "rotation": (k, 3, 3),
            "translation": (k, 3),
            "fov_hw": (k, 2),
            "pose_encoding": (k, POSE_ENCODING_DIM),
        }
        for field_name, shape in expected.items():
            actual = getattr(self, field_name).shape
            if actual != shape:
                raise ValueError(f"RelativePose.{field_name} must be {shape}, got {actual}")

    def __len__(self) -> int:
        return int(self.rotation.shape[0])

    @classmethod
    def from_pose_encoding(cls, pose_encoding: NDArray[np.floating]) -> "RelativePose":
        """Decode ``[K, 9]`` query pose encodings ``[t, q_xyzw, fov_h, fov_w]``.

        The quaternion is normalised (network outputs are not unit length); the fields of view
        are kept as predicted (radians; the intrinsics they imply are not needed here).
        """
        enc = np.asarray(pose_encoding, dtype=np.float64)
        if enc.ndim != 2 or enc.shape[1] != POSE_ENCODING_DIM:
            raise ValueError(f"pose_encoding must be [K, 9], got {enc.shape}")
        return cls(
            rotation=matrix_from_quat_xyzw(enc[:, 3:7]),
            translation=enc[:, 0:3].copy(),
            fov_hw=enc[:, 7:9].copy(),
            pose_encoding=enc,
        )

    def as_matrices(self) -> NDArray[np.float64]:
        """``[K, 4, 4]`` homogeneous ``T_rel`` matrices."""
        return make_transform(self.rotation, self.translation)


def compose_with_anchor_poses(
    rel: RelativePose, anchor_poses: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Query head poses from relative poses and the anchors' known poses.

    Args:
        rel: relative poses of the query w.r.t. K anchors.
        anchor_poses: ``[K, 4, 4]`` anchor head poses ``T_cam_from_head`` (metres), in the
            same order as the anchors ``rel`` was estimated with.

    Returns:
        ``[K, 4, 4]`` query head poses ``T_q = T_rel @ T_a``, one per anchor.
    """
    poses = np.asarray(anchor_poses, dtype=np.float64)
    if poses.shape != (len(rel), 4, 4):
        raise ValueError(f"anchor_poses must be [{len(rel)}, 4, 4], got {poses.shape}")
    return apply_relative(rel.as_matrices(), poses)


@dataclass(frozen=True)
class AnchorFeatures:
    """Cached per-anchor patch tokens: ``[K, P, C]`` (P patches, C channels).

    ``patch_tokens`` is a numpy array or a torch tensor, whichever the producing backend
    computes with (on its device). ``producer`` names the estimator and model that made them
    (:attr:`RelativePoseEstimator.feature_key`); an estimator refuses features of another.
    Index with an int, a slice or a sequence of ints to pick anchors (the anchor axis is
    kept), and join cached entries with :meth:`concatenate`.
    """

    patch_tokens: Any
    producer: str

    def __post_init__(self) -> None:
        if len(self.patch_tokens.shape) != 3:
            raise ValueError(f"patch_tokens must be [K, P, C], got {tuple(self.patch_tokens.shape)}")

    def __len__(self) -> int:
        return int(self.patch_tokens.shape[0])

    @property
    def token_shape(self) -> tuple[int, int]:
        """``(P, C)``: patches per frame and channels."""
        return int(self.patch_tokens.shape[1]), int(self.patch_tokens.shape[2])

    def __getitem__(self, index: IndexLike) -> "AnchorFeatures":
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"anchor index {index} out of range for {n} anchors")
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        elif not isinstance(index, slice):
            index_list = [int(i) for i in np.asarray(index).reshape(-1)]
            if isinstance(self.patch_tokens, torch.Tensor):
                index = torch.as_tensor(index_list, dtype=torch.long, device=self.patch_tokens.device)
            else:
                index = np.asarray(index_list, dtype=np.int64)
        return AnchorFeatures(self.patch_tokens[index], self.producer)

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
                raise ValueError(f"token shapes differ: {features[0].token_shape} vs {f.token_shape}")
        tokens = [f.patch_tokens for f in features]
        if isinstance(tokens[0], torch.Tensor):
            joined: Any = torch.cat(tokens, dim=0)
        else:
            joined = np.concatenate(tokens, axis=0)
        return AnchorFeatures(joined, producer)


def crops_to_float(crops: NDArray[np.uint8], input_size: tuple[int, int]) -> NDArray[np.float32]:
    """Check and convert crops for the model.

    Args:
        crops: ``uint8`` RGB ``[N, H, W, 3]`` with ``(H, W) == input_size``.
        input_size: ``(H, W)`` model input size in pixels.

    Returns:
        ``[N, 3, H, W]`` float32 in [0, 1] (channels first, C-contiguous).
    """
    arr = np.asarray(crops)
    h, w = input_size
    if arr.dtype != np.uint8:
        raise TypeError(f"crops must be uint8 RGB, got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[1:] != (h, w, 3):
        raise ValueError(f"crops must be [N, {h}, {w}, 3] uint8 RGB, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("crops must hold at least one image")
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


class RelativePoseEstimator(ABC):
    """A backend that estimates the query's pose relative to K anchors.

    Subclasses implement :meth:`_embed` (images -> patch tokens) and
    :meth:`_query_pose_encoding` (anchor and query tokens -> ``[K, 9]``); everything else
    (input checking, caching, decoding) lives here so that every backend behaves the same.
    """

    #: backend name, as given to :func:`hpe_core.estimator.create_estimator`.
    name: str = "abstract"

    @property
    @abstractmethod
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` model input size in pixels; crops must have exactly this size."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where the computation runs, e.g. ``"cpu"`` or ``"cuda:0"``."""

    @property
    @abstractmethod
    def precision(self) -> str:
        """Compute precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""

    @property
    @abstractmethod
    def feature_key(self) -> str:
        """Identifies the backend and model; stored in every :class:`AnchorFeatures`."""

    @abstractmethod
    def _embed(self, images: NDArray[np.float32]) -> Any:
        """Patch tokens ``[N, P, C]`` of images ``[N, 3, H, W]`` float32 in [0, 1]."""

    @abstractmethod
    def _query_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.floating]:
        """Pose encodings ``[K, 9]`` of the query (frame 1) in K pairs.

        Args:
            anchor_tokens: ``[K, P, C]`` patch tokens of the anchors (frame 0 of each pair).
            query_tokens: ``[1, P, C]`` patch tokens of the query, shared by the K pairs.
        """

    def describe(self) -> str:
        """One line naming the backend, device, precision and input size."""
        h, w = self.input_size
        return f"{self.name} on {self.device} ({self.precision}, input {h}x{w})"

    def embed_anchors(self, anchor_crops: NDArray[np.uint8]) -> AnchorFeatures:
        """Patch tokens of K anchors, computed once and kept by the caller.

        Args:
            anchor_crops: ``uint8`` RGB ``[K, H, W, 3]`` at :attr:`input_size`.

        Returns:
            :class:`AnchorFeatures` holding ``[K, P, C]`` tokens.
        """
        images = crops_to_float(anchor_crops, self.input_size)
        return AnchorFeatures(self._embed(images), self.feature_key)

    def estimate(self, anchor_features: AnchorFeatures, query_crop: NDArray[np.uint8]) -> RelativePose:
        """Relative pose of the query w.r.t. each cached anchor, in one batched forward.

        Args:
            anchor_features: K anchors' features from :meth:`embed_anchors` of this estimator.
            query_crop: ``uint8`` RGB ``[H, W, 3]`` at :attr:`input_size`.

        Returns:
            :class:`RelativePose` with K entries, in the order of ``anchor_features``.
        """
        if anchor_features.producer != self.feature_key:
            raise ValueError(
                f"anchor features were made by {anchor_features.producer!r}, "
                f"not by this estimator ({self.feature_key!r}); embed the anchors again"
            )
        if len(anchor_features) == 0:
            raise ValueError("estimate needs at least one anchor")
        query = crops_to_float(np.asarray(query_crop)[None], self.input_size)
        query_tokens = self._embed(query)
        encoding = self._query_pose_encoding(anchor_features.patch_tokens, query_tokens)
        return RelativePose.from_pose_encoding(np.asarray(encoding))

    def estimate_from_crops(
        self, anchor_crops: NDArray[np.uint8], query_crop: NDArray[np.uint8]
    ) -> RelativePose:
        """Uncached path: embed the K anchors and the query together, then estimate.

        Args:
            anchor_crops: ``uint8`` RGB ``[K, H, W, 3]`` at :attr:`input_size`.
            query_crop: ``uint8`` RGB ``[H, W, 3]`` at :attr:`input_size`.
        """
        anchors = np.asarray(anchor_crops)
        query = np.asarray(query_crop)
        if anchors.ndim != 4 or query.ndim != 3:
            raise ValueError(
                f"anchor_crops must be [K, H, W, 3] and query_crop [H, W, 3], "
                f"got {anchors.shape} and {query.shape}"
            )
        images = crops_to_float(np.concatenate([anchors, query[None]], axis=0), self.input_size)
        tokens = self._embed(images)
        encoding = self._query_pose_encoding(tokens[:-1], tokens[-1:])
        return RelativePose.from_pose_encoding(np.asarray(encoding))
