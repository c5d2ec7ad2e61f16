"""How a face crop images the scene: :class:`CropCamera` (numpy only).

Every crop the pipeline makes (the paper's box crop, a homography-warped virtual crop, a
landmark-aligned crop) is a pinhole view of the scene: a direction ``X_cam`` in the real
camera's optical frame lands at crop pixel ``[u, v, 1] ~ crop_from_cam @ X_cam``. With the
crop's virtual camera (``R_virt_from_cam``, :mod:`hpe_core.virtual_camera`) this gives each
crop pixel's viewing ray in the virtual frame, which geometric estimators (the face mesh)
need to lift 2-D landmarks into 3-D.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class CropCamera:
    """How a crop images the scene.

    Attributes:
        crop_from_cam: ``[3, 3]`` maps a direction in the real camera's optical frame to crop
            pixels, ``[u, v, 1] ~ crop_from_cam @ X_cam`` (plain crop: ``K_crop = A @ K``;
            homography-warped crop: ``K_virt @ R_virt_from_cam``).
        virtual_from_cam: ``[3, 3]`` ``R_virt_from_cam`` of the crop (its virtual camera;
            includes the in-plane roll of a landmark-aligned crop).
    """

    crop_from_cam: NDArray[np.float64]
    virtual_from_cam: NDArray[np.float64]

    def __post_init__(self) -> None:
        for name in ("crop_from_cam", "virtual_from_cam"):
            m = np.asarray(getattr(self, name), dtype=np.float64)
            if m.shape != (3, 3) or not np.all(np.isfinite(m)):
                raise ValueError(f"CropCamera.{name} must be a finite [3, 3] matrix, got {m.shape}")
            object.__setattr__(self, name, m)
        if abs(np.linalg.det(self.crop_from_cam)) < 1e-12:
            raise ValueError("CropCamera.crop_from_cam must be invertible")

    @classmethod
    def centred(cls, size_px: int, hfov_deg: float = 60.0) -> "CropCamera":
        """A crop that is its own virtual camera (principal point at the centre, no rotation)
        with a ``hfov_deg`` field of view: the assumption when nothing better is known."""
        f = (size_px / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
        c = (size_px - 1) / 2.0
        return cls(np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]), np.eye(3))

    def rays_virtual(self, points_uv: NDArray[np.floating]) -> NDArray[np.float64]:
        """``[N, 3]`` viewing rays (virtual frame, scaled to ``z = 1``) of ``[N, 2]`` crop pixels."""
        uv = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
        homogeneous = np.concatenate([uv, np.ones((len(uv), 1))], axis=1)
        rays = homogeneous @ (self.virtual_from_cam @ np.linalg.inv(self.crop_from_cam)).T
        return rays / rays[:, 2:3]

    @property
    def focal_px(self) -> float:
        """Crop pixels per unit of tangent at the crop centre (the crop's focal length)."""
        M = self.crop_from_cam @ self.virtual_from_cam.T  # virtual frame -> crop pixels
        M = M / M[2, 2]
        return float(np.sqrt(abs(np.linalg.det(M[:2, :2]))))
