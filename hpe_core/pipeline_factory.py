"""Build a :class:`~hpe_core.pipeline.HeadPosePipeline` from plain settings.

Shared by the ROS node (from its parameters) and ``hpe-video`` (from its flags), so both run
the same detector, estimator and anchor policy for the same settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hpe_core.detection.scheduler import DetectionScheduleConfig
from hpe_core.estimator.interface import PoseEstimator
from hpe_core.estimator.registry import create_estimator
from hpe_core.pipeline import HeadPosePipeline, PipelineConfig

#: The shipped default model (trained by us on our synthetic heads; see its MODEL_CARD.md):
#: ``torch/`` holds the checkpoint (config.json + model.safetensors), ``onnx/`` the export.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"


class ModelNotFoundError(FileNotFoundError):
    """The model directory for a backend does not exist or lacks its files."""


def resolve_model_dir(backend: str, model_path: str = "") -> Path:
    """Directory the backend loads: ``model_path`` when given, else the shipped default.

    The torch backend loads a checkpoint directory; onnxruntime and tensorrt an ``hpe-export``
    directory. A given directory that holds both as ``torch/`` and ``onnx/`` also works.
    """
    root = Path(model_path).expanduser() if model_path else DEFAULT_MODEL_DIR
    sub = "torch" if backend == "torch" else "onnx"
    candidate = root / sub if (root / sub).is_dir() else root
    marker = "config.json" if backend == "torch" else "manifest.json"
    if not (candidate / marker).is_file():
        hint = (f"expected {marker} in {candidate}; the ONNX export of the shipped model is made by "
                f"tools/setup.sh, or: hpe-export --model-dir {root / 'torch'} --output {root / 'onnx'}"
                if not model_path else f"expected {marker} in {candidate}")
        raise ModelNotFoundError(f"no {backend} model at {root}: {hint}")
    return candidate


#: Face-mesh runtimes per pipeline. One: on the 2-core machine it was measured on, a second
#: runtime made a frame's three faces 1.5x faster back to back but gained nothing in the
#: pipeline, where the face detector runs between frames (``docs/benchmarks.md``, faces batched).
DEFAULT_FACEMESH_WORKERS = 1


@dataclass(frozen=True)
class PipelineSettings:
    """Everything needed to build a pipeline.

    Attributes:
        estimator: ``facemesh`` (MediaPipe's real-face-pretrained mesh, the default: see the
            README's real-face figures) | ``vggt`` (our VGGT model on ``backend``).
        backend: VGGT's backend, ``onnxruntime`` | ``torch`` | ``tensorrt``.
        model_path: model directory; empty = the shipped default.
        device: ``cpu`` | ``cuda`` | ``cuda:N`` (estimator and detector).
        precision: ``fp32`` | ``fp16`` | ``bf16``.
        engine_cache_dir: TensorRT engine cache; empty = the backend's default.
        detector_min_face_px: smallest face the detector looks for, pixels.
        detector_threshold: score threshold of MTCNN's last stage.
        detection_every_n_frames / detection_max_rate_hz: when the detector runs (0 Hz = no cap).
        facemesh_workers: face-mesh runtimes a frame's faces are shared across, side by side on
            the CPU's cores (1 = one face after another; a single face always uses one).
        pipeline: crop, bootstrap, facing and anchor-policy settings (``batch_faces``: a
            frame's faces in one estimator call).
    """

    estimator: str = "facemesh"
    backend: str = "onnxruntime"
    model_path: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    engine_cache_dir: str = ""
    detector_min_face_px: int = 40
    detector_threshold: float = 0.9
    detection_every_n_frames: int = 1
    detection_max_rate_hz: float = 0.0
    facemesh_workers: int = DEFAULT_FACEMESH_WORKERS
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def pipeline_config(self) -> PipelineConfig:
        """``pipeline`` with the detection schedule of these settings."""
        schedule = DetectionScheduleConfig(
            every_n_frames=self.detection_every_n_frames,
            max_rate_hz=self.detection_max_rate_hz if self.detection_max_rate_hz > 0 else None,
        )
        return PipelineConfig(**{**self.pipeline.__dict__, "detection": schedule})


from hpe_core.estimator_names import ESTIMATORS  # noqa: E402  (re-exported: the names users pick)


#: Where the face mesh's fitted error model lives (``hpe-eval errors`` writes it).
FACEMESH_ERROR_MODEL_DIR = Path(__file__).resolve().parent / "models" / "facemesh"


def vggt_model_root(settings: PipelineSettings) -> Path:
    """The VGGT model directory the settings name (the one holding ``torch/`` and ``onnx/``, or
    the backend's own directory), where its ``error_model.json`` is kept."""
    return Path(settings.model_path).expanduser() if settings.model_path else DEFAULT_MODEL_DIR


def estimator_error_models(settings: PipelineSettings):
    """The fitted error models of the settings' estimator (:mod:`hpe_core.error_model`): the
    face mesh's file, the VGGT model's file (in the model directory or its backend
    subdirectory), or both for ``fused``; empty where none were fitted."""
    from hpe_core.error_model import load_error_models

    dirs: list[Optional[Path]] = []
    if settings.estimator in ("facemesh", "fused"):
        dirs.append(FACEMESH_ERROR_MODEL_DIR)
    if settings.estimator in ("vggt", "fused"):
        root = vggt_model_root(settings)
        dirs += [root, root / ("torch" if settings.backend == "torch" else "onnx")]
    return load_error_models(*dirs)


def _vggt_estimator(settings: PipelineSettings, beside_another: bool = False):
    """The VGGT backend; ``beside_another``: it runs side by side with the face mesh (fused), so
    ONNX Runtime takes one thread and each gets a core."""
    options: dict = {}
    if settings.backend == "tensorrt" and settings.engine_cache_dir:
        options["cache_dir"] = settings.engine_cache_dir
    if beside_another and settings.backend == "onnxruntime" and settings.device == "cpu":
        options["intra_op_threads"] = 1
    model_dir = resolve_model_dir(settings.backend, settings.model_path)
    return create_estimator(settings.backend, model_dir, device=settings.device,
                            precision=settings.precision, **options)


def build_estimator(settings: PipelineSettings) -> PoseEstimator:
    """The estimator of ``settings`` with its fitted error models (raises
    ``ModelNotFoundError`` / backend errors, ``ValueError`` for a malformed error model file)."""
    if settings.estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {settings.estimator!r}; choose one of {sorted(ESTIMATORS)}")
    estimator: PoseEstimator
    if settings.estimator in ("facemesh", "fused"):
        from hpe_core.facemesh.estimator import FaceMeshEstimator

        estimator = FaceMeshEstimator(workers=settings.facemesh_workers)
        if settings.estimator == "fused":
            from hpe_core.estimator.fused import FusedEstimator

            estimator = FusedEstimator(estimator, _vggt_estimator(settings, beside_another=True))
    else:
        estimator = _vggt_estimator(settings)
    estimator.error_models = estimator_error_models(settings)
    return estimator


def mtcnn_last_threshold(threshold: float) -> float:
    """The ``detection.threshold`` parameter as MTCNN's last-stage threshold (open interval (0, 1))."""
    return min(max(threshold, 1e-3), 0.999)


def build_detector(settings: PipelineSettings):
    """MTCNN on the settings' device with their minimum face size and threshold."""
    from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector

    device = settings.device if settings.device.startswith("cuda") else "cpu"
    last = mtcnn_last_threshold(settings.detector_threshold)
    config = MtcnnConfig(device=device, min_face_size=settings.detector_min_face_px,
                         thresholds=(0.6, 0.7, last))
    return MtcnnFaceDetector(config)


def build_pipeline(settings: PipelineSettings, estimator: Optional[PoseEstimator] = None,
                   detector=None) -> HeadPosePipeline:
    """A ready pipeline; ``estimator`` / ``detector`` override the ones the settings name."""
    return HeadPosePipeline(
        estimator if estimator is not None else build_estimator(settings),
        detector if detector is not None else build_detector(settings),
        settings.pipeline_config(),
    )
