"""``estimator: fused``: VGGT and the face mesh on every face, against the same anchors.

One :class:`~hpe_core.estimator.interface.PoseEstimator` made of two: each request (a face and
its K selected anchors) goes to both, in one batched call each, run side by side (VGGT in a
worker thread while the face mesh runs in the caller's; both release the GIL in their runtimes,
so on two cores the frame costs about the slower of the two rather than their sum). The result
holds the 2K estimates (:attr:`RelativePose.anchor_index` and :attr:`RelativePose.sources` say
which anchor and which estimator each is), and the pipeline fuses all of them with the robust
rotation average, each weighted by its estimator's fitted error model
(:mod:`hpe_core.error_model`, :mod:`hpe_core.anchors.consensus`).

Crops: both see the landmark-aligned crop (:mod:`hpe_core.aligned_crop`, eyes level, exact
virtual camera) at the face mesh's 192 px; VGGT gets it resized to its own input size (a
resize is the same virtual camera with scaled intrinsics, so every pose converts back the
same way). Where the mesh finds no face in the query, only VGGT's estimates are returned.
"""
from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from hpe_core.crop_camera import CropCamera
from hpe_core.estimator.interface import (AbsolutePose, EstimateRequest, PoseEstimator, RelativePose,
                                          RelativePoseEstimator)
from hpe_core.features import AnchorFeatures, IndexLike


@dataclass(frozen=True)
class FusedFeatures:
    """Cached features of K anchors for both estimators (the :class:`AnchorFeatures` protocol:
    ``len``, indexing along the anchor axis, :meth:`concatenate`, ``producer``)."""

    mesh: AnchorFeatures
    vggt: AnchorFeatures
    producer: str
    persistable: bool = False

    def __post_init__(self) -> None:
        if len(self.mesh) != len(self.vggt):
            raise ValueError(f"fused features disagree on K: {len(self.mesh)} mesh vs {len(self.vggt)} vggt")

    def __len__(self) -> int:
        return len(self.mesh)

    def __getitem__(self, index: IndexLike) -> "FusedFeatures":
        return FusedFeatures(self.mesh[index], self.vggt[index], self.producer)

    @staticmethod
    def concatenate(features: Sequence["FusedFeatures"]) -> "FusedFeatures":
        if not features:
            raise ValueError("concatenate needs at least one FusedFeatures")
        producer = features[0].producer
        if any(f.producer != producer for f in features):
            raise ValueError("cannot concatenate fused features of different producers")
        return FusedFeatures(AnchorFeatures.concatenate([f.mesh for f in features]),
                             AnchorFeatures.concatenate([f.vggt for f in features]), producer)


def resized_crop(crop: NDArray[np.uint8], camera: Optional[CropCamera], size: tuple[int, int]
                 ) -> tuple[NDArray[np.uint8], Optional[CropCamera]]:
    """The crop at ``size`` ``(H, W)`` pixels and its camera (intrinsics scaled, same rotation)."""
    h, w = crop.shape[:2]
    if (h, w) == tuple(size):
        return crop, camera
    sy, sx = size[0] / h, size[1] / w
    out = cv2.resize(np.ascontiguousarray(crop), (size[1], size[0]),
                     interpolation=cv2.INTER_AREA if sx < 1.0 else cv2.INTER_LINEAR)
    if camera is None:
        return out, None
    # pixel centres: x' + 0.5 = s (x + 0.5)
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return out, CropCamera(S @ camera.crop_from_cam, camera.virtual_from_cam)


class FusedEstimator(PoseEstimator):
    """VGGT and the face mesh as one estimator (module docstring).

    Args:
        mesh: the face-mesh estimator (its crop mode and input size are this estimator's).
        vggt: a VGGT backend.
        parallel: run VGGT in a worker thread beside the face mesh.
    """

    name = "fused"
    estimator_kind = "fused"

    def __init__(self, mesh: PoseEstimator, vggt: RelativePoseEstimator, parallel: bool = True) -> None:
        self.mesh = mesh
        self.vggt = vggt
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hpe-fused-vggt") if parallel else None
        if self._pool is not None:
            # the worker thread ends when the estimator is dropped (a node's cleanup), or at close()
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False)
        self._feature_key = f"fused[{mesh.feature_key}|{vggt.feature_key}]"

    @property
    def input_size(self) -> tuple[int, int]:
        return self.mesh.input_size

    @property
    def device(self) -> str:
        return self.vggt.device

    @property
    def precision(self) -> str:
        return self.vggt.precision

    @property
    def feature_key(self) -> str:
        return self._feature_key

    @property
    def crop_mode(self) -> str:
        return "aligned"

    def describe(self) -> str:
        return f"fused: {self.mesh.describe()} + {self.vggt.describe()}"

    def _vggt_crops(self, crops: Sequence[NDArray[np.uint8]], cameras: Sequence[Optional[CropCamera]]
                    ) -> tuple[NDArray[np.uint8], list[Optional[CropCamera]]]:
        pairs = [resized_crop(np.asarray(c), cam, self.vggt.input_size) for c, cam in zip(crops, cameras)]
        return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]

    def _both(self, run_mesh, run_vggt):
        """Both calls, VGGT's in the worker thread when parallel; exceptions propagate."""
        if self._pool is None:
            return run_mesh(), run_vggt()
        future = self._pool.submit(run_vggt)
        try:
            mesh_out = run_mesh()
        finally:
            vggt_out = future.result()
        return mesh_out, vggt_out

    def embed_anchors(self, anchor_crops: NDArray[np.uint8],
                      cameras: Optional[Sequence[CropCamera]] = None) -> FusedFeatures:
        crops = np.asarray(anchor_crops)
        if crops.ndim != 4 or crops.shape[0] == 0:
            raise ValueError(f"anchor_crops must be [K, H, W, 3], got {crops.shape}")
        cams = list(cameras) if cameras is not None else [None] * len(crops)
        small, _ = self._vggt_crops(list(crops), cams)
        mesh, vggt = self._both(lambda: self.mesh.embed_anchors(crops, cameras),
                                lambda: self.vggt.embed_anchors(small))
        return FusedFeatures(mesh, vggt, self.feature_key)

    def check_features(self, anchor_features) -> None:  # type: ignore[override]
        if getattr(anchor_features, "producer", None) != self.feature_key or not isinstance(anchor_features, FusedFeatures):
            raise ValueError(f"anchor features were made by {getattr(anchor_features, 'producer', None)!r}, "
                             f"not by this estimator ({self.feature_key!r}); embed the anchors again")
        if len(anchor_features) == 0:
            raise ValueError("estimate needs at least one anchor")

    def estimate(self, anchor_features, query_crop: NDArray[np.uint8],
                 camera: Optional[CropCamera] = None) -> RelativePose:
        return self.estimate_batch([EstimateRequest(anchor_features, query_crop, camera)])[0]

    def estimate_batch(self, requests: Sequence[EstimateRequest]) -> list[RelativePose]:
        if not requests:
            return []
        for r in requests:
            self.check_features(r.anchor_features)
        small, small_cams = self._vggt_crops([r.query_crop for r in requests], [r.camera for r in requests])
        mesh_requests = [EstimateRequest(r.anchor_features.mesh, r.query_crop, r.camera) for r in requests]
        vggt_requests = [EstimateRequest(r.anchor_features.vggt, small[i], small_cams[i]) for i, r in enumerate(requests)]
        mesh_out, vggt_out = self._both(lambda: self.mesh.estimate_batch(mesh_requests),
                                        lambda: self.vggt.estimate_batch(vggt_requests))
        return [self._joined(m, v) for m, v in zip(mesh_out, vggt_out)]

    @staticmethod
    def _joined(mesh: RelativePose, vggt: RelativePose) -> RelativePose:
        """Both estimators' estimates as one :class:`RelativePose` (mesh first, dropped when the
        mesh saw no face in the query)."""
        k = len(vggt)
        parts = [(mesh, "facemesh")] if mesh.query_landmarks_px is not None else []
        parts.append((vggt, "vggt"))
        residual = np.concatenate([p.residual if p.residual is not None else np.full(len(p), np.nan) for p, _ in parts])
        return RelativePose(
            rotation=np.concatenate([p.rotation for p, _ in parts]),
            translation=np.concatenate([p.translation for p, _ in parts]),
            residual=residual,
            query_landmarks_px=mesh.query_landmarks_px,
            anchor_index=np.concatenate([np.arange(k) for _ in parts]).astype(np.int64),
            sources=tuple(name for p, name in parts for _ in range(len(p))),
        )

    def absolute_pose(self, crop: NDArray[np.uint8], camera: Optional[CropCamera] = None) -> Optional[AbsolutePose]:
        return self.mesh.absolute_pose(crop, camera)

    def close(self) -> None:
        """Stop the worker thread."""
        if self._pool is not None:
            self._finalizer.detach()
            self._pool.shutdown(wait=True)
