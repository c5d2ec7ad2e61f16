"""Face detection result type and the detector interface (framework-free).

Pixel convention (OpenCV): ``u`` to the right, ``v`` down, the centre of pixel ``(row i,
column j)`` at ``(u, v) = (j, i)``. Boxes are ``[x1, y1, x2, y2]`` in pixels of the image that
was passed to the detector (float, not clipped to the image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Detection:
    """One detected face.

    Attributes:
        box_xyxy: ``[4]`` float64 ``[x1, y1, x2, y2]`` in pixels, ``x2 > x1``, ``y2 > y1``.
        score: detector confidence in ``[0, 1]``.
        landmarks5: ``[5, 2]`` float64 ``(u, v)`` pixels in MTCNN order (left eye, right eye,
            nose, left mouth corner, right mouth corner; "left" = image left), or ``None``.
    """

    box_xyxy: FloatArray
    score: float
    landmarks5: Optional[FloatArray] = None

    def __post_init__(self) -> None:
        box = np.asarray(self.box_xyxy, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise ValueError(f"box_xyxy must be 4 finite numbers, got {self.box_xyxy!r}")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"box_xyxy must have x2 > x1 and y2 > y1, got {box.tolist()}")
        object.__setattr__(self, "box_xyxy", box)
        object.__setattr__(self, "score", float(self.score))
        if self.landmarks5 is not None:
            lm = np.asarray(self.landmarks5, dtype=np.float64)
            if lm.shape != (5, 2):
                raise ValueError(f"landmarks5 must be [5, 2], got shape {lm.shape}")
            object.__setattr__(self, "landmarks5", lm)

    @property
    def center(self) -> FloatArray:
        """``[2]`` box centre ``(u, v)`` in pixels."""
        return 0.5 * (self.box_xyxy[:2] + self.box_xyxy[2:])

    @property
    def size(self) -> FloatArray:
        """``[2]`` box ``(width, height)`` in pixels."""
        return self.box_xyxy[2:] - self.box_xyxy[:2]


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB image."""

    def detect(self, image_rgb: NDArray[np.uint8]) -> list[Detection]:
        """Detect faces.

        Args:
            image_rgb: ``[H, W, 3]`` uint8 RGB image.

        Returns:
            Detections sorted by descending score (possibly empty).
        """
        ...
