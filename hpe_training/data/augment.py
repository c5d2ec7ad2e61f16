"""Photometric augmentation applied identically to both views of a pair (albumentations replay)."""
from __future__ import annotations

import warnings

import albumentations as A
import numpy as np


def build_photometric() -> A.ReplayCompose:
    """Colour jitter, gamma, CLAHE, RGB shift, blur and noise (no geometric changes)."""
    return A.ReplayCompose([
        A.ColorJitter(brightness=(0.7, 1.3), contrast=(0.7, 1.3), saturation=(0.7, 1.3), hue=(-0.05, 0.05), p=0.8),
        A.RandomGamma(gamma_limit=(80, 120), p=0.3),
        A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.1),
        A.RGBShift(r_shift_limit=(-15, 15), g_shift_limit=(-15, 15), b_shift_limit=(-15, 15), p=0.3),
        A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.2), p=0.2),
        A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
    ])


class PairAugmenter:
    """Sample augmentation parameters once per pair and apply them to every view."""

    def __init__(self) -> None:
        self.compose = build_photometric()

    def __call__(self, images: list[np.ndarray], seed: int) -> tuple[list[np.ndarray], dict]:
        """Augment views with one shared parameter draw.

        Args:
            images: views, each [H, W, 3] uint8 (all of one size).
            seed: seed of this pair's parameter draw.

        Returns:
            (augmented views, the albumentations replay record of the shared parameters).
        """
        self.compose.set_random_seed(int(seed) % (2 ** 32))
        first = self.compose(image=images[0])
        replay = first["replay"]
        with warnings.catch_warnings():
            # albumentations 2.0 re-creates RGBShift from its replay record with extra keys
            warnings.filterwarnings("ignore", message="Argument.*not valid for transform", category=UserWarning)
            out = [first["image"]] + [A.ReplayCompose.replay(replay, image=img)["image"] for img in images[1:]]
        return out, replay
