"""From the mesh's 2-D landmarks and relative depth to 3-D points in the crop's virtual camera.

The mesh gives each point's crop pixel ``(u, v)`` (a perspective projection) and a depth ``z``
in about the pixel scale of ``u`` relative to the face (smaller = nearer). With the crop's focal
length ``f`` (crop pixels, :attr:`~hpe_core.crop_camera.CropCamera.focal_px`) and the face's
reference depth ``D`` (metres), a point lies on its viewing ray ``d = (x, y, 1)`` (virtual
frame, :meth:`~hpe_core.crop_camera.CropCamera.rays_virtual`) at depth

    Z = D * (1 + s_z * z / f),

where ``s_z`` corrects the mesh's depth scale (fitted on rendered heads with exact poses,
:mod:`hpe_core.facemesh.canonical`). The points are linear in ``D``: :func:`lift_unit_depth`
returns them for ``D = 1`` and a similarity fit to the canonical face gives ``D``. This is a
full perspective unprojection (off-centre crops and near faces included), unlike a fit of raw
``(u, v, z)`` that treats the face as orthographic.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.crop_camera import CropCamera

FloatArray = NDArray[np.float64]


def lift_unit_depth(landmarks_px: ArrayLike, camera: CropCamera, z_scale: float) -> FloatArray:
    """``[N, 3]`` points (virtual frame) at unit reference depth from ``[N, 3]`` mesh landmarks."""
    lm = np.asarray(landmarks_px, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] != 3:
        raise ValueError(f"landmarks must be [N, 3], got {lm.shape}")
    rays = camera.rays_virtual(lm[:, :2])
    depth = 1.0 + z_scale * lm[:, 2] / camera.focal_px
    return rays * depth[:, None]


def visibility(normals_head: ArrayLike, rotation: ArrayLike, points: ArrayLike,
               grazing_cos: float = -0.05, full_cos: float = 0.35) -> FloatArray:
    """``[N]`` in [0, 1]: how squarely each point's surface faces the camera.

    Args:
        normals_head: ``[N, 3]`` outward unit normals in the head frame (canonical face).
        rotation: ``[3, 3]`` head-to-camera rotation.
        points: ``[N, 3]`` the points in the camera frame (any positive scale).
        grazing_cos, full_cos: cosine of the angle between normal and the direction to the
            camera at which the weight is 0 and 1 (smooth step in between).
    """
    R = np.asarray(rotation, dtype=np.float64)
    return visibilities(normals_head, R[None], np.asarray(points, dtype=np.float64)[None],
                        grazing_cos, full_cos)[0]


def visibilities(normals_head: ArrayLike, rotations: ArrayLike, points: ArrayLike,
                 grazing_cos: float = -0.05, full_cos: float = 0.35) -> FloatArray:
    """:func:`visibility` for ``B`` views at once: ``[B, N]`` from ``[N, 3]`` normals,
    ``[B, 3, 3]`` rotations and ``[B, N, 3]`` points."""
    n = np.asarray(normals_head, dtype=np.float64) @ np.asarray(rotations, dtype=np.float64).transpose(0, 2, 1)
    p = np.asarray(points, dtype=np.float64)
    to_camera = -p / np.linalg.norm(p, axis=2, keepdims=True)
    cos = np.sum(n * to_camera, axis=2)
    x = np.clip((cos - grazing_cos) / (full_cos - grazing_cos), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
