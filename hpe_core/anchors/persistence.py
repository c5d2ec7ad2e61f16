"""Save and load an :class:`~hpe_core.anchors.pool.AnchorPool` atomically, without pickle.

File layout (one file)::

    {"format": "hpe-anchor-pool", "version": 1, "payload_bytes": N, "payload_sha256": "..."}\\n
    <N bytes of payload>

The header is one line of UTF-8 JSON (at most 64 KiB). The payload is a numpy ``.npz``
archive (``numpy.savez``, loaded with ``allow_pickle=False``) holding:

* ``metadata``: ``uint8 [M]``, UTF-8 JSON ``{"policy": {...}, "id_counters": {...},
  "anchors": [{"anchor_id", "track_id", "source", "quality", "created_at", "parent_ids",
  "chain_depth", "accumulated_uncertainty_deg", "crop"}, ...]}``;
* ``pose_cam``: ``float64 [N, 4, 4]`` anchor head poses ``T_cam_from_head`` (real camera
  optical frame, metres), in the order of ``anchors``;
* ``virtual_from_cam``: ``float64 [N, 3, 3]`` crops' ``R_virt_from_cam``;
* ``crop_00000``, ...: ``uint8 [H, W, 3]`` RGB crops (named by each anchor's ``crop``);
* ``crop_from_cam``: ``float64 [N, 3, 3]`` each crop's camera (:attr:`Anchor.crop_from_cam`),
  all zeros where unknown (optional member; older files lack it);
* ``features_00000``, ...: ``float32`` persistable estimator features of one anchor (the face
  mesh's landmarks ``[478, 4]``), named by the record's ``features`` with their
  ``features_producer`` (optional; other features are recomputed after a load).

Saving writes a temporary file in the target directory, flushes and fsyncs it, renames it over
the target with ``os.replace`` (atomic on POSIX) and fsyncs the directory; on any failure the
temporary file is removed and an existing file is left as it was. Loading checks the format
name, the version (newer versions are refused), the payload length (truncation) and the
SHA-256 (corruption or tampering) before parsing; every problem raises
:class:`AnchorPoolFileError`. :func:`load` returns a new pool; use
:meth:`AnchorPool.replace_from` to swap a running pool's contents only after a good load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool
from hpe_core.features import AnchorFeatures

FORMAT_NAME = "hpe-anchor-pool"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024

PathType = Union[str, "os.PathLike[str]"]


class AnchorPoolFileError(Exception):
    """An anchor-pool file cannot be read: missing, truncated, corrupt, foreign or too new."""


def encode_pool(pool: AnchorPool) -> bytes:
    """The complete file contents (header line + payload) for ``pool``."""
    anchors, counters = pool.snapshot()
    arrays: dict[str, np.ndarray] = {}
    records: list[dict[str, Any]] = []
    for i, a in enumerate(anchors):
        crop_key = f"crop_{i:05d}"
        arrays[crop_key] = np.ascontiguousarray(a.crop)
        records.append(
            {
                "anchor_id": a.anchor_id,
                "track_id": a.track_id,
                "source": a.source.value,
                "quality": a.quality,
                "created_at": a.created_at,
                "parent_ids": list(a.parent_ids),
                "chain_depth": a.chain_depth,
                "accumulated_uncertainty_deg": a.accumulated_uncertainty_deg,
                "crop": crop_key,
            }
        )
        features = a.features
        if features is not None and getattr(features, "persistable", False) and len(features) == 1:
            feature_key = f"features_{i:05d}"
            arrays[feature_key] = np.ascontiguousarray(np.asarray(features.values[0], dtype=np.float32))
            records[-1]["features"] = feature_key
            records[-1]["features_producer"] = str(features.producer)
    metadata = {"policy": pool.policy.to_dict(), "id_counters": counters, "anchors": records}
    meta_bytes = json.dumps(metadata, allow_nan=False, sort_keys=True).encode("utf-8")
    arrays["metadata"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    arrays["pose_cam"] = np.stack([a.pose_cam for a in anchors]) if anchors else np.zeros((0, 4, 4))
    arrays["virtual_from_cam"] = np.stack([a.virtual_from_cam for a in anchors]) if anchors else np.zeros((0, 3, 3))
    arrays["crop_from_cam"] = (np.stack([np.zeros((3, 3)) if a.crop_from_cam is None else a.crop_from_cam
                                         for a in anchors]) if anchors else np.zeros((0, 3, 3)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    return json.dumps(header, sort_keys=True).encode("utf-8") + b"\n" + payload


def save(pool: AnchorPool, path: PathType) -> Path:
    """Write ``pool`` to ``path`` atomically (module docstring); returns the path.

    Raises:
        OSError: the file could not be written; an existing file at ``path`` is unchanged and
            no temporary file is left behind.
    """
    target = Path(path)
    data = encode_pool(pool)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    return target


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (POSIX); skipped where directories cannot be opened."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: PathType, policy: Optional[AnchorPolicy] = None) -> AnchorPool:
    """Read a pool saved by :func:`save`.

    Args:
        path: the file.
        policy: the new pool's policy; the policy stored in the file when ``None``.

    Returns:
        A new :class:`AnchorPool` (features empty).

    Raises:
        AnchorPoolFileError: missing, unreadable, truncated, corrupt, tampered, foreign or
            newer-version file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnchorPoolFileError(f"cannot read anchor pool file {str(path)!r}: {exc}") from exc
    return decode_pool(data, policy, source=str(path))


def decode_pool(data: bytes, policy: Optional[AnchorPolicy] = None, source: str = "<bytes>") -> AnchorPool:
    """Inverse of :func:`encode_pool`; see :func:`load`."""
    newline = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if newline < 0:
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (no header line)")
    try:
        header = json.loads(data[:newline].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (header is not JSON)") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else None
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (format {found!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AnchorPoolFileError(f"{source}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise AnchorPoolFileError(
            f"{source}: format version {version} is newer than this software supports ({FORMAT_VERSION}); upgrade hpe"
        )
    payload = data[newline + 1 :]
    expected_len = header.get("payload_bytes")
    if not isinstance(expected_len, int) or len(payload) != expected_len:
        raise AnchorPoolFileError(
            f"{source}: payload is {len(payload)} bytes, header says {expected_len!r} (truncated or corrupt file)"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if header.get("payload_sha256") != digest:
        raise AnchorPoolFileError(f"{source}: payload checksum mismatch (corrupt or modified file)")
    try:
        return _parse_payload(payload, policy)
    except AnchorPoolFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise AnchorPoolFileError(f"{source}: invalid anchor pool contents: {exc}") from exc


def _parse_payload(payload: bytes, policy: Optional[AnchorPolicy]) -> AnchorPool:
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta_raw = arrays["metadata"]
    if meta_raw.dtype != np.uint8 or meta_raw.ndim != 1:
        raise ValueError("metadata must be a uint8 vector")
    metadata = json.loads(meta_raw.tobytes().decode("utf-8"))
    if not isinstance(metadata, dict) or not isinstance(metadata.get("anchors"), list):
        raise ValueError("metadata must be an object with an 'anchors' list")
    records = metadata["anchors"]
    poses = arrays["pose_cam"]
    virtual = arrays["virtual_from_cam"]
    n = len(records)
    if poses.shape != (n, 4, 4) or virtual.shape != (n, 3, 3):
        raise ValueError(f"pose arrays {poses.shape} / {virtual.shape} do not match {n} anchors")
    crop_cams = arrays.get("crop_from_cam")
    if crop_cams is not None and crop_cams.shape != (n, 3, 3):
        raise ValueError(f"crop_from_cam {crop_cams.shape} does not match {n} anchors")
    anchors = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"anchor record {i} is not an object")
        crop = arrays[str(r["crop"])]
        if crop.dtype != np.uint8:
            raise ValueError(f"anchor record {i}: crop must be uint8, got {crop.dtype}")
        anchors.append(
            Anchor(
                anchor_id=str(r["anchor_id"]),
                track_id=str(r["track_id"]),
                crop=crop,
                pose_cam=poses[i],
                virtual_from_cam=virtual[i],
                source=AnchorSource(r["source"]),
                quality=float(r["quality"]),
                created_at=float(r["created_at"]),
                parent_ids=tuple(str(p) for p in r["parent_ids"]),
                chain_depth=int(r["chain_depth"]),
                accumulated_uncertainty_deg=float(r["accumulated_uncertainty_deg"]),
                crop_from_cam=None if crop_cams is None or not np.any(crop_cams[i]) else crop_cams[i],
            )
        )
        if "features" in r:
            values = arrays[str(r["features"])]
            if values.dtype != np.float32 or values.ndim < 1:
                raise ValueError(f"anchor record {i}: features must be a float32 array")
            anchors[-1].features = AnchorFeatures(values[None].copy(), str(r["features_producer"]), persistable=True)
    if policy is None:
        policy = AnchorPolicy.from_dict(metadata["policy"])
    counters = metadata.get("id_counters", {})
    if not isinstance(counters, dict):
        raise ValueError("id_counters must be an object")
    return AnchorPool.from_anchors(anchors, policy, counters)
