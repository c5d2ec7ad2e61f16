"""Fixtures shared by the cross-process node tests (session-scoped: exported once per run)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny VGGT with random weights exported to ONNX (the node's plumbing, not its accuracy)."""
    out = tmp_path_factory.mktemp("tiny_onnx")
    result = subprocess.run([sys.executable, "-m", "hpe_training.export.cli", "--preset", "tiny", "--random-init",
                             "--output", str(out), "--tensorrt", "skip"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="session")
def frames() -> list[np.ndarray]:
    """640x480 RGB frames of the astronaut photo panning right by 4 px a frame (one face)."""
    from skimage import data

    photo = data.astronaut()
    out = []
    for shift in range(0, 60, 4):
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[:, 40 + shift:40 + shift + 512] = photo[:480]
        out.append(canvas)
    return out
