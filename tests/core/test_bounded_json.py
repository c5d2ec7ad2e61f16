"""Every JSON file we read is input (issue 17): export manifests, engine sidecars and model
configs are parsed with bounds checked first (:mod:`hpe_core.bounded_json`), so a crafted one
gives a clear ``ValueError`` naming the file instead of a ``RecursionError``, an overflow or NaN."""
from __future__ import annotations

import json

import pytest

from hpe_core.bounded_json import MAX_JSON_DEPTH, BoundedJsonError, load_bounded, loads_bounded
from hpe_core.estimator.onnx_format import read_manifest
from hpe_core.estimator.tensorrt_backend import read_cached_plan
from hpe_core.vggt.config import VGGTConfig


@pytest.mark.parametrize("text,why", [
    ("[" * 60_000, "nested deeper"), ('{"a":' * 200_000, "nested deeper"), ("[1e999]", "overflows"),
    ("[" + "9" * 400 + "]", "digits"), ("[NaN]", "not allowed"), ('{"a": 1, "a": 2}', "duplicate"),
    ("[1, 2", "not valid JSON"), (b"\xff\xfe", "not UTF-8"),
])
def test_hostile_json_is_refused_with_the_reason(text, why):
    with pytest.raises(BoundedJsonError, match=why):
        loads_bounded(text, "x.json")


def test_ordinary_json_parses_as_json_does():
    value = {"a": [1, 2.5, -3, "s\"t", None, True, {"b": [[]]}], "c": 1e300}
    assert loads_bounded(json.dumps(value), "x.json") == value
    assert loads_bounded("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "x.json") == json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)


def test_a_file_is_refused_from_its_size(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(BoundedJsonError, match="bytes, more than"):
        load_bounded(path, max_bytes=100)


def test_a_deeply_nested_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match="manifest.json: JSON nested deeper"):
        read_manifest(tmp_path)


def test_a_hostile_engine_sidecar_means_rebuild(tmp_path):
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"plan")
    plan.with_suffix(".json").write_text('{"key": "k", "plan_bytes": 1e999}')
    assert read_cached_plan(plan, "k") is None
    plan.with_suffix(".json").write_text("[" * 100_000)
    assert read_cached_plan(plan, "k") is None


def test_a_hostile_model_config_is_a_clear_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"embed_dim": ' + "9" * 400 + "}")
    with pytest.raises(ValueError, match="digits"):
        VGGTConfig.from_json(path)
