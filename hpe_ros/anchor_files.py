"""Where anchor pool files may be read and written: only inside the node's anchor directory."""
from __future__ import annotations

import os
from pathlib import Path


class AnchorPathError(ValueError):
    """A requested anchor pool path is not acceptable (it leaves the anchor directory...)."""


def resolve_anchor_path(anchor_dir: str, requested: str, default_name: str) -> Path:
    """The file ``requested`` names inside ``anchor_dir`` (``default_name`` when empty).

    ``requested`` must be a relative path that stays inside ``anchor_dir`` once ``..`` and
    symbolic links are resolved; absolute paths, ``..`` escapes and links pointing outside are
    refused with :class:`AnchorPathError`.
    """
    base = Path(os.path.expanduser(anchor_dir)).resolve()
    name = requested.strip() or default_name
    if "\x00" in name:
        raise AnchorPathError("anchor path contains a NUL byte")
    candidate = Path(name)
    if candidate.is_absolute():
        raise AnchorPathError(f"anchor path must be relative to the anchor directory {base}, got {name!r}")
    resolved = (base / candidate).resolve()
    if resolved == base or base not in resolved.parents:
        raise AnchorPathError(f"anchor path {name!r} leaves the anchor directory {base}")
    return resolved
