"""Backend registry: registering a backend, and plugin modules named in HPE_BACKEND_PLUGINS."""
from __future__ import annotations

from pathlib import Path

import pytest

from hpe_core.estimator import registry
from hpe_core.estimator.registry import BACKENDS, BackendInfo, backend_names, create_estimator, register_backend

PLUGIN = '''
from hpe_core.estimator.registry import BackendInfo, register_backend

CALLS = []

def _factory(path, device, precision, **options):
    CALLS.append((str(path), device, precision))
    return "estimator from the plugin"

register_backend(BackendInfo("plugged", "anything", ("cpu",), ("fp32",), "fp32", _factory))
'''


@pytest.fixture()
def clean_registry():
    saved = dict(BACKENDS)
    yield
    BACKENDS.clear()
    BACKENDS.update(saved)


def test_plugin_module_named_in_the_environment_registers_a_backend(tmp_path: Path, monkeypatch, clean_registry):
    (tmp_path / "hpe_test_plugin_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.PLUGINS_ENV, " hpe_test_plugin_mod , ")
    assert "plugged" not in BACKENDS
    assert create_estimator("plugged", tmp_path) == "estimator from the plugin"
    assert "plugged" in backend_names()
    with pytest.raises(ValueError, match="runs on"):
        create_estimator("plugged", tmp_path, device="cuda")


def test_register_refuses_a_taken_name_and_unknown_backends_are_named(monkeypatch, clean_registry):
    info = BackendInfo("onnxruntime", "x", ("cpu",), ("fp32",), "fp32", lambda *a, **k: None)
    with pytest.raises(ValueError, match="already registered"):
        register_backend(info)
    monkeypatch.setenv(registry.PLUGINS_ENV, "")
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        create_estimator("nope", ".")
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_module_for_hpe")
    with pytest.raises(ImportError):
        create_estimator("nope", ".")
