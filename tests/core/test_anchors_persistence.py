"""Anchor pool files: round trip, rejection of bad files, atomic saves, replace_from."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hpe_core.anchors.anchor import AnchorSource
from hpe_core.anchors.consensus import fuse_relative_estimates
from hpe_core.anchors.persistence import FORMAT_NAME, AnchorPoolFileError, load, save
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import relative_pose_virtual, virtual_camera_rotation

K_CAM = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def _pose(yaw: float, pitch: float = 0.0, t: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    return make_transform(matrix_from_yaw_pitch_roll_deg(yaw, pitch, 0.0), t)


def _crop(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _sample_pool() -> AnchorPool:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=6, anchors_per_estimate=1))
    R_left = virtual_camera_rotation(K_CAM, (100.0, 200.0))
    pool.add_calibrated("alice", _crop(1), _pose(0.0, 5.0, (0.1, 0.0, 1.2)), R_left, created_at=1.5)
    pool.add_bootstrapped("alice", _crop(2, 10), _pose(-40.0), quality=0.4, uncertainty_deg=6.0, created_at=2.5)
    pool.add_calibrated("bob", _crop(3), _pose(10.0), created_at=3.5)
    # A real keyframe for alice, from an exact relative estimate.
    T_query = _pose(20.0, 5.0, (0.1, 0.0, 1.2))
    R_vq = virtual_camera_rotation(K_CAM, (150.0, 220.0))
    sel = pool.select("alice", T_query[:3, :3], R_vq)
    T_rel = np.stack([relative_pose_virtual(T_query, a.pose_cam, a.virtual_from_cam, R_vq) for a in sel.anchors])
    fused = fuse_relative_estimates(sel.anchors, T_rel[:, :3, :3], T_rel[:, :3, 3], R_vq)
    assert pool.maybe_add_keyframe("alice", _crop(4), fused, created_at=4.5).added
    return pool


def _fields(pool: AnchorPool) -> list[tuple]:
    return [
        (a.anchor_id, a.track_id, a.source, a.quality, a.created_at, a.parent_ids, a.chain_depth, a.accumulated_uncertainty_deg)
        for t in pool.tracks()
        for a in pool.anchors(t)
    ]


def _assert_same(a: AnchorPool, b: AnchorPool) -> None:
    assert _fields(a) == _fields(b)
    for t in a.tracks():
        for x, y in zip(a.anchors(t), b.anchors(t)):
            assert x.crop.dtype == y.crop.dtype == np.uint8
            np.testing.assert_array_equal(x.crop, y.crop)
            np.testing.assert_array_equal(x.pose_cam, y.pose_cam)
            np.testing.assert_array_equal(x.virtual_from_cam, y.virtual_from_cam)


def test_round_trip_keeps_ids_sources_poses_crops_and_counters(tmp_path: Path) -> None:
    pool = _sample_pool()
    pool.anchors("alice")[0].features = "cached tokens"  # never persisted
    path = save(pool, tmp_path / "pool.hpa")
    loaded = load(path)
    _assert_same(pool, loaded)
    assert [a.source for a in loaded.anchors("alice")] == [
        AnchorSource.CALIBRATED,
        AnchorSource.BOOTSTRAPPED,
        AnchorSource.KEYFRAME,
    ]
    assert all(a.features is None for t in loaded.tracks() for a in loaded.anchors(t))
    assert loaded.policy == pool.policy and loaded.id_counters() == pool.id_counters()
    other_policy = AnchorPolicy(max_anchors_per_track=8)
    assert load(path, policy=other_policy).policy == other_policy
    # Counters survive: an evicted/removed id is not handed out again after loading.
    pool.remove_anchor("alice", "alice-k0")
    save(pool, path)
    again = load(path)
    assert again.add_bootstrapped("alice", _crop(5), _pose(60.0)).anchor_id == "alice-b1"
    assert again.id_counters()["alice"]["k"] == 1


def test_empty_pool_round_trips(tmp_path: Path) -> None:
    path = save(AnchorPool(), tmp_path / "empty.hpa")
    loaded = load(path)
    assert len(loaded) == 0 and loaded.tracks() == ()


def test_truncated_file_is_rejected_and_the_running_pool_kept(tmp_path: Path) -> None:
    running = _sample_pool()
    before = _fields(running)
    path = save(_sample_pool(), tmp_path / "pool.hpa")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnchorPoolFileError, match="truncated"):
        load(path)
    with pytest.raises(AnchorPoolFileError):
        running.replace_from(path)
    assert _fields(running) == before


def test_tampered_payload_is_rejected_and_the_running_pool_kept(tmp_path: Path) -> None:
    running = _sample_pool()
    before = _fields(running)
    path = save(_sample_pool(), tmp_path / "pool.hpa")
    data = bytearray(path.read_bytes())
    data[len(data) - 100] ^= 0x01  # one bit of the payload
    path.write_bytes(bytes(data))
    with pytest.raises(AnchorPoolFileError, match="checksum"):
        running.replace_from(path)
    assert _fields(running) == before


def _write_with_header(path: Path, header: dict, payload: bytes) -> None:
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


def _valid_header(payload: bytes, **overrides: object) -> dict:
    header = {
        "format": FORMAT_NAME,
        "version": 1,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    header.update(overrides)
    return header


def test_foreign_newer_missing_and_malformed_files_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.hpa"
    with pytest.raises(AnchorPoolFileError, match="cannot read"):
        load(path)
    with open(path, "wb") as fh:
        np.savez(fh, a=np.zeros(3))  # a plain npz: no header line
    with pytest.raises(AnchorPoolFileError, match="not an"):
        load(path)
    _write_with_header(path, _valid_header(b"abc", format="some-other-format"), b"abc")
    with pytest.raises(AnchorPoolFileError, match="not an"):
        load(path)
    good = save(_sample_pool(), tmp_path / "good.hpa").read_bytes()
    payload = good[good.index(b"\n") + 1 :]
    _write_with_header(path, _valid_header(payload, version=2), payload)
    with pytest.raises(AnchorPoolFileError, match="newer"):
        load(path)
    # Checksum-valid payloads that are not npz archives (empty, garbage).
    _write_with_header(path, _valid_header(b""), b"")
    with pytest.raises(AnchorPoolFileError, match="invalid anchor pool contents"):
        load(path)
    _write_with_header(path, _valid_header(b"not a zip"), b"not a zip")
    with pytest.raises(AnchorPoolFileError, match="invalid anchor pool contents"):
        load(path)


def test_pickled_object_arrays_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.array([{"anchors": []}], dtype=object), pose_cam=np.zeros((0, 4, 4)))
    payload = buffer.getvalue()
    path = tmp_path / "pickle.hpa"
    _write_with_header(path, _valid_header(payload), payload)
    with pytest.raises(AnchorPoolFileError):
        load(path)


def test_invalid_anchor_content_is_rejected(tmp_path: Path) -> None:
    good = save(_sample_pool(), tmp_path / "good.hpa").read_bytes()
    with np.load(io.BytesIO(good[good.index(b"\n") + 1 :]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["pose_cam"] = arrays["pose_cam"].copy()
    arrays["pose_cam"][0, :3, :3] *= 2.0  # not a rotation any more
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    path = tmp_path / "bad.hpa"
    _write_with_header(path, _valid_header(payload), payload)
    with pytest.raises(AnchorPoolFileError, match="rotation"):
        load(path)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "pool.hpa")


def test_failed_rename_leaves_the_old_file_and_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_pool = _sample_pool()
    path = save(old_pool, tmp_path / "pool.hpa")
    old_bytes = path.read_bytes()
    new_pool = AnchorPool()
    new_pool.add_calibrated("carol", _crop(9), _pose(0.0))

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("simulated rename failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save(new_pool, path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    _assert_same(old_pool, load(path))
    assert _leftovers(tmp_path) == []


def test_failure_after_a_partial_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_pool = _sample_pool()
    path = save(old_pool, tmp_path / "pool.hpa")
    old_bytes = path.read_bytes()
    seen_sizes: list[int] = []
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        seen_sizes.append(os.fstat(fd).st_size)  # the temp file already holds data
        raise OSError("simulated disk error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated disk error"):
        save(_sample_pool(), path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert seen_sizes and seen_sizes[0] > 0
    assert path.read_bytes() == old_bytes
    assert _leftovers(tmp_path) == []


def test_replace_from_swaps_contents_but_keeps_the_running_policy(tmp_path: Path) -> None:
    saved = _sample_pool()
    path = save(saved, tmp_path / "pool.hpa")
    running = AnchorPool(AnchorPolicy(max_anchors_per_track=9))
    running.add_calibrated("zed", _crop(7), _pose(0.0))
    running.replace_from(path)
    _assert_same(saved, running)
    assert running.policy.max_anchors_per_track == 9 and "zed" not in running.tracks()
