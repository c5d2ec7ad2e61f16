"""Landmark-normalised face crops: the virtual camera turned so the eyes are level.

A face rolled in the image (a tilted head, a tilted camera) is re-rendered as seen by a virtual
camera that looks along the viewing ray through the face centre (as
:mod:`hpe_core.virtual_camera`) *and* is turned about that ray by the eye line's angle, so the
eyes are level in the crop. The roll is a rotation of the camera, so it is exact: the crop's
``R_virt_from_cam`` includes it, and every pose estimated in the crop converts back to the real
camera through it (:func:`hpe_core.virtual_camera.head_pose_virtual_to_cam`), which undoes it.

Centre and scale: the crop is centred between the box centre and the landmarks' centre (eyes,
nose, mouth corners) and spans ``max(w, h) * (1 + margin)`` box pixels, like the paper's crop.
The image is warped with the homography ``H = K_virt @ R_virt_from_cam @ K^-1``
(:func:`hpe_core.virtual_camera.warp_virtual_crop`), after a blur when it shrinks the face.

Landmarks are MTCNN's five points (left eye, right eye, nose, left and right mouth corner;
"left" = image left) in source pixels; without them the crop is a plain virtual crop of the box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.crop import PAPER_MARGIN
from hpe_core.crop_camera import CropCamera
from hpe_core.virtual_camera import virtual_camera_rotation, virtual_crop_intrinsics

FloatArray = NDArray[np.float64]

#: Weight of the landmarks' centre against the box centre when centring the crop.
LANDMARK_CENTRE_WEIGHT = 0.5


def _rz(angle_rad: float) -> FloatArray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class AlignedCropGeometry:
    """Where an aligned crop came from.

    Attributes:
        center_px: ``[2]`` crop centre in source pixels.
        side_px: source pixels spanned at the centre.
        roll_deg: the eye line's angle that was levelled, degrees (positive: the face's
            right-hand eye lower on screen, i.e. the head rolled clockwise on screen).
        K: ``[3, 3]`` source intrinsics.
        K_crop: ``[3, 3]`` crop intrinsics (virtual camera; principal point at the centre).
        R_virt_from_cam: ``[3, 3]`` virtual camera rotation, roll included.
        crop_from_image: ``[3, 3]`` homography source pixels -> crop pixels.
    """

    center_px: FloatArray
    side_px: float
    roll_deg: float
    K: FloatArray
    K_crop: FloatArray
    R_virt_from_cam: FloatArray
    crop_from_image: FloatArray

    @property
    def camera(self) -> CropCamera:
        """The crop as a :class:`~hpe_core.crop_camera.CropCamera`."""
        return CropCamera(self.K_crop @ self.R_virt_from_cam, self.R_virt_from_cam)

    def image_to_crop(self, points_uv: ArrayLike) -> FloatArray:
        """Map ``[..., 2]`` source pixels into the crop."""
        p = np.asarray(points_uv, dtype=np.float64)
        q = p @ self.crop_from_image[:, :2].T + self.crop_from_image[:, 2]
        return q[..., :2] / q[..., 2:3]

    def crop_to_image(self, points_uv: ArrayLike) -> FloatArray:
        """Map ``[..., 2]`` crop pixels back to source pixels."""
        p = np.asarray(points_uv, dtype=np.float64)
        H = np.linalg.inv(self.crop_from_image)
        q = p @ H[:, :2].T + H[:, 2]
        return q[..., :2] / q[..., 2:3]


def eye_roll_rad(K: FloatArray, R_virt_from_cam: FloatArray, left_eye_px: ArrayLike, right_eye_px: ArrayLike) -> float:
    """Angle of the eye line in the virtual camera's image plane (radians, atan2 of y-down)."""
    Kinv = np.linalg.inv(K)
    pts = []
    for p in (left_eye_px, right_eye_px):
        ray = R_virt_from_cam @ Kinv @ np.array([float(p[0]), float(p[1]), 1.0])
        pts.append(ray[:2] / ray[2])
    d = pts[1] - pts[0]
    return math.atan2(float(d[1]), float(d[0]))


def aligned_crop_geometry(K: ArrayLike, box_xyxy: ArrayLike, out_size: int,
                          landmarks5: Optional[ArrayLike] = None, margin: float = PAPER_MARGIN,
                          level_eyes: bool = True) -> AlignedCropGeometry:
    """The geometry of the aligned crop of a face (see the module docstring).

    Args:
        K: ``[3, 3]`` source intrinsics.
        box_xyxy: ``[4]`` face box, pixels.
        out_size: crop side, pixels.
        landmarks5: ``[5, 2]`` MTCNN landmarks in source pixels, or ``None``.
        margin: relative margin around the box (paper: 0.4).
        level_eyes: turn the camera so the eyes are level (else only centre and scale).
    """
    K = np.asarray(K, dtype=np.float64)
    box = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
    if box[2] <= box[0] or box[3] <= box[1] or not np.all(np.isfinite(box)):
        raise ValueError(f"degenerate box {box.tolist()}")
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")
    centre = 0.5 * (box[:2] + box[2:])
    lm = None if landmarks5 is None else np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    if lm is not None and np.all(np.isfinite(lm)):
        centre = (1.0 - LANDMARK_CENTRE_WEIGHT) * centre + LANDMARK_CENTRE_WEIGHT * lm.mean(axis=0)
    else:
        lm = None
    side = max(box[2] - box[0], box[3] - box[1]) * (1.0 + margin)
    R = virtual_camera_rotation(K, centre)
    roll = 0.0
    if lm is not None and level_eyes:
        roll = eye_roll_rad(K, R, lm[0], lm[1])
        R = _rz(-roll) @ R
    K_crop = virtual_crop_intrinsics(K, side, out_size)
    H = K_crop @ R @ np.linalg.inv(K)
    return AlignedCropGeometry(center_px=centre, side_px=float(side), roll_deg=math.degrees(roll), K=K,
                               K_crop=K_crop, R_virt_from_cam=R, crop_from_image=H / H[2, 2])


def aligned_crop(image: NDArray, K: ArrayLike, box_xyxy: ArrayLike, out_size: int,
                 landmarks5: Optional[ArrayLike] = None, margin: float = PAPER_MARGIN,
                 level_eyes: bool = True) -> tuple[NDArray, AlignedCropGeometry]:
    """Cut the aligned crop: ``uint8 [out_size, out_size, C]`` (zero outside the image) and its geometry."""
    geometry = aligned_crop_geometry(K, box_xyxy, out_size, landmarks5, margin, level_eyes)
    source = image
    shrink = geometry.side_px / out_size
    if shrink > 1.5:  # warpPerspective does not average: blur like an area resize would
        sigma = 0.5 * math.sqrt(shrink * shrink - 1.0)
        source = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)
    crop = cv2.warpPerspective(source, geometry.crop_from_image, (out_size, out_size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if image.ndim == 3 and crop.ndim == 2:
        crop = crop[:, :, None]
    return crop, geometry
