"""AnchorPool: ids, per-track isolation, keyframe rules, eviction by coverage, thread safety."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from hpe_core.anchors.anchor import AnchorSource
from hpe_core.anchors.consensus import FusedPose, fuse_relative_estimates
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import (
    KEYFRAME_ADDED,
    KEYFRAME_CHAIN_TOO_DEEP,
    KEYFRAME_LOW_CONFIDENCE,
    KEYFRAME_NO_ANCHORS,
    KEYFRAME_PARENT_MISSING,
    KEYFRAME_POOL_FULL,
    KEYFRAME_TOO_CLOSE,
    KEYFRAME_TOO_UNCERTAIN,
    AnchorPool,
    AnchorPoolFullError,
)
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg, yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.rotations import geodesic_angle_deg, so3_exp
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import relative_pose_virtual

CROP = np.full((8, 8, 3), 100, np.uint8)


def _pose(yaw: float, pitch: float = 0.0) -> np.ndarray:
    return make_transform(matrix_from_yaw_pitch_roll_deg(yaw, pitch, 0.0), [0.0, 0.0, 1.0])


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def _estimate(pool: AnchorPool, track: str, yaw: float, k: int = 1) -> FusedPose:
    """Select anchors for a query at ``yaw`` and fuse exact relative estimates (crops centred)."""
    T_query = _pose(yaw)
    sel = pool.select(track, T_query[:3, :3], np.eye(3), k=k)
    T_rel = np.stack([relative_pose_virtual(T_query, a.pose_cam, a.virtual_from_cam, np.eye(3)) for a in sel.anchors])
    return fuse_relative_estimates(sel.anchors, T_rel[:, :3, :3], T_rel[:, :3, 3], np.eye(3))


def test_ids_counts_and_per_track_isolation() -> None:
    pool = AnchorPool(clock=_Clock())
    c0 = pool.add_calibrated("alice", CROP, _pose(0.0))
    b0 = pool.add_bootstrapped("alice", CROP, _pose(40.0), uncertainty_deg=4.0)
    c1 = pool.add_calibrated("alice", CROP, _pose(-40.0))
    other = pool.add_calibrated("bob", CROP, _pose(5.0))
    assert (c0.anchor_id, b0.anchor_id, c1.anchor_id, other.anchor_id) == ("alice-c0", "alice-b0", "alice-c1", "bob-c0")
    assert b0.accumulated_uncertainty_deg == 4.0 and b0.source is AnchorSource.BOOTSTRAPPED
    assert c0.created_at == 101.0 and other.created_at == 104.0
    assert pool.tracks() == ("alice", "bob") and len(pool) == 4
    counts = pool.counts()
    assert (counts["alice"].calibrated, counts["alice"].bootstrapped, counts["alice"].total) == (2, 1, 3)
    # Selection for bob never sees alice's anchors, even ones nearer to the query.
    assert pool.select("bob", _pose(40.0)[:3, :3]).anchor_ids == ("bob-c0",)
    assert pool.get("bob", "alice-c0") is None and pool.get("alice", "alice-c0") is c0
    assert pool.remove_track("alice") == 3
    assert pool.tracks() == ("bob",) and pool.anchors("alice") == ()
    # Ids are not reused after the track was emptied.
    assert pool.add_calibrated("alice", CROP, _pose(0.0)).anchor_id == "alice-c2"
    pool.clear("alice")
    assert pool.tracks() == ("bob",)
    pool.clear()
    assert pool.tracks() == () and len(pool) == 0


def test_keyframe_added_when_far_and_confident() -> None:
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=1))
    pool.add_calibrated("t", CROP, _pose(0.0))
    fused = _estimate(pool, "t", 20.0)
    assert fused.confidence >= pool.policy.keyframe_min_confidence
    decision = pool.maybe_add_keyframe("t", CROP, fused, created_at=7.0)
    assert decision.added and decision.reason == KEYFRAME_ADDED
    kf = decision.anchor
    assert kf is not None and kf.anchor_id == "t-k0" and kf.source is AnchorSource.KEYFRAME
    assert kf.parent_ids == ("t-c0",) and kf.chain_depth == 1 and kf.created_at == 7.0
    assert kf.quality == pytest.approx(fused.confidence)
    assert kf.accumulated_uncertainty_deg == pytest.approx(fused.accumulated_uncertainty_deg) and kf.accumulated_uncertainty_deg > 0
    np.testing.assert_allclose(kf.pose_cam, _pose(20.0), atol=1e-9)
    assert decision.nearest_gap_deg == pytest.approx(20.0)
    # The next query near the new keyframe is served by it.
    assert pool.select("t", _pose(22.0)[:3, :3]).anchor_ids == ("t-k0",)


def test_keyframe_not_added_when_close_to_an_anchor() -> None:
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=1))
    pool.add_calibrated("t", CROP, _pose(0.0))
    pool.add_calibrated("t", CROP, _pose(30.0))
    decision = pool.maybe_add_keyframe("t", CROP, _estimate(pool, "t", 8.0))
    assert not decision.added and decision.reason == KEYFRAME_TOO_CLOSE
    assert decision.nearest_gap_deg == pytest.approx(8.0)
    # 16 deg from c0 but only 14 deg from c1: still too close to *some* anchor.
    assert pool.maybe_add_keyframe("t", CROP, _estimate(pool, "t", 16.0)).reason == KEYFRAME_TOO_CLOSE
    assert pool.counts()["t"].keyframe == 0


def test_keyframe_not_added_when_unconfident() -> None:
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=1))
    pool.add_calibrated("t", CROP, _pose(0.0))
    fused = _estimate(pool, "t", 60.0)  # far from the only anchor: low confidence
    assert fused.confidence < 0.7
    assert pool.maybe_add_keyframe("t", CROP, fused).reason == KEYFRAME_LOW_CONFIDENCE


def test_keyframe_chain_depth_limit() -> None:
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=1, max_chain_depth=2, max_accumulated_uncertainty_deg=50.0))
    pool.add_calibrated("t", CROP, _pose(0.0))
    depths = []
    for yaw in (20.0, 40.0, 60.0):
        decision = pool.maybe_add_keyframe("t", CROP, _estimate(pool, "t", yaw))
        depths.append(decision.anchor.chain_depth if decision.added else decision.reason)
    assert depths == [1, 2, KEYFRAME_CHAIN_TOO_DEEP]
    assert pool.anchors("t")[-1].parent_ids == ("t-k0",)


def test_keyframe_accumulated_uncertainty_limit() -> None:
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=1, max_accumulated_uncertainty_deg=2.0))
    pool.add_bootstrapped("t", CROP, _pose(0.0), uncertainty_deg=1.5)
    fused = _estimate(pool, "t", 20.0)
    assert fused.accumulated_uncertainty_deg > 2.0 and fused.confidence >= 0.7
    assert pool.maybe_add_keyframe("t", CROP, fused).reason == KEYFRAME_TOO_UNCERTAIN
    assert pool.counts()["t"].keyframe == 0


def test_keyframe_needs_anchors_and_a_parent_in_this_track() -> None:
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=1))
    pool.add_calibrated("a", CROP, _pose(0.0))
    fused = _estimate(pool, "a", 20.0)
    assert pool.maybe_add_keyframe("b", CROP, fused).reason == KEYFRAME_NO_ANCHORS
    pool.add_calibrated("b", CROP, _pose(-20.0))
    assert pool.maybe_add_keyframe("b", CROP, fused).reason == KEYFRAME_PARENT_MISSING
    pool.remove_anchor("a", "a-c0")
    pool.add_calibrated("a", CROP, _pose(-20.0))
    assert pool.maybe_add_keyframe("a", CROP, fused).reason == KEYFRAME_PARENT_MISSING


def test_eviction_drops_the_most_redundant_non_calibrated_anchor() -> None:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=4, anchors_per_estimate=1), clock=_Clock())
    pool.add_calibrated("t", CROP, _pose(0.0))
    pool.add_bootstrapped("t", CROP, _pose(30.0), quality=0.9)
    pool.add_bootstrapped("t", CROP, _pose(32.0), quality=0.6)  # near-duplicate, lower quality
    pool.add_bootstrapped("t", CROP, _pose(60.0), quality=0.9)
    pool.add_bootstrapped("t", CROP, _pose(-30.0), quality=0.9)  # full: something must go
    ids = {a.anchor_id for a in pool.anchors("t")}
    assert ids == {"t-c0", "t-b0", "t-b2", "t-b3"} and pool.evictions == 1
    # Coverage (the farthest yaw in [-60, 75] from its nearest anchor) is the best any single
    # eviction of a non-calibrated anchor could have kept.
    yaws = matrix_from_yaw_pitch_roll_deg(np.linspace(-60.0, 75.0, 136), 0.0, 0.0)

    def coverage(anchor_yaws: list[float]) -> float:
        kept = matrix_from_yaw_pitch_roll_deg(np.array(anchor_yaws), 0.0, 0.0)
        return float(geodesic_angle_deg(yaws[:, None], kept[None]).min(axis=1).max())

    everyone = {"t-b0": 30.0, "t-b1": 32.0, "t-b2": 60.0, "t-b3": -30.0}
    alternatives = {
        victim: coverage([0.0] + [y for aid, y in everyone.items() if aid != victim]) for victim in everyone
    }
    kept_yaws = [float(yaw_pitch_roll_deg_from_matrix(a.rotation_cam)[0]) for a in pool.anchors("t")]
    assert coverage(kept_yaws) == pytest.approx(min(alternatives.values()))
    assert alternatives["t-b2"] > coverage(kept_yaws) and alternatives["t-b3"] > coverage(kept_yaws)


def test_eviction_tie_goes_to_lower_quality_then_older() -> None:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=3, anchors_per_estimate=1), clock=_Clock())
    pool.add_bootstrapped("t", CROP, _pose(10.0), quality=0.8)  # b0 (older)
    pool.add_bootstrapped("t", CROP, _pose(12.0), quality=0.8)  # b1
    pool.add_bootstrapped("t", CROP, _pose(50.0), quality=0.8)  # b2
    pool.add_bootstrapped("t", CROP, _pose(-40.0), quality=0.8)
    assert [a.anchor_id for a in pool.anchors("t")] == ["t-b1", "t-b2", "t-b3"]


def test_calibrated_anchors_are_never_evicted() -> None:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=3, anchors_per_estimate=1))
    for yaw in (0.0, 1.0, 2.0):
        pool.add_calibrated("t", CROP, _pose(yaw))
    with pytest.raises(AnchorPoolFullError, match="calibrated"):
        pool.add_bootstrapped("t", CROP, _pose(50.0))
    decision = pool.maybe_add_keyframe("t", CROP, _estimate(pool, "t", 20.0))
    assert decision.reason == KEYFRAME_POOL_FULL and not decision.added
    assert [a.anchor_id for a in pool.anchors("t")] == ["t-c0", "t-c1", "t-c2"]
    # With a mixed pool the calibrated ones survive even when they are the most redundant.
    mixed = AnchorPool(AnchorPolicy(max_anchors_per_track=3, anchors_per_estimate=1))
    mixed.add_calibrated("t", CROP, _pose(0.0))
    mixed.add_calibrated("t", CROP, _pose(1.0))
    mixed.add_bootstrapped("t", CROP, _pose(40.0))
    mixed.add_bootstrapped("t", CROP, _pose(-40.0))
    assert [a.anchor_id for a in mixed.anchors("t")] == ["t-c0", "t-c1", "t-b1"]
    # Unless the policy allows it.
    loose = AnchorPool(AnchorPolicy(max_anchors_per_track=2, anchors_per_estimate=1, calibrated_never_evicted=False))
    loose.add_calibrated("t", CROP, _pose(0.0), quality=1.0)
    loose.add_calibrated("t", CROP, _pose(1.0), quality=0.5)
    loose.add_calibrated("t", CROP, _pose(40.0))
    assert [a.anchor_id for a in loose.anchors("t")] == ["t-c0", "t-c2"]


def test_concurrent_adds_and_reads_stay_consistent() -> None:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=20, anchors_per_estimate=3))
    errors: list[BaseException] = []

    def writer(track: str) -> None:
        try:
            for i in range(15):
                pool.add_bootstrapped(track, CROP, _pose(-70.0 + 10.0 * i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(200):
                for track in pool.tracks():
                    sel = pool.select(track, np.eye(3))
                    assert len(sel) <= 3
                pool.counts()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{i}",)) for i in range(4)] + [threading.Thread(target=reader)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert {t: c.total for t, c in pool.counts().items()} == {f"t{i}": 15 for i in range(4)}
    for i in range(4):
        ids = [a.anchor_id for a in pool.anchors(f"t{i}")]
        assert ids == [f"t{i}-b{j}" for j in range(15)]


def test_a_smaller_capacity_from_a_new_policy_applies_at_the_next_insert() -> None:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=6, anchors_per_estimate=1))
    pool.add_calibrated("t", CROP, _pose(0.0))
    for yaw in (10.0, 20.0, 30.0, 40.0, 50.0):
        pool.add_bootstrapped("t", CROP, _pose(yaw))
    pool.set_policy(AnchorPolicy(max_anchors_per_track=3, anchors_per_estimate=1))
    assert pool.counts()["t"].total == 6  # nothing evicted yet
    pool.add_bootstrapped("t", CROP, _pose(-30.0))
    kept = [a.anchor_id for a in pool.anchors("t")]
    assert len(kept) == 3 and kept[0] == "t-c0" and kept[-1] == "t-b5"
    assert pool.evictions == 4
    with pytest.raises(TypeError):
        pool.set_policy({"max_anchors_per_track": 3})  # type: ignore[arg-type]


def _noisy_relative(rng: np.random.Generator, T_query: np.ndarray, anchors) -> tuple[np.ndarray, np.ndarray]:
    """Relative estimates with the paper-like error model: rotation error about
    0.5 + 0.12 * gap degrees about a random axis, 5 mm translation noise."""
    R_list, t_list = [], []
    for a in anchors:
        T_rel = relative_pose_virtual(T_query, a.pose_cam, a.virtual_from_cam, np.eye(3))
        gap = float(geodesic_angle_deg(T_rel[:3, :3], np.eye(3)))
        axis = rng.normal(size=3)
        err = np.radians(0.5 + 0.12 * gap) * abs(rng.normal())
        R_list.append(so3_exp(axis / np.linalg.norm(axis) * err) @ T_rel[:3, :3])
        t_list.append(T_rel[:3, 3] + rng.normal(scale=0.005, size=3))
    return np.stack(R_list), np.stack(t_list)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_head_sweep_grows_keyframes_and_keeps_the_error_low(seed: int) -> None:
    """Select -> fuse -> keyframe over a 0..80 deg yaw sweep from one calibrated anchor."""
    rng = np.random.default_rng(seed)
    pool = AnchorPool(AnchorPolicy(anchors_per_estimate=3))
    calibrated = pool.add_calibrated("t", CROP, _pose(0.0))
    last_R = calibrated.rotation_cam
    pool_errors, single_errors = [], []
    for yaw in np.arange(2.0, 82.0, 2.0):
        T_query = _pose(float(yaw), pitch=0.3 * float(yaw) / 8.0)
        sel = pool.select("t", last_R, np.eye(3))
        R_rel, t_rel = _noisy_relative(rng, T_query, sel.anchors)
        fused = fuse_relative_estimates(sel.anchors, R_rel, t_rel, np.eye(3))
        pool.maybe_add_keyframe("t", CROP, fused)
        last_R = fused.rotation_cam
        if yaw > 60.0:  # compare with the calibrated anchor alone, far from the query
            R_single, t_single = _noisy_relative(rng, T_query, [calibrated])
            single = fuse_relative_estimates([calibrated], R_single, t_single, np.eye(3))
            pool_errors.append(float(geodesic_angle_deg(fused.rotation_cam, T_query[:3, :3])))
            single_errors.append(float(geodesic_angle_deg(single.rotation_cam, T_query[:3, :3])))
    keyframes = [a for a in pool.anchors("t") if a.source is AnchorSource.KEYFRAME]
    assert len(keyframes) == pool.policy.max_chain_depth  # one chain, stopped at the depth limit
    assert all(1 <= k.chain_depth <= pool.policy.max_chain_depth for k in keyframes)
    assert all(k.accumulated_uncertainty_deg <= pool.policy.max_accumulated_uncertainty_deg for k in keyframes)
    assert np.mean(pool_errors) < 0.75 * np.mean(single_errors)
    assert np.mean(pool_errors) < 4.0
