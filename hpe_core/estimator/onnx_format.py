"""The on-disk format of an exported model: two ONNX graphs plus a ``manifest.json``.

An export directory holds:

* ``patch_embed.onnx``: input ``images`` ``[N, 3, H, W]`` float32 RGB in [0, 1] (ImageNet
  normalisation inside the graph), dynamic ``N``; output ``patch_tokens`` ``[N, P, C]``.
* ``relative_pose.onnx``: inputs ``anchor_patch_tokens`` ``[K, P, C]`` and
  ``query_patch_tokens`` ``[Q, P, C]``, dynamic ``K``; output ``pose_enc`` ``[K, 9]``: the
  query frame's pose encoding (last refinement iteration) in each (anchor, query) pair.
  ``Q`` is 1 (one query for all K pairs) or, in graphs whose query axis is dynamic
  (:data:`QUERY_AXIS`; exports since the batched-faces change), K: each pair its own query,
  so several faces' pairs run in one call (:func:`accepts_pair_queries`). Older exports
  have a fixed ``Q = 1`` and still load.
* ``manifest.json``: files with SHA-256 hashes, model config, input size, checks done.
* ``<graph>.onnx.data`` (only for graphs whose weights exceed the exporter's
  ``EXTERNAL_DATA_BYTES``, e.g. the 1B model's): the graph's weights as ONNX external data,
  which ONNX Runtime and TensorRT read beside the graph.

The manifest records each graph as ``"files": {"<graph>.onnx": {"sha256", "bytes",
"external_data": [{"file", "bytes", "sha256"}, ...]}}``; :func:`verify_export_files` checks
every graph and every external-data file against it before a backend loads them.

Both graphs carry ``metadata_props`` (keys in :data:`METADATA_KEYS`): format version, hpe
version, graph name, model config JSON and preprocessing JSON. The input size is fixed per
export. This module is read by the ONNX Runtime and TensorRT backends and written by
``hpe_training.export``; it needs neither torch nor onnx.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

from hpe_core.bounded_json import load_bounded

FORMAT_VERSION = 1

PATCH_EMBED_FILE = "patch_embed.onnx"
RELATIVE_POSE_FILE = "relative_pose.onnx"
MANIFEST_FILE = "manifest.json"

PATCH_EMBED_INPUT = "images"
PATCH_EMBED_OUTPUT = "patch_tokens"
ANCHOR_TOKENS_INPUT = "anchor_patch_tokens"
QUERY_TOKENS_INPUT = "query_patch_tokens"
POSE_OUTPUT = "pose_enc"
#: Name of the query input's dynamic first axis (1 or K).
QUERY_AXIS = "Q"

METADATA_KEYS = {
    "format_version": "hpe.format_version",
    "hpe_version": "hpe.version",
    "graph": "hpe.graph",
    "model_config": "hpe.model_config",
    "preprocessing": "hpe.preprocessing",
}


def preprocessing_description(input_size: tuple[int, int]) -> dict[str, Any]:
    """What a caller must feed the patch-embed graph (stored as JSON in the metadata)."""
    return {
        "input_size_hw": [int(input_size[0]), int(input_size[1])],
        "layout": "NCHW",
        "color": "RGB",
        "dtype": "float32",
        "range": [0.0, 1.0],
        "normalisation": "ImageNet mean (0.485, 0.456, 0.406) / std (0.229, 0.224, 0.225), inside the graph",
    }


def sha256_file(path: Union[str, Path], chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def crop_mode_of(model_config: dict[str, Any]) -> str:
    """The face crop an exported model was trained on (its config's ``trained_crop``, see
    :mod:`hpe_core.vggt.config`): ``"paper"`` (also for exports made before it existed) or
    ``"aligned"``."""
    value = model_config.get("trained_crop") if isinstance(model_config, dict) else None
    return value if value in ("paper", "aligned") else "paper"

@dataclass(frozen=True)
class GraphMetadata:
    """Parsed ``metadata_props`` of one exported graph."""

    format_version: int
    hpe_version: str
    graph: str
    model_config: dict[str, Any]
    input_size: tuple[int, int]

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> "GraphMetadata":
        """Parse a ``{key: value}`` metadata map; raise ``ValueError`` naming ``source``."""
        missing = [key for key in METADATA_KEYS.values() if key not in props]
        if missing:
            raise ValueError(f"{source}: not an hpe export (metadata keys missing: {missing})")
        version = int(props[METADATA_KEYS["format_version"]])
        if version != FORMAT_VERSION:
            raise ValueError(f"{source}: export format version {version}, this code reads {FORMAT_VERSION}")
        preprocessing = json.loads(props[METADATA_KEYS["preprocessing"]])
        h, w = preprocessing["input_size_hw"]
        return cls(
            format_version=version,
            hpe_version=props[METADATA_KEYS["hpe_version"]],
            graph=props[METADATA_KEYS["graph"]],
            model_config=json.loads(props[METADATA_KEYS["model_config"]]),
            input_size=(int(h), int(w)),
        )


def read_manifest(export_dir: Union[str, Path]) -> dict[str, Any]:
    """Load ``manifest.json`` of an export directory (``{}`` if it has none).

    Raises:
        hpe_core.bounded_json.BoundedJsonError: (a ``ValueError``) larger than 16 MiB, nested
            deeper than 32 levels, non-finite numbers, or not JSON.
    """
    path = Path(export_dir) / MANIFEST_FILE
    if not path.is_file():
        return {}
    return load_bounded(path)  # size, depth and numbers bounded: the file is input, not trusted


class ExportFileError(ValueError):
    """An export directory's file does not match its manifest (truncated, replaced, corrupt)."""


def verify_export_files(export_dir: Union[str, Path]) -> None:
    """Check every file the manifest lists against its recorded size and SHA-256.

    Run before a backend hands the graphs to ONNX Runtime or TensorRT, so that a truncated,
    corrupt or swapped graph, or external-data file (``<graph>.data``, the weights of large
    graphs), gives one clear error naming the file instead of a parser failure deep inside
    the runtime, or silently wrong weights. A directory without a manifest (or a manifest
    without ``files``) is not checked.

    External data: each graph entry's ``external_data`` list names files beside the graph
    (plain file names) with their SHA-256 (and size, in manifests written since it is
    recorded); each must be present and match. A ``<graph>.data*`` file beside a listed graph
    that the entry does not list is refused, also for manifests without ``external_data`` (none
    written by ``hpe-export`` lack it): ONNX Runtime would load such weights unchecked.

    Raises:
        ExportFileError: a listed file is missing, has another size or another hash, or an
            external-data file is not recorded in the manifest.
    """
    root = Path(export_dir)
    manifest_path = root / MANIFEST_FILE
    try:
        files = read_manifest(root).get("files", {})
    except (OSError, ValueError, AttributeError, RecursionError) as exc:
        raise ExportFileError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(files, dict):
        raise ExportFileError(f"{manifest_path}: 'files' must be an object")
    for name, entry in files.items():
        path = _listed_path(root, name, manifest_path)
        _verify_file(path, entry if isinstance(entry, dict) else {})
        external = entry.get("external_data", []) if isinstance(entry, dict) else []
        if not isinstance(external, list):
            raise ExportFileError(f"{manifest_path}: external_data of {name} must be a list")
        recorded = set()
        for item in external:
            file_name = item.get("file") if isinstance(item, dict) else None
            if not isinstance(file_name, str):
                raise ExportFileError(f"{manifest_path}: an external_data entry of {name} has no file name")
            data_path = _listed_path(root, file_name, manifest_path)
            if not isinstance(item.get("sha256"), str):
                raise ExportFileError(f"{data_path}: external data of {name} has no SHA-256 in the manifest "
                                      f"(export again with hpe-export)")
            _verify_file(data_path, item, f"external data of {name}")
            recorded.add(file_name)
        for extra in sorted(root.glob(_glob_escape(path.name) + ".data*")):
            if extra.name not in recorded:
                raise ExportFileError(f"{extra}: external data of {name} that the manifest does not record "
                                      f"(its SHA-256 cannot be checked; export again with hpe-export)")


def _glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (for :meth:`Path.glob`)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _listed_path(root: Path, name: Any, manifest_path: Path) -> Path:
    """A manifest file name as a path inside ``root``; refuses paths that leave it."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
            or "\0" in name):
        raise ExportFileError(f"{manifest_path}: file name {name!r} is not a plain file name in the export")
    return root / name


def _verify_file(path: Path, entry: Mapping[str, Any], role: str = "") -> None:
    what = f"{path} ({role})" if role else str(path)
    if not path.is_file():
        raise ExportFileError(f"{what}: listed in the manifest but missing")
    expected_bytes = entry.get("bytes")
    actual_bytes = path.stat().st_size
    if expected_bytes is not None and actual_bytes != expected_bytes:
        raise ExportFileError(f"{what}: {actual_bytes} bytes, the manifest says {expected_bytes} "
                              f"(truncated or replaced file; export again with hpe-export)")
    expected_hash = entry.get("sha256")
    if expected_hash is not None and sha256_file(path) != expected_hash:
        raise ExportFileError(f"{what}: SHA-256 differs from the manifest (corrupt or replaced file; "
                              f"export again with hpe-export)")


def graph_paths(export_dir: Union[str, Path]) -> tuple[Path, Path]:
    """``(patch_embed.onnx, relative_pose.onnx)`` paths; raise if either is missing."""
    root = Path(export_dir)
    paths = (root / PATCH_EMBED_FILE, root / RELATIVE_POSE_FILE)
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: export the model with hpe-export first")
    return paths


def accepts_pair_queries(pose_session: Any) -> bool:
    """Whether a ``relative_pose`` ONNX Runtime session takes one query per pair (its
    ``query_patch_tokens`` first axis is symbolic rather than the fixed 1 of older exports)."""
    for graph_input in pose_session.get_inputs():
        if graph_input.name == QUERY_TOKENS_INPUT:
            return not isinstance(graph_input.shape[0], int)
    return False
