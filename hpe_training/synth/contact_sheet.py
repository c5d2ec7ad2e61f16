"""Contact sheet of synthetic renders (identities x poses x lightings) for documentation.

Run ``python -m hpe_training.synth.contact_sheet --out docs/images/synth_contact_sheet.png``.
Row r shows identity r with a different lighting per tile; columns sweep the yaw from
-90 to +90 degrees with random pitch and roll, and with each identity's expressions.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hpe_training.synth.background import load_photos
from hpe_training.synth.expression import sample_expressions
from hpe_training.synth.head import build_head, shader_params
from hpe_training.synth.identity import sample_identity
from hpe_training.synth.render import HeadRenderer
from hpe_training.synth.scene import body_transform, head_transform, sample_lighting, sample_view


def render_sheet(rows: int = 6, cols: int = 6, tile: int = 160, seed: int = 0,
                 render_size: int = 256) -> np.ndarray:
    """Render the sheet.

    Returns:
        [rows * tile, cols * tile, 3] uint8 RGB image.
    """
    photos = load_photos()
    renderer = HeadRenderer(render_size, photos)
    sheet = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    yaws = np.linspace(-90.0, 90.0, cols)
    try:
        with tqdm(total=rows * cols, desc="contact sheet", unit="img") as bar:
            for r in range(rows):
                idp = sample_identity(seed, r)
                exprs = sample_expressions(seed, r, cols)
                rng = np.random.default_rng([seed, r])
                for c in range(cols):
                    expr = exprs[c]
                    head = build_head(idp, expr)
                    renderer.set_mesh(head.mesh, shader_params(idp, expr))
                    pose = (float(yaws[c] + rng.uniform(-8, 8)), float(rng.uniform(-35, 35)),
                            float(rng.uniform(-25, 25)))
                    pose = (float(np.clip(pose[0], -90, 90)), pose[1], pose[2])
                    view = sample_view(seed, r, c, c, 0, render_size, len(photos), euler_deg=pose)
                    light = sample_lighting(seed, r, c)
                    rgba = renderer.render(view.K, head_transform(view), body_transform(view), light,
                                           view.background)
                    img = cv2.resize(np.ascontiguousarray(rgba[:, :, :3]), (tile, tile), interpolation=cv2.INTER_AREA)
                    sheet[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = img
                    bar.update(1)
    finally:
        renderer.release()
    return sheet


def main(argv: list[str] | None = None) -> int:
    """Write the contact sheet PNG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/images/synth_contact_sheet.png"))
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--cols", type=int, default=6)
    p.add_argument("--tile", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    sheet = render_sheet(args.rows, args.cols, args.tile, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
