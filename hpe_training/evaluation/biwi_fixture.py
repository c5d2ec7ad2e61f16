"""Writes a BIWI-layout data set from our rendered sequences, with known ground truth.

Each subject is one :mod:`hpe_training.synth.sequence` ``scan`` sequence (a procedural head
sweeping yaw, pitch and roll in front of a fixed camera, 640x480). The renders are the *RGB*
camera's images; the files store the poses the way BIWI does, in a *depth* camera's frame,
with ``rgb.cal`` and ``depth.cal`` whose extrinsics make the depth-to-RGB transform
non-trivial (a few degrees and a few centimetres, as a Kinect's are), so a reader that skips
the conversion gets measurably wrong poses. Conventions are those of
:mod:`hpe_training.evaluation.biwi`.

``python -m hpe_training.evaluation.biwi_fixture --out DIR --subjects 4 --frames 40``
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from hpe_core.geometry.transforms import invert_transform, make_transform
from hpe_training.synth.sequence import SequenceConfig, render_sequence

FloatArray = NDArray[np.float64]

#: Extrinsics of the fictitious depth camera w.r.t. the common reference (metres).
T_DEPTH_FROM_REF = make_transform(Rotation.from_euler("xyz", [1.0, -2.0, 0.5], degrees=True).as_matrix(),
                                  [0.010, -0.004, 0.002])
#: The depth-to-RGB transform the files encode (metres): about 3.9 deg and 2.6 cm.
T_RGB_FROM_DEPTH = make_transform(Rotation.from_euler("xyz", [2.0, -3.0, 1.5], degrees=True).as_matrix(),
                                  [-0.025, 0.004, 0.006])
K_DEPTH = np.array([[575.8, 0.0, 320.0], [0.0, 575.8, 240.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class FixtureConfig:
    """Settings: ``subjects`` x ``frames``; identities ``identity_offset + k`` of ``seed``.

    ``max_yaw_deg``, ``pitch_amp_deg``, ``roll_amp_deg``: the scan's amplitudes (camera axes);
    ``distance_m``: head distance (0.6 m gives faces about as wide as BIWI's, ~100 px).
    """

    subjects: int = 2
    frames: int = 16
    seed: int = 5
    identity_offset: int = 200000
    max_yaw_deg: float = 70.0
    pitch_amp_deg: float = 25.0
    roll_amp_deg: float = 15.0
    distance_m: float = 0.6
    mesh_level: int = 4
    msaa: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.subjects <= 99:
            raise ValueError(f"subjects must be in [1, 99], got {self.subjects}")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")


def _matrix_lines(M: FloatArray) -> list[str]:
    return [" ".join(f"{v:.9f}" for v in row) for row in M]


def write_calibration(path: Path, K: FloatArray, T_cam_from_ref: FloatArray) -> None:
    """A ``.cal`` file: K (3 lines), blank, distortion, blank, R (3 lines), blank, t in mm."""
    lines = _matrix_lines(K) + ["", "0 0 0 0", ""] + _matrix_lines(T_cam_from_ref[:3, :3]) + [""]
    lines.append(" ".join(f"{v * 1000.0:.6f}" for v in T_cam_from_ref[:3, 3]))
    path.write_text("\n".join(lines) + "\n")


def write_pose(path: Path, T_depth_from_head: FloatArray) -> None:
    """A ``frame_XXXXX_pose.txt``: rotation rows, blank line, head centre in millimetres."""
    lines = _matrix_lines(T_depth_from_head[:3, :3]) + [""]
    lines.append(" ".join(f"{v * 1000.0:.6f}" for v in T_depth_from_head[:3, 3]))
    path.write_text("\n".join(lines) + "\n")


def subject_sequence_config(config: FixtureConfig, k: int) -> SequenceConfig:
    """The sequence rendered as subject ``k`` (0-based)."""
    return SequenceConfig(kind="scan", n_frames=config.frames, seed=config.seed,
                          identity=config.identity_offset + k, max_yaw_deg=config.max_yaw_deg,
                          pitch_amp_deg=config.pitch_amp_deg, roll_amp_deg=config.roll_amp_deg,
                          distance_m=config.distance_m,
                          lighting=k % 3, mesh_level=config.mesh_level, msaa=config.msaa)


def write_fixture(root: Path, config: FixtureConfig = FixtureConfig(), progress: bool = True) -> dict:
    """Write the data set under ``root`` (subjects ``01``, ``02``, ...).

    Returns:
        ``{"subjects": {name: [[4x4 T_rgb_from_head] per frame]}, "boxes": {name: [[x0, y0,
        x1, y1] per frame]}}`` (the truth, metres, and the generator's face boxes in pixels),
        also written to ``root/fixture_truth.json`` with the config.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    T_rgb_from_ref = T_RGB_FROM_DEPTH @ T_DEPTH_FROM_REF
    truth: dict[str, list] = {}
    boxes: dict[str, list] = {}
    for k in tqdm(range(config.subjects), desc="biwi fixture", unit="subject", disable=not progress):
        name = f"{k + 1:02d}"
        folder = root / name
        folder.mkdir(exist_ok=True)
        seq = render_sequence(subject_sequence_config(config, k))
        write_calibration(folder / "rgb.cal", seq.K, T_rgb_from_ref)
        write_calibration(folder / "depth.cal", K_DEPTH, T_DEPTH_FROM_REF)
        poses = []
        for i in range(len(seq)):
            T_rgb = seq.poses_cam[i, 0]
            cv2.imwrite(str(folder / f"frame_{i + 3:05d}_rgb.png"), cv2.cvtColor(seq.frames[i], cv2.COLOR_RGB2BGR))
            write_pose(folder / f"frame_{i + 3:05d}_pose.txt", invert_transform(T_RGB_FROM_DEPTH) @ T_rgb)
            poses.append(T_rgb.tolist())
        truth[name] = poses
        boxes[name] = seq.boxes[:, 0].astype(float).tolist()
    record = {"config": config.__dict__, "T_rgb_from_depth": T_RGB_FROM_DEPTH.tolist(), "subjects": truth,
              "boxes": boxes}
    (root / "fixture_truth.json").write_text(json.dumps(record))
    return record


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--subjects", type=int, default=FixtureConfig.subjects)
    ap.add_argument("--frames", type=int, default=FixtureConfig.frames)
    ap.add_argument("--seed", type=int, default=FixtureConfig.seed)
    ap.add_argument("--identity-offset", type=int, default=FixtureConfig.identity_offset)
    args = ap.parse_args(argv)
    write_fixture(args.out, FixtureConfig(subjects=args.subjects, frames=args.frames, seed=args.seed,
                                          identity_offset=args.identity_offset))
    print(f"wrote {args.subjects} subjects x {args.frames} frames to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
