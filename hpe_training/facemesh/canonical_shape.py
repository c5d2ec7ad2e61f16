"""Derive the face mesh's canonical face and depth scale from rendered heads with exact poses.

``python -m hpe_training.facemesh.canonical_shape [--identities 8 --frames 24] [--out FILE]``

For each rendered "scan" sequence (our procedural heads, :mod:`hpe_training.synth.sequence`:
yaw, pitch and roll sweeps with exact ``T_cam_from_head``), every frame goes through the run-time
path: MTCNN, the landmark-aligned crop, the face mesh, the lift to unit depth
(:mod:`hpe_core.facemesh.lifting`). With the true pose in the crop's virtual camera
``(R_j, t_j)``, frame ``j``'s metric points are ``D_j * P_j`` for an unknown face depth ``D_j``,
and the canonical face ``S`` (head frame, metres) solves

    min_{S, D_j}  sum_j sum_i w_i |D_j P_ij - (R_j S_i + t_j)|^2,

alternating ``S = mean_j R_j^T (D_j P_j - t_j)`` and ``D_j = <P_j, R_j S + t_j> / <P_j, P_j>``
(both exact least squares). The depth-scale correction ``s_z`` is chosen on a grid as the one
with the smallest residual: with the wrong ``s_z`` the lifted shape changes with the head's turn
and no single ``S`` fits all frames. The relative-pose error of the face-mesh estimator on pairs
of these frames is printed for each ``s_z`` as a check. Nothing of the real-face dev data is used.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hpe_core.aligned_crop import aligned_crop
from hpe_core.facemesh.canonical import CANONICAL_FACE_PATH, CanonicalFace, estimate_normals
from hpe_core.facemesh.lifting import lift_unit_depth
from hpe_core.facemesh.runtime import MESH_INPUT_SIZE, FaceMeshRuntime
from hpe_core.facemesh.topology import LIPS, NUM_POINTS, expression_weights
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_core.virtual_camera import head_pose_cam_to_virtual

Z_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8)


@dataclass
class MeshFrame:
    """One rendered frame through the run-time path."""

    landmarks: np.ndarray      # [478, 3] crop pixels + depth
    camera: object             # CropCamera
    rotation: np.ndarray       # [3, 3] true head rotation, virtual frame
    translation: np.ndarray    # [3] true head centre, virtual frame, metres
    face_score: float


def collect_frames(identities: int, frames: int, seed: int, progress: bool = True) -> list[MeshFrame]:
    """Render ``identities`` scan sequences of ``frames`` frames and run the mesh on each."""
    from hpe_core.detection.mtcnn import MtcnnFaceDetector
    from hpe_training.synth.sequence import SequenceConfig, render_sequence

    detector = MtcnnFaceDetector()
    runtime = FaceMeshRuntime()
    out: list[MeshFrame] = []
    t0 = time.time()
    for ident in range(identities):
        config = SequenceConfig(kind="scan", n_frames=frames, seed=seed, identity=ident, max_yaw_deg=55.0,
                                pitch_amp_deg=20.0, roll_amp_deg=25.0, drift_m=0.05, msaa=4)
        seq = render_sequence(config)
        for i in range(len(seq)):
            found = detector.detect(seq.frames[i])
            if not found:
                continue
            det = found[0]
            crop, geometry = aligned_crop(seq.frames[i], seq.K, det.box_xyxy, MESH_INPUT_SIZE, det.landmarks5)
            mesh = runtime.run(crop)
            T = head_pose_cam_to_virtual(seq.poses_cam[i, 0], geometry.R_virt_from_cam)
            out.append(MeshFrame(mesh.landmarks, geometry.camera, T[:3, :3], T[:3, 3], mesh.face_score))
        if progress:
            print(f"[canonical-shape] identity {ident + 1}/{identities}: {len(out)} frames ({time.time() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    return out


def solve_shape(frames: Sequence[MeshFrame], z_scale: float, weights: np.ndarray,
                iterations: int = 30) -> tuple[np.ndarray, np.ndarray, float]:
    """Alternating least squares of the module docstring.

    Returns:
        ``S [478, 3]`` (head frame, metres), ``D [J]`` face depths, weighted RMS residual (m).
    """
    P = np.stack([lift_unit_depth(f.landmarks, f.camera, z_scale) for f in frames])  # [J, N, 3]
    R = np.stack([f.rotation for f in frames])
    t = np.stack([f.translation for f in frames])
    D = np.array([f.translation[2] for f in frames])  # start: head-centre depth
    w = weights / weights.sum()
    S = np.zeros((NUM_POINTS, 3))
    for _ in range(iterations):
        S = np.einsum("jba,jnb->na", R, D[:, None, None] * P - t[:, None, :]) / len(frames)
        target = np.einsum("jab,nb->jna", R, S) + t[:, None, :]
        D = np.einsum("n,jna,jna->j", w, P, target) / np.einsum("n,jna,jna->j", w, P, P)
    target = np.einsum("jab,nb->jna", R, S) + t[:, None, :]
    r2 = np.sum((D[:, None, None] * P - target) ** 2, axis=2)
    return S, D, float(np.sqrt(np.mean(r2 @ w)))


def pair_errors(frames: Sequence[MeshFrame], canonical: CanonicalFace, max_pairs: int = 400,
                seed: int = 0) -> np.ndarray:
    """Rotation errors (deg) of the face-mesh estimator's relative poses on random frame pairs."""
    from hpe_core.facemesh.estimator import fit_to_canonical, relative_fit

    weights = expression_weights(canonical.jaw)
    observed = [fit_to_canonical(f.landmarks, f.camera, canonical, weights) for f in frames]
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(max_pairs):
        a, q = rng.choice(len(frames), size=2, replace=False)
        values = np.concatenate([observed[a][0], observed[a][1][:, None]], axis=1)[None]
        rel = relative_fit(values, observed[q][0], observed[q][1], weights)
        true = frames[q].rotation @ frames[a].rotation.T
        errors.append(float(geodesic_angle_deg(rel.rotation[0], true)))
    return np.asarray(errors)


def derive(frames: Sequence[MeshFrame], z_scales: Sequence[float] = Z_SCALES) -> tuple[CanonicalFace, list[dict]]:
    """The canonical face at the best depth scale, and the table of every scale tried."""
    base_weights = expression_weights(None)
    table = []
    best = None
    for z in z_scales:
        S, D, rms = solve_shape(frames, z, base_weights)
        row = {"z_scale": z, "shape_rms_mm": rms * 1e3}
        table.append(row)
        if best is None or rms < best[2]:
            best = (z, S, rms)
    z, S, rms = best
    mouth_y = S[list(LIPS), 1].max()
    jaw = S[:, 1] > mouth_y + 0.004
    jaw[468:] = False
    canonical = CanonicalFace(points=S, normals=estimate_normals(S), jaw=jaw, z_scale=float(z), info={})
    for row in table:
        trial = CanonicalFace(points=S, normals=canonical.normals, jaw=jaw, z_scale=row["z_scale"], info={})
        errors = pair_errors(frames, trial)
        row["pair_error_mean_deg"] = float(errors.mean())
        row["pair_error_median_deg"] = float(np.median(errors))
    return canonical, table


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="hpe-facemesh-canonical", description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24, help="frames per identity")
    parser.add_argument("--seed", type=int, default=5150, help="seed of the rendered identities")
    parser.add_argument("--out", type=Path, default=CANONICAL_FACE_PATH)
    args = parser.parse_args(argv)
    t0 = time.time()
    frames = [f for f in collect_frames(args.identities, args.frames, args.seed) if f.face_score > 0.5]
    canonical, table = derive(frames)
    for row in table:
        print("  z_scale {z_scale:.2f}: shape rms {shape_rms_mm:.2f} mm, pair error mean {pair_error_mean_deg:.2f} "
              "median {pair_error_median_deg:.2f} deg".format(**row))
    info = {"derived_by": "hpe_training.facemesh.canonical_shape", "identities": args.identities,
            "frames_per_identity": args.frames, "seed": args.seed, "frames_used": len(frames),
            "z_scale": canonical.z_scale, "table": table, "seconds": round(time.time() - t0, 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    canonical = CanonicalFace(canonical.points, canonical.normals, canonical.jaw, canonical.z_scale, info)
    canonical.save(args.out)
    print(f"canonical face (z_scale {canonical.z_scale:.2f}, {len(frames)} frames) -> {args.out}")
    print(json.dumps({k: v for k, v in info.items() if k != "table"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
