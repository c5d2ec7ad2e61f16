"""``estimator: fused``: VGGT and the face mesh against the same anchors, in one call each, side
by side; and the pipeline stating each head's expected error with the shipped error models."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hpe_core.crop_camera import CropCamera
from hpe_core.error_model import confidence_from_expected_error
from hpe_core.estimator.fused import FusedEstimator, FusedFeatures, resized_crop
from hpe_core.estimator.interface import EstimateRequest

pytest.importorskip("ai_edge_litert", reason="the face mesh's runtime (ai-edge-litert) is not installed")


@pytest.fixture(scope="module")
def parts():
    from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator
    from hpe_core.facemesh.estimator import FaceMeshEstimator
    from hpe_core.pipeline_factory import resolve_model_dir

    return FaceMeshEstimator(), OnnxRuntimeRelativePoseEstimator(resolve_model_dir("onnxruntime"))


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    """Two 192 px crops of the astronaut's face (one turned in the image) and a blank one."""
    from skimage import data

    face = data.astronaut()[20:230, 130:340]
    a = cv2.resize(face, (192, 192), interpolation=cv2.INTER_AREA)
    M = cv2.getRotationMatrix2D((96.0, 96.0), 12.0, 1.0)
    b = cv2.warpAffine(a, M, (192, 192))
    return [a, b, np.full((192, 192, 3), 90, np.uint8)]


def test_a_resized_crop_keeps_its_camera(crops) -> None:
    camera = CropCamera.centred(192, 60.0)
    small, cam = resized_crop(crops[0], camera, (112, 112))
    assert small.shape == (112, 112, 3) and cam is not None
    ray = np.array([0.1, -0.05, 1.0])  # a ray in the crop's camera lands where the pixels went
    p = camera.crop_from_cam @ ray
    q = cam.crop_from_cam @ ray
    s = 112 / 192
    np.testing.assert_allclose(q[:2] / q[2], (p[:2] / p[2] + 0.5) * s - 0.5, atol=1e-9)
    np.testing.assert_array_equal(cam.virtual_from_cam, camera.virtual_from_cam)


def test_the_fused_estimator_gives_both_estimators_estimates(parts, crops) -> None:
    mesh, vggt = parts
    fused = FusedEstimator(mesh, vggt)
    serial = FusedEstimator(mesh, vggt, parallel=False)
    try:
        assert fused.input_size == (192, 192) and fused.crop_mode == "aligned" and fused.estimator_kind == "fused"
        features = fused.embed_anchors(np.stack(crops[:2]))
        assert isinstance(features, FusedFeatures) and len(features) == 2
        assert len(FusedFeatures.concatenate([features[0], features[1]])) == 2
        requests = [EstimateRequest(features, crops[1]), EstimateRequest(features[0], crops[0])]
        out = fused.estimate_batch(requests)
        again = serial.estimate_batch(requests)
        assert len(out) == 2
        first = out[0]
        assert first.sources == ("facemesh", "facemesh", "vggt", "vggt")
        np.testing.assert_array_equal(first.anchor_index, [0, 1, 0, 1])
        assert first.query_landmarks_px is not None and first.residual is not None
        assert np.all(np.isfinite(first.residual[:2])) and np.all(np.isnan(first.residual[2:]))
        # each part is what that estimator alone says (VGGT on the resized crop)
        alone_mesh = mesh.estimate(features.mesh, crops[1])
        np.testing.assert_allclose(first.rotation[:2], alone_mesh.rotation, atol=1e-9)
        small, _ = resized_crop(crops[1], None, vggt.input_size)
        np.testing.assert_allclose(first.rotation[2:], vggt.estimate(features.vggt, small).rotation, atol=1e-5)
        # side by side or one after the other: the same answers
        for a, b in zip(out, again):
            np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-6)
        # a query without a face: only VGGT's estimates
        blank = fused.estimate(features, crops[2])
        assert blank.sources == ("vggt", "vggt") and blank.query_landmarks_px is None
        np.testing.assert_array_equal(blank.anchor_index, [0, 1])
        with pytest.raises(ValueError, match="embed the anchors again"):
            fused.estimate(features.mesh, crops[0])
    finally:
        fused.close()
        serial.close()


def test_the_pipeline_states_an_expected_error_for_every_setting() -> None:
    """With the shipped error models each setting's head carries a finite expected error, and its
    confidence is derived from it; a rolled copy of the anchor frame is estimated well."""
    from skimage import data

    from hpe_core.pipeline import PipelineConfig
    from hpe_core.pipeline_factory import PipelineSettings, build_pipeline
    from hpe_core.tracking.tracker import TrackerConfig
    from hpe_training.evaluation.real import sweep_frame

    frame = sweep_frame(data.astronaut())
    K = np.array([[554.26, 0, 319.5], [0, 554.26, 239.5], [0, 0, 1.0]])
    M = cv2.getRotationMatrix2D((319.5, 239.5), 20.0, 1.0)
    rolled = cv2.warpAffine(frame, M, (640, 480))
    for name in ("facemesh", "fused"):
        settings = PipelineSettings(estimator=name, pipeline=PipelineConfig(
            bootstrap="none", tracker=TrackerConfig(min_hits=1)))
        pipeline = build_pipeline(settings)
        assert pipeline.estimator.error_models is not None and pipeline.estimator.error_models.hops, name
        first = pipeline.process(frame, 0.0, K)
        track = first.heads[0].track_id
        anchor = pipeline.capture_anchor(track)
        head = pipeline.process(rolled, 0.1, K).heads[0]
        assert head.source == "estimated"
        assert math.isfinite(head.expected_error_deg) and head.expected_error_deg > 0.0
        assert head.confidence == pytest.approx(confidence_from_expected_error(head.expected_error_deg))
        truth = np.array([[math.cos(math.radians(-20)), -math.sin(math.radians(-20)), 0],
                          [math.sin(math.radians(-20)), math.cos(math.radians(-20)), 0], [0, 0, 1]]) @ anchor.rotation_cam
        err = math.degrees(math.acos(np.clip((np.trace(head.pose_cam[:3, :3].T @ truth) - 1) / 2, -1, 1)))
        assert err < 4.0, (name, err)
        if name == "fused":
            assert set(head.fused.sources) == {"facemesh", "vggt"}
        close = getattr(pipeline.estimator, "close", None)
        if close:
            close()
