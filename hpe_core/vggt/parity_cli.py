"""``hpe-vggt-parity``: check our VGGT against the official implementation's numerical oracle.

Usage::

    hpe-vggt-parity --config vggt_tiny_config.json --weights vggt_tiny_weights.pt \
        --io vggt_tiny_io.pt [--tol 1e-4]

Builds :class:`~hpe_core.vggt.model.VGGTCamera` from the oracle-format config, loads the
weights with ``strict=True``, runs every case found in the io file (keys
``<case>.images``, ``<case>.patch_tokens``, ``<case>.aggregated.<i>``, ``<case>.pose_enc.<k>``)
and prints the maximum absolute difference of every stored tensor.

Exit status: 0 when every difference is within ``--tol``; 1 when any is above it (or a
stored tensor has no counterpart); 2 on unusable inputs.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor

from hpe_core.vggt.config import VGGTConfig
from hpe_core.vggt.model import VGGTCamera

_KEY = re.compile(r"^(?P<case>[^.]+)\.(?P<field>images|patch_tokens|aggregated\.\d+|pose_enc\.\d+)$")


@dataclass
class Comparison:
    """One compared tensor: ``case``/``name`` with the max abs difference (inf on shape mismatch)."""

    case: str
    name: str
    shape: tuple
    max_abs_diff: float

    def passed(self, tol: float) -> bool:
        return self.max_abs_diff <= tol


def discover_cases(io: Dict[str, Tensor]) -> Dict[str, Dict[str, Tensor]]:
    """Group io-file keys by case name: {case: {field: tensor}}; only cases with images."""
    cases: Dict[str, Dict[str, Tensor]] = {}
    for key, value in io.items():
        match = _KEY.match(key)
        if match is None:
            continue
        cases.setdefault(match["case"], {})[match["field"]] = value
    return {name: fields for name, fields in sorted(cases.items()) if "images" in fields}


def _diff(ours: Tensor, ref: Tensor) -> float:
    if tuple(ours.shape) != tuple(ref.shape):
        return float("inf")
    return (ours.double() - ref.double()).abs().max().item()


def compare_case(model: VGGTCamera, case: str, fields: Dict[str, Tensor]) -> List[Comparison]:
    """Run one case and compare every stored tensor."""
    images = fields["images"].float()
    b, s, _, h, w = images.shape
    results: List[Comparison] = []
    with torch.no_grad():
        patch_tokens = model.embed_frames(images.reshape(b * s, 3, h, w))
        aggregated, _ = model.aggregator(images)
        poses = model(images)
        poses_cached = model.forward_from_patch_tokens(
            patch_tokens.reshape(b, s, patch_tokens.shape[1], patch_tokens.shape[2]), (h, w))
    ours: Dict[str, Tensor] = {"patch_tokens": patch_tokens}
    ours.update({f"aggregated.{i}": t for i, t in enumerate(aggregated)})
    ours.update({f"pose_enc.{k}": t for k, t in enumerate(poses)})
    for name in sorted(fields, key=_field_order):
        if name == "images":
            continue
        ref = fields[name]
        mine = ours.get(name)
        diff = float("inf") if mine is None else _diff(mine, ref)
        results.append(Comparison(case, name, tuple(ref.shape), diff))
    # Internal consistency: the cached-token path must equal the image path exactly.
    cached_diff = max(_diff(a, c) for a, c in zip(poses, poses_cached))
    results.append(Comparison(case, "pose_enc(cached tokens) vs pose_enc(images)",
                              tuple(poses[-1].shape), cached_diff))
    return results


def _field_order(name: str) -> tuple:
    head, _, idx = name.partition(".")
    rank = {"images": 0, "patch_tokens": 1, "aggregated": 2, "pose_enc": 3}.get(head, 4)
    return rank, int(idx) if idx.isdigit() else -1


def run_parity(config_path: Path, weights_path: Path, io_path: Path) -> List[Comparison]:
    """Build, strictly load and compare; returns every comparison (raises on bad inputs)."""
    config = VGGTConfig.from_json(config_path)
    model = VGGTCamera(config).eval()
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    io = torch.load(io_path, map_location="cpu", weights_only=True)
    cases = discover_cases(io)
    if not cases:
        raise ValueError(f"{io_path}: no '<case>.images' keys found")
    results: List[Comparison] = []
    for case, fields in cases.items():
        results.extend(compare_case(model, case, fields))
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpe-vggt-parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="oracle-format config JSON")
    parser.add_argument("--weights", type=Path, required=True, help="state_dict .pt (official key names)")
    parser.add_argument("--io", type=Path, required=True, help="oracle inputs/outputs .pt")
    parser.add_argument("--tol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns (and exits with) the status described in the module doc."""
    args = _parser().parse_args(argv)
    try:
        results = run_parity(args.config, args.weights, args.io)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        print(f"hpe-vggt-parity: error: {exc}", file=sys.stderr)
        return 2
    width = max(len(f"{r.case}.{r.name}") for r in results)
    failed = 0
    for r in results:
        ok = r.passed(args.tol)
        failed += not ok
        print(f"{r.case + '.' + r.name:<{width}}  {str(list(r.shape)):<18} max|diff| = "
              f"{r.max_abs_diff:.3e}  {'ok' if ok else 'FAIL'}")
    worst = max(r.max_abs_diff for r in results)
    print(f"{len(results)} tensors, worst max|diff| = {worst:.3e}, tolerance {args.tol:g}: "
          f"{'PASS' if failed == 0 else f'FAIL ({failed} above tolerance)'}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
