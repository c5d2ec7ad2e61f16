"""``hpe-synth``: generate a synthetic head-pose dataset in the VGGT-HPE on-disk layout.

Example::

    hpe-synth --out data/synth --identities 250 --lightings 2 --expressions 10 --views 5
    hpe-synth --out data/synth_val --identities 20 --identity-offset 100000  # held-out people
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hpe_training.synth.generator import SynthConfig, generate


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``hpe-synth``."""
    p = argparse.ArgumentParser(prog="hpe-synth", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output root directory")
    p.add_argument("--identities", type=int, default=10, help="number of identities")
    p.add_argument("--lightings", type=int, default=2, help="lightings per identity")
    p.add_argument("--expressions", type=int, default=10, help="expressions per identity (0 = neutral)")
    p.add_argument("--views", type=int, default=5, help="views per identity/lighting/expression")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0, help="base seed (identity i is keyed on seed and i)")
    p.add_argument("--identity-offset", type=int, default=0,
                   help="first identity index (use disjoint ranges for held-out identity splits)")
    p.add_argument("--mesh-level", type=int, default=5, help="skull icosphere subdivision level (3-7)")
    p.add_argument("--msaa", type=int, default=4, help="multisample anti-aliasing samples (0 = off)")
    p.add_argument("--no-photos", action="store_true", help="procedural backgrounds only")
    p.add_argument("--png-compression", type=int, default=3, help="PNG compression level 0-9")
    p.add_argument("--near-fraction", type=float, default=0.0,
                   help="share of views (after the first of each expression) posed within --near-max-deg "
                        "of that first view, for small-gap pairs (0 = every pose drawn independently)")
    p.add_argument("--near-max-deg", type=float, default=35.0, help="largest rotation of a near view (deg)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints timing statistics as JSON and returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        cfg = SynthConfig(out=args.out, identities=args.identities, lightings=args.lightings,
                          expressions=args.expressions, views=args.views, size=args.size,
                          seed=args.seed, identity_offset=args.identity_offset,
                          mesh_level=args.mesh_level, msaa=args.msaa, photos=not args.no_photos,
                          png_compression=args.png_compression,
                          near_fraction=args.near_fraction, near_max_deg=args.near_max_deg)
    except ValueError as exc:
        print(f"hpe-synth: {exc}", file=sys.stderr)
        return 2
    stats = generate(cfg, progress=not args.quiet)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
