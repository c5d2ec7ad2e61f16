"""Scene sampling: lighting, backgrounds, cameras and head poses.

Frames: the camera frame is the OpenCV optical frame (x right, y down, z forward). The head
frame is defined in :mod:`hpe_training.synth.head` (identity head-to-camera rotation =
facing the camera). Translations in metres, angles in degrees unless stated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from hpe_training.synth.head import NECK_PIVOT

#: Pose ranges (degrees) of the head relative to the camera.
YAW_RANGE = 90.0
PITCH_RANGE = 60.0
ROLL_RANGE = 40.0
#: Approximate head height used to choose the camera distance (metres).
HEAD_HEIGHT = 0.24


@dataclass(frozen=True)
class Lighting:
    """Lights in the camera frame; directions point from the surface towards the light.

    Colours are linear RGB intensities.
    """

    key_dir: tuple[float, float, float]
    key_rgb: tuple[float, float, float]
    fill_dir: tuple[float, float, float]
    fill_rgb: tuple[float, float, float]
    amb_top: tuple[float, float, float]
    amb_bottom: tuple[float, float, float]
    exposure: float


@dataclass(frozen=True)
class Background:
    """Background description.

    mode 0: two-colour linear gradient with value noise; mode 1: photo (index into the
    photo list) with a random crop/rotation, blur and tint.
    """

    mode: int
    c0: tuple[float, float, float]
    c1: tuple[float, float, float]
    direction: tuple[float, float]
    noise_amp: float
    noise_scale: float
    noise_offset: tuple[float, float, float]
    photo: int
    uv_affine: tuple[float, float, float, float, float, float]
    blur: float
    tint: tuple[float, float, float]


@dataclass(frozen=True)
class ViewSample:
    """One camera view of a head.

    Attributes:
        R_h2c: [3, 3] head-to-camera rotation.
        t_h2c: [3] head centre in the camera frame (metres).
        K: [3, 3] intrinsics in pixels (principal point at the image centre, size/2).
        R_b2c: [3, 3] torso-to-camera rotation (the torso follows the head partly).
        background: background description.
        euler_deg: (yaw, pitch, roll) used to build R_h2c = Ry(yaw) Rx(pitch) Rz(roll)
            about the head's y (down), x (left) and z (backwards) axes.
    """

    R_h2c: np.ndarray
    t_h2c: np.ndarray
    K: np.ndarray
    R_b2c: np.ndarray
    background: Background
    euler_deg: tuple[float, float, float]


def _unit(v: np.ndarray) -> tuple[float, float, float]:
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v)
    return (float(v[0]), float(v[1]), float(v[2]))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A light colour: white mixed with a random hue (saturation up to 0.6), [3]."""
    hue = rng.uniform()
    base = np.array([0.5 + 0.5 * np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)])
    sat = rng.uniform(0.0, 0.6)
    return (1 - sat) + sat * base


def sample_lighting(seed: int, identity: int, lighting: int) -> Lighting:
    """Lighting ``lighting`` of identity ``identity`` (a key, a fill and a sky/ground ambient)."""
    rng = np.random.default_rng([int(seed), 3000017, int(identity), int(lighting)])
    az = rng.uniform(-np.pi * 0.75, np.pi * 0.75)
    el = rng.uniform(-0.9, 0.4)  # y down: negative = light from above
    key = np.array([np.sin(az) * np.cos(el), el, -np.cos(az) * np.cos(el)])
    kcol = _random_colour(rng) * np.array([1.0, 0.97, 0.92]) ** rng.uniform(-2, 3)
    key_int = rng.uniform(0.9, 2.0)
    fill = np.array([-key[0] + rng.normal(0, 0.3), rng.uniform(-0.5, 0.3), -abs(rng.normal(0.8, 0.3))])
    fcol = _random_colour(rng)
    amb = rng.uniform(0.12, 0.4)
    acol = _random_colour(rng)
    return Lighting(
        key_dir=_unit(key), key_rgb=tuple(float(v) for v in kcol * key_int),
        fill_dir=_unit(fill), fill_rgb=tuple(float(v) for v in fcol * rng.uniform(0.15, 0.6)),
        amb_top=tuple(float(v) for v in acol * amb),
        amb_bottom=tuple(float(v) for v in acol * amb * rng.uniform(0.3, 0.8)),
        exposure=float(rng.uniform(0.75, 1.1)))


def sample_background(rng: np.random.Generator, n_photos: int) -> Background:
    """A random background (photo with probability 0.35 when photos are available)."""
    mode = 1 if (n_photos > 0 and rng.uniform() < 0.35) else 0
    c0 = rng.uniform(0.0, 1.0, 3) * rng.uniform(0.2, 1.0)
    c1 = np.clip(c0 + rng.normal(0, 0.3, 3), 0, 1)
    ang = rng.uniform(0, 2 * np.pi)
    scale = rng.uniform(0.3, 1.0)
    rot = rng.uniform(-0.4, 0.4)
    flip = -1.0 if rng.uniform() < 0.5 else 1.0
    a = scale * np.array([[np.cos(rot) * flip, -np.sin(rot)], [np.sin(rot) * flip, np.cos(rot)]])
    off = rng.uniform(0.0, 1.0 - scale, 2) if scale < 1 else np.zeros(2)
    return Background(
        mode=mode, c0=tuple(float(v) for v in c0), c1=tuple(float(v) for v in c1),
        direction=(float(np.cos(ang)), float(np.sin(ang))),
        noise_amp=float(rng.uniform(0.0, 0.35)), noise_scale=float(rng.uniform(2.0, 40.0)),
        noise_offset=tuple(float(v) for v in rng.uniform(0, 100, 3)),
        photo=int(rng.integers(max(n_photos, 1))),
        uv_affine=(float(a[0, 0]), float(a[0, 1]), float(a[1, 0]), float(a[1, 1]), float(off[0]), float(off[1])),
        blur=float(rng.uniform(0.0, 2.5)),
        tint=tuple(float(v) for v in rng.uniform(0.6, 1.2, 3)))


def euler_to_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """R = Ry(yaw) Rx(pitch) Rz(roll) (intrinsic y-x-z about head axes), [3, 3]."""
    return Rotation.from_euler("YXZ", [yaw_deg, pitch_deg, roll_deg], degrees=True).as_matrix()


def sample_pose_deg(rng: np.random.Generator) -> tuple[float, float, float]:
    """Yaw/pitch/roll in degrees: a mix of uniform over the full range and a frontal-heavy normal."""
    def one(limit: float, sigma: float) -> float:
        if rng.uniform() < 0.55:
            return float(rng.uniform(-limit, limit))
        return float(np.clip(rng.normal(0.0, sigma), -limit, limit))
    return one(YAW_RANGE, 35.0), one(PITCH_RANGE, 20.0), one(ROLL_RANGE, 12.0)


def perturb_pose_deg(base_deg: tuple[float, float, float], rng: np.random.Generator,
                     max_angle_deg: float) -> tuple[float, float, float]:
    """A pose near ``base_deg``: ``R_base @ R_delta`` with ``R_delta`` a rotation of angle
    ~ U(0, max_angle_deg) about a uniformly random axis, back in (yaw, pitch, roll) degrees and
    clipped to the pose ranges (so the rendered gap can be a little smaller than drawn)."""
    axis = rng.normal(size=3)
    axis /= max(np.linalg.norm(axis), 1e-12)
    delta = Rotation.from_rotvec(axis * np.deg2rad(rng.uniform(0.0, max_angle_deg)))
    rot = Rotation.from_euler("YXZ", base_deg, degrees=True) * delta
    yaw, pitch, roll = rot.as_euler("YXZ", degrees=True)
    return (float(np.clip(yaw, -YAW_RANGE, YAW_RANGE)), float(np.clip(pitch, -PITCH_RANGE, PITCH_RANGE)),
            float(np.clip(roll, -ROLL_RANGE, ROLL_RANGE)))


def view_pose_deg(seed: int, identity: int, lighting: int, expr: int, view: int,
                  near_fraction: float = 0.0, near_max_deg: float = 35.0) -> tuple[float, float, float]:
    """Head pose (yaw, pitch, roll degrees) of one view.

    Every view draws its own pose (:func:`sample_pose_deg`). With ``near_fraction`` > 0, each
    view after the first is instead, with that probability, a perturbation of up to
    ``near_max_deg`` of view 0's pose (same identity, lighting, expression), so that a group
    holds pairs with small rotation gaps, which uniform draws over the full range rarely give
    (the regime in which the node's anchors work). ``near_fraction = 0`` leaves every pose as
    it was without the option.
    """
    rng = np.random.default_rng([int(seed), 4000037, int(identity), int(lighting), int(expr), int(view)])
    pose = sample_pose_deg(rng)
    if view == 0 or near_fraction <= 0.0:
        return pose
    near_rng = np.random.default_rng([int(seed), 4000039, int(identity), int(lighting), int(expr), int(view)])
    if near_rng.uniform() >= near_fraction:
        return pose
    base = view_pose_deg(seed, identity, lighting, expr, 0)
    return perturb_pose_deg(base, near_rng, near_max_deg)


def make_intrinsics(size: int, fov_deg: float) -> np.ndarray:
    """Square-pixel pinhole K [3, 3] for a size x size image, principal point (size/2, size/2)."""
    f = (size / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])


def sample_view(seed: int, identity: int, lighting: int, expr: int, view: int, size: int,
                n_photos: int, euler_deg: tuple[float, float, float] | None = None,
                near_fraction: float = 0.0, near_max_deg: float = 35.0) -> ViewSample:
    """Sample camera intrinsics, head pose and background of one view.

    Args:
        euler_deg: force (yaw, pitch, roll) instead of sampling it (tests, demos).
        near_fraction, near_max_deg: see :func:`view_pose_deg`.
    """
    rng = np.random.default_rng([int(seed), 4000037, int(identity), int(lighting), int(expr), int(view)])
    sample_pose_deg(rng)  # advance this view's generator past its pose draw: camera draws below are unchanged
    pose = view_pose_deg(seed, identity, lighting, expr, view, near_fraction, near_max_deg)
    if euler_deg is not None:
        pose = tuple(float(v) for v in euler_deg)
    r_h2c = euler_to_matrix(*pose)
    fov = rng.uniform(25.0, 70.0)
    K = make_intrinsics(size, fov)
    frac = rng.uniform(0.3, 0.62)
    dist = HEAD_HEIGHT / (frac * 2.0 * np.tan(np.deg2rad(fov) / 2.0))
    shift = rng.uniform(-1, 1, 2) * (0.5 - frac / 2.0) * 0.7 * size
    t = np.array([shift[0] * dist / K[0, 0], shift[1] * dist / K[1, 1], dist])
    beta = rng.uniform(0.0, 0.4)
    rv = Rotation.from_matrix(r_h2c).as_rotvec() * beta + rng.normal(0, 0.05, 3)
    r_b2c = Rotation.from_rotvec(rv).as_matrix()
    return ViewSample(R_h2c=r_h2c, t_h2c=t, K=K, R_b2c=r_b2c,
                      background=sample_background(rng, n_photos), euler_deg=pose)


def sample_object_transform(seed: int, identity: int, lighting: int, expr: int) -> tuple[np.ndarray, np.ndarray]:
    """Head-to-world transform of one (identity, lighting, expression) scene.

    Returns:
        (R_world [3, 3], t_world [3] metres) mapping head-frame points into the world frame.
    """
    rng = np.random.default_rng([int(seed), 5000011, int(identity), int(lighting), int(expr)])
    r = Rotation.from_euler("zyx", [rng.uniform(-180, 180), rng.uniform(-20, 20), rng.uniform(-20, 20)],
                            degrees=True).as_matrix()
    return r, rng.uniform(-0.5, 0.5, 3)


def body_transform(view: ViewSample) -> np.ndarray:
    """4x4 torso-to-camera transform sharing the neck pivot with the head."""
    pivot_c = view.R_h2c @ NECK_PIVOT + view.t_h2c
    m = np.eye(4)
    m[:3, :3] = view.R_b2c
    m[:3, 3] = pivot_c - view.R_b2c @ NECK_PIVOT
    return m


def head_transform(view: ViewSample) -> np.ndarray:
    """4x4 head-to-camera transform."""
    m = np.eye(4)
    m[:3, :3] = view.R_h2c
    m[:3, 3] = view.t_h2c
    return m
