"""The face mesh behind the estimator interface: relative poses by a robust rigid fit of 3-D landmarks.

Per crop (:meth:`FaceMeshEstimator.observe`): the mesh network gives 478 landmarks; they are
lifted into the crop's virtual camera (:mod:`~hpe_core.facemesh.lifting`, perspective and the
mesh's depth scale handled) and a robust similarity fit of the canonical face
(:mod:`~hpe_core.facemesh.canonical`) gives the face's depth, so the points are in metres, and
its absolute pose. Each point's weight is its expression weight (lips, eyelids, brows and jaw
count less, iris points not at all: :mod:`~hpe_core.facemesh.topology`) times its visibility
(points on surfaces turned away from the camera count less).

Relative pose of a query against an anchor: the rigid transform ``P_q ~ R P_a + t`` between
the anchor's and the query's metric points (IRLS, Cauchy scale :data:`CAUCHY_SCALE_M`), with
each point weighted by its expression weight and its visibility in *both* views. That is
``T_rel = T_q_virt @ inv(T_a_virt)`` in virtual frames, as the pool expects. The same person's
own mesh is compared with itself, so the canonical face's identity does not enter.

Anchor features (:class:`~hpe_core.estimator.interface.AnchorFeatures`, ``persistable``): the
anchor's metric points and visibilities ``float32 [K, 478, 4]``, saved with the pool.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from hpe_core.crop_camera import CropCamera
from hpe_core.estimator.interface import AbsolutePose, AnchorFeatures, EstimateRequest, PoseEstimator, RelativePose
from hpe_core.facemesh.canonical import CanonicalFace, load_canonical_face
from hpe_core.facemesh.fit import RigidFits, robust_fits, weighted_fits
from hpe_core.facemesh.lifting import lift_unit_depth, visibilities
from hpe_core.facemesh.runtime import MESH_INPUT_SIZE, FaceMeshRuntime, FaceMeshRuntimePool, MeshResult
from hpe_core.facemesh.topology import NUM_POINTS, expression_weights
from hpe_core.geometry.transforms import make_transform

FloatArray = NDArray[np.float64]

#: Residual at which a point's weight halves in the relative fit, metres.
CAUCHY_SCALE_M = 0.004
#: The same for the absolute fit to the canonical face (identities differ), metres.
CANONICAL_CAUCHY_SCALE_M = 0.008
#: The refined ROI spans this many times the mesh's bounding box (MediaPipe: 1.5).
ROI_SCALE = 1.5
#: Field of view assumed for a crop without a camera, degrees.
DEFAULT_CROP_HFOV_DEG = 15.0


@dataclass(frozen=True)
class MeshObservation:
    """One crop seen by the face mesh.

    Attributes:
        landmarks_px: ``[478, 3]`` mesh output in the given crop's pixels (relative depth).
        points_m: ``[478, 3]`` metric points in the crop's virtual camera.
        visibility: ``[478]`` in [0, 1].
        pose_virtual: ``[4, 4]`` ``T_virt_from_head`` from the canonical fit.
        residual_mm: weighted RMS residual of that fit, millimetres.
        face_score: the mesh network's face probability.
    """

    landmarks_px: FloatArray
    points_m: FloatArray
    visibility: FloatArray
    pose_virtual: FloatArray
    residual_mm: float
    face_score: float


def roi_scale(A: FloatArray) -> float:
    """Scale of a similarity ``[3, 3]`` (output pixels per input pixel)."""
    return float(np.sqrt(abs(np.linalg.det(A[:2, :2]))))


def refined_roi(landmarks_px: FloatArray, size: int) -> FloatArray:
    """``[3, 3]`` similarity from crop pixels to a crop centred on the mesh, eyes level.

    Centre: the middle of the mesh's bounding box (468 points); side: ``ROI_SCALE`` times its
    larger side (MediaPipe's 1.5); rotation: the outer eye corners (33, 263) made level.
    Rotating and scaling a pinhole image about a point is an affine change of its intrinsics,
    so the new crop is the same virtual camera (``crop_from_cam' = A @ crop_from_cam``).
    """
    pts = np.asarray(landmarks_px, dtype=np.float64)[:468, :2]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = 0.5 * (lo + hi)
    eye = pts[263] - pts[33]
    angle = float(np.degrees(np.arctan2(eye[1], eye[0])))
    side = max(float((hi - lo).max()) * ROI_SCALE, 8.0)
    A = np.vstack([cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, size / side), [0, 0, 1]])
    A[:2, 2] += (size - 1) / 2.0 - centre
    return A


def fit_to_canonical(landmarks_px: FloatArray, camera: CropCamera, canonical: CanonicalFace,
                     weights: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Lift one crop's ``[478, 3]`` mesh landmarks to metres by a robust similarity fit of the
    canonical face (:func:`fit_many_to_canonical` for one crop).

    Returns:
        ``points [478, 3]`` metres (virtual frame), ``visibility [478]``, ``pose_virtual [4, 4]``
        (``T_virt_from_head``) and the fit's weighted RMS residual in millimetres.
    """
    points, vis, poses, residuals = fit_many_to_canonical([landmarks_px], [camera], canonical, weights)
    return points[0], vis[0], poses[0], float(residuals[0])


def fit_many_to_canonical(landmarks_px: Sequence[FloatArray], cameras: Sequence[CropCamera],
                          canonical: CanonicalFace, weights: FloatArray
                          ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Lift F crops' ``[478, 3]`` mesh landmarks to metres, all fits in one batched pass.

    Returns:
        ``points [F, 478, 3]`` metres (virtual frames), ``visibility [F, 478]``,
        ``pose_virtual [F, 4, 4]`` (``T_virt_from_head``) and the fits' weighted RMS residuals
        ``[F]`` in millimetres.
    """
    unit = np.stack([lift_unit_depth(lm, cam, canonical.z_scale) for lm, cam in zip(landmarks_px, cameras)])
    f = len(unit)
    src = np.broadcast_to(canonical.points, unit.shape)
    prior = np.broadcast_to(weights, unit.shape[:2])

    # unit-depth points ~ scale * (R S + t'): the face's depth is 1 / scale. A first plain fit
    # brings the points to metres, so the robust fit's scale is in metres.
    first = weighted_fits(src, unit, prior, with_scale=True)
    unit = unit / first.scale[:, None, None]

    def visible(fits: RigidFits) -> FloatArray:
        return visibilities(canonical.normals, fits.rotation, unit)

    fits = robust_fits(src, unit, prior, cauchy_scale=CANONICAL_CAUCHY_SCALE_M, with_scale=True, reweight=visible)
    points = unit / fits.scale[:, None, None]
    poses = make_transform(fits.rotation, fits.translation / fits.scale[:, None])
    return points, visible(fits), poses.reshape(f, 4, 4), fits.rms / fits.scale * 1e3


def relative_fit(anchor_values: FloatArray, query_points: FloatArray, query_visibility: FloatArray,
                 weights: FloatArray) -> RelativePose:
    """Relative poses ``P_q ~ R P_a + t`` of a query's metric points ``[478, 3]`` (with their
    visibility ``[478]``) against ``[K, 478, 4]`` anchor features (module docstring)."""
    return relative_fits([anchor_values], [query_points], [query_visibility], weights)[0]


def relative_fits(anchor_values: Sequence[FloatArray], query_points: Sequence[FloatArray],
                  query_visibility: Sequence[FloatArray], weights: FloatArray) -> list[RelativePose]:
    """:func:`relative_fit` for F queries, each against its own ``[K_f, 478, 4]`` anchors, all
    ``sum(K_f)`` fits in one batched pass; one :class:`RelativePose` per query."""
    counts = [int(np.asarray(v).shape[0]) for v in anchor_values]
    values = np.concatenate([np.asarray(v, dtype=np.float64) for v in anchor_values])
    dst = np.concatenate([np.broadcast_to(np.asarray(q, dtype=np.float64), (k, *np.shape(q)))
                          for q, k in zip(query_points, counts)])
    query_vis = np.concatenate([np.broadcast_to(np.asarray(v, dtype=np.float64), (k, len(v)))
                                for v, k in zip(query_visibility, counts)])
    prior = weights[None] * values[:, :, 3] * query_vis
    fits = robust_fits(values[:, :, :3], dst, prior, cauchy_scale=CAUCHY_SCALE_M)
    out, start = [], 0
    for k in counts:
        part = slice(start, start + k)
        out.append(RelativePose(rotation=fits.rotation[part].copy(), translation=fits.translation[part].copy(),
                                residual=fits.rms[part] * 1e3))
        start += k
    return out


class FaceMeshEstimator(PoseEstimator):
    """MediaPipe's face mesh as a :class:`~hpe_core.estimator.interface.PoseEstimator`.

    Args:
        runtime: the networks (default: a new :class:`FaceMeshRuntime`).
        canonical: the canonical face (default: the shipped one).
        threads: interpreter threads for a new runtime.
        refine_roi: run the mesh a second time on the crop re-centred, re-scaled and levelled by
            its own first landmarks (:func:`refined_roi`; MediaPipe's tracking ROI), which
            removes what the detector's landmarks left of the roll.
        workers: runtimes a batch of faces (:meth:`estimate_batch`) is shared across, side by
            side on the CPU's cores (:class:`FaceMeshRuntimePool`); 1 = one face after another.
    """

    name = "facemesh"
    estimator_kind = "facemesh"

    def __init__(self, runtime: Optional[FaceMeshRuntime] = None, canonical: Optional[CanonicalFace] = None,
                 threads: int = 1, refine_roi: bool = True, workers: int = 1) -> None:
        self.refine_roi = refine_roi
        self.runtime = runtime if runtime is not None else FaceMeshRuntime(threads=threads)
        self.runtimes = FaceMeshRuntimePool(self.runtime, workers)
        self.canonical = canonical if canonical is not None else load_canonical_face()
        self._weights = expression_weights(self.canonical.jaw)
        self._feature_key = f"facemesh:{self.canonical.digest}"

    @property
    def input_size(self) -> tuple[int, int]:
        return (MESH_INPUT_SIZE, MESH_INPUT_SIZE)

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def precision(self) -> str:
        return "fp32"

    @property
    def feature_key(self) -> str:
        return self._feature_key

    @property
    def crop_mode(self) -> str:
        return "aligned"

    def describe(self) -> str:
        workers = f", {self.runtimes.workers} workers" if self.runtimes.workers > 1 else ""
        return (f"facemesh (MediaPipe face mesh + iris, ai-edge-litert) on cpu, input 192x192, "
                f"canonical {self.canonical.digest}{workers}")

    # ------------------------------------------------------------------ per crop
    def observe(self, crop: NDArray[np.uint8], camera: Optional[CropCamera] = None) -> MeshObservation:
        """Run the mesh on one crop and lift it to metres (module docstring)."""
        return self.observe_many([crop], [camera])[0]

    def observe_many(self, crops: Sequence[NDArray[np.uint8]],
                     cameras: Sequence[Optional[CropCamera]]) -> list[MeshObservation]:
        """:meth:`observe` for F crops: the networks shared across :attr:`runtimes`, the F
        canonical fits in one batched pass."""
        if len(crops) != len(cameras):
            raise ValueError(f"{len(cameras)} cameras for {len(crops)} crops")
        if not crops:
            return []
        cams = [c if c is not None else CropCamera.centred(MESH_INPUT_SIZE, DEFAULT_CROP_HFOV_DEG) for c in cameras]
        meshes = self.runtimes.run_many(crops)
        crop_landmarks = [m.landmarks for m in meshes]
        if self.refine_roi:
            again = [i for i, m in enumerate(meshes) if m.face_score >= 0.5]
            rois = {i: refined_roi(meshes[i].landmarks, MESH_INPUT_SIZE) for i in again}
            warped = [cv2.warpAffine(np.asarray(crops[i]), rois[i][:2], (MESH_INPUT_SIZE, MESH_INPUT_SIZE),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) for i in again]
            for i, second in zip(again, self.runtimes.run_many(warped)):
                if second.face_score < 0.5:
                    continue
                A = rois[i]
                # the refined crop is the same virtual camera seen through the affine A
                cams[i] = CropCamera(A @ cams[i].crop_from_cam, cams[i].virtual_from_cam)
                landmarks = second.landmarks.copy()
                in_crop = np.concatenate([landmarks[:, :2], np.ones((len(landmarks), 1))], 1) @ np.linalg.inv(A)[:2].T
                meshes[i] = MeshResult(landmarks, second.face_score, second.iris)
                crop_landmarks[i] = np.concatenate([in_crop, landmarks[:, 2:3] / roi_scale(A)], 1)
        points, vis, poses, residuals = fit_many_to_canonical([m.landmarks for m in meshes], cams,
                                                              self.canonical, self._weights)
        return [MeshObservation(crop_landmarks[i], points[i], vis[i], poses[i], float(residuals[i]),
                                meshes[i].face_score) for i in range(len(meshes))]

    def absolute_pose(self, crop: NDArray[np.uint8], camera: Optional[CropCamera] = None) -> Optional[AbsolutePose]:
        obs = self.observe(crop, camera)
        if obs.face_score < 0.5:
            return None
        return AbsolutePose(obs.pose_virtual, obs.residual_mm)

    # ------------------------------------------------------------------ the interface
    def embed_anchors(self, anchor_crops: NDArray[np.uint8],
                      cameras: Optional[Sequence[CropCamera]] = None) -> AnchorFeatures:
        crops = np.asarray(anchor_crops)
        if crops.ndim != 4 or crops.shape[0] == 0:
            raise ValueError(f"anchor_crops must be [K, 192, 192, 3], got {crops.shape}")
        if cameras is not None and len(cameras) != len(crops):
            raise ValueError(f"{len(cameras)} cameras for {len(crops)} crops")
        observations = self.observe_many(list(crops), [None] * len(crops) if cameras is None else list(cameras))
        values = np.zeros((len(crops), NUM_POINTS, 4), dtype=np.float32)
        for k, obs in enumerate(observations):
            values[k, :, :3] = obs.points_m
            values[k, :, 3] = obs.visibility
        return AnchorFeatures(values, self.feature_key, persistable=True)

    def estimate(self, anchor_features: AnchorFeatures, query_crop: NDArray[np.uint8],
                 camera: Optional[CropCamera] = None) -> RelativePose:
        return self.estimate_batch([EstimateRequest(anchor_features, query_crop, camera)])[0]

    def estimate_batch(self, requests: Sequence[EstimateRequest]) -> list[RelativePose]:
        """Every face of a frame against its anchors: the meshes shared across the runtimes,
        the canonical fits and the ``sum(K)`` relative fits each in one batched pass. Each
        result carries the query's mesh landmarks (``query_landmarks_px``, crop pixels) when
        the mesh saw a face."""
        if not requests:
            return []
        for request in requests:
            self.check_features(request.anchor_features)
        queries = self.observe_many([r.query_crop for r in requests], [r.camera for r in requests])
        poses = relative_fits([np.asarray(r.anchor_features.values, dtype=np.float64) for r in requests],
                              [q.points_m for q in queries], [q.visibility for q in queries], self._weights)
        return [replace(pose, query_landmarks_px=np.asarray(q.landmarks_px[:, :2], dtype=np.float64).copy()
                        if q.face_score >= 0.5 else None) for pose, q in zip(poses, queries)]
