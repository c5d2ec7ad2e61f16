"""The canonical face: 478 mesh points in the head frame (metres), derived from our rendered heads.

MediaPipe's own canonical face model ships in no wheel, so the shape is ours: the mesh network
run on rendered heads whose poses are exact (:mod:`hpe_training.facemesh_shape` makes it),
each frame's lifted points moved into the head frame with the true pose and averaged.

Head frame (as everywhere in hpe): origin at the head centre (midway between the ears), x to the
image right when facing the camera, y down, z away from the camera (the nose points along -z).

File ``hpe_core/models/facemesh/canonical_face.npz``:

* ``points``: ``float64 [478, 3]`` metres; ``normals``: ``float64 [478, 3]`` outward unit normals;
* ``jaw``: ``bool [478]`` points on the jaw below the mouth (move when it opens);
* ``z_scale``: ``float64 []`` the mesh's depth-scale correction ``s_z`` (:mod:`~hpe_core.facemesh.lifting`);
* ``info``: ``uint8 [M]`` UTF-8 JSON: how it was derived (identities, frames, residuals).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

from hpe_core.facemesh.topology import NUM_POINTS

CANONICAL_FACE_PATH = Path(__file__).resolve().parent.parent / "models" / "facemesh" / "canonical_face.npz"


@dataclass(frozen=True)
class CanonicalFace:
    """The canonical face (module docstring)."""

    points: NDArray[np.float64]
    normals: NDArray[np.float64]
    jaw: NDArray[np.bool_]
    z_scale: float
    info: dict[str, Any]

    def __post_init__(self) -> None:
        for name in ("points", "normals"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != (NUM_POINTS, 3) or not np.all(np.isfinite(a)):
                raise ValueError(f"canonical {name} must be finite [{NUM_POINTS}, 3], got {a.shape}")
        if np.asarray(self.jaw).shape != (NUM_POINTS,):
            raise ValueError("canonical jaw mask must be [478]")
        if not (np.isfinite(self.z_scale) and 0.2 <= self.z_scale <= 5.0):
            raise ValueError(f"canonical z_scale must be in [0.2, 5], got {self.z_scale}")

    @property
    def digest(self) -> str:
        """Short SHA-256 of the shape and depth scale (part of the estimator's feature key)."""
        h = hashlib.sha256(np.ascontiguousarray(self.points).tobytes())
        h.update(np.float64(self.z_scale).tobytes())
        return h.hexdigest()[:12]

    def save(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, points=self.points, normals=self.normals, jaw=self.jaw.astype(bool),
                 z_scale=np.float64(self.z_scale),
                 info=np.frombuffer(json.dumps(self.info, sort_keys=True).encode(), dtype=np.uint8))
        tmp.replace(path)


def load_canonical_face(path: Union[str, Path] = CANONICAL_FACE_PATH) -> CanonicalFace:
    """Load the canonical face (no pickle).

    Raises:
        FileNotFoundError: no file; ValueError: a malformed one.
    """
    with np.load(Path(path), allow_pickle=False) as data:
        return CanonicalFace(points=np.array(data["points"], dtype=np.float64),
                             normals=np.array(data["normals"], dtype=np.float64),
                             jaw=np.array(data["jaw"], dtype=bool), z_scale=float(data["z_scale"]),
                             info=json.loads(bytes(data["info"]).decode()))


def estimate_normals(points: NDArray[np.float64], neighbours: int = 12) -> NDArray[np.float64]:
    """``[N, 3]`` outward unit normals of a face point cloud (head frame) by local PCA.

    Each normal is the least-variance direction of its ``neighbours`` nearest points, oriented
    away from the head centre's depth axis (the face is in front, along -z, of the origin).
    """
    p = np.asarray(points, dtype=np.float64)
    d = np.linalg.norm(p[:, None] - p[None], axis=2)
    order = np.argsort(d, axis=1)[:, : neighbours + 1]
    normals = np.zeros_like(p)
    for i in range(len(p)):
        q = p[order[i]] - p[order[i]].mean(axis=0)
        _, _, vt = np.linalg.svd(q, full_matrices=False)
        n = vt[-1]
        outward = p[i] - np.array([0.0, p[i, 1], 0.0])  # away from the vertical axis through the centre
        if n @ outward < 0:
            n = -n
        normals[i] = n
    return normals
