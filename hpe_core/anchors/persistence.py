"""Save and load an :class:`~hpe_core.anchors.pool.AnchorPool` atomically, without pickle.

File layout (one file)::

    {"format": "hpe-anchor-pool", "version": 1, "payload_bytes": N, "payload_sha256": "..."}\\n
    <N bytes of payload>

The header is one line of UTF-8 JSON (at most 64 KiB). The payload is a numpy ``.npz``
archive (written by ``numpy.savez``) holding:

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

A loaded file is hostile input: a valid checksum only proves that the file is whole, not that
it was written by :func:`save`. Loading never unpickles, and checks every bound *before* the
memory it guards is spent (the archive is read with :mod:`zipfile` member by member, each
``.npy`` header before its data), so that a crafted file gives an :class:`AnchorPoolFileError`
naming the problem, never a ``RecursionError``, ``OverflowError`` or ``MemoryError``.
The limits (module constants):

* file: at most :data:`MAX_POOL_FILE_BYTES` (512 MiB), a regular file, checked with ``stat``
  before reading; header line at most :data:`MAX_HEADER_BYTES` (64 KiB);
* archive: only the member names above; at most :data:`MAX_MEMBERS` members and a central
  directory of at most :data:`MAX_CENTRAL_DIRECTORY_BYTES` (checked before ``zipfile`` parses
  it); members stored or deflated, not encrypted; a deflated member over 1 MiB at most
  :data:`MAX_COMPRESSION_RATIO` times its compressed size; all members together at most
  :data:`MAX_TOTAL_UNCOMPRESSED_BYTES` (1 GiB) uncompressed;
* ``.npy`` members: format 1.0 or 2.0, header at most :data:`MAX_NPY_HEADER_BYTES`, no object,
  structured or sub-array dtypes, each member's dtype and shape as listed above, and its size
  exactly what its header declares; at most :data:`MAX_ANCHORS` (10,000) anchors; metadata at
  most :data:`MAX_METADATA_BYTES` (16 MiB); crops ``[H, W, 3]`` with ``1 <= H, W <=``
  :data:`MAX_CROP_SIDE` (2048), or exactly ``expected_crop_shape`` when given; features at
  most :data:`MAX_FEATURE_ELEMENTS` values (non-finite features are dropped and recomputed);
* JSON (header and metadata): nesting at most :data:`MAX_JSON_DEPTH` (32) levels and at most
  :data:`MAX_JSON_ITEMS` members/elements, checked by a non-recursive scan before parsing; no
  ``NaN``/``Infinity``; integers at most :data:`MAX_JSON_INT_DIGITS` (18) digits; floats
  finite; no duplicate keys; no unknown keys in metadata and records;
* records: ids and track ids non-empty strings of at most :data:`MAX_ID_CHARS` (256)
  characters, unique ids; ``source`` one of ``calibrated``/``bootstrapped``/``keyframe``;
  ``quality`` in [0, 1]; ``created_at`` finite with ``|created_at| <=``
  :data:`MAX_ABS_CREATED_AT`; ``parent_ids`` at most :data:`MAX_PARENT_IDS` (64) ids;
  ``chain_depth`` in 0..:data:`MAX_CHAIN_DEPTH` (1000); ``accumulated_uncertainty_deg`` in
  [0, :data:`MAX_UNCERTAINTY_DEG`]; ``id_counters`` at most :data:`MAX_ID_COUNTER_TRACKS`
  tracks, letters ``c``/``b``/``k``, values in 0..:data:`MAX_ID_COUNTER`;
* poses: finite, last row ``[0, 0, 0, 1]``, rotation orthonormal with det +1 (tolerance
  :data:`~hpe_core.anchors.anchor.ROTATION_TOLERANCE`), ``|t| <=``
  :data:`MAX_TRANSLATION_M` (100 m); ``virtual_from_cam`` a rotation; ``crop_from_cam``
  finite, zero (unknown) or invertible;
* pool: at most :data:`MAX_TRACKS` (1000) tracks, and no track with more anchors than the
  policy's ``max_anchors_per_track`` (the given policy, else the stored one).

A legitimate pool near the size limit needs about twice its file size in memory while loading
(the file's bytes and the arrays).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from numpy.lib import format as npy_format

from hpe_core.anchors.anchor import ROTATION_TOLERANCE, Anchor, AnchorSource
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool
from hpe_core import bounded_json
from hpe_core.bounded_json import BoundedJsonError, loads_bounded
from hpe_core.features import AnchorFeatures

FORMAT_NAME = "hpe-anchor-pool"
FORMAT_VERSION = 1

#: Largest pool file :func:`load` reads (checked with ``stat`` before reading).
MAX_POOL_FILE_BYTES = 512 * 1024 * 1024
#: Longest header line.
MAX_HEADER_BYTES = 64 * 1024
#: Most anchors in one file.
MAX_ANCHORS = 10_000
#: Most tracks (people) with anchors in one file.
MAX_TRACKS = 1_000
#: Most archive members: metadata, three pose arrays, a crop and features per anchor.
MAX_MEMBERS = 4 + 2 * MAX_ANCHORS
#: Largest zip central directory (bounds what ``zipfile`` parses before any member is read).
MAX_CENTRAL_DIRECTORY_BYTES = 4 * 1024 * 1024
#: Largest sum of the members' uncompressed sizes.
MAX_TOTAL_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
#: Largest uncompressed/compressed ratio of a deflated member over 1 MiB.
MAX_COMPRESSION_RATIO = 100
#: Longest ``.npy`` header.
MAX_NPY_HEADER_BYTES = 4096
#: Longest metadata JSON.
MAX_METADATA_BYTES = 16 * 1024 * 1024
#: JSON bounds (header and metadata), as :mod:`hpe_core.bounded_json` applies them.
MAX_JSON_DEPTH = bounded_json.MAX_JSON_DEPTH
MAX_JSON_ITEMS = bounded_json.MAX_JSON_ITEMS
MAX_JSON_INT_DIGITS = bounded_json.MAX_JSON_INT_DIGITS
MAX_JSON_NUMBER_CHARS = bounded_json.MAX_JSON_NUMBER_CHARS
#: Longest id, track id, crop/features member name or features producer.
MAX_ID_CHARS = 256
#: Most parent ids of one anchor.
MAX_PARENT_IDS = 64
#: Deepest keyframe chain.
MAX_CHAIN_DEPTH = 1000
#: Largest accumulated uncertainty, degrees.
MAX_UNCERTAINTY_DEG = 1000.0
#: Largest ``|created_at|``, seconds.
MAX_ABS_CREATED_AT = 1e11
#: Largest head distance ``|t|`` of a pose, metres.
MAX_TRANSLATION_M = 100.0
#: Largest crop height and width, pixels.
MAX_CROP_SIDE = 2048
#: Most values of one anchor's persisted features.
MAX_FEATURE_ELEMENTS = 65_536
#: Most tracks in ``id_counters`` (tracks whose anchors were removed keep their counters).
MAX_ID_COUNTER_TRACKS = 50_000
#: Largest id counter value.
MAX_ID_COUNTER = 10**15

PathType = Union[str, "os.PathLike[str]"]
CropShape = tuple[int, int, int]


class AnchorPoolFileError(Exception):
    """An anchor-pool file cannot be read: missing, truncated, corrupt, foreign, too new or
    outside the limits of the module docstring."""


class _Invalid(ValueError):
    """A content problem; :func:`decode_pool` reports it as ``invalid anchor pool contents``."""


# ---------------------------------------------------------------------------------- saving
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


# --------------------------------------------------------------------------------- loading
def load(path: PathType, policy: Optional[AnchorPolicy] = None, *,
         expected_crop_shape: Optional[Sequence[int]] = None) -> AnchorPool:
    """Read a pool saved by :func:`save`, as hostile input (limits: module docstring).

    Args:
        path: the file.
        policy: the new pool's policy; the policy stored in the file when ``None``. Either way
            a track with more anchors than its ``max_anchors_per_track`` is refused.
        expected_crop_shape: ``(H, W, 3)`` of the running estimator's crops; when given, every
            crop must have exactly this shape.

    Returns:
        A new :class:`AnchorPool` (features empty unless persisted).

    Raises:
        AnchorPoolFileError: missing, unreadable, too large, truncated, corrupt, tampered,
            foreign, newer-version or out-of-bounds file (the message says what).
        ValueError: ``expected_crop_shape`` itself is malformed (a caller's error).
    """
    expected = _expected_shape(expected_crop_shape)
    name = str(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise AnchorPoolFileError(f"{name}: not a regular file")
        _check_file_size(info.st_size, name)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            _check_file_size(size, name)
            header_line = fh.readline(MAX_HEADER_BYTES + 1)
            # Exactly the stat size (read(n) allocates n bytes up front); a shrunk file fails
            # the payload length check, a grown one is refused here.
            payload = fh.read(max(0, size - len(header_line)))
            if fh.read(1):
                raise AnchorPoolFileError(f"{name}: the file grew while being read")
    except AnchorPoolFileError:
        raise
    except OSError as exc:
        raise AnchorPoolFileError(f"cannot read anchor pool file {name!r}: {exc}") from exc
    if not header_line.endswith(b"\n"):
        raise AnchorPoolFileError(f"{name}: not an {FORMAT_NAME} file (no header line)")
    return _decode(header_line[:-1], payload, policy, expected, name)


def decode_pool(data: bytes, policy: Optional[AnchorPolicy] = None, source: str = "<bytes>", *,
                expected_crop_shape: Optional[Sequence[int]] = None) -> AnchorPool:
    """Inverse of :func:`encode_pool`; see :func:`load`."""
    expected = _expected_shape(expected_crop_shape)
    data = bytes(data)
    _check_file_size(len(data), source)
    newline = data.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if newline < 0:
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (no header line)")
    return _decode(data[:newline], data[newline + 1:], policy, expected, source)


def _check_file_size(size: int, source: str) -> None:
    if size > MAX_POOL_FILE_BYTES:
        raise AnchorPoolFileError(f"{source}: {size} bytes, larger than the limit of {MAX_POOL_FILE_BYTES} "
                                  f"bytes for an anchor pool file")


def _expected_shape(shape: Optional[Sequence[int]]) -> Optional[CropShape]:
    if shape is None:
        return None
    values = tuple(shape)
    if (len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
            or values[2] != 3 or values[0] < 1 or values[1] < 1):
        raise ValueError(f"expected_crop_shape must be (H, W, 3) with positive ints, got {shape!r}")
    return (int(values[0]), int(values[1]), 3)


def _decode(header_bytes: bytes, payload: bytes, policy: Optional[AnchorPolicy],
            expected_crop_shape: Optional[CropShape], source: str) -> AnchorPool:
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (no header line)")
    try:
        header = _safe_json_loads(header_bytes, "header")
    except _Invalid as exc:
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (header is not JSON: {exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else None
        raise AnchorPoolFileError(f"{source}: not an {FORMAT_NAME} file (format {_short(found)})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise AnchorPoolFileError(f"{source}: invalid format version {_short(version)}")
    if version > FORMAT_VERSION:
        raise AnchorPoolFileError(
            f"{source}: format version {version} is newer than this software supports ({FORMAT_VERSION}); upgrade hpe"
        )
    expected_len = header.get("payload_bytes")
    if (not isinstance(expected_len, int) or isinstance(expected_len, bool)
            or len(payload) != expected_len):
        raise AnchorPoolFileError(
            f"{source}: payload is {len(payload)} bytes, header says {_short(expected_len)} (truncated or corrupt file)"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if header.get("payload_sha256") != digest:
        raise AnchorPoolFileError(f"{source}: payload checksum mismatch (corrupt or modified file)")
    try:
        return _parse_payload(payload, policy, expected_crop_shape)
    except AnchorPoolFileError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, OSError,
            NotImplementedError, RuntimeError) as exc:  # RecursionError is a RuntimeError
        raise AnchorPoolFileError(f"{source}: invalid anchor pool contents: {exc}") from exc
    except Exception as exc:  # a backstop only: the bounds above are checked before reading
        raise AnchorPoolFileError(f"{source}: invalid anchor pool contents ({type(exc).__name__}: {exc})") from exc


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value from the file, cut short (it may be huge)."""
    text = repr(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else (
        str(value) if isinstance(value, float) or abs(value) < 10**limit else "<huge int>")
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------------------------------ JSON
def _safe_json_loads(raw: bytes, what: str) -> Any:
    """``json.loads`` of hostile bytes: bounded depth, size and numbers (:mod:`hpe_core.bounded_json`)."""
    try:
        return loads_bounded(raw, what)
    except BoundedJsonError as exc:
        raise _Invalid(str(exc)) from exc


# ------------------------------------------------------------------------------- the archive
_FIXED_MEMBERS = {"metadata", "pose_cam", "virtual_from_cam", "crop_from_cam"}
_CROP_NAME = re.compile(r"crop_[0-9]{1,7}\Z")
_FEATURES_NAME = re.compile(r"features_[0-9]{1,7}\Z")
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _check_central_directory(payload: bytes) -> None:
    """Bound the zip central directory before :class:`zipfile.ZipFile` parses all of it.

    Finds the end record the way ``zipfile`` does (the last 22 bytes, else the last signature
    in the final 64 KiB), including a zip64 end record, and refuses a directory larger than
    :data:`MAX_CENTRAL_DIRECTORY_BYTES` or with more than :data:`MAX_MEMBERS` entries.
    """
    size = len(payload)
    if size < _EOCD.size:
        raise _Invalid("not a zip archive (too short)")
    if payload[-_EOCD.size:-_EOCD.size + 4] == b"PK\x05\x06" and payload[-2:] == b"\x00\x00":
        where = size - _EOCD.size
    else:
        start = max(0, size - _EOCD.size - 0xFFFF)
        where = payload.rfind(b"PK\x05\x06", start)
        if where < 0 or where + _EOCD.size > size:
            raise _Invalid("not a zip archive (no end of central directory)")
    fields = _EOCD.unpack_from(payload, where)
    entries, directory_bytes = fields[4], fields[5]
    locator = where - _ZIP64_LOCATOR.size
    if locator >= 0 and payload[locator:locator + 4] == b"PK\x06\x07":
        record = locator - _ZIP64_EOCD.size
        if record >= 0 and payload[record:record + 4] == b"PK\x06\x06":
            fields64 = _ZIP64_EOCD.unpack_from(payload, record)
            entries, directory_bytes = fields64[7], fields64[8]
    if entries > MAX_MEMBERS or directory_bytes > MAX_CENTRAL_DIRECTORY_BYTES:
        raise _Invalid(f"zip directory of {entries} entries / {directory_bytes} bytes "
                       f"(at most {MAX_MEMBERS} / {MAX_CENTRAL_DIRECTORY_BYTES})")


def _member_infos(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, each checked (names, flags, sizes, ratio)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Invalid(f"{len(infos)} archive members (at most {MAX_MEMBERS})")
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        filename = info.filename
        if not filename.endswith(".npy"):
            raise _Invalid(f"unknown archive member {_short(filename)}")
        name = filename[:-4]
        if name not in _FIXED_MEMBERS and not _CROP_NAME.match(name) and not _FEATURES_NAME.match(name):
            raise _Invalid(f"unknown archive member {_short(filename)}")
        if name in members:
            raise _Invalid(f"archive member {filename} appears twice")
        if info.flag_bits & 0x1:
            raise _Invalid(f"archive member {filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Invalid(f"archive member {filename}: unsupported compression {info.compress_type}")
        if (info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > (1 << 20)
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)):
            raise _Invalid(f"archive member {filename}: {info.file_size} bytes deflated from {info.compress_size} "
                           f"(ratio over {MAX_COMPRESSION_RATIO}: a decompression bomb?)")
        total += info.file_size
        if total > MAX_TOTAL_UNCOMPRESSED_BYTES:
            raise _Invalid(f"archive members hold more than {MAX_TOTAL_UNCOMPRESSED_BYTES} bytes uncompressed")
        members[name] = info
    return members


@dataclass
class _Npy:
    """An ``.npy`` member whose header has been read and checked, data not yet read."""

    name: str
    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    header_bytes: int

    @property
    def data_bytes(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count * self.dtype.itemsize


def _read_exactly(handle: Any, n: int, what: str) -> bytes:
    data = handle.read(n)
    if len(data) != n:
        raise _Invalid(f"{what}: ends early ({len(data)} of {n} bytes)")
    return data


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, kind: str, itemsize: int,
                max_data_bytes: int) -> _Npy:
    """Read and check only the header of one member (magic, dtype, shape, size)."""
    with archive.open(info) as handle:
        magic = _read_exactly(handle, npy_format.MAGIC_LEN, name)
        try:
            version = npy_format.read_magic(io.BytesIO(magic))
        except ValueError as exc:
            raise _Invalid(f"{name}: not an .npy array ({exc})") from exc
        if version not in ((1, 0), (2, 0)):
            raise _Invalid(f"{name}: .npy format version {version} is not supported")
        length_field = _read_exactly(handle, 2 if version == (1, 0) else 4, name)
        length = struct.unpack("<H" if version == (1, 0) else "<I", length_field)[0]
        if length > MAX_NPY_HEADER_BYTES:
            raise _Invalid(f"{name}: .npy header of {length} bytes (at most {MAX_NPY_HEADER_BYTES})")
        text = _read_exactly(handle, length, name)
    # A plain header is "{'descr': '<f8', 'fortran_order': False, 'shape': (N, 4, 4), }": one
    # dict, one tuple; anything nested (structured dtypes) is refused before numpy parses it.
    if text.count(b"{") != 1 or text.count(b"(") > 1 or b"[" in text:
        raise _Invalid(f"{name}: unsupported .npy header")
    reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    try:
        shape, fortran_order, dtype = reader(io.BytesIO(length_field + text), max_header_size=MAX_NPY_HEADER_BYTES)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise _Invalid(f"{name}: invalid .npy header ({exc})") from exc
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise _Invalid(f"{name}: dtype {dtype} is not allowed (plain numbers only, never pickled objects)")
    if dtype.kind != kind or dtype.itemsize != itemsize:
        wanted = np.dtype(f"{kind}{itemsize}")
        raise _Invalid(f"{name}: dtype {dtype}, must be {wanted}")
    if any(d < 0 for d in shape):
        raise _Invalid(f"{name}: negative dimension in shape {shape}")
    npy = _Npy(name, info, dtype, tuple(int(d) for d in shape), bool(fortran_order),
               npy_format.MAGIC_LEN + len(length_field) + length)
    if npy.data_bytes > max_data_bytes:
        raise _Invalid(f"{name}: shape {npy.shape} holds {npy.data_bytes} bytes (at most {max_data_bytes})")
    if info.file_size != npy.header_bytes + npy.data_bytes:
        raise _Invalid(f"{name}: member is {info.file_size} bytes, its header declares "
                       f"{npy.header_bytes + npy.data_bytes}")
    return npy


def _npy_data(archive: zipfile.ZipFile, npy: _Npy) -> np.ndarray:
    """The array of a checked member (reads exactly the declared bytes)."""
    with archive.open(npy.info) as handle:
        _read_exactly(handle, npy.header_bytes, npy.name)
        data = _read_exactly(handle, npy.data_bytes, npy.name)
    array = np.frombuffer(data, dtype=npy.dtype).reshape(npy.shape, order="F" if npy.fortran_order else "C")
    return array.astype(npy.dtype.newbyteorder("="), copy=False)


def _require_shape(npy: _Npy, shape: tuple[int, ...]) -> None:
    if npy.shape != shape:
        raise _Invalid(f"{npy.name}: shape {npy.shape}, must be {shape}")


# ------------------------------------------------------------------------------ the records
@dataclass
class _Record:
    anchor_id: str
    track_id: str
    source: AnchorSource
    quality: float
    created_at: float
    parent_ids: tuple[str, ...]
    chain_depth: int
    uncertainty_deg: float
    crop: str
    features: Optional[str]
    features_producer: Optional[str]


_RECORD_KEYS = {"anchor_id", "track_id", "source", "quality", "created_at", "parent_ids", "chain_depth",
                "accumulated_uncertainty_deg", "crop"}
_RECORD_OPTIONAL_KEYS = {"features", "features_producer"}
_METADATA_KEYS = {"policy", "id_counters", "anchors"}


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{what} must be a non-empty string, got {_short(value)}")
    if len(value) > MAX_ID_CHARS:
        raise _Invalid(f"{what} is {len(value)} characters long (at most {MAX_ID_CHARS})")
    return value


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{what} must be a number, got {_short(value)}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise _Invalid(f"{what} = {_short(value)} is outside [{low:g}, {high:g}]")
    return number


def _integer(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{what} must be an integer, got {_short(value)}")
    if not low <= value <= high:
        raise _Invalid(f"{what} = {_short(value)} is outside [{low}, {high}]")
    return value


def _record(i: int, r: Any) -> _Record:
    what = f"anchor record {i}"
    if not isinstance(r, dict):
        raise _Invalid(f"{what} is not an object")
    missing = sorted(_RECORD_KEYS - set(r))
    unknown = sorted(set(r) - _RECORD_KEYS - _RECORD_OPTIONAL_KEYS)
    if missing or unknown:
        raise _Invalid(f"{what}: missing keys {missing}, unknown keys {[_short(k) for k in unknown[:5]]}")
    anchor_id = _text(r["anchor_id"], f"{what}: anchor_id")
    what = f"anchor record {i} ({_short(anchor_id)})"
    try:
        source = AnchorSource(r["source"])
    except (ValueError, TypeError):
        raise _Invalid(f"{what}: unknown source {_short(r['source'])}") from None
    parents = r["parent_ids"]
    if not isinstance(parents, list) or len(parents) > MAX_PARENT_IDS:
        raise _Invalid(f"{what}: parent_ids must be a list of at most {MAX_PARENT_IDS} ids")
    crop = _text(r["crop"], f"{what}: crop")
    if not _CROP_NAME.match(crop):
        raise _Invalid(f"{what}: crop member name {_short(crop)} is not crop_<n>")
    features = producer = None
    if "features" in r or "features_producer" in r:
        features = _text(r.get("features"), f"{what}: features")
        if not _FEATURES_NAME.match(features):
            raise _Invalid(f"{what}: features member name {_short(features)} is not features_<n>")
        producer = _text(r.get("features_producer"), f"{what}: features_producer")
    return _Record(
        anchor_id=anchor_id,
        track_id=_text(r["track_id"], f"{what}: track_id"),
        source=source,
        quality=_number(r["quality"], f"{what}: quality", 0.0, 1.0),
        created_at=_number(r["created_at"], f"{what}: created_at", -MAX_ABS_CREATED_AT, MAX_ABS_CREATED_AT),
        parent_ids=tuple(_text(p, f"{what}: parent id") for p in parents),
        chain_depth=_integer(r["chain_depth"], f"{what}: chain_depth", 0, MAX_CHAIN_DEPTH),
        uncertainty_deg=_number(r["accumulated_uncertainty_deg"], f"{what}: accumulated_uncertainty_deg",
                                0.0, MAX_UNCERTAINTY_DEG),
        crop=crop,
        features=features,
        features_producer=producer,
    )


def _id_counters(value: Any) -> dict[str, dict[str, int]]:
    if not isinstance(value, dict):
        raise _Invalid("id_counters must be an object")
    if len(value) > MAX_ID_COUNTER_TRACKS:
        raise _Invalid(f"id_counters has {len(value)} tracks (at most {MAX_ID_COUNTER_TRACKS})")
    letters = {s.id_letter for s in AnchorSource}
    counters: dict[str, dict[str, int]] = {}
    for track, given in value.items():
        _text(track, "id_counters track id")
        if not isinstance(given, dict) or not set(given) <= letters:
            raise _Invalid(f"id_counters[{_short(track)}] must map the letters {sorted(letters)} to integers")
        counters[track] = {letter: _integer(n, f"id_counters[{_short(track)}][{letter!r}]", 0, MAX_ID_COUNTER)
                           for letter, n in given.items()}
    return counters


def _stored_policy(value: Any) -> AnchorPolicy:
    if not isinstance(value, dict):
        raise _Invalid("the stored policy must be an object")
    try:
        return AnchorPolicy.from_dict(value)
    except (ValueError, TypeError) as exc:
        raise _Invalid(f"invalid stored policy: {exc}") from exc


def _check_track_sizes(records: Sequence[_Record], policy: AnchorPolicy) -> None:
    sizes: dict[str, int] = {}
    for r in records:
        sizes[r.track_id] = sizes.get(r.track_id, 0) + 1
    if len(sizes) > MAX_TRACKS:
        raise _Invalid(f"{len(sizes)} tracks (at most {MAX_TRACKS})")
    for track, n in sizes.items():
        if n > policy.max_anchors_per_track:
            raise _Invalid(f"track {_short(track)} has {n} anchors, more than the policy's "
                           f"max_anchors_per_track={policy.max_anchors_per_track}")


# ------------------------------------------------------------------------------ the arrays
def _first_bad(mask: np.ndarray) -> Optional[int]:
    bad = np.flatnonzero(mask)
    return int(bad[0]) if bad.size else None


def _check_rotations(R: np.ndarray, records: Sequence[_Record], what: str) -> None:
    n = len(R)
    if n == 0:
        return
    error = np.abs(np.einsum("nji,njk->nik", R, R) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    i = _first_bad((error > ROTATION_TOLERANCE) | (np.abs(det - 1.0) > ROTATION_TOLERANCE))
    if i is not None:
        raise _Invalid(f"anchor {i} ({_short(records[i].anchor_id)}): {what} is not a rotation matrix "
                       f"(orthonormal with det +1)")


def _check_pose_arrays(poses: np.ndarray, virtual: np.ndarray, crop_cams: Optional[np.ndarray],
                       records: Sequence[_Record]) -> None:
    def name(i: int) -> str:
        return f"anchor {i} ({_short(records[i].anchor_id)})"

    flat = poses.reshape(len(poses), 16)
    i = _first_bad(~np.isfinite(flat).all(axis=1))
    if i is not None:
        raise _Invalid(f"{name(i)}: pose_cam is not finite")
    i = _first_bad(np.abs(poses[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1, initial=0.0) > 1e-9)
    if i is not None:
        raise _Invalid(f"{name(i)}: pose_cam last row must be [0, 0, 0, 1]")
    _check_rotations(poses[:, :3, :3], records, "pose_cam rotation")
    i = _first_bad(np.linalg.norm(poses[:, :3, 3], axis=1) > MAX_TRANSLATION_M)
    if i is not None:
        raise _Invalid(f"{name(i)}: pose_cam translation is farther than {MAX_TRANSLATION_M:g} m")
    i = _first_bad(~np.isfinite(virtual.reshape(len(virtual), 9)).all(axis=1))
    if i is not None:
        raise _Invalid(f"{name(i)}: virtual_from_cam is not finite")
    _check_rotations(virtual, records, "virtual_from_cam")
    if crop_cams is not None and len(crop_cams):
        i = _first_bad(~np.isfinite(crop_cams.reshape(len(crop_cams), 9)).all(axis=1))
        if i is not None:
            raise _Invalid(f"{name(i)}: crop_from_cam is not finite")
        known = np.any(crop_cams.reshape(len(crop_cams), 9) != 0.0, axis=1)
        i = _first_bad(known & (np.abs(np.linalg.det(crop_cams)) < 1e-12))
        if i is not None:
            raise _Invalid(f"{name(i)}: crop_from_cam is not invertible")


def _parse_payload(payload: bytes, policy: Optional[AnchorPolicy],
                   expected_crop_shape: Optional[CropShape]) -> AnchorPool:
    _check_central_directory(payload)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = _member_infos(archive)
        for required in ("metadata", "pose_cam", "virtual_from_cam"):
            if required not in members:
                raise _Invalid(f"archive member {required}.npy is missing")

        def header(name: str, kind: str, itemsize: int, max_bytes: int) -> _Npy:
            return _npy_header(archive, members[name], name, kind, itemsize, max_bytes)

        # Metadata first: it says how many anchors there are and what every member must be.
        meta = header("metadata", "u", 1, MAX_METADATA_BYTES)
        if len(meta.shape) != 1:
            raise _Invalid(f"metadata must be a uint8 vector, got shape {meta.shape}")
        metadata = _safe_json_loads(_npy_data(archive, meta).tobytes(), "metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("anchors"), list):
            raise _Invalid("metadata must be an object with an 'anchors' list")
        unknown = sorted(set(metadata) - _METADATA_KEYS)
        if unknown or "policy" not in metadata:
            raise _Invalid(f"metadata: unknown keys {[_short(k) for k in unknown[:5]]} or no policy")
        raw_records = metadata["anchors"]
        n = len(raw_records)
        if n > MAX_ANCHORS:
            raise _Invalid(f"{n} anchors (at most {MAX_ANCHORS})")
        records = [_record(i, r) for i, r in enumerate(raw_records)]
        counters = _id_counters(metadata.get("id_counters", {}))
        stored_policy = _stored_policy(metadata["policy"]) if policy is None else None
        pool_policy = policy if policy is not None else stored_policy
        assert pool_policy is not None
        _check_track_sizes(records, pool_policy)

        # Every other member's header, checked against the records before any data is read.
        poses_npy = header("pose_cam", "f", 8, n * 128)
        _require_shape(poses_npy, (n, 4, 4))
        virtual_npy = header("virtual_from_cam", "f", 8, n * 72)
        _require_shape(virtual_npy, (n, 3, 3))
        crop_cams_npy = None
        if "crop_from_cam" in members:
            crop_cams_npy = header("crop_from_cam", "f", 8, n * 72)
            _require_shape(crop_cams_npy, (n, 3, 3))
        referenced: set[str] = set()
        crops: list[_Npy] = []
        features: list[Optional[_Npy]] = []
        for i, r in enumerate(records):
            for member in (r.crop, r.features):
                if member is None:
                    continue
                if member not in members:
                    raise _Invalid(f"anchor record {i}: archive member {member}.npy is missing")
                if member in referenced:
                    raise _Invalid(f"anchor record {i}: archive member {member}.npy is used twice")
                referenced.add(member)
            crop = header(r.crop, "u", 1, MAX_CROP_SIDE * MAX_CROP_SIDE * 3)
            if expected_crop_shape is not None:
                if crop.shape != expected_crop_shape:
                    raise _Invalid(f"anchor record {i}: crop {crop.shape} does not match the estimator's "
                                   f"crop {expected_crop_shape}")
            elif (len(crop.shape) != 3 or crop.shape[2] != 3
                  or not (1 <= crop.shape[0] <= MAX_CROP_SIDE and 1 <= crop.shape[1] <= MAX_CROP_SIDE)):
                raise _Invalid(f"anchor record {i}: crop shape {crop.shape}, must be [H, W, 3] with "
                               f"1 <= H, W <= {MAX_CROP_SIDE}")
            crops.append(crop)
            if r.features is None:
                features.append(None)
                continue
            feature = header(r.features, "f", 4, MAX_FEATURE_ELEMENTS * 4)
            if not 1 <= len(feature.shape) <= 4:
                raise _Invalid(f"anchor record {i}: features shape {feature.shape} must have 1 to 4 dimensions")
            features.append(feature)
        unused = sorted(set(members) - referenced - _FIXED_MEMBERS)
        if unused:
            raise _Invalid(f"archive members not used by any anchor: {[_short(u) for u in unused[:5]]}")

        # The data, now of known, bounded size.
        poses = _npy_data(archive, poses_npy)
        virtual = _npy_data(archive, virtual_npy)
        crop_cams = None if crop_cams_npy is None else _npy_data(archive, crop_cams_npy)
        _check_pose_arrays(poses, virtual, crop_cams, records)
        anchors = []
        for i, r in enumerate(records):
            try:
                anchor = Anchor(
                    anchor_id=r.anchor_id,
                    track_id=r.track_id,
                    crop=_npy_data(archive, crops[i]),
                    pose_cam=poses[i],
                    virtual_from_cam=virtual[i],
                    source=r.source,
                    quality=r.quality,
                    created_at=r.created_at,
                    parent_ids=r.parent_ids,
                    chain_depth=r.chain_depth,
                    accumulated_uncertainty_deg=r.uncertainty_deg,
                    crop_from_cam=None if crop_cams is None or not np.any(crop_cams[i]) else crop_cams[i],
                )
            except ValueError as exc:
                raise _Invalid(f"anchor record {i} ({_short(r.anchor_id)}): {exc}") from exc
            feature_npy = features[i]
            if feature_npy is not None:
                values = _npy_data(archive, feature_npy)
                if np.all(np.isfinite(values)):  # a non-finite cache is dropped (recomputed)
                    assert r.features_producer is not None
                    anchor.features = AnchorFeatures(values[None].copy(), r.features_producer, persistable=True)
            anchors.append(anchor)
    try:
        return AnchorPool.from_anchors(anchors, pool_policy, counters)
    except ValueError as exc:
        raise _Invalid(str(exc)) from exc
