"""Per-identity appearance and shape parameters, sampled deterministically from a seed.

All lengths are metres in the head frame (x = person's left / image right when facing
the camera, y down, z away from the camera; origin midway between the ears).
Colours are sRGB in [0, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SKIN_PALETTE = np.array([
    [0.98, 0.85, 0.76], [0.94, 0.77, 0.65], [0.87, 0.66, 0.52], [0.76, 0.55, 0.40],
    [0.62, 0.42, 0.29], [0.46, 0.30, 0.20], [0.33, 0.21, 0.14], [0.25, 0.16, 0.11]])
HAIR_PALETTE = np.array([
    [0.05, 0.04, 0.035], [0.16, 0.10, 0.06], [0.30, 0.19, 0.11], [0.50, 0.36, 0.22],
    [0.78, 0.64, 0.42], [0.55, 0.23, 0.10], [0.62, 0.60, 0.58], [0.85, 0.84, 0.82],
    [0.20, 0.25, 0.55], [0.55, 0.15, 0.40]])
HAIR_WEIGHTS = np.array([0.24, 0.2, 0.16, 0.1, 0.09, 0.06, 0.06, 0.03, 0.03, 0.03])
IRIS_PALETTE = np.array([
    [0.22, 0.12, 0.05], [0.35, 0.22, 0.10], [0.20, 0.35, 0.60], [0.30, 0.45, 0.30],
    [0.45, 0.48, 0.50], [0.45, 0.35, 0.15]])
HAIR_STYLES = ("none", "short", "medium", "long")


@dataclass(frozen=True)
class IdentityParams:
    """Shape and appearance of one synthetic person (metres, head frame, sRGB)."""

    index: int
    semi_axes: tuple[float, float, float]
    centre_y: float
    jaw_taper: float
    occiput: float
    cheek_fullness: float
    eye_x: float
    eye_y: float
    eye_radius: float
    socket_depth: float
    brow_ridge: float
    nose_tip_y: float
    nose_height: float
    nose_tip_width: float
    nose_bridge_width: float
    nose_ala_width: float
    nose_hump: float
    mouth_y: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    lip_fullness: float
    chin_y: float
    chin_height: float
    cheekbone: float
    ear_scale: float
    ear_angle_deg: float
    ear_y: float
    neck_radius: float
    shoulder_half_width: float
    skin_rgb: tuple[float, float, float]
    lip_rgb: tuple[float, float, float]
    brow_rgb: tuple[float, float, float]
    hair_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    cloth_rgb: tuple[float, float, float]
    hair_style: str
    hair_thickness: float
    hair_front: float
    hair_side: float
    hair_back: float
    hair_parting: float
    brow_y: float
    brow_thickness: float
    brow_arch: float
    brow_asym: float
    stubble: float
    mole: tuple[float, float, float, float]
    earring_side: int
    earring_rgb: tuple[float, float, float]
    blush: float
    gloss: float

    def to_json(self) -> dict:
        """Plain-JSON dictionary of all parameters."""
        return asdict(self)


def _tuple(a: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in np.clip(a, 0.0, 1.0))


def sample_identity(seed: int, index: int) -> IdentityParams:
    """Sample identity ``index`` of a dataset with base ``seed`` (independent of counts).

    The generator is keyed on (seed, index) so identity 17 is the same person whether a
    dataset has 20 or 2000 identities, and ``--identity-offset`` gives disjoint people.
    """
    rng = np.random.default_rng([int(seed), 1000003, int(index)])
    u = rng.uniform
    ax, ay, az = u(0.069, 0.081), u(0.108, 0.121), u(0.093, 0.104)
    tone = u(0, 1) ** 0.9 * (len(SKIN_PALETTE) - 1)
    lo = int(np.floor(tone))
    hi = min(lo + 1, len(SKIN_PALETTE) - 1)
    skin = SKIN_PALETTE[lo] * (1 - (tone - lo)) + SKIN_PALETTE[hi] * (tone - lo)
    skin = skin * u(0.94, 1.06) + np.array([u(-0.02, 0.04), u(-0.02, 0.02), u(-0.03, 0.02)])
    lip = skin * np.array([0.82, 0.52, 0.55]) + np.array([0.08, 0.0, 0.02]) * u(0.3, 1.5)
    if u() < 0.15:  # lipstick
        lip = np.array([u(0.45, 0.8), u(0.02, 0.15), u(0.08, 0.3)])
    hair = HAIR_PALETTE[rng.choice(len(HAIR_PALETTE), p=HAIR_WEIGHTS / HAIR_WEIGHTS.sum())]
    hair = hair * u(0.85, 1.15)
    style = str(rng.choice(HAIR_STYLES, p=[0.15, 0.35, 0.3, 0.2]))
    brow = hair * 0.7 if hair.mean() < 0.6 else np.array([0.25, 0.2, 0.15]) * u(0.6, 1.2)
    iris = IRIS_PALETTE[rng.integers(len(IRIS_PALETTE))] * u(0.8, 1.2)
    cloth_h = u(0, 1)
    cloth = np.array([0.5 + 0.5 * np.cos(2 * np.pi * (cloth_h + k / 3)) for k in range(3)])
    cloth = cloth * u(0.2, 0.9) + u(0.0, 0.3)
    eye_y = u(-0.027, -0.014)
    nose_tip_y = eye_y + u(0.036, 0.046)
    mouth_y = nose_tip_y + u(0.022, 0.030)
    side = 1.0 if u() < 0.5 else -1.0
    mole_on = u() < 0.8
    mole = (side * u(0.02, 0.05), u(eye_y + 0.02, mouth_y + 0.01), -1.0, u(0.0018, 0.0035) if mole_on else 0.0)
    earring = int(rng.choice([-1, 1])) if u() < 0.3 else 0
    return IdentityParams(
        index=int(index),
        semi_axes=(ax, ay, az),
        centre_y=u(-0.014, -0.004),
        jaw_taper=u(0.08, 0.26),
        occiput=u(0.0, 0.12),
        cheek_fullness=u(0.002, 0.01),
        eye_x=u(0.029, 0.035),
        eye_y=eye_y,
        eye_radius=u(0.0112, 0.0125),
        socket_depth=u(0.010, 0.014),
        brow_ridge=u(0.003, 0.008),
        nose_tip_y=nose_tip_y,
        nose_height=u(0.017, 0.028),
        nose_tip_width=u(0.008, 0.012),
        nose_bridge_width=u(0.005, 0.008),
        nose_ala_width=u(0.013, 0.018),
        nose_hump=u(0.0, 0.004),
        mouth_y=mouth_y,
        mouth_half_width=u(0.02, 0.026),
        upper_lip=u(0.004, 0.0075),
        lower_lip=u(0.005, 0.009),
        lip_fullness=u(0.002, 0.006),
        chin_y=mouth_y + u(0.034, 0.044),
        chin_height=u(0.008, 0.02),
        cheekbone=u(0.002, 0.008),
        ear_scale=u(0.9, 1.12),
        ear_angle_deg=u(8.0, 28.0),
        ear_y=u(-0.004, 0.008),
        neck_radius=u(0.047, 0.06),
        shoulder_half_width=u(0.16, 0.21),
        skin_rgb=_tuple(skin),
        lip_rgb=_tuple(lip),
        brow_rgb=_tuple(brow),
        hair_rgb=_tuple(hair),
        iris_rgb=_tuple(iris),
        cloth_rgb=_tuple(cloth),
        hair_style=style,
        hair_thickness=u(0.004, 0.018) if style != "short" else u(0.002, 0.007),
        hair_front=u(-0.62, -0.42),
        hair_side=u(-0.25, -0.05),
        hair_back=u(0.35, 0.6) if style != "long" else u(0.75, 0.95),
        hair_parting=side * u(0.1, 0.45),
        brow_y=eye_y - u(0.015, 0.021),
        brow_thickness=u(0.003, 0.0065),
        brow_arch=u(0.001, 0.004),
        brow_asym=u(-0.0015, 0.0015),
        stubble=u(0.3, 1.0) if u() < 0.22 else 0.0,
        mole=mole,
        earring_side=earring,
        earring_rgb=_tuple(np.array([0.95, 0.78, 0.35]) if u() < 0.5 else np.array([0.85, 0.85, 0.88])),
        blush=u(0.0, 0.12),
        gloss=u(0.05, 0.3),
    )
