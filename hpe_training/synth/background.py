"""Public-domain / CC0 photos shipped with scikit-image, used as background textures."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: scikit-image sample images without people or animal faces, all CC0 / public domain
#: according to their scikit-image docstrings.
PHOTO_NAMES = ("coffee", "rocket", "brick", "grass", "gravel", "coins", "clock",
               "immunohistochemistry", "hubble_deep_field")


@lru_cache(maxsize=1)
def load_photos(max_side: int = 512) -> tuple[np.ndarray, ...]:
    """Load the background photos as RGB uint8 arrays [H, W, 3] (longest side <= max_side).

    Missing images (a scikit-image build without them) are skipped.
    """
    import cv2
    from skimage import data

    photos = []
    for name in PHOTO_NAMES:
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - optional data, skip what is not shipped
            continue
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = img[:, :, :3].astype(np.uint8)
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        photos.append(np.ascontiguousarray(img))
    return tuple(photos)
