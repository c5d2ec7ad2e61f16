"""Restricted unpickling for the dataset's pose pickles.

Pickles can run arbitrary code while loading (``__reduce__`` lets a pickle call any
importable callable, e.g. ``os.system``). Dataset files come from elsewhere, so they are
loaded with an unpickler whose ``find_class`` only resolves the handful of numpy
reconstruction helpers needed for arrays, dtypes and numpy scalars (plus a latin-1-only
stand-in for ``_codecs.encode``, which protocol-2 pickles use for raw bytes). Plain containers and
Python scalars (dict, list, tuple, str, bytes, int, float, bool, None) need no lookups.
Anything else raises :class:`UnsafePickleError` before it can be called.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

#: (module, name) pairs a dataset pickle may reference.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
})


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` (used by protocol-2 pickles for bytes): latin-1 only."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors="strict")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global that is not on the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - documented on the class
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}' from a pickle: only numpy arrays, "
                "dtypes, numpy scalars and plain dict/list/tuple/str/int/float are allowed")
        return super().find_class(module, name)


def safe_loads(data: bytes) -> Any:
    """Unpickle bytes with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def safe_load(path: str | Path) -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh).load()
