"""The face crop an estimator asks for, with its :class:`~hpe_core.crop_camera.CropCamera`.

One function for everything that crops faces for an estimator (the pipeline, ``hpe-eval``), so
that both modes are cut, and their cameras built, the same way everywhere:

* ``"paper"``: VGGT-HPE's square box crop (:func:`hpe_core.crop.crop_face`); its camera maps
  camera directions to crop pixels through the crop's intrinsics ``K_crop = A @ K`` and its
  virtual camera looks along the ray through the crop square's centre
  (:func:`hpe_core.virtual_camera.virtual_camera_rotation`);
* ``"aligned"``: the landmark-normalised virtual crop (:func:`hpe_core.aligned_crop.aligned_crop`),
  whose virtual camera includes the levelling roll; without landmarks it is a plain virtual crop
  of the box.

Pixels: OpenCV convention (:mod:`hpe_core.crop`); ``K`` is the source image's ``[3, 3]``
intrinsics; boxes are ``[x0, y0, x1, y1]`` source pixels.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.aligned_crop import aligned_crop
from hpe_core.crop import PAPER_MARGIN, crop_face
from hpe_core.crop_camera import CropCamera
from hpe_core.virtual_camera import virtual_camera_rotation

#: The crop modes an estimator may ask for (:attr:`PoseEstimator.crop_mode`).
CROP_MODES = ("paper", "aligned")


def cut_face_crop(image: NDArray[np.uint8], K: ArrayLike, box_xyxy: ArrayLike, size: int, mode: str,
                  landmarks5: Optional[ArrayLike] = None, margin: float = PAPER_MARGIN,
                  intermediate_size: Optional[int] = None) -> tuple[NDArray[np.uint8], CropCamera]:
    """Cut one face's crop in ``mode`` and describe how it images the scene.

    Args:
        image: ``uint8 [H, W, 3]`` RGB source frame.
        K: ``[3, 3]`` source intrinsics (pixels).
        box_xyxy: ``[4]`` face box, source pixels.
        size: crop side, pixels (the estimator's input size).
        mode: ``"paper"`` or ``"aligned"`` (module docstring).
        landmarks5: ``[5, 2]`` MTCNN landmarks (source pixels) for ``"aligned"``, or ``None``
            (then the aligned crop is a plain virtual crop of the box); unused by ``"paper"``.
        margin: relative margin around the box (paper: 0.4).
        intermediate_size: ``"paper"`` only: resize to this size first, then bicubically to
            ``size`` (the VGGT-HPE BIWI protocol: 256, then 518).

    Returns:
        ``crop uint8 [size, size, 3]`` and its :class:`CropCamera`.
    """
    K = np.asarray(K, dtype=np.float64)
    if mode == "aligned":
        if intermediate_size is not None:
            raise ValueError("intermediate_size applies to paper crops only")
        crop, aligned = aligned_crop(image, K, box_xyxy, size, landmarks5, margin=margin)
        return crop, aligned.camera
    if mode != "paper":
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    crop, geometry = crop_face(image, box_xyxy, size, K=K, margin=margin, intermediate_size=intermediate_size)
    return crop, CropCamera(geometry.K_crop, virtual_camera_rotation(K, geometry.center_px))
