"""Loaded files are hostile input (issue 17): crafted anchor pools and ONNX exports.

Every crafted pool file here carries a valid SHA-256 of its own payload, so the checksum
passes and the parser itself must refuse it, with an :class:`AnchorPoolFileError` saying what,
before spending the memory (no ``RecursionError``, ``OverflowError`` or ``MemoryError``). The
archives are written member by member with :mod:`zipfile`, the way ``numpy.savez`` writes them,
so that members can be replaced by raw, deliberately wrong ``.npy`` bytes.

The ONNX tests export the tiny preset with its weights in an external ``.data`` file (as the
1B graphs are exported) and check that a changed ``.data`` file is refused before ONNX Runtime
loads it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pytest

from hpe_core.anchors import persistence
from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.persistence import FORMAT_NAME, AnchorPoolFileError, decode_pool, load, save
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool
from hpe_core.features import AnchorFeatures
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.transforms import make_transform

MEMORY_LIMIT_BYTES = 200 * 1024 * 1024
CROP = (224, 224, 3)


# ------------------------------------------------------------------------------ crafting
def _pose(yaw: float, t: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    return make_transform(matrix_from_yaw_pitch_roll_deg(yaw, 0.0, 0.0), t)


def _crop(shape: tuple[int, ...] = (8, 8, 3), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _sample_pool(crop_shape: tuple[int, int, int] = (8, 8, 3)) -> AnchorPool:
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=6, anchors_per_estimate=1))
    pool.add_calibrated("alice", _crop(crop_shape, 1), _pose(0.0), created_at=1.5)
    pool.add_bootstrapped("alice", _crop(crop_shape, 2), _pose(-40.0), quality=0.4, uncertainty_deg=6.0,
                          created_at=2.5)
    pool.add_calibrated("bob", _crop(crop_shape, 3), _pose(10.0), created_at=3.5)
    return pool


def _npy(array: np.ndarray) -> bytes:
    """One ``.npy`` file's bytes (what ``numpy.savez`` stores per member)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header declaring ``descr`` and ``shape`` (no data follows)."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression, allowZip64=True) as archive:
        for name, data in members.items():
            archive.writestr(name if name.endswith(".npy") else name + ".npy", data)
    return buffer.getvalue()


def _wrap(payload: bytes) -> bytes:
    """A complete pool file around ``payload``: a correct header, length and SHA-256."""
    header = {"format": FORMAT_NAME, "version": 1, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header).encode() + b"\n" + payload


def _members(pool: AnchorPool) -> dict[str, bytes]:
    """The raw ``.npy`` members (names without ``.npy``) of a pool's saved file."""
    data = persistence.encode_pool(pool)
    with zipfile.ZipFile(io.BytesIO(data[data.index(b"\n") + 1:])) as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def _metadata(members: dict[str, bytes]) -> dict:
    raw = np.load(io.BytesIO(members["metadata"]), allow_pickle=False)
    return json.loads(raw.tobytes())


def _with_metadata_text(members: dict[str, bytes], text: str) -> dict[str, bytes]:
    out = dict(members)
    out["metadata"] = _npy(np.frombuffer(text.encode(), np.uint8))
    return out


def _write(tmp_path: Path, members: dict[str, bytes], name: str = "crafted.hpa") -> Path:
    path = tmp_path / name
    path.write_bytes(_wrap(_zip(members)))
    return path


def _refused(load_call: Callable[[], object], match: str) -> tuple[float, int]:
    """Run ``load_call``, expect an AnchorPoolFileError matching ``match``; (seconds, peak bytes)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(AnchorPoolFileError, match=match):
            load_call()
        return time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------- 1. deep JSON, RecursionError
@pytest.mark.parametrize("text", [
    "[" * 60_000,
    '{"a": ' * 200_000 + "1" + "}" * 200_000,
    '{"anchors": [], "policy": {}, "id_counters": ' + "[" * 5_000 + "]" * 5_000 + "}",
], ids=["60k-brackets", "200k-deep-objects", "deep-inside-valid-keys"])
def test_deeply_nested_metadata_is_refused_without_recursion(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, _with_metadata_text(_members(_sample_pool()), text))
    seconds, _ = _refused(lambda: load(path), "nested deeper")
    assert seconds < 5.0


def test_metadata_with_too_many_json_items_is_refused(tmp_path: Path) -> None:
    """A flat list of a million numbers (tens of MB of Python objects) is refused unparsed."""
    text = "[" + "0," * (persistence.MAX_JSON_ITEMS + 1) + "0]"
    path = _write(tmp_path, _with_metadata_text(_members(_sample_pool()), text))
    seconds, peak = _refused(lambda: load(path), "JSON items")
    assert seconds < 5.0 and peak < MEMORY_LIMIT_BYTES


def test_deeply_nested_header_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "header.hpa"
    path.write_bytes(b"[" * 60_000 + b"\n" + b"payload")
    with pytest.raises(AnchorPoolFileError, match="not an"):
        load(path)


def test_json_strings_that_look_like_nesting_are_fine(tmp_path: Path) -> None:
    """Brackets and escaped quotes inside strings are not structure."""
    pool = AnchorPool(AnchorPolicy(max_anchors_per_track=2, anchors_per_estimate=1))
    pool.add_calibrated('[[[{{{"\\' * 20, _crop(), _pose(0.0))
    path = save(pool, tmp_path / "strings.hpa")
    assert load(path).tracks() == ('[[[{{{"\\' * 20,)


# ---------------------------------------------------------- 2. overflowing numbers
def _inject(members: dict[str, bytes], edit: Callable[[dict], None], literal: str) -> dict[str, bytes]:
    """Metadata with the placeholder that ``edit`` puts in replaced by a raw JSON literal."""
    meta = _metadata(members)
    edit(meta)
    return _with_metadata_text(members, json.dumps(meta).replace('"@@"', literal))


def _set_chain_depth(meta: dict) -> None:
    meta["anchors"][0]["chain_depth"] = "@@"


def _set_quality(meta: dict) -> None:
    meta["anchors"][0]["quality"] = "@@"


def _set_counter(meta: dict) -> None:
    meta["id_counters"]["alice"]["c"] = "@@"


def _set_created_at(meta: dict) -> None:
    meta["anchors"][0]["created_at"] = "@@"


def _set_policy_capacity(meta: dict) -> None:
    meta["policy"]["max_anchors_per_track"] = "@@"


@pytest.mark.parametrize("edit, literal, match", [
    (_set_chain_depth, "1e999", "overflows"),
    (_set_quality, "7" * 400, "digits"),
    (_set_quality, "7" * 400 + ".5", "characters|overflows"),
    (_set_counter, "1e999", "overflows"),
    (_set_counter, "9" * 40, "digits"),
    (_set_created_at, "NaN", "NaN"),
    (_set_created_at, "-Infinity", "Infinity"),
    (_set_policy_capacity, "1" * 30, "digits"),
    (_set_chain_depth, "1.0e300", "chain_depth"),
    (_set_counter, "-1", "outside"),
], ids=["chain_depth-1e999", "quality-400-digits", "quality-400-digit-float", "counter-1e999",
        "counter-40-digits", "created_at-NaN", "created_at-Infinity", "policy-30-digits", "chain_depth-float",
        "counter-negative"])
def test_overflowing_and_non_finite_numbers_are_refused(tmp_path: Path, edit, literal: str, match: str) -> None:
    path = _write(tmp_path, _inject(_members(_sample_pool()), edit, literal))
    with pytest.raises(AnchorPoolFileError, match=match):
        load(path)


@pytest.mark.parametrize("field, value, match", [
    ("chain_depth", 5000, "chain_depth"),
    ("quality", 1.5, "quality"),
    ("accumulated_uncertainty_deg", 1e9, "accumulated_uncertainty_deg"),
    ("created_at", 1e300, "created_at"),
    ("anchor_id", "", "anchor_id"),
    ("anchor_id", "x" * 10_000, "characters"),
    ("anchor_id", 17, "anchor_id"),
    ("track_id", ["alice"], "track_id"),
    ("source", "trusted-because-i-say-so", "source"),
    ("parent_ids", ["p"] * 1000, "parent_ids"),
    ("parent_ids", "alice-c0", "parent_ids"),
    ("parent_ids", [""], "parent id"),
    ("crop", "metadata", "crop member name"),
    ("crop", "crop_99999", "missing"),
    ("quality", True, "quality"),
], ids=lambda v: str(v)[:20])
def test_record_fields_are_type_and_range_checked(tmp_path: Path, field: str, value: object, match: str) -> None:
    members = _members(_sample_pool())
    meta = _metadata(members)
    meta["anchors"][1][field] = value
    path = _write(tmp_path, _with_metadata_text(members, json.dumps(meta)))
    with pytest.raises(AnchorPoolFileError, match=match):
        load(path)


def test_unknown_keys_and_duplicate_keys_are_refused(tmp_path: Path) -> None:
    members = _members(_sample_pool())
    meta = _metadata(members)
    meta["anchors"][0]["execute"] = "rm -rf"
    with pytest.raises(AnchorPoolFileError, match="unknown keys"):
        load(_write(tmp_path, _with_metadata_text(members, json.dumps(meta))))
    text = json.dumps(_metadata(members)).replace('"chain_depth": 0', '"chain_depth": 0, "chain_depth": 1', 1)
    with pytest.raises(AnchorPoolFileError, match="duplicate key"):
        load(_write(tmp_path, _with_metadata_text(members, text)))


@pytest.mark.parametrize("corrupt, match", [
    (lambda p: p[0].__setitem__((0, 3), 1e6), "farther than"),
    (lambda p: p[0].__setitem__((slice(0, 3), 0), -p[0][:3, 0]), "rotation"),  # a reflection (det -1)
    (lambda p: p[1].__setitem__((2, 2), np.nan), "not finite"),
    (lambda p: p[2].__setitem__(3, [0.0, 0.0, 1.0, 1.0]), "last row"),
], ids=["translation-1000km", "reflection", "nan", "last-row"])
def test_poses_must_be_finite_rigid_and_near(tmp_path: Path, corrupt, match: str) -> None:
    members = _members(_sample_pool())
    poses = np.load(io.BytesIO(members["pose_cam"])).copy()
    corrupt(poses)
    members["pose_cam"] = _npy(poses)
    with pytest.raises(AnchorPoolFileError, match=match):
        load(_write(tmp_path, members))


# --------------------------------------------------- 3. huge declared shapes, MemoryError
@pytest.mark.parametrize("member, descr, shape", [
    ("crop_00000", "|u1", (1_000_000, 1_000_000, 3)),
    ("pose_cam", "<f8", (10**9, 4, 4)),
    ("metadata", "|u1", (10**12,)),
    ("features_00000", "<f4", (10**6, 10**6)),
], ids=["crop-1e6x1e6x3", "pose-1e9", "metadata-1e12", "features-1e12"])
def test_huge_declared_shape_is_refused_before_allocation(tmp_path: Path, member: str, descr: str,
                                                          shape: tuple[int, ...]) -> None:
    pool = _sample_pool()
    pool.anchors("alice")[0].features = AnchorFeatures(np.ones((1, 478, 4), np.float32), "facemesh:x",
                                                       persistable=True)
    members = _members(pool)
    assert "features_00000" in members
    members[member] = _npy_header(descr, shape)  # the header only: the data is not there
    path = _write(tmp_path, members)
    seconds, peak = _refused(lambda: load(path), "holds|must be|at most")
    assert seconds < 5.0 and peak < MEMORY_LIMIT_BYTES


@pytest.mark.parametrize("descr, match", [
    ("|O", "not allowed"),        # pickled objects
    ("<f8", "must be uint8"),     # a float crop
    ("<U3", "must be uint8"),
], ids=["object", "float", "unicode"])
def test_member_dtypes_are_checked_from_the_header(tmp_path: Path, descr: str, match: str) -> None:
    members = _members(_sample_pool())
    members["crop_00000"] = _npy_header(descr, (8, 8, 3))
    with pytest.raises(AnchorPoolFileError, match=match):
        load(_write(tmp_path, members))


def test_member_size_must_match_its_header(tmp_path: Path) -> None:
    members = _members(_sample_pool())
    members["crop_00000"] = _npy_header("|u1", (8, 8, 3)) + b"\x00" * 10  # 192 bytes declared
    with pytest.raises(AnchorPoolFileError, match="declares"):
        load(_write(tmp_path, members))


# ------------------------------------------------------------- 4. the deflate bomb
@pytest.fixture(scope="module")
def bomb_payload() -> bytes:
    return _bomb_payload()


def _bomb_payload() -> bytes:
    """An archive of about 1 MB whose crop member inflates to 1 GiB (zeros, written in chunks)."""
    members = _members(_sample_pool())
    shape = (18918, 18918, 3)  # 1.07 GB of uint8
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in members.items():
            if name != "crop_00000":
                archive.writestr(name + ".npy", data)
        with archive.open("crop_00000.npy", "w", force_zip64=True) as member:
            member.write(_npy_header("|u1", shape))
            zeros = bytes(1 << 22)
            left = shape[0] * shape[1] * shape[2]
            while left:
                member.write(zeros[:min(left, len(zeros))])
                left -= min(left, len(zeros))
    payload = buffer.getvalue()
    assert len(payload) < 4 * 1024 * 1024
    return payload


def test_deflate_bomb_is_refused_quickly_with_little_memory(tmp_path: Path, bomb_payload: bytes) -> None:
    path = tmp_path / "bomb.hpa"
    path.write_bytes(_wrap(bomb_payload))
    seconds, peak = _refused(lambda: load(path), "decompression bomb")
    assert seconds < 5.0 and peak < MEMORY_LIMIT_BYTES


def test_deflated_members_of_a_sane_ratio_still_load(tmp_path: Path) -> None:
    """``numpy.savez_compressed``-style archives of a normal pool are accepted."""
    pool = _sample_pool(CROP)
    path = tmp_path / "compressed.hpa"
    path.write_bytes(_wrap(_zip(_members(pool), zipfile.ZIP_DEFLATED)))
    assert len(load(path, expected_crop_shape=CROP)) == 3


def test_too_many_members_and_unknown_members_are_refused(tmp_path: Path) -> None:
    members = _members(_sample_pool())
    crowded = dict(members, **{f"crop_{i:07d}": b"" for i in range(persistence.MAX_MEMBERS + 1)})
    seconds, peak = _refused(lambda: load(_write(tmp_path, crowded, "crowded.hpa")), "zip directory|members")
    assert peak < MEMORY_LIMIT_BYTES
    with pytest.raises(AnchorPoolFileError, match="unknown archive member"):
        load(_write(tmp_path, dict(members, **{"../../etc/passwd": b"x"}), "foreign.hpa"))
    with pytest.raises(AnchorPoolFileError, match="not used by any anchor"):
        load(_write(tmp_path, dict(members, crop_00077=_npy(_crop())), "extra.hpa"))


def test_a_huge_central_directory_is_refused_before_zipfile_parses_it(tmp_path: Path) -> None:
    """An end record claiming a 100 MB directory (zipfile would read and parse all of it)."""
    payload = bytearray(_zip(_members(_sample_pool())))
    end = payload.rfind(b"PK\x05\x06")
    payload[end + 12:end + 16] = (100 * 1024 * 1024).to_bytes(4, "little")
    path = tmp_path / "directory.hpa"
    path.write_bytes(_wrap(bytes(payload)))
    with pytest.raises(AnchorPoolFileError, match="zip directory"):
        load(path)


def test_file_size_is_bounded_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(_sample_pool(), tmp_path / "pool.hpa")
    monkeypatch.setattr(persistence, "MAX_POOL_FILE_BYTES", path.stat().st_size - 1)
    reads: list[Path] = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or b"")
    with pytest.raises(AnchorPoolFileError, match="larger than the limit"):
        load(path)
    with pytest.raises(AnchorPoolFileError, match="larger than the limit"):
        decode_pool(path.open("rb").read())
    assert reads == []
    with pytest.raises(AnchorPoolFileError, match="not a regular file"):
        load(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.hpa"
        os.mkfifo(fifo)
        with pytest.raises(AnchorPoolFileError, match="not a regular file"):
            load(fifo)  # never opened: opening a FIFO blocks until a writer comes


# ---------------------------------------- 5. crops that do not fit the model, too many anchors
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 3000, 3), (224, 224, 4)], ids=str)
def test_crops_must_match_the_expected_crop_shape(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    pool = _sample_pool(CROP)
    members = _members(pool)
    members["crop_00001"] = _npy(_crop(shape))
    path = _write(tmp_path, members)
    with pytest.raises(AnchorPoolFileError, match=r"does not match the estimator's crop \(224, 224, 3\)"):
        load(path, expected_crop_shape=CROP)
    running = AnchorPool()
    with pytest.raises(AnchorPoolFileError):
        running.replace_from(path, expected_crop_shape=CROP)
    assert len(running) == 0


def test_a_crop_of_18918_squared_is_refused_from_its_header(tmp_path: Path) -> None:
    members = _members(_sample_pool(CROP))
    members["crop_00002"] = _npy_header("|u1", (18918, 18918, 3))
    path = _write(tmp_path, members)
    seconds, peak = _refused(lambda: load(path, expected_crop_shape=CROP), "holds|does not match")
    assert seconds < 5.0 and peak < MEMORY_LIMIT_BYTES
    _refused(lambda: load(path), "holds|at most")


def test_crop_sides_are_bounded_without_an_expected_shape(tmp_path: Path) -> None:
    members = _members(_sample_pool())
    members["crop_00000"] = _npy(_crop((7, 3000, 3)))
    with pytest.raises(AnchorPoolFileError, match="1 <= H, W <= 2048"):
        load(_write(tmp_path, members))


def test_matching_crops_load_with_the_expected_shape(tmp_path: Path) -> None:
    pool = _sample_pool(CROP)
    path = save(pool, tmp_path / "pool.hpa")
    loaded = load(path, expected_crop_shape=CROP)
    assert len(loaded) == 3 and all(a.crop.shape == CROP for t in loaded.tracks() for a in loaded.anchors(t))
    with pytest.raises(ValueError, match="expected_crop_shape"):
        load(path, expected_crop_shape=(224, 224))


def _crowded_pool(people: int, per_person: int, policy: AnchorPolicy) -> AnchorPool:
    crop = _crop()
    anchors = [Anchor(f"p{p}-c{i}", f"p{p}", crop, _pose(0.0, (0.0, 0.0, 1.0 + 0.001 * i)), np.eye(3),
                      AnchorSource.CALIBRATED, 1.0, float(i))
               for p in range(people) for i in range(per_person)]
    return AnchorPool.from_anchors(anchors, policy)  # from_anchors does not evict


def test_a_track_over_the_policy_capacity_is_refused(tmp_path: Path) -> None:
    path = save(_crowded_pool(1, 2000, AnchorPolicy()), tmp_path / "crowded.hpa")
    with pytest.raises(AnchorPoolFileError, match="2000 anchors, more than the policy's max_anchors_per_track=12"):
        load(path)  # the stored policy
    with pytest.raises(AnchorPoolFileError, match="max_anchors_per_track=12"):
        AnchorPool(AnchorPolicy()).replace_from(path)  # the running pool's policy
    assert len(load(path, policy=AnchorPolicy(max_anchors_per_track=2000))) == 2000


def test_too_many_tracks_are_refused(tmp_path: Path) -> None:
    path = save(_crowded_pool(persistence.MAX_TRACKS + 1, 1, AnchorPolicy()), tmp_path / "people.hpa")
    with pytest.raises(AnchorPoolFileError, match="tracks"):
        load(path)


# ------------------------------------------------------------------ old files keep loading
def test_files_without_optional_members_still_load(tmp_path: Path) -> None:
    members = _members(_sample_pool())
    del members["crop_from_cam"]
    loaded = load(_write(tmp_path, members))
    assert len(loaded) == 3 and all(a.crop_from_cam is None for t in loaded.tracks() for a in loaded.anchors(t))


def test_persisted_features_round_trip_and_non_finite_ones_are_dropped(tmp_path: Path) -> None:
    pool = _sample_pool()
    values = np.random.default_rng(0).normal(size=(1, 478, 4)).astype(np.float32)
    pool.anchors("bob")[0].features = AnchorFeatures(values, "facemesh:abc", persistable=True)
    path = save(pool, tmp_path / "pool.hpa")
    loaded = load(path).anchors("bob")[0].features
    assert loaded.producer == "facemesh:abc"
    np.testing.assert_array_equal(loaded.values, values)
    members = _members(pool)
    name = next(k for k in members if k.startswith("features_"))
    members[name] = _npy(np.full((478, 4), np.nan, np.float32))
    assert load(_write(tmp_path, members)).anchors("bob")[0].features is None


def test_an_expected_shape_pool_of_the_sigkill_test_size_loads(tmp_path: Path) -> None:
    """30 anchors of 224x224 (the size the SIGKILL test saves) load within the limits."""
    policy = AnchorPolicy(max_anchors_per_track=10, anchors_per_estimate=1)
    pool = AnchorPool(policy)
    for p in range(3):
        for i in range(10):
            pool.add_calibrated(f"person_{p}", np.full(CROP, 1, np.uint8), _pose(0.0, (0.01 * i, 0.0, 2.0)),
                                created_at=float(i))
    assert len(load(save(pool, tmp_path / "pool.hpa"), expected_crop_shape=CROP)) == 30


# ------------------------------------------------------- 6. ONNX external data (.data files)
@pytest.fixture(scope="module")
def external_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset exported with its weights in ``<graph>.data`` files, with a manifest."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from hpe_core.vggt.config import get_preset
    from hpe_core.vggt.model import VGGTCamera
    from hpe_training.export import onnx_export

    torch.manual_seed(3)
    model = VGGTCamera(get_preset("tiny")).eval()
    out = tmp_path_factory.mktemp("tiny_external")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)  # as the 1B graphs are exported
        result = onnx_export.export_onnx(model, out, verify=False, log=lambda _msg: None)
    onnx_export.write_manifest(out, onnx_export.manifest_dict(result, model.config.to_dict(), {"kind": "test"}))
    return out


@pytest.fixture()
def export_copy(external_export: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(external_export, out)
    return out


@pytest.fixture()
def no_onnxruntime_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Records any ONNX Runtime session created (there must be none for a refused export)."""
    import onnxruntime

    created: list = []

    def refuse(*args, **kwargs):  # pragma: no cover - only reached on failure
        created.append(args)
        raise AssertionError("onnxruntime loaded an export that should have been refused")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    yield created


def _manifest(export_dir: Path) -> dict:
    from hpe_core.estimator import onnx_format as fmt

    return json.loads((export_dir / fmt.MANIFEST_FILE).read_text())


def test_export_records_the_external_data_files(external_export: Path) -> None:
    from hpe_core.estimator import create_estimator
    from hpe_core.estimator import onnx_format as fmt

    manifest = _manifest(external_export)
    for graph in (fmt.PATCH_EMBED_FILE, fmt.RELATIVE_POSE_FILE):
        (entry,) = manifest["files"][graph]["external_data"]
        data = external_export / entry["file"]
        assert entry["file"] == graph + ".data"
        assert entry["bytes"] == data.stat().st_size > 0
        assert entry["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    fmt.verify_export_files(external_export)
    assert create_estimator("onnxruntime", external_export).input_size[0] > 0  # ORT reads the .data files


def test_a_changed_data_file_is_refused_before_onnxruntime_loads_it(export_copy: Path,
                                                                     no_onnxruntime_session: list) -> None:
    from hpe_core.estimator import create_estimator
    from hpe_core.estimator import onnx_format as fmt

    data_path = export_copy / (fmt.RELATIVE_POSE_FILE + ".data")
    data = bytearray(data_path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight: same size, wrong model
    data_path.write_bytes(bytes(data))
    with pytest.raises(fmt.ExportFileError, match=r"relative_pose\.onnx\.data .*SHA-256 differs"):
        create_estimator("onnxruntime", export_copy)
    data_path.write_bytes(bytes(data[:-10]))
    with pytest.raises(fmt.ExportFileError, match=r"relative_pose\.onnx\.data .*bytes, the manifest says"):
        create_estimator("onnxruntime", export_copy)
    data_path.unlink()
    with pytest.raises(fmt.ExportFileError, match=r"relative_pose\.onnx\.data .*missing"):
        create_estimator("onnxruntime", export_copy)
    assert no_onnxruntime_session == []


def test_unrecorded_data_files_and_odd_names_are_refused(export_copy: Path, no_onnxruntime_session: list) -> None:
    from hpe_core.estimator import create_estimator
    from hpe_core.estimator import onnx_format as fmt

    manifest = _manifest(export_copy)
    entry = manifest["files"][fmt.PATCH_EMBED_FILE]
    recorded = entry.pop("external_data")  # a manifest without the entry (hand-written or foreign)
    (export_copy / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(fmt.ExportFileError, match=r"patch_embed\.onnx\.data: external data .* does not record"):
        create_estimator("onnxruntime", export_copy)
    entry["external_data"] = [dict(recorded[0], file="../" + recorded[0]["file"])]
    (export_copy / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(fmt.ExportFileError, match="not a plain file name"):
        create_estimator("onnxruntime", export_copy)
    entry["external_data"] = [{"file": recorded[0]["file"]}]  # no hash recorded
    (export_copy / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(fmt.ExportFileError, match="no SHA-256"):
        create_estimator("onnxruntime", export_copy)
    assert no_onnxruntime_session == []


def test_old_manifests_without_data_bytes_are_checked_by_hash(export_copy: Path) -> None:
    from hpe_core.estimator import onnx_format as fmt

    manifest = _manifest(export_copy)
    for entry in manifest["files"].values():
        for item in entry["external_data"]:
            del item["bytes"]  # manifests written before the size was recorded
    (export_copy / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))
    fmt.verify_export_files(export_copy)
    data_path = export_copy / (fmt.PATCH_EMBED_FILE + ".data")
    data = bytearray(data_path.read_bytes())
    data[0] ^= 0xFF
    data_path.write_bytes(bytes(data))
    with pytest.raises(fmt.ExportFileError, match=r"patch_embed\.onnx\.data .*SHA-256"):
        fmt.verify_export_files(export_copy)
