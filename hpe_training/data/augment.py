"""Photometric augmentation of a pair: a shared draw for both views (one albumentations call
over all views as extra image targets),
and, at the ``wide`` level, a per-view draw for what differs between two frames of a real camera.

Levels:

* ``standard`` (rounds 1-3 of the default model): colour jitter, gamma, CLAHE, RGB shift, blur,
  noise; identical in both views.
* ``wide`` (domain randomisation towards real cameras, issue 14): ``standard`` with wider colour
  ranges, plus, shared by both views, coloured light (black-body white balance), cast shadows,
  low resolution (downscale and upscale: small faces), motion blur, sensor (ISO) noise, JPEG
  artefacts and grey cameras; and per view, independently, auto-exposure (brightness and
  contrast) and small occluders (random-colour patches standing in for hands and microphones).

No transform moves pixels, so crops, intrinsics and poses are unchanged.
"""
from __future__ import annotations

import albumentations as A
import numpy as np

LEVELS = ("standard", "wide")


#: Most views one call augments together.
MAX_VIEWS = 8


def _view_targets() -> dict[str, str]:
    return {f"view{k}": "image" for k in range(1, MAX_VIEWS)}


def build_photometric(level: str = "standard") -> A.ReplayCompose:
    """The shared (all views) part of ``level``'s augmentation; views 2.. are the extra image
    targets ``view1`` .. ``view7``, which get the parameters drawn for ``image``."""
    if level not in LEVELS:
        raise ValueError(f"augmentation level must be one of {LEVELS}, got {level!r}")
    if level == "standard":
        return A.ReplayCompose([
            A.ColorJitter(brightness=(0.7, 1.3), contrast=(0.7, 1.3), saturation=(0.7, 1.3), hue=(-0.05, 0.05), p=0.8),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.1),
            A.RGBShift(r_shift_limit=(-15, 15), g_shift_limit=(-15, 15), b_shift_limit=(-15, 15), p=0.3),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2), p=0.2),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
        ], additional_targets=_view_targets())
    return A.ReplayCompose([
        A.PlanckianJitter(mode="blackbody", p=0.3),
        A.ColorJitter(brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.5, 1.4), hue=(-0.08, 0.08), p=0.8),
        A.RandomGamma(gamma_limit=(70, 140), p=0.3),
        A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.1),
        A.RGBShift(r_shift_limit=(-20, 20), g_shift_limit=(-20, 20), b_shift_limit=(-20, 20), p=0.3),
        A.RandomShadow(shadow_roi=(0, 0, 1, 1), num_shadows_limit=(1, 2), shadow_dimension=5,
                       shadow_intensity_range=(0.3, 0.7), p=0.15),
        A.Downscale(scale_range=(0.3, 0.8), p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
        A.OneOf([A.GaussNoise(std_range=(0.01, 0.05)), A.ISONoise(color_shift=(0.01, 0.04), intensity=(0.1, 0.4))], p=0.35),
        A.ImageCompression(quality_range=(30, 95), p=0.4),
        A.ToGray(p=0.05),
    ], additional_targets=_view_targets())


def build_per_view(level: str) -> A.Compose | None:
    """The independent per-view part of ``level`` (``None`` for ``standard``)."""
    if level == "standard":
        return None
    return A.Compose([
        A.RandomBrightnessContrast(brightness_limit=(-0.12, 0.12), contrast_limit=(-0.12, 0.12), p=0.5),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(0.1, 0.3), hole_width_range=(0.08, 0.25),
                        fill="random_uniform", p=0.1),
    ])


class PairAugmenter:
    """Sample augmentation parameters once per pair and apply them to every view (and, at the
    ``wide`` level, a per-view draw on top)."""

    def __init__(self, level: str = "standard") -> None:
        self.level = level
        self.compose = build_photometric(level)
        self.per_view = build_per_view(level)

    def __call__(self, images: list[np.ndarray], seed: int) -> tuple[list[np.ndarray], dict]:
        """Augment views with one shared parameter draw.

        Args:
            images: views, each [H, W, 3] uint8 (all of one size).
            seed: seed of this pair's parameter draw.

        Returns:
            (augmented views, the albumentations replay record of the shared parameters).
        """
        if not 1 <= len(images) <= MAX_VIEWS:
            raise ValueError(f"between 1 and {MAX_VIEWS} views, got {len(images)}")
        self.compose.set_random_seed(int(seed) % (2 ** 32))
        result = self.compose(image=images[0], **{f"view{k}": img for k, img in enumerate(images[1:], start=1)})
        replay = result["replay"]
        out = [result["image"]] + [result[f"view{k}"] for k in range(1, len(images))]
        if self.per_view is not None:
            self.per_view.set_random_seed((int(seed) * 7919 + 1) % (2 ** 32))
            out = [self.per_view(image=img)["image"] for img in out]
        return out, replay
