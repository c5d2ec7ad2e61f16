"""All faces of a frame in one estimator call (``estimate_batch``): the same answers as one
``estimate`` call per face, for the face mesh, VGGT on torch and on ONNX Runtime (pair queries
and the one-query fallback), and for the pipeline with ``batch_faces`` on and off."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hpe_core.estimator.interface import EstimateRequest
from hpe_core.estimator.torch_backend import TorchRelativePoseEstimator
from hpe_core.facemesh.fit import robust_fit, robust_fits, weighted_fit, weighted_fits
from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_batched_fits_equal_one_fit_at_a_time() -> None:
    rng = np.random.default_rng(5)
    src = rng.normal(size=(6, 200, 3)) * 0.05
    rotations = np.stack([_random_rotation(rng) for _ in range(6)])
    dst = 1.2 * np.einsum("bij,bnj->bni", rotations, src) + rng.normal(size=(6, 1, 3))
    dst += rng.normal(size=dst.shape) * 0.002
    dst[:, :20] += rng.normal(size=(6, 20, 3)) * 0.05  # outliers
    weights = rng.random((6, 200))
    for with_scale in (False, True):
        batch = robust_fits(src, dst, weights, cauchy_scale=0.004, with_scale=with_scale)
        plain = weighted_fits(src, dst, weights, with_scale=with_scale)
        for b in range(6):
            one = robust_fit(src[b], dst[b], weights[b], cauchy_scale=0.004, with_scale=with_scale)
            np.testing.assert_allclose(batch.rotation[b], one.rotation, atol=1e-12)
            np.testing.assert_allclose(batch.translation[b], one.translation, atol=1e-12)
            assert batch.scale[b] == pytest.approx(one.scale, abs=1e-12)
            assert batch.rms[b] == pytest.approx(one.rms, abs=1e-12)
            assert plain.rms[b] == pytest.approx(weighted_fit(src[b], dst[b], weights[b], with_scale).rms, abs=1e-12)
        # the robust fits see through the outliers, which pull the plain fits off
        err = [np.degrees(np.arccos(np.clip((np.trace(batch.rotation[b].T @ rotations[b]) - 1) / 2, -1, 1)))
               for b in range(6)]
        assert max(err) < 0.5


def test_a_pair_without_three_weighted_points_is_refused() -> None:
    src = np.random.default_rng(0).normal(size=(2, 10, 3))
    weights = np.ones((2, 10))
    weights[1, 2:] = 0.0
    with pytest.raises(ValueError, match="at least 3 points"):
        weighted_fits(src, src, weights)


# ---------------------------------------------------------------------------- the face mesh
@pytest.fixture(scope="module")
def face_crops() -> list[np.ndarray]:
    """Three 192 px crops of the astronaut's face (shifted) and one blank crop (no face)."""
    from skimage import data

    photo = data.astronaut()
    crops = [cv2.resize(photo[30 + d:230 + d, 130 + d:330 + d], (192, 192)) for d in (0, 6, -9)]
    return crops + [np.zeros((192, 192, 3), np.uint8)]


@pytest.mark.parametrize("workers", [1, 2])
def test_facemesh_batch_equals_one_face_at_a_time(face_crops, workers: int) -> None:
    pytest.importorskip("ai_edge_litert")
    from hpe_core.facemesh.estimator import FaceMeshEstimator

    single = FaceMeshEstimator()
    batched = FaceMeshEstimator(workers=workers)
    anchors = [single.embed_anchors(np.stack(face_crops[:k])) for k in (1, 2, 3, 3)]
    requests = [EstimateRequest(a, crop) for a, crop in zip(anchors, face_crops)]
    results = batched.estimate_batch(requests)
    assert len(results) == len(requests)
    for request, got in zip(requests, results):
        want = single.estimate(request.anchor_features, request.query_crop)
        assert len(got) == len(request.anchor_features)
        np.testing.assert_allclose(got.rotation, want.rotation, atol=1e-9)
        np.testing.assert_allclose(got.translation, want.translation, atol=1e-9)
        np.testing.assert_allclose(got.residual, want.residual, atol=1e-6)
    # the mesh's landmarks come with each face that has one, not with the blank crop
    assert all(r.query_landmarks_px is not None and r.query_landmarks_px.shape == (478, 2) for r in results[:3])
    assert results[3].query_landmarks_px is None
    assert batched.estimate_batch([]) == []


def test_facemesh_batch_refuses_features_of_another_estimator(face_crops) -> None:
    pytest.importorskip("ai_edge_litert")
    from hpe_core.estimator.interface import AnchorFeatures
    from hpe_core.facemesh.estimator import FaceMeshEstimator

    est = FaceMeshEstimator()
    good = est.embed_anchors(np.stack(face_crops[:1]))
    foreign = AnchorFeatures(np.zeros((1, 478, 4), np.float32), "onnxruntime:0123")
    with pytest.raises(ValueError, match="embed the anchors again"):
        est.estimate_batch([EstimateRequest(good, face_crops[0]), EstimateRequest(foreign, face_crops[1])])


# ---------------------------------------------------------------------------- VGGT
@pytest.fixture(scope="module")
def tiny_model() -> VGGTCamera:
    torch.manual_seed(0)
    return VGGTCamera(get_preset("tiny")).eval()


class _OneQueryTorch(TorchRelativePoseEstimator):
    """The torch backend as a backend without pair queries would run (one pose call per face)."""

    @property
    def supports_pair_queries(self) -> bool:
        return False


def _random_faces(input_size: tuple[int, int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Three faces' (anchor crops ``[K, H, W, 3]``, query crop ``[H, W, 3]``), K = 1, 3, 2."""
    rng = np.random.default_rng(seed)
    h, w = input_size
    return [(rng.integers(0, 256, (k, h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for k in (1, 3, 2)]


def _vggt_requests(estimator) -> list[EstimateRequest]:
    return [EstimateRequest(estimator.embed_anchors(a), q) for a, q in _random_faces(estimator.input_size)]


def _assert_batch_matches(estimator, requests, atol: float) -> None:
    results = estimator.estimate_batch(requests)
    assert [len(r) for r in results] == [len(r.anchor_features) for r in requests]
    for request, got in zip(requests, results):
        want = estimator.estimate(request.anchor_features, request.query_crop)
        np.testing.assert_allclose(got.pose_encoding, want.pose_encoding, atol=atol)


@pytest.mark.parametrize("make", [TorchRelativePoseEstimator, _OneQueryTorch], ids=["pair_queries", "one_query"])
def test_vggt_torch_batch_equals_one_face_at_a_time(tiny_model, make) -> None:
    estimator = make(tiny_model)
    assert estimator.supports_pair_queries is (make is TorchRelativePoseEstimator)
    _assert_batch_matches(estimator, _vggt_requests(estimator), atol=1e-5)


def test_vggt_onnxruntime_batch_equals_one_face_at_a_time(tiny_model, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator
    from hpe_training.export.onnx_export import export_onnx

    export_onnx(tiny_model, tmp_path / "onnx", log=lambda msg: None)
    estimator = OnnxRuntimeRelativePoseEstimator(tmp_path / "onnx")
    assert estimator.supports_pair_queries  # exports now take one query per pair
    requests = _vggt_requests(estimator)
    _assert_batch_matches(estimator, requests, atol=1e-5)
    # and the same answers as torch
    reference = TorchRelativePoseEstimator(tiny_model)
    for (anchors, query), got in zip(_random_faces(estimator.input_size), estimator.estimate_batch(requests)):
        want = reference.estimate(reference.embed_anchors(anchors), query)
        np.testing.assert_allclose(got.pose_encoding, want.pose_encoding, atol=1e-4)


# ---------------------------------------------------------------------------- the pipeline
def test_pipeline_batch_faces_on_and_off_give_the_same_heads() -> None:
    pytest.importorskip("ai_edge_litert")
    from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector
    from hpe_core.facemesh.estimator import FaceMeshEstimator
    from hpe_core.pipeline import HeadPosePipeline, PipelineConfig
    from hpe_training.bench.streams import face_stream

    stream = face_stream(3, 8)
    estimator = FaceMeshEstimator(workers=2)
    heads = {}
    for batch in (True, False):
        pipeline = HeadPosePipeline(estimator, MtcnnFaceDetector(MtcnnConfig(min_face_size=40)),
                                    PipelineConfig(batch_faces=batch))
        heads[batch] = [pipeline.process(frame, i / 30.0, stream.K).heads for i, frame in enumerate(stream.frames)]
    estimated = 0
    for on, off in zip(heads[True], heads[False]):
        assert [h.track_id for h in on] == [h.track_id for h in off]
        for a, b in zip(on, off):
            assert a.source == b.source and a.anchor_ids == b.anchor_ids and a.keyframe_added == b.keyframe_added
            if a.pose_cam is not None:
                np.testing.assert_allclose(a.pose_cam, b.pose_cam, atol=1e-9)
            estimated += a.source == "estimated"
    assert estimated >= 3 * 4  # three faces estimated (not only bootstrapped) in most frames
