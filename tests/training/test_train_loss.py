"""The VGGT-HPE loss on hand-computed cases."""
import math

import pytest
import torch

from hpe_training.train.loss import PoseLossConfig, log_focal_ratio, pose_loss, stage_weights

FOV = 1.0  # radians


def _enc(t, q, fov_h=FOV, fov_w=FOV):
    return torch.tensor([*t, *q, fov_h, fov_w], dtype=torch.float64)


def _pair(anchor, query):
    return torch.stack([anchor, query])[None]  # [1, 2, 9]


def _fov_with_log_ratio(ratio, ref=FOV):
    """fov such that log tan(fov/2) - log tan(ref/2) = ratio."""
    return 2 * math.atan(math.tan(ref / 2) * math.exp(ratio))


IDENTITY = _enc((0, 0, 0), (0, 0, 0, 1))


def test_stage_weights_are_powers_of_gamma_ending_at_one():
    assert stage_weights(4, 0.6) == pytest.approx([0.216, 0.36, 0.6, 1.0])


def test_single_stage_hand_computed():
    target = _pair(IDENTITY, IDENTITY)
    pred_query = _enc((0.3, -0.6, 0.9), (0.1, 0.0, 0.0, 0.9),
                      _fov_with_log_ratio(0.2), _fov_with_log_ratio(-0.4))
    pred = _pair(IDENTITY, pred_query)
    total, parts = pose_loss([pred], target)
    # translation mean |.| = 1.8 / 3 = 0.6; quaternion (0.1 + 0.1) / 4 = 0.05;
    # focal (|0.2| + |-0.4|) / 2 = 0.3; total = 0.6 + 0.05 + 0.5 * 0.3 = 0.8
    assert parts["translation"].item() == pytest.approx(0.6)
    assert parts["quaternion"].item() == pytest.approx(0.05)
    assert parts["focal"].item() == pytest.approx(0.3)
    assert total.item() == pytest.approx(0.8)


def test_four_stages_weighted_and_divided_by_k():
    target = _pair(IDENTITY, IDENTITY)
    preds = [_pair(IDENTITY, _enc((0.1 * k,) * 3, (0, 0, 0, 1))) for k in (1, 2, 3, 4)]
    total, parts = pose_loss(preds, target)
    expected = (0.216 * 0.1 + 0.36 * 0.2 + 0.6 * 0.3 + 1.0 * 0.4) / 4  # = 0.1684
    assert total.item() == pytest.approx(expected)
    assert total.item() == pytest.approx(0.1684)
    assert parts["final_translation"].item() == pytest.approx(0.4)


def test_lambdas_and_gamma_are_applied():
    target = _pair(IDENTITY, IDENTITY)
    pred = _pair(IDENTITY, _enc((0.3, 0.3, 0.3), (0.2, 0.2, 0.2, 0.8), FOV, _fov_with_log_ratio(1.0)))
    cfg = PoseLossConfig(gamma=0.5, lambda_translation=2.0, lambda_quaternion=0.0, lambda_focal=1.0)
    total, _ = pose_loss([pred, pred], target, cfg)
    per_stage = 2.0 * 0.3 + 0.0 + 1.0 * 0.5  # focal: (0 + 1.0) / 2
    assert total.item() == pytest.approx((0.5 * per_stage + 1.0 * per_stage) / 2)


def test_target_quaternion_sign_is_canonicalised():
    q = (0.0, 0.0, 0.6, 0.8)
    neg_q = tuple(-v for v in q)
    target = _pair(IDENTITY, _enc((0, 0, 0), neg_q))
    _, parts = pose_loss([_pair(IDENTITY, _enc((0, 0, 0), q))], target)
    assert parts["quaternion"].item() == pytest.approx(0.0, abs=1e-12)
    _, parts = pose_loss([_pair(IDENTITY, _enc((0, 0, 0), neg_q))], target)
    assert parts["quaternion"].item() == pytest.approx((1.2 + 1.6) / 4)


def test_only_the_query_is_supervised_but_anchor_fov_enters_the_ratio():
    target = _pair(IDENTITY, IDENTITY)
    query = _enc((0.1, 0, 0), (0, 0, 0, 1))
    wild_anchor = _enc((5, -3, 2), (0.5, 0.5, 0.5, 0.5))
    pred = _pair(wild_anchor, query).requires_grad_(True)
    total, _ = pose_loss([pred], target)
    assert total.item() == pytest.approx(0.1 / 3)
    total.backward()
    assert torch.all(pred.grad[0, 0, :7] == 0)
    # anchor fov changed: ratio log tan(0.5) - log tan(fov_a / 2) = 0.3 for both h and w
    anchor_fov = _fov_with_log_ratio(-0.3)
    pred2 = _pair(_enc((0, 0, 0), (0, 0, 0, 1), anchor_fov, anchor_fov), query)
    total2, parts2 = pose_loss([pred2], target)
    assert parts2["focal"].item() == pytest.approx(0.3)
    assert total2.item() == pytest.approx(0.1 / 3 + 0.5 * 0.3)


def test_batch_mean_and_log_focal_ratio():
    target = torch.cat([_pair(IDENTITY, IDENTITY), _pair(IDENTITY, IDENTITY)])
    pred = torch.cat([_pair(IDENTITY, _enc((0.3, 0.3, 0.3), (0, 0, 0, 1))), _pair(IDENTITY, IDENTITY)])
    total, _ = pose_loss([pred], target)
    assert total.item() == pytest.approx(0.15)
    anchor, query = _enc((0, 0, 0), (0, 0, 0, 1), 0.5, 1.0), _enc((0, 0, 0), (0, 0, 0, 1), 1.0, 0.5)
    ratio = log_focal_ratio(_pair(anchor, query))
    expected = math.log(math.tan(0.5)) - math.log(math.tan(0.25))
    assert ratio[0].tolist() == pytest.approx([expected, -expected])


def test_zero_predicted_fov_stays_finite():
    target = _pair(IDENTITY, IDENTITY)
    pred = _pair(_enc((0, 0, 0), (0, 0, 0, 1), 0.0, 0.0), IDENTITY)
    total, _ = pose_loss([pred], target)
    assert torch.isfinite(total)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError):
        pose_loss([], _pair(IDENTITY, IDENTITY))
    with pytest.raises(ValueError):
        pose_loss([torch.zeros(1, 2, 8)], torch.zeros(1, 2, 9))
    with pytest.raises(ValueError):
        PoseLossConfig(gamma=0.0)
    with pytest.raises(ValueError):
        PoseLossConfig(lambda_focal=-1.0)
