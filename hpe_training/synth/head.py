"""Procedural head geometry: skull, face features, expressions, eyes, ears, neck, torso.

Everything is built in the head frame (metres): origin midway between the ears, x to the
person's left (image right when facing the camera), y down, z away from the camera; the
face looks along -z. The skull is a subdivided sphere mapped to an ellipsoid and then
deformed by smooth localized offsets; eyes, ears, earrings, neck and torso are separate
parts. Neck and torso carry a "body weight" so the renderer can pose the torso separately
from the head (two-bone linear blend).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hpe_training.synth.expression import Expression
from hpe_training.synth.identity import IdentityParams
from hpe_training.synth.mesh import (KIND_CLOTH, KIND_EYE, KIND_METAL, KIND_MOUTH, KIND_SKIN, MeshPart,
                                     cavity, concatenate, icosphere, smoothstep, vertex_normals)

LANDMARK_NAMES = ("nose_tip", "right_eye", "left_eye", "mouth_right", "mouth_left", "head_centre")
"""Landmark order. right/left are the person's: right_eye has x < 0 (image left when frontal)."""

#: Point in the head frame (metres) about which the torso is posed (base of the neck).
NECK_PIVOT = np.array([0.0, 0.11, 0.015])


@dataclass
class HeadModel:
    """A posed-ready head of one identity with one expression.

    Attributes:
        mesh: merged mesh of all parts in the head frame (metres).
        landmarks: [6, 3] float64 landmark positions in the head frame, order LANDMARK_NAMES.
        face_vertices: [F] int indices into ``mesh.positions`` of the face region used for
            the face bounding box (brows to chin, outer eye corners plus margin).
        head_vertices: [H] int indices of vertices rigidly attached to the head (skull,
            eyes, ears; excludes neck and torso).
    """

    mesh: MeshPart
    landmarks: np.ndarray
    face_vertices: np.ndarray
    head_vertices: np.ndarray


@lru_cache(maxsize=8)
def _sphere(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached read-only unit icosphere (vertices [N, 3], faces [M, 3])."""
    v, f = icosphere(level)
    v.setflags(write=False)
    f.setflags(write=False)
    return v, f


def _bump(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-((x - cx) / sx) ** 2 - ((y - cy) / sy) ** 2)


def _srgb(c: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(c, dtype=np.float64)


def _hairline(d: np.ndarray, idp: IdentityParams) -> np.ndarray:
    """Hairline height (in unit-direction y) as a function of azimuth around the y axis."""
    phi = np.arctan2(d[:, 0], -d[:, 2])
    f, s, b = idp.hair_front, idp.hair_side, idp.hair_back
    bb = (f - b) / 2.0
    a = ((f + b) / 2.0 + s) / 2.0
    c = (f + b) / 2.0 - a
    line = a + bb * np.cos(phi) + c * np.cos(2 * phi)
    # parting side: the hairline is lower on one side of the forehead (asymmetric fringe)
    return line + idp.hair_parting * 0.25 * d[:, 0] * (d[:, 2] < 0)


@lru_cache(maxsize=8)
def _skull(idp: IdentityParams, level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neutral skull surface with facial features.

    Returns:
        (rest positions [N, 3], unit directions [N, 3], faces [M, 3], hair amount [N],
        eye-centre z for the two eyes [2]).
    """
    d, faces = _sphere(level)
    ax, ay, az = idp.semi_axes
    x = d[:, 0] * ax
    y = d[:, 1] * ay + idp.centre_y
    z = d[:, 2] * az
    # skull shape: occipital bulge, narrower jaw and lower back
    back = smoothstep(-0.1, 0.7, d[:, 2]) * smoothstep(0.6, -0.4, d[:, 1])
    z = z + idp.occiput * az * back
    low = smoothstep(0.05, 1.0, d[:, 1])
    x = x * (1.0 - idp.jaw_taper * low ** 1.6)
    # jaw angles: widen the lower face at the sides
    x = x * (1.0 + 0.12 * np.exp(-((y - 0.055) / 0.03) ** 2) * np.exp(-((z + 0.01) / 0.045) ** 2))
    front = smoothstep(-0.1, -0.55, d[:, 2])
    lower_front = smoothstep(-0.0, -0.35, d[:, 2])
    # bring the lower face forward (scaling |z|, so the underside of the jaw cannot fold)
    z = z * (1.0 + 0.55 * smoothstep(-0.01, 0.085, y) * np.exp(-(x / 0.055) ** 2) * (z < 0))
    # the front of the face is flatter than an ellipsoid across x
    flat = 0.012 * np.exp(-(x / 0.04) ** 2) * front * smoothstep(0.09, 0.0, y)
    out = -flat * 0.3
    ex, ey = idp.eye_x, idp.eye_y
    for s in (-1.0, 1.0):
        out += idp.brow_ridge * _bump(x, y, s * ex, ey - 0.016, 0.022, 0.007) * front
        out += idp.cheekbone * _bump(x, y, s * (ex + 0.012), ey + 0.024, 0.016, 0.012) * front
        out += idp.cheek_fullness * _bump(x, y, s * 0.04, idp.mouth_y - 0.01, 0.02, 0.025) * front
    # nose: ridge from between the eyes to the tip, then a sharp drop to the lip
    y_top, y_tip = ey - 0.006, idp.nose_tip_y
    t = np.clip((y - y_top) / (y_tip - y_top), 0.0, 1.0)
    h_above = idp.nose_height * (0.16 + 0.84 * t ** 1.7) + idp.nose_hump * np.sin(np.pi * t)
    h_above = h_above * np.where(y < y_top, np.exp(-((y - y_top) / 0.008) ** 2), 1.0)
    h_below = idp.nose_height * np.exp(-((y - y_tip) / 0.0065) ** 2)
    h = np.where(y <= y_tip, h_above, h_below)
    w = idp.nose_bridge_width + (idp.nose_tip_width - idp.nose_bridge_width) * t ** 2
    nose = h * np.exp(-(x / w) ** 2)
    for s in (-1.0, 1.0):
        nose += 0.35 * idp.nose_height * _bump(x, y, s * idp.nose_ala_width * 0.72, y_tip + 0.003, 0.0055, 0.0055)
    out += nose * front
    my, mw = idp.mouth_y, idp.mouth_half_width
    out += 0.008 * _bump(x, y, 0.0, my, 0.03, 0.022) * front
    out += idp.lip_fullness * _bump(x, y, 0.0, my - idp.upper_lip * 0.5, mw * 0.85, idp.upper_lip * 0.8) * front
    out += idp.lip_fullness * _bump(x, y, 0.0, my + idp.lower_lip * 0.5, mw * 0.8, idp.lower_lip * 0.8) * front
    out -= 0.002 * _bump(x, y, 0.0, my + idp.lower_lip + 0.006, 0.015, 0.004) * front
    out += idp.chin_height * _bump(x, y, 0.0, idp.chin_y, 0.017, 0.013) * lower_front
    z = z - out
    # eye-centre depth from the surface before the sockets are carved
    eye_z = np.empty(2)
    for k, s in enumerate((-1.0, 1.0)):
        sel = d[:, 2] < 0
        dist = (x[sel] - s * ex) ** 2 + (y[sel] - ey) ** 2
        eye_z[k] = z[sel][np.argmin(dist)] + 0.0025 + idp.eye_radius
    for s in (-1.0, 1.0):
        z = z + idp.socket_depth * _bump(x, y, s * ex, ey, 0.018, 0.0062) * front
        # upper-eyelid fold above the eye
        z = z - 0.0015 * _bump(x, y, s * ex, ey - 0.0085, 0.012, 0.0025) * front
    pos = np.stack([x, y, z], axis=1)
    # hair: a cap volume above the hairline
    if idp.hair_style == "none":
        hair = np.zeros(len(d))
    else:
        line = _hairline(d, idp)
        hair = smoothstep(line + 0.03, line - 0.03, d[:, 1])
        thick = idp.hair_thickness * smoothstep(line, line - 0.25, d[:, 1])
        # irregular volume: a few random low-frequency waves (per identity) modulate the thickness
        rng = np.random.default_rng([idp.index, int(abs(idp.hair_parting) * 1e9), 77])
        clump = np.zeros(len(d))
        for _ in range(4):
            k = rng.normal(0.0, 1.0, 3)
            k = k / np.linalg.norm(k) * rng.uniform(5.0, 14.0)
            clump += np.sin(d @ k + rng.uniform(0, 2 * np.pi)) / 4.0
        thick = thick * (1.0 + 0.6 * clump) + 0.002 * hair
        pos = pos + d * thick[:, None]
    for arr in (pos, d, faces, hair, eye_z):
        arr.setflags(write=False)  # cached: shared between expressions
    return pos, d, faces, hair, eye_z


def _expression_offsets(rest: np.ndarray, d: np.ndarray, idp: IdentityParams, expr: Expression) -> np.ndarray:
    """Per-vertex expression displacement [N, 3] (metres, head frame) of rest points [N, 3]
    with unit sphere directions d [N, 3]."""
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    front = smoothstep(-0.1, -0.5, d[:, 2])
    my, mw = idp.mouth_y, idp.mouth_half_width
    off = np.zeros_like(rest)
    # below the lip line the jaw drops: a sharp step inside the mouth (lens-shaped opening
    # between the lips, covered by the mouth-interior part), smooth outside it
    step = smoothstep(my - 0.0004, my + 0.0004, y)
    inside = np.clip(1.0 - (x / mw) ** 2, 0.0, 1.0) ** 0.5
    if expr.jaw_open > 0:
        smooth = smoothstep(my - 0.004, my + 0.03, y)
        wgt = step * inside + smooth * (1.0 - inside)
        wgt = wgt * smoothstep(0.02, -0.06, z) * smoothstep(0.075, 0.02, np.abs(x))
        drop = 0.016 * expr.jaw_open
        off[:, 1] += drop * wgt
        off[:, 2] += 0.25 * drop * wgt
    for side, amount in ((-1.0, expr.smile), (1.0, expr.smile)):
        a = amount + (expr.smirk if np.sign(expr.smirk) == side else 0.0) * abs(np.sign(expr.smirk))
        if a <= 0:
            continue
        g = _bump(x, y, side * mw, my, 0.013, 0.011) * front
        off[:, 0] += side * 0.004 * a * g
        off[:, 1] -= 0.006 * a * g
        off[:, 2] += 0.002 * a * g
        c = _bump(x, y, side * 0.035, my - 0.022, 0.014, 0.012) * front
        off[:, 1] -= 0.003 * a * c
        off[:, 2] -= 0.003 * a * c
    if expr.brows_up > 0:
        g = smoothstep(idp.eye_y - 0.004, idp.eye_y - 0.02, y) * np.exp(-((y - (idp.eye_y - 0.025)) / 0.03) ** 2)
        g = g * np.exp(-(x / 0.06) ** 2) * front
        off[:, 1] -= 0.0065 * expr.brows_up * g
    if expr.frown > 0:
        for s in (-1.0, 1.0):
            g = _bump(x, y, s * 0.013, idp.brow_y, 0.012, 0.008) * front
            off[:, 1] += 0.003 * expr.frown * g
            off[:, 0] -= s * 0.002 * expr.frown * g
            m = _bump(x, y, s * mw, my, 0.01, 0.008) * front
            off[:, 1] += 0.0035 * expr.frown * m
    return off


def _mouth_part(rest: np.ndarray, d: np.ndarray, idp: IdentityParams, expr: Expression) -> MeshPart | None:
    """Mouth-interior decal covering the opening between the lips (None if closed).

    A fine grid spans, per column x, from the deformed upper-lip edge to the deformed
    lower-lip edge, 0.6 mm in front of the stretched skin; its rest coordinates are
    (x / half-width, t from top to bottom, gap height in metres).
    """
    if expr.jaw_open <= 0.0:
        return None
    from scipy.interpolate import griddata

    mw, my = idp.mouth_half_width, idp.mouth_y
    sel = (d[:, 2] < -0.3) & (np.abs(rest[:, 0]) < mw + 0.01) & (np.abs(rest[:, 1] - my) < 0.015)
    nx, ny = 33, 9
    xs = np.linspace(-mw, mw, nx) * 0.985
    query = np.stack([xs, np.full(nx, my)], 1)
    z0 = griddata(rest[sel, :2], rest[sel, 2], query, method="linear")
    missing = ~np.isfinite(z0)  # outside the convex hull on coarse meshes
    if missing.any():
        z0[missing] = griddata(rest[sel, :2], rest[sel, 2], query[missing], method="nearest")
    top = np.stack([xs, np.full(nx, my - 0.0006), z0], 1)
    bot = np.stack([xs, np.full(nx, my + 0.0006), z0], 1)
    dtop = d[sel][np.argmin(((rest[sel, None, :2] - top[None, :, :2]) ** 2).sum(-1), axis=0)]
    off_t = _expression_offsets(top, dtop, idp, expr)
    off_b = _expression_offsets(bot, dtop, idp, expr)
    p_top, p_bot = top + off_t, bot + off_b
    t = np.linspace(0.0, 1.0, ny)
    pos = (p_top[None] * (1 - t)[:, None, None] + p_bot[None] * t[:, None, None]).reshape(-1, 3)
    pos[:, 2] -= 0.0006
    height = np.linalg.norm(p_bot - p_top, axis=1)
    rest_m = np.stack([np.broadcast_to(xs / mw, (ny, nx)), np.broadcast_to(t[:, None], (ny, nx)),
                       np.broadcast_to(height, (ny, nx))], -1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, e = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, e], 1)])
    part = _part(pos, rest_m, np.array([0.3, 0.05, 0.06]), faces, KIND_MOUTH, 0.05)
    part.normals = np.tile(np.array([[0.0, 0.0, -1.0]], np.float32), (len(pos), 1))
    return part


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _part(pos: np.ndarray, rest: np.ndarray, rgb: np.ndarray, faces: np.ndarray, kind: float,
          spec: float, body: np.ndarray | float = 0.0, hair: np.ndarray | float = 0.0) -> MeshPart:
    n = len(pos)
    mat = np.zeros((n, 4), np.float32)
    mat[:, 0] = hair
    mat[:, 1] = spec
    mat[:, 3] = body
    colors = np.broadcast_to(np.asarray(rgb, np.float32), (n, 3)).copy() if np.ndim(rgb) == 1 else rgb
    return MeshPart(positions=pos.astype(np.float32), rest=rest.astype(np.float32),
                    colors=colors.astype(np.float32), material=mat, faces=faces.astype(np.int32),
                    kind=np.full(n, kind, np.float32))


def _eye(idp: IdentityParams, centre: np.ndarray, gaze: tuple[float, float]) -> tuple[MeshPart, np.ndarray]:
    d, f = _sphere(2)
    r_gaze = _rot("y", -gaze[0]) @ _rot("x", -gaze[1])
    pos = centre + (d @ r_gaze.T) * idp.eye_radius
    iris_centre = centre + r_gaze @ np.array([0.0, 0.0, -idp.eye_radius])
    part = _part(pos, d, np.array([0.9, 0.88, 0.85]), f, KIND_EYE, 0.9)
    part.normals = (d @ r_gaze.T).astype(np.float32)
    return part, iris_centre


def _ear(idp: IdentityParams, side: float, anchor: np.ndarray, skin: np.ndarray) -> tuple[MeshPart, np.ndarray]:
    d, f = _sphere(3)
    s = idp.ear_scale
    x, y, z = d[:, 0] * 0.0055, d[:, 1] * 0.031 * s, d[:, 2] * 0.018 * s
    z = z * (1.0 + 0.22 * np.clip(-y / (0.031 * s), -1, 1))  # wider at the top, narrow lobe
    bowl = np.exp(-((y + 0.003) / (0.012 * s)) ** 2 - (z / (0.008 * s)) ** 2) * (d[:, 0] > -0.2)
    x = x - 0.0068 * bowl
    local = np.stack([x, y, z], axis=1)
    rot = _rot("x", np.deg2rad(-12.0)) @ _rot("y", np.deg2rad(idp.ear_angle_deg))
    p = local @ rot.T
    p[:, 0] += 0.004
    if side < 0:
        p[:, 0] = -p[:, 0]
        f = f[:, ::-1]
    p = p + anchor
    rgb = skin * np.array([1.0, 0.93, 0.9]) * (1.0 - 0.35 * bowl)[:, None]
    lobe = p[np.argmax(p[:, 1])]
    return _part(p, p, rgb, f, KIND_SKIN, 0.2), lobe


def _neck(idp: IdentityParams, skin: np.ndarray, cloth: np.ndarray) -> MeshPart:
    na, nh = 32, 16
    ang = np.linspace(0, 2 * np.pi, na, endpoint=False)
    ys = np.linspace(0.0, 0.25, nh)
    a, yy = np.meshgrid(ang, ys)
    r = idp.neck_radius * (1.0 + 0.6 * smoothstep(0.15, 0.25, yy) - 0.05 * smoothstep(0.0, 0.1, yy))
    x = r * np.sin(a)
    z = 0.012 - r * 0.95 * np.cos(a)
    pos = np.stack([x.ravel(), yy.ravel(), z.ravel()], axis=1)
    idx = np.arange(na * nh).reshape(nh, na)
    i0, i1 = idx[:-1], idx[1:]
    j0, j1 = i0, np.roll(i0, -1, axis=1)
    k0, k1 = i1, np.roll(i1, -1, axis=1)
    faces = np.concatenate([np.stack([j0.ravel(), k0.ravel(), j1.ravel()], 1),
                            np.stack([j1.ravel(), k0.ravel(), k1.ravel()], 1)])
    collar = smoothstep(0.165, 0.172, pos[:, 1])[:, None]
    rgb = skin * (1 - collar) + cloth * collar
    body = smoothstep(0.06, 0.17, pos[:, 1])
    return _part(pos, pos, rgb, faces, KIND_SKIN, 0.15, body=body)


def _torso(idp: IdentityParams, cloth: np.ndarray) -> MeshPart:
    """Boxy upper body (superquadric) hanging below the neck, top at about y = 0.18 m."""
    d, f = _sphere(3)
    boxy = np.sign(d) * np.abs(d) ** 0.55
    p = boxy * np.array([idp.shoulder_half_width, 0.26, 0.1]) + np.array([0.0, 0.44, 0.03])
    # sloping shoulders: the top drops towards the arms
    top = smoothstep(0.0, -0.6, d[:, 1])
    p[:, 1] += 0.05 * top * (p[:, 0] / idp.shoulder_half_width) ** 2
    return _part(p, p, cloth, f, KIND_CLOTH, 0.05, body=1.0)


def _long_hair(idp: IdentityParams) -> MeshPart:
    """Hair hanging down the back of the head and neck (long styles)."""
    d, f = _sphere(3)
    ax, ay, az = idp.semi_axes
    p = d * np.array([ax * 1.12, 0.1, az * 0.75]) + np.array([0.0, 0.045, 0.035])
    p[:, 2] += 0.02 * smoothstep(0.0, 1.0, d[:, 1])  # flows backwards at the ends
    hair_rgb = np.asarray(idp.hair_rgb)
    return _part(p, p, hair_rgb, f, KIND_SKIN, 0.2, hair=1.0)


@lru_cache(maxsize=8)
def _static_parts(idp: IdentityParams, level: int) -> tuple[tuple[MeshPart, ...], tuple[MeshPart, ...]]:
    """Expression-independent parts with normals: (head parts: ears, earring, long hair;
    body parts: neck, torso). Cached per identity; treat as read-only."""
    rest = _skull(idp, level)[0]
    skin = _srgb(idp.skin_rgb)
    cloth = _srgb(idp.cloth_rgb)
    head_parts = []
    sel = (np.abs(rest[:, 1] - idp.ear_y) < 0.004) & (np.abs(rest[:, 2] - 0.006) < 0.005)
    lobes = {}
    for s in (-1.0, 1.0):
        side_sel = sel & (np.sign(rest[:, 0]) == s)
        xs = np.abs(rest[side_sel, 0]).max() if side_sel.any() else idp.semi_axes[0]
        anchor = np.array([s * (xs - 0.004), idp.ear_y, 0.006])
        ear, lobe = _ear(idp, s, anchor, skin)
        head_parts.append(ear)
        lobes[s] = lobe
    if idp.earring_side != 0:
        ed, ef = _sphere(1)
        centre = lobes[float(idp.earring_side)] + np.array([0.0, 0.004, 0.0])
        head_parts.append(_part(centre + ed * 0.0032, ed, _srgb(idp.earring_rgb), ef, KIND_METAL, 1.0))
    if idp.hair_style == "long":
        head_parts.append(_long_hair(idp))
    body_parts = [_neck(idp, skin, cloth), _torso(idp, cloth)]
    for part in head_parts + body_parts:
        if part.normals is None:
            part.normals = vertex_normals(part.positions, part.faces)
    return tuple(head_parts), tuple(body_parts)


def build_head(idp: IdentityParams, expr: Expression, level: int = 5) -> HeadModel:
    """Build the full mesh of one identity with one expression.

    Args:
        idp: identity parameters.
        expr: expression weights.
        level: icosphere subdivision level of the skull (5: 10242 vertices, about 3.5 mm
            apart; 6: 40962 vertices).

    Returns:
        HeadModel in the head frame (metres).
    """
    rest, d, faces, hair, eye_z = _skull(idp, level)
    off = _expression_offsets(rest, d, idp, expr)
    skin = _srgb(idp.skin_rgb)
    cloth = _srgb(idp.cloth_rgb)
    x, y = rest[:, 0], rest[:, 1]
    blush = idp.blush * sum(_bump(x, y, s * 0.042, idp.mouth_y - 0.018, 0.015, 0.013) for s in (-1, 1))
    rgb = skin[None, :] * (1.0 - blush[:, None] * np.array([0.0, 0.35, 0.3]))
    spec = 0.18 + 0.15 * np.exp(-(x / 0.02) ** 2) * (rest[:, 2] < 0)
    skull = _part(rest + off, rest, rgb, faces, KIND_SKIN, 0.0, hair=hair)
    skull.material[:, 1] = spec
    parts = [skull]
    mouth = _mouth_part(rest, d, idp, expr)
    if mouth is not None:
        parts.append(mouth)
    iris = []
    for k, s in enumerate((-1.0, 1.0)):
        centre = np.array([s * idp.eye_x, idp.eye_y, eye_z[k]])
        eye, ic = _eye(idp, centre, expr.gaze)
        parts.append(eye)
        iris.append(ic)
    head_static, body_static = _static_parts(idp, level)
    parts.extend(head_static)
    n_head = sum(len(p.positions) for p in parts)
    parts.extend(body_static)
    skull.normals = vertex_normals(skull.positions, skull.faces)
    # ambient occlusion from concavity (curvature in 1/m; the skull itself is about -10)
    ao = 1.0 - 0.45 * smoothstep(5.0, 60.0, cavity(skull.positions, skull.faces, skull.normals))
    skull.colors = skull.colors * ao[:, None]
    mesh = concatenate(parts)
    # landmarks (deformed positions)
    pos = skull.positions.astype(np.float64)
    nose_sel = (np.abs(rest[:, 0]) < 0.01) & (np.abs(rest[:, 1] - idp.nose_tip_y) < 0.015)
    nose_tip = pos[nose_sel][np.argmin(pos[nose_sel, 2])]
    corners = []
    for s in (-1.0, 1.0):
        dist = (rest[:, 0] - s * idp.mouth_half_width) ** 2 + (rest[:, 1] - idp.mouth_y) ** 2 + 1e3 * (rest[:, 2] > 0)
        corners.append(pos[np.argmin(dist)])
    landmarks = np.stack([nose_tip, iris[0], iris[1], corners[0], corners[1], np.zeros(3)])
    face_sel = ((rest[:, 2] < -0.3 * idp.semi_axes[2]) & (rest[:, 1] > idp.brow_y - 0.01)
                & (rest[:, 1] < idp.chin_y + 0.012) & (np.abs(rest[:, 0]) < idp.eye_x + 0.027))
    return HeadModel(mesh=mesh, landmarks=landmarks, face_vertices=np.flatnonzero(face_sel),
                     head_vertices=np.arange(n_head))


def shader_params(idp: IdentityParams, expr: Expression) -> dict[str, tuple[float, ...]]:
    """Uniform values for the fragment shader's painted details (rest head-frame metres)."""
    return {
        "u_hair_rgb": idp.hair_rgb,
        "u_brow_rgb": idp.brow_rgb,
        "u_lip_rgb": idp.lip_rgb,
        "u_iris_rgb": idp.iris_rgb,
        "u_mouth": (idp.mouth_y, idp.mouth_half_width, idp.upper_lip, idp.lower_lip),
        "u_brow": (idp.brow_y, idp.brow_thickness, idp.brow_arch, idp.brow_asym),
        "u_eye": (idp.eye_x, idp.eye_y, 0.018, 0.0062),
        "u_mole": idp.mole,
        "u_misc": (idp.stubble, expr.jaw_open, idp.nose_tip_y, idp.gloss),
    }
