"""Benchmark input streams: rendered 640x480 frames with one or three faces.

One face: a ``yaw_sweep`` sequence (:mod:`hpe_training.synth.sequence`). Three faces: three
sequences of different identities rendered separately, each cut to its centre third (the head
is centred in its render) and laid side by side, so one 640x480 frame shows three full-size
heads (about 110 px wide) that turn independently. The renderer draws at most two heads per
scene; this composition is for load and timing only (its ground truth is not used).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hpe_training.synth.sequence import SequenceConfig, render_sequence

WIDTH, HEIGHT = 640, 480


@dataclass(frozen=True)
class Stream:
    """Frames ``[N, 480, 640, 3]`` uint8 RGB, intrinsics ``K [3, 3]`` and the face count."""

    frames: NDArray[np.uint8]
    K: NDArray[np.float64]
    faces: int

    def head(self, n_frames: int) -> "Stream":
        """The first ``n_frames`` frames."""
        return Stream(self.frames[:n_frames], self.K, self.faces)


def face_stream(faces: int, n_frames: int = 30, seed: int = 3) -> Stream:
    """A stream with ``faces`` = 1 or 3 heads (module docstring)."""
    if faces not in (1, 3):
        raise ValueError(f"faces must be 1 or 3, got {faces}")
    configs = [SequenceConfig(kind="yaw_sweep", n_frames=n_frames, width=WIDTH, height=HEIGHT, seed=seed,
                              identity=seed + k, max_yaw_deg=40.0, mesh_level=4, msaa=0) for k in range(faces)]
    sequences = [render_sequence(c) for c in configs]
    if faces == 1:
        return Stream(sequences[0].frames, sequences[0].K, 1)
    third = WIDTH // 3
    x0 = (WIDTH - third) // 2
    frames = np.zeros((n_frames, HEIGHT, WIDTH, 3), np.uint8)
    for k, seq in enumerate(sequences):
        frames[:, :, k * third:(k + 1) * third] = seq.frames[:, :, x0:x0 + third]
    return Stream(frames, sequences[0].K, 3)
