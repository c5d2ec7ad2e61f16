"""Error models: the log-linear mean fit, hop models, head calibration, the combination of
estimates' expected errors, the file format, and the fusion stating an expected error."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.consensus import ConsensusParams, EstimateErrors, fuse_relative_estimates
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.selection import select_anchors
from hpe_core.error_model import (ERROR_MODEL_FILE, HOP_FEATURES, ErrorModels, HeadCalibration, HopErrorModel,
                                  combine_expected_errors, confidence_from_expected_error, fit_log_linear_mean,
                                  hop_features, keyframe_expected_to_help, load_error_models)
from hpe_core.geometry.rotations import geodesic_angle_deg, so3_exp
from hpe_core.geometry.transforms import make_transform


def test_the_log_linear_fit_recovers_a_known_mean() -> None:
    rng = np.random.default_rng(0)
    gap = rng.uniform(0, 90, 4000)
    face = rng.uniform(40, 300, 4000)
    yaw = rng.uniform(-80, 80, 4000)
    res = rng.uniform(0, 5, 4000)
    X = hop_features(gap, face, yaw, res)
    true = np.array([0.2, 0.6, -0.3, 0.4, 0.5])
    y = rng.exponential(np.exp(X @ true))  # errors scattered about their mean
    c = fit_log_linear_mean(X, y, ridge=0.0)
    assert np.allclose(c, true, atol=0.1), c
    # with an intercept the fitted means sum to the observed ones
    assert float(np.exp(X @ c).sum()) == pytest.approx(float(y.sum()), rel=1e-6)


def test_fit_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        fit_log_linear_mean(np.ones((3, 5)), np.ones(3))
    with pytest.raises(ValueError):
        fit_log_linear_mean(np.ones((10, 2)), -np.ones(10))
    with pytest.raises(ValueError):
        fit_log_linear_mean(np.ones((10, 2)), np.full(10, np.nan))


def test_a_hop_model_grows_with_the_gap_and_is_clipped() -> None:
    model = HopErrorModel("vggt", (0.0, 0.7, -0.2, 0.3, 0.0))
    e = model.expected_error_deg(np.array([0.0, 10.0, 40.0, 90.0]), 100.0, 0.0)
    assert np.all(np.diff(e) > 0)
    assert e[0] == pytest.approx(1.0)
    huge = HopErrorModel("vggt", (30.0, 0.0, 0.0, 0.0, 0.0))
    assert huge.expected_error_deg(np.array([5.0]), 100.0, 0.0)[0] == 180.0
    # smaller faces are expected to be worse with a negative face coefficient
    assert model.expected_error_deg(np.array([10.0]), 40.0, 0.0)[0] > model.expected_error_deg(np.array([10.0]), 300.0, 0.0)[0]
    with pytest.raises(ValueError):
        HopErrorModel("vggt", (0.0, 1.0))


def test_the_head_calibration_matches_the_mean_on_its_data() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(1, 30, 500)
    measured = rng.exponential(1.5 * raw ** 0.8)
    cal = HeadCalibration.fit(raw, measured)
    assert cal.exponent == pytest.approx(0.8, abs=0.1)
    stated = np.array([cal(r) for r in raw])
    assert stated.sum() == pytest.approx(measured.sum(), rel=1e-6)


def test_estimates_of_one_estimator_are_correlated_of_two_independent() -> None:
    e = np.array([4.0, 4.0])
    same = combine_expected_errors(e, ["vggt", "vggt"], np.array([0.5, 0.5]))
    two = combine_expected_errors(e, ["vggt", "facemesh"], np.array([0.5, 0.5]))
    assert same == pytest.approx(4.0)
    assert two == pytest.approx(4.0 / math.sqrt(2.0))
    # estimates that scatter beyond what their errors allow: the expected error grows
    agree = combine_expected_errors(e, ["vggt", "facemesh"], np.array([0.5, 0.5]), np.array([1.0, 1.0]))
    disagree = combine_expected_errors(e, ["vggt", "facemesh"], np.array([0.5, 0.5]), np.array([20.0, 20.0]))
    assert agree == pytest.approx(two)
    assert disagree == pytest.approx(two * math.sqrt(2 * 5.0 ** 2))


def test_confidence_is_derived_from_the_expected_error() -> None:
    values = [confidence_from_expected_error(e) for e in (0.0, 2.0, 5.0, 20.0, 90.0)]
    assert values[0] == 1.0 and all(a > b for a, b in zip(values, values[1:]))
    assert confidence_from_expected_error(5.0) == pytest.approx(0.70, abs=0.01)
    assert confidence_from_expected_error(float("nan")) == 0.0


def test_error_model_files_round_trip_and_refuse_bad_ones(tmp_path) -> None:
    models = ErrorModels({"vggt": HopErrorModel("vggt", (1.0, 0.5, 0.0, 0.1, 0.0), 12)},
                         {"fused": HeadCalibration(1.2, 0.9, 30)}, {"tool": "test"})
    path = models.save(tmp_path / ERROR_MODEL_FILE)
    assert [p.name for p in tmp_path.iterdir()] == [ERROR_MODEL_FILE]  # no temporary file left
    back = ErrorModels.load(path)
    assert back.to_dict() == models.to_dict()
    assert load_error_models(tmp_path, tmp_path / "missing").hops["vggt"].coefficients == (1.0, 0.5, 0.0, 0.1, 0.0)
    data = json.loads(path.read_text())
    for broken in ({**data, "format_version": 99}, {**data, "features": ["x"]},
                   {**data, "hops": {"vggt": {"coefficients": [1.0]}}},
                   {**data, "heads": {"fused": {"scale": -1.0, "exponent": 1.0}}}):
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError):
            ErrorModels.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError):
        ErrorModels.load(path)
    assert len(HOP_FEATURES) == 5


def _anchor(i: int, R: np.ndarray, uncertainty: float = 0.0) -> Anchor:
    source = AnchorSource.CALIBRATED if uncertainty == 0.0 else AnchorSource.KEYFRAME
    return Anchor(anchor_id=f"t-{i}", track_id="t", crop=np.zeros((4, 4, 3), np.uint8),
                  pose_cam=make_transform(R, np.array([0.0, 0.0, 1.0])), virtual_from_cam=np.eye(3), source=source, quality=1.0, created_at=0.0,
                  accumulated_uncertainty_deg=uncertainty, chain_depth=0 if uncertainty == 0.0 else 1,
                  parent_ids=() if uncertainty == 0.0 else ("t-0",))


def test_the_fusion_weights_estimates_by_their_expected_error_and_states_it() -> None:
    """Two estimators against one anchor: the one expected to be better dominates, the stated
    error is their combination, and a disagreement beyond their errors raises it."""
    anchor = _anchor(0, np.eye(3))
    truth = so3_exp(np.array([0.0, np.radians(20.0), 0.0]))
    good = so3_exp(np.array([0.0, np.radians(1.0), 0.0])) @ truth
    bad = so3_exp(np.array([0.0, np.radians(-15.0), 0.0])) @ truth
    sharp = HopErrorModel("facemesh", (math.log(2.0), 0.0, 0.0, 0.0, 0.0))
    blunt = HopErrorModel("vggt", (math.log(10.0), 0.0, 0.0, 0.0, 0.0))
    errors = EstimateErrors((sharp, blunt), ("facemesh", "vggt"), 120.0, np.array([1.0, np.nan]))
    fused = fuse_relative_estimates([anchor, anchor], np.stack([good, bad]), np.zeros((2, 3)), None,
                                    ConsensusParams(), errors)
    assert float(geodesic_angle_deg(fused.rotation_cam, truth)) < 3.0
    assert fused.weights[0] > 0.9
    assert fused.anchor_ids == ("t-0",) and fused.estimate_anchor_ids == ("t-0", "t-0")
    assert fused.sources == ("facemesh", "vggt")
    independent = 1.0 / math.sqrt(1 / 2.0 ** 2 + 1 / 10.0 ** 2)
    assert fused.raw_expected_error_deg > independent  # 16 deg apart: more than their errors allow
    assert fused.confidence == pytest.approx(confidence_from_expected_error(fused.expected_error_deg))
    agreeing = fuse_relative_estimates([anchor, anchor], np.stack([good, good]), np.zeros((2, 3)), None,
                                       ConsensusParams(), errors)
    assert agreeing.raw_expected_error_deg == pytest.approx(independent, rel=1e-3)
    calibrated = fuse_relative_estimates([anchor, anchor], np.stack([good, good]), np.zeros((2, 3)), None,
                                         ConsensusParams(), EstimateErrors(errors.hop_models, errors.sources, 120.0,
                                                                           None, HeadCalibration(2.0, 1.0)))
    assert calibrated.expected_error_deg == pytest.approx(2.0 * agreeing.raw_expected_error_deg, rel=1e-3)
    # an anchor's own uncertainty adds in quadrature
    shaky = _anchor(1, np.eye(3), uncertainty=6.0)
    one = fuse_relative_estimates([shaky], good[None], np.zeros((1, 3)), None, ConsensusParams(),
                                  EstimateErrors((sharp,), ("facemesh",), 120.0))
    assert one.expected_error_deg == pytest.approx(math.hypot(6.0, 2.0), rel=1e-6)


def test_selection_prefers_the_anchor_expected_to_give_the_best_estimate() -> None:
    near_but_shaky = _anchor(1, so3_exp(np.array([0.0, np.radians(28.0), 0.0])), uncertainty=9.0)
    farther_but_exact = _anchor(0, so3_exp(np.array([0.0, np.radians(10.0), 0.0])))
    query = so3_exp(np.array([0.0, np.radians(30.0), 0.0]))
    policy = AnchorPolicy(anchors_per_estimate=1, prefer_calibrated_within_deg=0.0)
    anchors = [near_but_shaky, farther_but_exact]
    assert select_anchors(anchors, query, policy).anchor_ids == ("t-1",)  # by gap: the nearer one
    hop = HopErrorModel("facemesh", (0.0, 0.35, 0.0, 0.0, 0.0))

    def expected(chosen, gaps):
        u = np.array([a.accumulated_uncertainty_deg for a in chosen])
        return np.hypot(u, hop.expected_error_deg(gaps, 100.0, 0.0))
    assert select_anchors(anchors, query, policy, expected_error=expected).anchor_ids == ("t-0",)


def test_a_keyframe_is_added_only_where_it_is_expected_to_help() -> None:
    """Errors that grow faster than the gap make a short second hop pay; errors that grow much
    more slowly do not (two hops then cost more than one)."""
    convex = lambda g: 0.5 + 0.004 * np.asarray(g) ** 2  # noqa: E731
    concave = lambda g: 1.5 * np.asarray(g) ** 0.3  # noqa: E731
    # a keyframe 30 deg from a calibrated anchor, the estimate itself 4 deg off
    assert keyframe_expected_to_help(4.0, 0.0, 30.0, 15.0, convex)
    assert not keyframe_expected_to_help(4.0, 0.0, 30.0, 15.0, concave)
    # a bad estimate never helps; a shaky parent makes a good keyframe help
    assert not keyframe_expected_to_help(20.0, 0.0, 30.0, 15.0, convex)
    assert keyframe_expected_to_help(2.0, 12.0, 30.0, 15.0, concave)
