"""The estimator names a user picks (node parameter ``estimator``, ``hpe-video --estimator``,
``hpe-eval --estimators``), kept apart from :mod:`hpe_core.pipeline_factory` so that reading them
imports no model stack (torch)."""
from __future__ import annotations

#: Estimator names and what they are.
ESTIMATORS = {
    "facemesh": "MediaPipe face mesh + iris (real-face pretrained), rigid fit of 3-D landmarks; CPU",
    "vggt": "our VGGT relative-pose model on the chosen backend (onnxruntime, torch, tensorrt)",
    "fused": "VGGT and the face mesh on every face, their estimates fused by their fitted error models",
}
