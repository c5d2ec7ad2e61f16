"""The restricted unpickler loads numpy pose pickles and refuses anything executable."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from hpe_training.data.safe_pickle import UnsafePickleError, safe_load, safe_loads


class _WritesFile:
    """Pickles to a call of open(path, 'w'): loading it would create the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _RunsShell:
    """Pickles to os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pose_dict_round_trips(protocol, tmp_path):
    data = {"R": np.arange(9.0).reshape(3, 3), "t": np.array([[0.1], [-0.2], [1.5]]),
            "K": np.eye(3, dtype=np.float32) * 500, "scale": np.float64(0.25), "n": np.int32(7),
            "names": ["a", ("b", 1)], "flag": True, "none": None}
    path = tmp_path / "pose.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_load(path)
    assert set(out) == set(data)
    for key in ("R", "t", "K"):
        np.testing.assert_array_equal(out[key], data[key])
        assert out[key].dtype == data[key].dtype
    assert out["scale"] == 0.25 and out["n"] == 7
    assert out["names"] == ["a", ("b", 1)] and out["flag"] is True and out["none"] is None


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_file_writing_pickle_is_refused_and_not_executed(protocol, tmp_path):
    target = tmp_path / "pwned.txt"
    payload = pickle.dumps({"R": np.eye(3), "evil": _WritesFile(str(target))}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="open"):
        safe_loads(payload)
    assert not target.exists()
    # the same bytes really are dangerous with the standard unpickler
    pickle.loads(payload)["evil"].close()
    assert target.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_pickle_is_refused_and_not_executed(protocol, tmp_path):
    marker = tmp_path / "shell_ran"
    payload = pickle.dumps([_RunsShell(f"touch {marker}")], protocol=protocol)
    with pytest.raises(UnsafePickleError, match="system"):
        safe_loads(payload)
    assert not marker.exists()


def test_other_globals_and_codecs_abuse_are_refused():
    # a class reference that is harmless to import but not on the allow-list
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        safe_loads(pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2))
    # protocol-2 byte encoding is only allowed through latin-1
    evil = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x0a\x00\x00\x00zlib_codecq\x02\x86q\x03Rq\x04."
    with pytest.raises(UnsafePickleError, match="zlib_codec"):
        safe_loads(evil)
    assert safe_loads(pickle.dumps(b"\x00\xffraw", protocol=2)) == b"\x00\xffraw"
