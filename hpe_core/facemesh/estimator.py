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

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from hpe_core.crop_camera import CropCamera
from hpe_core.estimator.interface import AbsolutePose, AnchorFeatures, PoseEstimator, RelativePose
from hpe_core.facemesh.canonical import CanonicalFace, load_canonical_face
from hpe_core.facemesh.fit import RigidFit, robust_fit, weighted_fit
from hpe_core.facemesh.lifting import lift_unit_depth, visibility
from hpe_core.facemesh.runtime import MESH_INPUT_SIZE, FaceMeshRuntime, MeshResult
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
    canonical face.

    Returns:
        ``points [478, 3]`` metres (virtual frame), ``visibility [478]``, ``pose_virtual [4, 4]``
        (``T_virt_from_head``) and the fit's weighted RMS residual in millimetres.
    """
    unit = lift_unit_depth(landmarks_px, camera, canonical.z_scale)

    def visible(fit: RigidFit) -> FloatArray:
        return visibility(canonical.normals, fit.rotation, unit)

    # unit-depth points ~ scale * (R S + t'): the face's depth is 1 / scale. A first plain fit
    # brings the points to metres, so the robust fit's scale is in metres.
    first = weighted_fit(canonical.points, unit, weights, with_scale=True)
    unit = unit / first.scale
    fit = robust_fit(canonical.points, unit, weights, cauchy_scale=CANONICAL_CAUCHY_SCALE_M,
                     with_scale=True, reweight=visible)
    points = unit / fit.scale
    pose = make_transform(fit.rotation, fit.translation / fit.scale)
    return points, visible(fit), pose, fit.rms / fit.scale * 1e3


def relative_fit(anchor_values: FloatArray, query_points: FloatArray, query_visibility: FloatArray,
                 weights: FloatArray) -> RelativePose:
    """Relative poses ``P_q ~ R P_a + t`` of a query's metric points ``[478, 3]`` (with their
    visibility ``[478]``) against ``[K, 478, 4]`` anchor features (module docstring)."""
    values = np.asarray(anchor_values, dtype=np.float64)
    k = values.shape[0]
    rotations = np.zeros((k, 3, 3))
    translations = np.zeros((k, 3))
    residuals = np.zeros(k)
    for i in range(k):
        prior = weights * values[i, :, 3] * query_visibility
        fit = robust_fit(values[i, :, :3], query_points, prior, cauchy_scale=CAUCHY_SCALE_M)
        rotations[i], translations[i], residuals[i] = fit.rotation, fit.translation, fit.rms * 1e3
    return RelativePose(rotation=rotations, translation=translations, residual=residuals)


class FaceMeshEstimator(PoseEstimator):
    """MediaPipe's face mesh as a :class:`~hpe_core.estimator.interface.PoseEstimator`.

    Args:
        runtime: the networks (default: a new :class:`FaceMeshRuntime`).
        canonical: the canonical face (default: the shipped one).
        threads: interpreter threads for a new runtime.
        refine_roi: run the mesh a second time on the crop re-centred, re-scaled and levelled by
            its own first landmarks (:func:`refined_roi`; MediaPipe's tracking ROI), which
            removes what the detector's landmarks left of the roll.
    """

    name = "facemesh"
    estimator_kind = "facemesh"

    def __init__(self, runtime: Optional[FaceMeshRuntime] = None, canonical: Optional[CanonicalFace] = None,
                 threads: int = 1, refine_roi: bool = True) -> None:
        self.refine_roi = refine_roi
        self.runtime = runtime if runtime is not None else FaceMeshRuntime(threads=threads)
        self.canonical = canonical if canonical is not None else load_canonical_face()
        self._weights = expression_weights(self.canonical.jaw)
        self._feature_key = f"facemesh:{self.canonical.digest}"
        #: ``[478, 2]`` mesh landmarks of the last :meth:`estimate` query, pixels of its crop (``None``
        #: when the mesh saw no face): REP 155 ``landmarks`` are made from them.
        self.last_query_landmarks_px: Optional[FloatArray] = None

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
        return f"facemesh (MediaPipe face mesh + iris, ai-edge-litert) on cpu, input 192x192, canonical {self.canonical.digest}"

    # ------------------------------------------------------------------ per crop
    def observe(self, crop: NDArray[np.uint8], camera: Optional[CropCamera] = None) -> MeshObservation:
        """Run the mesh on one crop and lift it to metres (module docstring)."""
        cam = camera if camera is not None else CropCamera.centred(MESH_INPUT_SIZE, DEFAULT_CROP_HFOV_DEG)
        mesh = self.runtime.run(crop)
        if self.refine_roi and mesh.face_score >= 0.5:
            A = refined_roi(mesh.landmarks, MESH_INPUT_SIZE)
            second = self.runtime.run(cv2.warpAffine(np.asarray(crop), A[:2], (MESH_INPUT_SIZE, MESH_INPUT_SIZE),
                                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT))
            if second.face_score >= 0.5:
                # the refined crop is the same virtual camera seen through the affine A
                cam = CropCamera(A @ cam.crop_from_cam, cam.virtual_from_cam)
                landmarks = second.landmarks.copy()
                landmarks_crop = np.concatenate([landmarks[:, :2], np.ones((len(landmarks), 1))], 1) @ np.linalg.inv(A)[:2].T
                mesh = MeshResult(landmarks, second.face_score, second.iris)
                crop_landmarks = np.concatenate([landmarks_crop, landmarks[:, 2:3] / roi_scale(A)], 1)
            else:
                crop_landmarks = mesh.landmarks
        else:
            crop_landmarks = mesh.landmarks
        points, vis, pose, residual_mm = fit_to_canonical(mesh.landmarks, cam, self.canonical, self._weights)
        return MeshObservation(crop_landmarks, points, vis, pose, residual_mm, mesh.face_score)

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
        values = np.zeros((len(crops), NUM_POINTS, 4), dtype=np.float32)
        for k, crop in enumerate(crops):
            obs = self.observe(crop, None if cameras is None else cameras[k])
            values[k, :, :3] = obs.points_m
            values[k, :, 3] = obs.visibility
        return AnchorFeatures(values, self.feature_key, persistable=True)

    def estimate(self, anchor_features: AnchorFeatures, query_crop: NDArray[np.uint8],
                 camera: Optional[CropCamera] = None) -> RelativePose:
        self.check_features(anchor_features)
        self.last_query_landmarks_px = None
        query = self.observe(query_crop, camera)
        if query.face_score >= 0.5:
            self.last_query_landmarks_px = np.asarray(query.landmarks_px[:, :2], dtype=np.float64).copy()
        return self.relative_to(np.asarray(anchor_features.values, dtype=np.float64), query)

    def relative_to(self, anchor_values: FloatArray, query: MeshObservation) -> RelativePose:
        """Relative poses of an observed query against ``[K, 478, 4]`` anchor features."""
        return relative_fit(anchor_values, query.points_m, query.visibility, self._weights)
