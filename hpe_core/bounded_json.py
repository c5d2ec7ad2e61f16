"""JSON from files we did not write (anchor pools, export manifests, engine sidecars, model
configs), parsed with bounds checked first.

``json.loads`` recurses once per nesting level (60,000 ``[`` raise ``RecursionError``), turns
``1e999`` into ``inf`` and a 400-digit number into an int that later overflows a float, and
accepts ``NaN``. :func:`loads_bounded` checks the size, the nesting depth and the item count
with a non-recursive scan before parsing, refuses ``NaN``/``Infinity``, integers of more than
:data:`MAX_JSON_INT_DIGITS` digits, non-finite floats and duplicate keys; every problem is a
:class:`BoundedJsonError` (a ``ValueError``) that names the file.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Union

import numpy as np

#: Deepest JSON nesting.
MAX_JSON_DEPTH = 32
#: Most JSON members and elements (counted as ``,`` and ``:`` outside strings).
MAX_JSON_ITEMS = 1_000_000
#: Most digits of a JSON integer.
MAX_JSON_INT_DIGITS = 18
#: Longest JSON number literal.
MAX_JSON_NUMBER_CHARS = 64
#: Largest JSON file :func:`load_bounded` reads by default, bytes (manifests, sidecars, configs).
MAX_JSON_FILE_BYTES = 16 * 1024 * 1024


class BoundedJsonError(ValueError):
    """JSON text outside the bounds (module docstring), or not valid JSON."""


_ESCAPE_PAIR = re.compile(rb"\\.", re.S)
_JSON_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def check_json_shape(raw: bytes, what: str) -> None:
    """Nesting depth and item count of JSON text, without recursion, before parsing.

    Escape pairs are dropped, then strings, so only the structure is left; up to the first
    syntax error (where ``json`` stops) this is how ``json`` itself tokenises the text, so its
    recursion never goes deeper than the depth measured here.

    Raises:
        BoundedJsonError: deeper than :data:`MAX_JSON_DEPTH` or more than :data:`MAX_JSON_ITEMS`.
    """
    structure = _JSON_STRING.sub(b"", _ESCAPE_PAIR.sub(b"", raw))
    items = structure.count(b",") + structure.count(b":")
    if items > MAX_JSON_ITEMS:
        raise BoundedJsonError(f"{what}: more than {MAX_JSON_ITEMS} JSON items")
    brackets = np.frombuffer(structure.translate(None, _NOT_BRACKET), np.uint8)
    depth = 0
    chunk = 1 << 20
    for start in range(0, len(brackets), chunk):
        levels = np.cumsum(_OPEN[brackets[start:start + chunk]], dtype=np.int64) + depth
        if int(levels.max()) > MAX_JSON_DEPTH:
            raise BoundedJsonError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        depth = int(levels[-1])


def _json_int(text: str) -> int:
    digits = text[1:] if text.startswith("-") else text
    if len(digits) > MAX_JSON_INT_DIGITS:
        raise BoundedJsonError(f"JSON integer of {len(digits)} digits (at most {MAX_JSON_INT_DIGITS})")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        raise BoundedJsonError(f"JSON number of {len(text)} characters (at most {MAX_JSON_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise BoundedJsonError(f"JSON number {text[:20]} overflows a float")
    return value


def _json_constant(text: str) -> Any:
    raise BoundedJsonError(f"JSON constant {text} is not allowed (only finite numbers)")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise BoundedJsonError("duplicate key in a JSON object")
    return result


def loads_bounded(raw: Union[bytes, str], what: str) -> Any:
    """``json.loads`` of hostile text with the bounds of the module docstring.

    Raises:
        BoundedJsonError: out of bounds, not UTF-8 or not valid JSON; the message starts with ``what``.
    """
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    check_json_shape(data, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoundedJsonError(f"{what} is not UTF-8") from exc
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant,
                          object_pairs_hook=_json_object)
    except BoundedJsonError as exc:
        raise BoundedJsonError(f"{what}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise BoundedJsonError(f"{what} is not valid JSON ({exc})") from exc


def load_bounded(path: Union[str, Path], max_bytes: int = MAX_JSON_FILE_BYTES) -> Any:
    """:func:`loads_bounded` of a file, refused from its size (``stat``) above ``max_bytes``.

    Raises:
        BoundedJsonError: too large, or as :func:`loads_bounded`.
        OSError: the file cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise BoundedJsonError(f"{path}: {size} bytes, more than the {max_bytes} a JSON file may have")
    with open(path, "rb") as handle:
        return loads_bounded(handle.read(max_bytes + 1), str(path))
