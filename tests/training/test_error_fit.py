"""``hpe-eval errors``: samples survive their cache, the fit and the leave-one-identity-out check
work on known data, and a small real run through the node's pipeline writes its files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.error_model import ErrorModels
from hpe_core.geometry.rotations import geodesic_angle_deg, so3_exp
from hpe_core.geometry.transforms import make_transform
from hpe_training.evaluation import error_fit


def _samples(n: int, seed: int = 0) -> list[error_fit.HeadSample]:
    """Heads whose two estimators err by a known law: the face mesh by 0.2 deg per degree of gap,
    VGGT by twice that, each in a random direction; two domains, six identities."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gap = rng.uniform(2.0, 60.0)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        truth_rel = so3_exp(axis * np.radians(gap))
        anchor = Anchor(anchor_id="p-c0", track_id="p", crop=np.zeros((2, 2, 3), np.uint8),
                        pose_cam=make_transform(np.eye(3), np.array([0.0, 0.0, 1.0])), virtual_from_cam=np.eye(3),
                        source=AnchorSource.CALIBRATED, quality=1.0, created_at=0.0)
        rotations = []
        for scale in (0.2, 0.4):
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            err = rng.exponential(scale * gap)
            rotations.append(so3_exp(d * np.radians(err)) @ truth_rel)
        out.append(error_fit.HeadSample(
            domain="real" if i % 2 else "synthetic", group=f"id{i % 6}", face_px=float(rng.uniform(60, 250)),
            R_vq=np.eye(3), anchors=[anchor, anchor], rotation=np.stack(rotations), translation=np.zeros((2, 3)),
            residual=np.array([1.0, np.nan]), sources=("facemesh", "vggt"), truth_cam=truth_rel))
    return out


def test_samples_round_trip_through_their_cache(tmp_path) -> None:
    samples = _samples(12)
    back = error_fit.load_samples(error_fit.save_samples(samples, tmp_path / "s.npz"))
    assert len(back) == len(samples)
    for a, b in zip(samples, back):
        assert (a.domain, a.group, a.sources) == (b.domain, b.group, b.sources)
        np.testing.assert_allclose(a.rotation, b.rotation)
        np.testing.assert_allclose(a.estimate_rotations_cam(), b.estimate_rotations_cam())
        np.testing.assert_array_equal(np.isnan(a.residual), np.isnan(b.residual))


def test_the_fit_finds_the_known_error_laws_and_states_them_held_out() -> None:
    samples = _samples(800)
    models = error_fit.fit_models(samples)
    assert set(models.hops) == {"facemesh", "vggt"} and set(models.heads) == {"facemesh", "vggt", "fused"}
    # VGGT errs twice as much as the face mesh at any gap: its model says so
    gaps = np.array([10.0, 30.0, 50.0])
    ratio = models.hops["vggt"].expected_error_deg(gaps, 150.0, 0.0) / models.hops["facemesh"].expected_error_deg(gaps, 150.0, 0.0, 1.0)
    np.testing.assert_allclose(ratio, 2.0, rtol=0.25)
    rows = error_fit.cross_validated(samples[:240], lambda _: None)  # 6 identities, 40 heads each
    table = error_fit.reliability(rows)
    for key in ("real/facemesh", "synthetic/vggt", "real/fused"):
        e = table[key]
        assert e["mean_stated_deg"] == pytest.approx(e["mean_measured_deg"], rel=0.2), key
    # the fusion leans on the better estimator: its heads are better than VGGT's alone
    assert table["real/fused"]["mean_measured_deg"] < table["real/vggt"]["mean_measured_deg"]
    text = error_fit.format_summary({"reliability": table})
    assert "| real/fused |" in text


@pytest.mark.slow
def test_a_small_run_through_the_pipeline_writes_its_models(tmp_path) -> None:
    pytest.importorskip("ai_edge_litert", reason="the face mesh's runtime (ai-edge-litert) is not installed")
    from skimage import data

    summary = error_fit.run_errors(tmp_path / "out", [], data.astronaut(), sequences=2, frames=6, write=True,
                                   progress=lambda _: None, model_dir=tmp_path / "vggt", facemesh_dir=tmp_path / "mesh")
    for name in ("results.json", "heads.csv", "reliability.png", "hop_models.png", "samples.npz"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    mesh = ErrorModels.load(tmp_path / "mesh" / "error_model.json")
    vggt = ErrorModels.load(tmp_path / "vggt" / "error_model.json")
    assert set(mesh.hops) == {"facemesh"} and set(vggt.hops) == {"vggt"} and "fused" in vggt.heads
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["models"]["provenance"]["heads"]["real"] > 0
    assert summary["written"]
    # the astronaut's rolls and rescales are estimated well by the face mesh
    samples = error_fit.load_samples(tmp_path / "out" / "samples.npz")
    real = [s for s in samples if s.domain == "real"]
    assert real
    mesh_errors = [float(geodesic_angle_deg(s.estimate_rotations_cam()[0], s.truth_cam)) for s in real
                   if s.sources[0] == "facemesh"]
    assert np.median(mesh_errors) < 5.0
