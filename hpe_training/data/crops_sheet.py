"""What VGGT sees: training crops beside the node's crops of a real face, in one image.

Rows 1 .. ``rows``: pair crops of a rendered dataset exactly as training cuts and augments them
(:class:`hpe_training.data.pairs.HeadPairDataset`, anchor and query side by side). Last row: the
node's crops (:func:`hpe_core.face_crop.cut_face_crop`, MTCNN's box and landmarks) of
scikit-image's public-domain astronaut, rolled and shrunk as a camera would show her, plus any
``--real`` photos (for looking only: dev data must not go into the project).

    python -m hpe_training.data.crops_sheet --data .hpe/data/train --out docs/images/crops_beside_real.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from hpe_core.crop import PAPER_MARGIN, intrinsics_from_fov
from hpe_core.face_crop import cut_face_crop


def _real_crops(images: Sequence[np.ndarray], size: int, mode: str) -> list[np.ndarray]:
    from hpe_core.pipeline_factory import PipelineSettings, build_detector

    detector = build_detector(PipelineSettings())
    out = []
    for image in images:
        found = detector.detect(image)
        if not found:
            continue
        face = found[0]
        K = intrinsics_from_fov(image.shape[1], image.shape[0], 60.0)
        crop, _ = cut_face_crop(image, K, face.box_xyxy, size, mode, face.landmarks5, PAPER_MARGIN)
        out.append(crop)
    return out


def _astronaut_views() -> list[np.ndarray]:
    """The astronaut as a camera might show her: rolled, and small in a larger frame."""
    from skimage import data

    base = data.astronaut()
    views = []
    for angle, scale in ((0, 1.0), (25, 1.0), (-40, 1.0), (0, 0.35), (15, 0.25)):
        h, w = base.shape[:2]
        M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        views.append(cv2.warpAffine(base, M, (w, h)))
    return views


def render_sheet(data_root: Path, rows: int = 3, pairs_per_row: int = 4, size: int = 112, crop: str = "aligned",
                 augment_level: str = "wide", real: Optional[Sequence[np.ndarray]] = None, seed: int = 0) -> np.ndarray:
    """The sheet, ``uint8 [(rows + 1) * size, 2 * pairs_per_row * size, 3]`` RGB."""
    from hpe_training.data.layout import LayoutReader
    from hpe_training.data.pairs import HeadPairDataset, PairConfig

    reader = LayoutReader(data_root)
    ds = HeadPairDataset(reader, PairConfig(size=size, crop=crop, augment=True, augment_level=augment_level,
                                            near_fraction=0.5, seed=seed))
    width = 2 * pairs_per_row
    sheet = np.zeros(((rows + 1) * size, width * size, 3), np.uint8)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ds), size=rows * pairs_per_row, replace=False)
    for k, index in enumerate(picks):
        images = ds[int(index)]["images"].permute(0, 2, 3, 1).numpy()  # [2, S, S, 3] in [0, 1]
        r, c = divmod(k, pairs_per_row)
        for v in range(2):
            tile = (images[v] * 255.0 + 0.5).astype(np.uint8)
            sheet[r * size:(r + 1) * size, (2 * c + v) * size:(2 * c + v + 1) * size] = tile
    mode = "aligned" if crop == "aligned" else "paper"
    crops = _real_crops(list(_astronaut_views()) + list(real or []), size, mode)[:width]
    for c, tile in enumerate(crops):
        sheet[rows * size:(rows + 1) * size, c * size:(c + 1) * size] = tile
    return sheet


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="rendered dataset (with MTCNN answers for aligned crops)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--crop", default="aligned", choices=["box", "aligned"])
    p.add_argument("--augment-level", default="wide", choices=["standard", "wide"])
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--real", type=Path, nargs="*", default=[], help="extra real photos to show (not for committing)")
    args = p.parse_args(argv)
    real = []
    for path in args.real:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            real.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    sheet = render_sheet(args.data, args.rows, crop=args.crop, augment_level=args.augment_level, real=real)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
