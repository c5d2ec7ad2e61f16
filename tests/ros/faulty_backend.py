"""A test-only inference backend that fails on demand: ``faulty`` (backend plugin).

Registered through the backend registry's plugin mechanism: a node process started with
``HPE_BACKEND_PLUGINS=faulty_backend`` (and this directory on ``PYTHONPATH``) accepts
``backend:=faulty``. It is the real ONNX Runtime CPU estimator of the model directory, except
that while the file named by ``$HPE_FAULTY_BACKEND_TRIGGER`` exists every call raises
``RuntimeError`` (as a crashed GPU, a lost device or a bad driver would). Tests create and
delete that file to make the backend fail mid-stream and recover. A trigger file that holds
``delay:<seconds>`` makes every call that much slower instead (a slow model, to check that a
fast camera makes the node drop frames rather than queue them).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpe_core.estimator.interface import RelativePoseEstimator
from hpe_core.estimator.onnxruntime_backend import OnnxRuntimeRelativePoseEstimator
from hpe_core.estimator.registry import BACKENDS, BackendInfo, register_backend

TRIGGER_ENV = "HPE_FAULTY_BACKEND_TRIGGER"


class FaultyEstimator(OnnxRuntimeRelativePoseEstimator):
    """ONNX Runtime estimator that raises while the trigger file exists."""

    name = "faulty"

    def __init__(self, path: Any, trigger: str, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.trigger = Path(trigger)
        self.failures = 0

    def _check(self) -> None:
        try:
            text = self.trigger.read_text().strip()
        except OSError:  # no trigger file: behave
            return
        if text.startswith("delay:"):
            time.sleep(float(text.split(":", 1)[1]))
            return
        self.failures += 1
        raise RuntimeError(f"injected backend fault #{self.failures} (trigger file {self.trigger} exists)")

    def _embed(self, images: np.ndarray) -> Any:
        self._check()
        return super()._embed(images)

    def _query_pose_encoding(self, anchor_tokens: Any, query_tokens: Any) -> np.ndarray:
        self._check()
        return super()._query_pose_encoding(anchor_tokens, query_tokens)


def _factory(path: Any, device: str, precision: str, **options: Any) -> RelativePoseEstimator:
    trigger = os.environ.get(TRIGGER_ENV)
    if not trigger:
        raise ValueError(f"the faulty backend needs ${TRIGGER_ENV} (a trigger file path)")
    return FaultyEstimator(path, trigger, device=device, precision=precision, **options)


if "faulty" not in BACKENDS:
    register_backend(BackendInfo("faulty", "export directory", ("cpu",), ("fp32",), "fp32", _factory))
