"""MTCNN face detector (facenet-pytorch 2.6.0 weights, shipped in its wheel).

This is the detector of the VGGT-HPE evaluation protocol. facenet-pytorch is imported
through :func:`hpe_core.detection.torchvision_stand_in.import_facenet_pytorch`, so it runs
without torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch
from numpy.typing import NDArray

from hpe_core.detection.torchvision_stand_in import import_facenet_pytorch
from hpe_core.detection.types import Detection


@dataclass(frozen=True)
class MtcnnConfig:
    """MTCNN settings.

    Attributes:
        device: torch device string, ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
        min_face_size: smallest face side to search for, in pixels (sets the image pyramid).
        thresholds: score thresholds of the three stages (P-Net, R-Net, O-Net), each in (0, 1).
        scale_factor: pyramid scale step, in (0, 1).
        min_score: detections with a final score below this are dropped, in [0, 1].
    """

    device: str = "cpu"
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709
    min_score: float = 0.0

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise ValueError(f"min_face_size must be >= 12 pixels, got {self.min_face_size}")
        if len(self.thresholds) != 3 or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be three values in (0, 1), got {self.thresholds}")
        if not 0.0 < self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1), got {self.scale_factor}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        torch.device(self.device)  # raises on a malformed device string


class MtcnnFaceDetector:
    """:class:`~hpe_core.detection.types.FaceDetector` backed by facenet-pytorch's MTCNN."""

    def __init__(self, config: Optional[MtcnnConfig] = None) -> None:
        """Load the three MTCNN networks onto ``config.device``.

        Raises:
            RuntimeError: when CUDA is requested but not available.
        """
        self.config = config if config is not None else MtcnnConfig()
        device = torch.device(self.config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"MTCNN device {self.config.device!r} requested but CUDA is absent")
        mtcnn_module = import_facenet_pytorch()
        self._mtcnn = mtcnn_module.MTCNN(
            min_face_size=self.config.min_face_size,
            thresholds=list(self.config.thresholds),
            factor=self.config.scale_factor,
            keep_all=True,
            select_largest=False,
            device=device,
        ).eval()

    def reconfigure(self, min_face_size: int, last_threshold: float) -> None:
        """Change the smallest face searched for (pixels) and the last stage's score threshold
        from the next :meth:`detect` on, without reloading the networks.

        Raises:
            ValueError: values :class:`MtcnnConfig` refuses (nothing changes).
        """
        thresholds = (*self.config.thresholds[:2], float(last_threshold))
        config = replace(self.config, min_face_size=int(min_face_size), thresholds=thresholds)
        self._mtcnn.min_face_size = config.min_face_size
        self._mtcnn.thresholds = list(config.thresholds)
        self.config = config

    @property
    def device(self) -> torch.device:
        """Device the networks run on."""
        return self._mtcnn.device

    def detect(self, image_rgb: NDArray[np.uint8]) -> list[Detection]:
        """Detect all faces.

        Args:
            image_rgb: ``[H, W, 3]`` uint8 RGB image.

        Returns:
            Detections with boxes ``[x1, y1, x2, y2]`` and 5 landmarks in pixels of
            ``image_rgb``, sorted by descending score. An image whose shorter side is below
            ``min_face_size`` cannot hold a face of the searched size: no detections (MTCNN's
            image pyramid would be empty).
        """
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image_rgb must be uint8 [H, W, 3], got {image.dtype} {image.shape}"
            )
        if min(image.shape[:2]) < self.config.min_face_size:
            return []
        with torch.inference_mode():
            boxes, probs, points = self._mtcnn.detect(np.ascontiguousarray(image), landmarks=True)
        if boxes is None:
            return []
        detections = []
        for box, prob, landmarks in zip(boxes, probs, points):
            box = np.asarray(box, dtype=np.float64)
            if prob is None or prob < self.config.min_score:
                continue
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            detections.append(
                Detection(box_xyxy=box, score=float(prob), landmarks5=np.asarray(landmarks))
            )
        detections.sort(key=lambda d: d.score, reverse=True)
        return detections
