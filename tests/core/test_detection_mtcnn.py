"""MTCNN (facenet-pytorch weights) on a real photo, and torchvision isolation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from skimage import data

from hpe_core.detection import FaceDetector, MtcnnConfig, MtcnnFaceDetector
from hpe_core.tracking import iou_matrix

# Hand-annotated face box (forehead to chin, cheek to cheek) of the astronaut framed as in
# `astronaut_640x480`: pixels [x1, y1, x2, y2].
ANNOTATED_FACE_BOX = np.array([246.0, 58.0, 332.0, 174.0])


def astronaut_640x480(shift_x: int = 0) -> np.ndarray:
    """scikit-image's astronaut (512x512, public domain) framed to 640x480: top 480 rows,
    centred horizontally on a black canvas (plus ``shift_x`` pixels)."""
    canvas = np.zeros((480, 640, 3), np.uint8)
    x0 = 64 + shift_x
    canvas[:, x0 : x0 + 512] = data.astronaut()[:480]
    return canvas


@pytest.fixture(scope="module")
def detector() -> MtcnnFaceDetector:
    return MtcnnFaceDetector(MtcnnConfig(device="cpu"))


def torchvision_modules() -> list[str]:
    return [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]


def test_finds_the_astronaut_face(detector):
    detections = detector.detect(astronaut_640x480())
    assert isinstance(detector, FaceDetector)
    assert len(detections) == 1
    face = detections[0]
    assert face.score > 0.9
    assert iou_matrix(face.box_xyxy[None], ANNOTATED_FACE_BOX[None])[0, 0] > 0.7
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks5
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert np.all((face.landmarks5 >= face.box_xyxy[:2]) & (face.landmarks5 <= face.box_xyxy[2:]))
    assert torchvision_modules() == []


def test_no_face_in_a_blank_image(detector):
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 2, 3), (5, 700, 3), (700, 19, 3)])
def test_images_smaller_than_the_smallest_face_have_no_faces(detector, shape):
    # MTCNN's image pyramid is empty below min_face_size (20 px here); that used to raise
    # "torch.cat(): expected a non-empty list of Tensors".
    assert detector.detect(np.full(shape, 127, np.uint8)) == []


def test_min_face_size_filters_small_faces():
    small = astronaut_640x480()[::4, ::4].copy()  # face about 22 px wide
    assert len(MtcnnFaceDetector(MtcnnConfig(min_face_size=15)).detect(small)) == 1
    assert MtcnnFaceDetector(MtcnnConfig(min_face_size=60)).detect(small) == []


def test_torchvision_never_visible_after_import(detector):
    import facenet_pytorch.models.utils.detect_face as detect_face_module

    assert detect_face_module.batched_nms.__module__ == "hpe_core.detection.torchvision_stand_in"
    assert torchvision_modules() == []
    with pytest.raises(ModuleNotFoundError):
        import torchvision  # noqa: F401


def test_facenet_keeps_working_after_the_stand_ins_left_sys_modules(detector):
    """facenet binds ``F`` (a module object) at import; ``F.to_tensor`` is looked up at call
    time on that object, so ``extract_face`` works although no torchvision is importable."""
    from facenet_pytorch.models.utils.detect_face import extract_face

    image = astronaut_640x480()
    (face,) = detector.detect(image)
    chip = extract_face(image, face.box_xyxy, image_size=64)
    assert torchvision_modules() == []
    assert chip.shape == (3, 64, 64) and chip.dtype == torch.float32
    x1, y1, x2, y2 = face.box_xyxy.astype(int)
    assert abs(float(chip.mean()) - float(image[y1:y2, x1:x2].mean())) < 3.0


def test_rejects_bad_input_and_config(detector):
    with pytest.raises(ValueError):
        detector.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        MtcnnConfig(thresholds=(0.6, 0.7, 1.5))
    with pytest.raises(ValueError):
        MtcnnConfig(min_face_size=5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(detector):
    gpu = MtcnnFaceDetector(MtcnnConfig(device="cuda"))
    image = astronaut_640x480()
    (cpu_face,) = detector.detect(image)
    (gpu_face,) = gpu.detect(image)
    np.testing.assert_allclose(gpu_face.box_xyxy, cpu_face.box_xyxy, atol=1.0)
    assert torchvision_modules() == []
