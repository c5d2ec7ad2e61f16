"""The virtual crop camera: each face seen by a camera that looks straight at it.

Why: a pose network sees only the crop. A face far off the optical axis is seen obliquely: a
head whose rotation in the camera frame is the identity shows its side when it sits at the
image border, and a head that turns to face the camera looks frontal. Crops therefore encode
the head pose relative to the *viewing ray* through the crop centre, not relative to the
camera axes. The virtual camera makes that explicit: it shares the real camera's optical
centre and is rotated so that its optical axis (0, 0, 1) is the ray through the crop centre.

Construction (identical on the anchor and the query side): for a crop centred at pixel ``c``
of a camera with intrinsics ``K``, ``d = normalise(K^-1 [c, 1])`` and ``R_virt_from_cam`` is
the minimal rotation taking ``d`` to ``(0, 0, 1)`` (axis ``d x z``; no roll about the ray is
added). Head poses convert by ``T_virt_from_head = [R_virt_from_cam | 0] @ T_cam_from_head``
(the translation rotates too; both cameras share the optical centre).

Which crop to use:

* **Plain crop** (:func:`hpe_core.crop.crop_face`), the paper's crop: a sub-window of the real
  image, resized. It is the virtual camera's view up to a residual keystone distortion that
  grows with the off-axis angle and with the crop's angular size; it is what VGGT-HPE was
  trained and evaluated on, so it is the default. Even with the plain crop the pose must be
  converted with :func:`virtual_camera_rotation` (the rotation is what makes poses right for
  off-centre faces); without it an off-centre head's pose is off by roughly the ray angle.
* **Homography-warped crop** (:func:`warp_virtual_crop`): re-renders the image as the virtual
  camera sees it, ``H = K_virt @ R_virt_from_cam @ K^-1``. Exact (the crop depends only on
  ``T_virt_from_head``); use it for wide-angle cameras or faces far off axis, and for training
  data made the same way.

Frames: camera optical frame (x right, y down, z forward); poses are ``T_cam_from_head``
4x4, metres. Pixels in the OpenCV convention (pixel centre ``(j, i)`` for column ``j``, row ``i``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.crop import DEFAULT_HFOV_DEG, PAPER_MARGIN, resolve_intrinsics
from hpe_core.geometry.rotations import rotation_between_vectors
from hpe_core.geometry.transforms import compose_transforms, invert_transform, make_transform

FloatArray = NDArray[np.float64]

OPTICAL_AXIS = np.array([0.0, 0.0, 1.0])


def viewing_ray(K: ArrayLike, center_px: ArrayLike) -> FloatArray:
    """``[3]`` unit ray (camera frame) through pixel ``center_px = (u, v)`` of camera ``K``."""
    K = np.asarray(K, dtype=np.float64)
    u, v = np.asarray(center_px, dtype=np.float64).reshape(2)
    d = np.linalg.solve(K, np.array([u, v, 1.0]))
    return d / np.linalg.norm(d)


def virtual_camera_rotation(K: ArrayLike, center_px: ArrayLike) -> FloatArray:
    """Rotation from the real camera to the virtual camera looking through ``center_px``.

    Args:
        K: ``[3, 3]`` intrinsics of the real camera (pixels).
        center_px: ``[2]`` crop centre ``(u, v)`` in pixels of that camera.

    Returns:
        ``[3, 3]`` ``R_virt_from_cam``, the minimal rotation with
        ``R_virt_from_cam @ d = (0, 0, 1)`` for the unit viewing ray ``d``.
    """
    return rotation_between_vectors(viewing_ray(K, center_px), OPTICAL_AXIS)


def _rotation_transform(R: FloatArray) -> FloatArray:
    return make_transform(R, np.zeros(3))


def head_pose_cam_to_virtual(T_cam_from_head: ArrayLike, R_virt_from_cam: ArrayLike) -> FloatArray:
    """Express a head pose in the virtual camera.

    Args:
        T_cam_from_head: ``[..., 4, 4]`` head pose in the real camera (metres).
        R_virt_from_cam: ``[3, 3]`` from :func:`virtual_camera_rotation`.

    Returns:
        ``[..., 4, 4]`` ``T_virt_from_head``.
    """
    return compose_transforms(_rotation_transform(np.asarray(R_virt_from_cam)), T_cam_from_head)


def head_pose_virtual_to_cam(T_virt_from_head: ArrayLike, R_virt_from_cam: ArrayLike) -> FloatArray:
    """Inverse of :func:`head_pose_cam_to_virtual`.

    Args:
        T_virt_from_head: ``[..., 4, 4]`` head pose in the virtual camera (metres).
        R_virt_from_cam: ``[3, 3]`` of the same crop.

    Returns:
        ``[..., 4, 4]`` ``T_cam_from_head``.
    """
    R_cam_from_virt = np.swapaxes(np.asarray(R_virt_from_cam, dtype=np.float64), -1, -2)
    return compose_transforms(_rotation_transform(R_cam_from_virt), T_virt_from_head)


def query_pose_from_relative(
    T_rel_virt: ArrayLike,
    T_cam_from_head_anchor: ArrayLike,
    R_virt_from_cam_anchor: ArrayLike,
    R_virt_from_cam_query: ArrayLike,
) -> FloatArray:
    """Query head pose in the real camera from a relative pose predicted on crops.

    The network sees both crops as virtual-camera views, so its relative pose is
    ``T_rel_virt = T_q_virt @ inv(T_a_virt)``; hence
    ``T_q_cam = to_cam_q(T_rel_virt @ to_virt_a(T_a_cam))``.

    Args:
        T_rel_virt: ``[4, 4]`` predicted relative pose (query w.r.t. anchor, virtual frames).
        T_cam_from_head_anchor: ``[4, 4]`` known anchor pose in its real camera.
        R_virt_from_cam_anchor: ``[3, 3]`` virtual rotation of the anchor crop.
        R_virt_from_cam_query: ``[3, 3]`` virtual rotation of the query crop.

    Returns:
        ``[4, 4]`` ``T_cam_from_head`` of the query.
    """
    T_anchor_virt = head_pose_cam_to_virtual(T_cam_from_head_anchor, R_virt_from_cam_anchor)
    T_query_virt = compose_transforms(T_rel_virt, T_anchor_virt)
    return head_pose_virtual_to_cam(T_query_virt, R_virt_from_cam_query)


def relative_pose_virtual(
    T_cam_from_head_query: ArrayLike,
    T_cam_from_head_anchor: ArrayLike,
    R_virt_from_cam_anchor: ArrayLike,
    R_virt_from_cam_query: ArrayLike,
) -> FloatArray:
    """Training target in virtual frames: ``T_q_virt @ inv(T_a_virt)``, ``[4, 4]``."""
    T_q = head_pose_cam_to_virtual(T_cam_from_head_query, R_virt_from_cam_query)
    T_a = head_pose_cam_to_virtual(T_cam_from_head_anchor, R_virt_from_cam_anchor)
    return compose_transforms(T_q, invert_transform(T_a))


def virtual_crop_intrinsics(K: ArrayLike, side_px: float, out_size: int) -> FloatArray:
    """Intrinsics of a virtual crop covering about ``side_px`` source pixels.

    Focal lengths are the source ones scaled by ``out_size / side_px`` (same magnification as
    the plain crop); the principal point is the crop centre ``((out - 1) / 2, (out - 1) / 2)``.

    Returns:
        ``[3, 3]`` ``K_virt`` in crop pixels.
    """
    K = np.asarray(K, dtype=np.float64)
    if side_px <= 0 or out_size < 1:
        raise ValueError(f"side_px and out_size must be positive, got {side_px}, {out_size}")
    s = out_size / side_px
    c = (out_size - 1) / 2.0
    return np.array([[K[0, 0] * s, K[0, 1] * s, c], [0.0, K[1, 1] * s, c], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class VirtualCropGeometry:
    """A homography-warped (virtual camera) crop.

    Attributes:
        center_px: ``[2]`` crop centre in source pixels.
        side_px: source pixels spanned by the crop at its centre.
        out_size: crop side in output pixels.
        K: ``[3, 3]`` source intrinsics.
        R_virt_from_cam: ``[3, 3]`` virtual camera rotation.
        K_virt: ``[3, 3]`` crop intrinsics (principal point at the crop centre).
        crop_from_image: ``[3, 3]`` homography ``H = K_virt @ R_virt_from_cam @ K^-1``.
    """

    center_px: FloatArray
    side_px: float
    out_size: int
    K: FloatArray
    R_virt_from_cam: FloatArray
    K_virt: FloatArray
    crop_from_image: FloatArray

    def image_to_crop(self, points_uv: ArrayLike) -> FloatArray:
        """Map ``[..., 2]`` source pixels into the crop (points in front of the camera)."""
        p = np.asarray(points_uv, dtype=np.float64)
        q = p @ self.crop_from_image[:, :2].T + self.crop_from_image[:, 2]
        return q[..., :2] / q[..., 2:3]


def virtual_crop_geometry(
    K: ArrayLike, center_px: ArrayLike, side_px: float, out_size: int
) -> VirtualCropGeometry:
    """Geometry of the virtual crop through ``center_px`` (see :func:`warp_virtual_crop`)."""
    K = np.asarray(K, dtype=np.float64)
    center = np.asarray(center_px, dtype=np.float64).reshape(2)
    R = virtual_camera_rotation(K, center)
    K_virt = virtual_crop_intrinsics(K, side_px, out_size)
    H = K_virt @ R @ np.linalg.inv(K)
    return VirtualCropGeometry(
        center_px=center, side_px=float(side_px), out_size=int(out_size), K=K,
        R_virt_from_cam=R, K_virt=K_virt, crop_from_image=H / H[2, 2],
    )


def warp_virtual_crop(
    image: NDArray,
    K: ArrayLike,
    center_px: ArrayLike,
    side_px: float,
    out_size: int,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[NDArray, VirtualCropGeometry]:
    """Render the virtual camera's view of the face (homography warp, zero outside).

    Args:
        image: ``[H, W, C]`` or ``[H, W]`` source image.
        K: ``[3, 3]`` source intrinsics.
        center_px: ``[2]`` crop centre ``(u, v)`` in source pixels (e.g. the box centre).
        side_px: source pixels the crop spans at its centre (e.g. ``max(w, h) * 1.4``).
        out_size: output side in pixels.
        interpolation: OpenCV interpolation flag. For strong shrinking prefer
            :func:`hpe_core.crop.crop_face` or blur first (warpPerspective does not average).

    Returns:
        ``crop [out_size, out_size, C]`` and its :class:`VirtualCropGeometry`.
    """
    geometry = virtual_crop_geometry(K, center_px, side_px, out_size)
    crop = cv2.warpPerspective(
        image, geometry.crop_from_image, (out_size, out_size), flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    if image.ndim == 3 and crop.ndim == 2:
        crop = crop[:, :, None]
    return crop, geometry


def virtual_crop_face(
    image: NDArray,
    box_xyxy: ArrayLike,
    out_size: int,
    K: Optional[ArrayLike] = None,
    margin: float = PAPER_MARGIN,
    hfov_deg: float = DEFAULT_HFOV_DEG,
) -> tuple[NDArray, VirtualCropGeometry]:
    """Virtual-camera counterpart of :func:`hpe_core.crop.crop_face` for a detection box.

    The crop is centred on the box centre and spans ``max(w, h) * (1 + margin)`` source
    pixels there; ``K`` falls back to the default field of view when ``None``.
    """
    box = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
    height, width = image.shape[:2]
    K = resolve_intrinsics(K, width, height, hfov_deg)
    side = max(box[2] - box[0], box[3] - box[1]) * (1.0 + margin)
    center = 0.5 * (box[:2] + box[2:])
    return warp_virtual_crop(image, K, center, side, out_size)
