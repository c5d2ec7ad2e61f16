"""The estimator interface shared by every head-pose model, and its VGGT form.

Two layers (``../shared/notes/style-anchors.md``, last section):

* :class:`PoseEstimator`, what the pool, selection, consensus and the pipeline see: "features of
  K anchor crops" (:class:`AnchorFeatures`: opaque, cacheable, tagged with their producer,
  optionally saved with the pool) and "relative poses of a query against K cached anchors"
  (:class:`RelativePose`: rotation, translation and whatever the estimator can say about its
  own error), plus an optional absolute pose of one crop (:class:`AbsolutePose`). Every call
  may take each crop's :class:`CropCamera` (how the crop images the scene); estimators that
  reason about geometry (the face mesh) need it, VGGT ignores it.
* :class:`RelativePoseEstimator`, the VGGT form below (patch tokens, pose encoding), with its
  backends (torch, ONNX Runtime, TensorRT). The face-mesh estimator
  (:mod:`hpe_core.facemesh.estimator`) implements :class:`PoseEstimator` directly.

The rest of this docstring is about VGGT.

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
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from numpy.typing import NDArray

from hpe_core.crop_camera import CropCamera
from hpe_core.features import AnchorFeatures
from hpe_core.geometry.pose_encoding import POSE_ENCODING_DIM
from hpe_core.geometry.rotations import matrix_from_quat_xyzw
from hpe_core.geometry.transforms import apply_relative, make_transform

TokenArray = Union[NDArray[np.float32], torch.Tensor]
IndexLike = Union[int, slice, Sequence[int], NDArray[np.integer]]


@dataclass(frozen=True)
class RelativePose:
    """The query head's pose relative to each of K anchors (``T_rel = T_q @ inv(T_a)``).

    Attributes:
        rotation: ``[K, 3, 3]`` float64 rotation of ``T_rel`` (virtual crop camera frames,
            OpenCV optical axes).
        translation: ``[K, 3]`` float64 translation of ``T_rel`` in metres.
        fov_hw: ``[K, 2]`` float64 predicted field of view of the query image,
            ``(vertical, horizontal)`` in radians (VGGT), or ``None``.
        pose_encoding: ``[K, 9]`` float64 raw network output
            ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` of the query frame (last
            refinement iteration; VGGT), kept for diagnostics and parity checks, or ``None``.
        residual: ``[K]`` float64 the estimator's own error signal per anchor (the face mesh:
            weighted RMS fit residual in millimetres), or ``None``.
        query_landmarks_px: ``[L, 2]`` float64 dense landmarks of the query in its crop's
            pixels (the face mesh: its 478 points, when it saw a face), or ``None``; one set
            for the query, not one per anchor.
        anchor_index: ``[M]`` int, which of the request's K anchors each of the M estimates is
            relative to, when an estimator gives more than one estimate per anchor (the fused
            estimator: one per estimator); ``None`` means ``M == K`` in anchor order.
        sources: ``[M]`` the estimator kind (``facemesh``, ``vggt``) of each estimate, or
            ``None`` (all the estimator's own kind).
    """

    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]
    fov_hw: Optional[NDArray[np.float64]] = None
    pose_encoding: Optional[NDArray[np.float64]] = None
    residual: Optional[NDArray[np.float64]] = None
    query_landmarks_px: Optional[NDArray[np.float64]] = None
    anchor_index: Optional[NDArray[np.int64]] = None
    sources: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        k = self.rotation.shape[0]
        expected = {
            "rotation": (k, 3, 3),
            "translation": (k, 3),
            "fov_hw": (k, 2),
            "pose_encoding": (k, POSE_ENCODING_DIM),
            "residual": (k,),
        }
        for field_name, shape in expected.items():
            value = getattr(self, field_name)
            if value is None and field_name not in ("rotation", "translation"):
                continue
            actual = value.shape
            if actual != shape:
                raise ValueError(f"RelativePose.{field_name} must be {shape}, got {actual}")
        landmarks = self.query_landmarks_px
        if landmarks is not None and (landmarks.ndim != 2 or landmarks.shape[1] != 2):
            raise ValueError(f"RelativePose.query_landmarks_px must be [L, 2], got {landmarks.shape}")
        if self.anchor_index is not None and (self.anchor_index.shape != (k,) or np.any(self.anchor_index < 0)):
            raise ValueError(f"RelativePose.anchor_index must be [{k}] non-negative ints, got {self.anchor_index!r}")
        if self.sources is not None and len(self.sources) != k:
            raise ValueError(f"RelativePose.sources must name {k} estimates, got {len(self.sources)}")

    def anchor_indices(self, n_anchors: int) -> NDArray[np.int64]:
        """``[M]`` the anchor of each estimate (``anchor_index``, or ``0..K-1``); raises
        ``ValueError`` when it does not fit ``n_anchors`` anchors."""
        if self.anchor_index is None:
            if len(self) != n_anchors:
                raise ValueError(f"{len(self)} estimates for {n_anchors} anchors")
            return np.arange(n_anchors)
        if np.any(self.anchor_index >= n_anchors):
            raise ValueError(f"anchor_index {self.anchor_index.tolist()} out of range for {n_anchors} anchors")
        return self.anchor_index

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


@dataclass(frozen=True)
class AbsolutePose:
    """One face's head pose estimated from its crop alone, in the crop's virtual camera.

    Attributes:
        pose_virtual: ``[4, 4]`` ``T_virt_from_head`` (metres; virtual camera of the crop,
            OpenCV optical axes; head frame as in :mod:`hpe_core.pipeline`).
        residual: the estimator's own error signal (face mesh: weighted RMS fit residual, mm).
    """

    pose_virtual: NDArray[np.float64]
    residual: float


@dataclass(frozen=True)
class EstimateRequest:
    """One face of a frame for :meth:`PoseEstimator.estimate_batch`: its query crop against its
    own K cached anchors.

    Attributes:
        anchor_features: the K anchors' features (from this estimator's ``embed_anchors``).
        query_crop: ``uint8`` RGB ``[H, W, 3]`` at the estimator's ``input_size``.
        camera: the query crop's :class:`CropCamera`, or ``None``.
    """

    anchor_features: AnchorFeatures
    query_crop: NDArray[np.uint8]
    camera: Optional[CropCamera] = None


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


class PoseEstimator(ABC):
    """Any head-pose estimator the pool and the pipeline can use (module docstring).

    Crops are ``uint8`` RGB at :attr:`input_size`; ``cameras`` / ``camera`` give each crop's
    :class:`CropCamera` (``None``: the estimator's own assumption, e.g. the crop as its own
    virtual camera with a 60-degree field of view).
    """

    #: estimator or backend name (``vggt`` backends: ``torch``, ``onnxruntime``, ...).
    name: str = "abstract"
    #: which estimator family this is (``vggt``, ``facemesh``, ``fused``).
    estimator_kind: str = "abstract"
    #: fitted error models (:mod:`hpe_core.error_model`), set by whoever loads the model
    #: (:func:`hpe_core.pipeline_factory.build_estimator`); ``None``: not known.
    error_models: Optional[Any] = None

    @property
    @abstractmethod
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` crop size in pixels; crops must have exactly this size."""

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
        """Identifies the estimator and model; stored in every :class:`AnchorFeatures`."""

    @property
    def crop_mode(self) -> str:
        """The crop this estimator wants: ``"paper"`` (VGGT-HPE's box crop) or ``"aligned"``
        (landmark-normalised, :mod:`hpe_core.aligned_crop`)."""
        return "paper"

    def describe(self) -> str:
        """One line naming the estimator, device, precision and input size."""
        h, w = self.input_size
        return f"{self.name} on {self.device} ({self.precision}, input {h}x{w})"

    @abstractmethod
    def embed_anchors(self, anchor_crops: NDArray[np.uint8],
                      cameras: Optional[Sequence[CropCamera]] = None) -> AnchorFeatures:
        """Features of K anchors ``uint8 [K, H, W, 3]``, computed once and kept by the caller."""

    @abstractmethod
    def estimate(self, anchor_features: AnchorFeatures, query_crop: NDArray[np.uint8],
                 camera: Optional[CropCamera] = None) -> RelativePose:
        """Relative pose of the query ``uint8 [H, W, 3]`` w.r.t. each cached anchor (K entries,
        in the order of ``anchor_features``)."""

    def estimate_batch(self, requests: Sequence[EstimateRequest]) -> list[RelativePose]:
        """Every face of a frame in one call: one :class:`RelativePose` per request, in order,
        each as :meth:`estimate` would give it. This default runs :meth:`estimate` per request;
        estimators override it where doing the faces together is faster."""
        return [self.estimate(r.anchor_features, r.query_crop, r.camera) for r in requests]

    def absolute_pose(self, crop: NDArray[np.uint8], camera: Optional[CropCamera] = None) -> Optional[AbsolutePose]:
        """The face's pose from this crop alone, or ``None`` when the estimator cannot say
        (VGGT relative models; a crop without a face)."""
        return None

    def check_features(self, anchor_features: AnchorFeatures) -> None:
        """Raise ``ValueError`` unless ``anchor_features`` are this estimator's and non-empty."""
        if anchor_features.producer != self.feature_key:
            raise ValueError(
                f"anchor features were made by {anchor_features.producer!r}, "
                f"not by this estimator ({self.feature_key!r}); embed the anchors again"
            )
        if len(anchor_features) == 0:
            raise ValueError("estimate needs at least one anchor")


class RelativePoseEstimator(PoseEstimator):
    """A VGGT backend that estimates the query's pose relative to K anchors.

    Subclasses implement :meth:`_embed` (images -> patch tokens) and
    :meth:`_query_pose_encoding` (anchor and query tokens -> ``[K, 9]``); everything else
    (input checking, caching, decoding) lives here so that every backend behaves the same.
    Crop cameras are accepted and ignored (VGGT sees only pixels).
    """

    estimator_kind = "vggt"

    @property
    def supports_pair_queries(self) -> bool:
        """The backend runs pairs that each have their own query (:meth:`_pairs_pose_encoding`),
        so :meth:`estimate_batch` puts all faces' pairs in one call."""
        return False

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

    def _pairs_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> NDArray[np.floating]:
        """Pose encodings ``[M, 9]`` of the queries in M pairs, pair m = (anchor m, query m):
        anchor and query tokens both ``[M, P, C]``. Backends with
        :attr:`supports_pair_queries` implement it."""
        raise NotImplementedError(f"{type(self).__name__} takes one query per call")

    def embed_anchors(self, anchor_crops: NDArray[np.uint8],
                      cameras: Optional[Sequence[CropCamera]] = None) -> AnchorFeatures:
        """Patch tokens of K anchors, computed once and kept by the caller.

        Args:
            anchor_crops: ``uint8`` RGB ``[K, H, W, 3]`` at :attr:`input_size`.

        Returns:
            :class:`AnchorFeatures` holding ``[K, P, C]`` tokens.
        """
        images = crops_to_float(anchor_crops, self.input_size)
        return AnchorFeatures(self._embed(images), self.feature_key)

    def estimate(self, anchor_features: AnchorFeatures, query_crop: NDArray[np.uint8],
                 camera: Optional[CropCamera] = None) -> RelativePose:
        """Relative pose of the query w.r.t. each cached anchor, in one batched forward.

        Args:
            anchor_features: K anchors' features from :meth:`embed_anchors` of this estimator.
            query_crop: ``uint8`` RGB ``[H, W, 3]`` at :attr:`input_size`.

        Returns:
            :class:`RelativePose` with K entries, in the order of ``anchor_features``.
        """
        return self.estimate_batch([EstimateRequest(anchor_features, query_crop, camera)])[0]

    def estimate_batch(self, requests: Sequence[EstimateRequest]) -> list[RelativePose]:
        """Every face of a frame: the F queries embedded in one call, then all ``sum(K_f)``
        pairs in one call where the backend takes one query per pair
        (:attr:`supports_pair_queries`), else one pose call per face.

        Returns:
            One :class:`RelativePose` per request, in order (``K_f`` entries each).
        """
        if not requests:
            return []
        for request in requests:
            self.check_features(request.anchor_features)
        queries = crops_to_float(np.stack([np.asarray(r.query_crop) for r in requests]), self.input_size)
        query_tokens = self._embed(queries)
        counts = [len(r.anchor_features) for r in requests]
        if self.supports_pair_queries and len(requests) > 1:
            anchors = AnchorFeatures.concatenate([r.anchor_features for r in requests]).patch_tokens
            owner = np.repeat(np.arange(len(requests)), counts)
            encoding = np.asarray(self._pairs_pose_encoding(anchors, query_tokens[owner]))
            bounds = np.cumsum([0] + counts)
            parts = [encoding[bounds[f]:bounds[f + 1]] for f in range(len(requests))]
        else:
            parts = [np.asarray(self._query_pose_encoding(r.anchor_features.patch_tokens, query_tokens[f:f + 1]))
                     for f, r in enumerate(requests)]
        return [RelativePose.from_pose_encoding(part) for part in parts]

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
