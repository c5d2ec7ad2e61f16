"""Facial expressions as weights of a few procedural deformations."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Expression:
    """Deformation weights, each in [0, 1] (``smirk`` in [-1, 1]: sign = side, +x = left).

    Attributes:
        name: preset name.
        smile: mouth corners up and out, cheeks raised.
        jaw_open: lower jaw dropped (opens the mouth, about 15 mm at 1).
        brows_up: eyebrows and forehead raised.
        frown: inner brows down and together, mouth corners down.
        smirk: one-sided smile.
        gaze: (x, y) eyeball rotation in radians (x = towards +x, y = down).
    """

    name: str
    smile: float = 0.0
    jaw_open: float = 0.0
    brows_up: float = 0.0
    frown: float = 0.0
    smirk: float = 0.0
    gaze: tuple[float, float] = (0.0, 0.0)

    def to_json(self) -> dict:
        """Plain-JSON dictionary."""
        return asdict(self)


PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"smile": 1.0},
    "open_mouth": {"jaw_open": 1.0},
    "raised_brows": {"brows_up": 1.0},
    "surprise": {"jaw_open": 0.8, "brows_up": 1.0},
    "frown": {"frown": 1.0},
    "smirk": {"smirk": 1.0},
    "grin": {"smile": 1.0, "jaw_open": 0.35},
}


def sample_expressions(seed: int, identity: int, count: int) -> list[Expression]:
    """``count`` expressions of one identity: index 0 is neutral, then presets in a
    per-identity random order with random intensities (0.6-1.0), cycling if needed."""
    rng = np.random.default_rng([int(seed), 2000003, int(identity)])
    names = [n for n in PRESETS if n != "neutral"]
    order = list(rng.permutation(names))
    out = []
    for k in range(count):
        gaze = (float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.12, 0.12)))
        if k == 0:
            out.append(Expression("neutral", gaze=gaze))
            continue
        name = order[(k - 1) % len(order)]
        scale = float(rng.uniform(0.6, 1.0))
        weights = {key: val * scale for key, val in PRESETS[name].items()}
        if "smirk" in weights and rng.uniform() < 0.5:
            weights["smirk"] = -weights["smirk"]
        out.append(Expression(name, gaze=gaze, **weights))
    return out
