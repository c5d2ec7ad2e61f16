"""Triangle-mesh helpers: icosphere construction, vertex normals, mesh concatenation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


KIND_SKIN = 0.0
KIND_EYE = 1.0
KIND_CLOTH = 2.0
KIND_METAL = 3.0
KIND_MOUTH = 4.0


@dataclass
class MeshPart:
    """One renderable part in the head frame (metres).

    Attributes:
        positions: [N, 3] float32 deformed vertex positions.
        rest: [N, 3] float32 rest (neutral-expression) coordinates used for painting
            texture detail in the shader; for eyeballs the unit direction in eyeball space.
        colors: [N, 3] float32 linear RGB albedo in [0, 1].
        material: [N, 4] float32 (hair amount in [0, 1], specular strength, reserved (0),
            body weight: 0 = moves with the head, 1 = moves with the torso).
        faces: [M, 3] int32 vertex indices, counter-clockwise seen from outside.
        kind: [N] float32 part kind (see ``KIND_*``), constant within a part.
        normals: [N, 3] float32 unit normals, or None to compute from the faces.
    """

    positions: np.ndarray
    rest: np.ndarray
    colors: np.ndarray
    material: np.ndarray
    faces: np.ndarray
    kind: np.ndarray
    normals: np.ndarray | None = None


def icosphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere by repeated 4-way subdivision.

    Args:
        level: number of subdivisions (0 = icosahedron; level L has 10*4^L + 2 vertices).

    Returns:
        (vertices [N, 3] float64 unit vectors, faces [M, 3] int64, outward CCW winding).
    """
    t = (1.0 + 5.0 ** 0.5) / 2.0
    verts = np.array([
        [-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0],
        [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
        [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=np.float64)
    faces = np.array([
        [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
        [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
        [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
        [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    verts /= np.linalg.norm(verts, axis=1, keepdims=True)
    for _ in range(level):
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        key = np.sort(edges, axis=1)
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        mids = verts[uniq[:, 0]] + verts[uniq[:, 1]]
        mids /= np.linalg.norm(mids, axis=1, keepdims=True)
        mid_idx = inverse + len(verts)
        m = len(faces)
        a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
        ab, bc, ca = mid_idx[:m], mid_idx[m:2 * m], mid_idx[2 * m:]
        faces = np.concatenate([
            np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1),
            np.stack([c, ca, bc], 1), np.stack([ab, bc, ca], 1)])
        verts = np.concatenate([verts, mids])
    return verts, faces


def vertex_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals.

    Args:
        positions: [N, 3] vertex positions.
        faces: [M, 3] CCW triangles.

    Returns:
        [N, 3] float32 unit normals (zero-area neighbourhoods get +z).
    """
    p = positions.astype(np.float64)
    fn = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    n = np.zeros_like(p)
    for k in range(3):
        for axis in range(3):
            n[:, axis] += np.bincount(faces[:, k], weights=fn[:, axis], minlength=len(p))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 1e-20, n / np.maximum(norm, 1e-20), np.array([0.0, 0.0, 1.0]))
    return n.astype(np.float32)


def cavity(positions: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Concavity per vertex, about the mean curvature in 1/(position unit):
    2 (mean of the neighbours - vertex) . normal / mean squared neighbour distance.

    Positive in creases and hollows (eye sockets, nostrils, mouth corners), negative on
    convex surfaces (-1/r on a sphere of radius r), so it does not depend on the mesh
    resolution. Used as a cheap ambient-occlusion term.

    Returns:
        [N] float32.
    """
    p = positions.astype(np.float64)
    n = len(p)
    src = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    dst = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    count = np.bincount(src, minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(src, weights=p[dst, k], minlength=n) for k in range(3)], axis=1)
    mean /= np.maximum(count, 1.0)[:, None]
    sq = np.bincount(src, weights=np.sum((p[dst] - p[src]) ** 2, axis=1), minlength=n) / np.maximum(count, 1.0)
    return (2.0 * np.sum((mean - p) * normals, axis=1) / np.maximum(sq, 1e-20)).astype(np.float32)


def concatenate(parts: list[MeshPart]) -> MeshPart:
    """Merge parts into one mesh (normals computed per part where missing)."""
    offs = 0
    faces = []
    for part in parts:
        if part.normals is None:
            part.normals = vertex_normals(part.positions, part.faces)
        faces.append(part.faces + offs)
        offs += len(part.positions)
    return MeshPart(
        positions=np.concatenate([p.positions for p in parts]).astype(np.float32),
        rest=np.concatenate([p.rest for p in parts]).astype(np.float32),
        colors=np.concatenate([p.colors for p in parts]).astype(np.float32),
        material=np.concatenate([p.material for p in parts]).astype(np.float32),
        faces=np.concatenate(faces).astype(np.int32),
        kind=np.concatenate([p.kind for p in parts]).astype(np.float32),
        normals=np.concatenate([p.normals for p in parts]).astype(np.float32))


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite smoothstep of x between edges e0 and e1 (works for e0 > e1 too)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
