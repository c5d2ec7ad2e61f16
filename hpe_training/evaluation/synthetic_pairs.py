"""Pair evaluation on held-out identities of our generator: error as a function of the
anchor-query rotation gap (the paper's central plot), for a relative or an absolute model.

For each (anchor, query) pair of the same identity and lighting (centred crops, mean margin, no
augmentation), in each crop's virtual camera (as in training and at inference):

* relative model: ``R_q = R_rel_pred @ R_a_true``;
* absolute model: ``R_q`` is the network's own prediction for the query frame;

errors: geodesic angle between ``R_q`` and the truth, and yaw/pitch/roll absolute errors (BIWI
convention, degrees), binned by the true gap ``angle(R_q_true R_a_true^T)``.

``python -m hpe_training.evaluation.synthetic_pairs --model DIR --data VAL_ROOT [--absolute]``
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from hpe_core.geometry.euler import angle_error_deg, yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.rotations import geodesic_angle_deg, matrix_from_quat_xyzw
from hpe_core.virtual_camera import head_pose_cam_to_virtual

GAP_BINS_DEG = (0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 180.0)


def sample_pairs(groups: list[list[int]], n_pairs: int, seed: int) -> list[tuple[int, int]]:
    """``n_pairs`` distinct ordered pairs (anchor, query) inside groups, deterministic."""
    rng = np.random.default_rng(seed)
    all_pairs = [(a, q) for g in groups for a in g for q in g if a != q]
    if n_pairs >= len(all_pairs):
        return all_pairs
    pick = rng.choice(len(all_pairs), size=n_pairs, replace=False)
    return [all_pairs[i] for i in sorted(pick)]


@torch.no_grad()
def evaluate_pairs(model: torch.nn.Module, data_root: Path, n_pairs: int = 600, absolute: bool = False,
                   image_size: Optional[int] = None, batch_size: int = 16, seed: int = 0,
                   progress: bool = True, crop: Optional[str] = None) -> dict[str, Any]:
    """Errors by gap bin (see the module docstring). Returns a JSON-ready dict.

    ``crop``: ``"box"`` or ``"aligned"`` (:class:`hpe_training.data.pairs.PairConfig`); ``None``
    = the crop the model was trained on (its config's ``trained_crop``).
    """
    from tqdm import tqdm

    from hpe_training.data.layout import LayoutReader
    from hpe_training.data.pairs import HeadPairDataset, PairConfig

    size = image_size or model.config.default_input_size
    reader = LayoutReader(data_root)
    # the crop the model was trained on (aligned crops need the data's stored MTCNN answers)
    if crop is None:
        crop = "aligned" if model.config.crop_mode == "aligned" else "box"
    ds = HeadPairDataset(reader, PairConfig(size=size, augment=False, seed=seed, crop=crop))
    pairs = sample_pairs([list(m) for m in reader.groups().values()], n_pairs, seed)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def view(i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in cache:
            crop, _, T_cam, R_virt = ds.load_view(i, None)
            cache[i] = (crop, head_pose_cam_to_virtual(T_cam, R_virt)[:3, :3])
        return cache[i]

    model.eval()
    gaps, geo, ypr = [], [], []
    for start in tqdm(range(0, len(pairs), batch_size), desc="eval pairs", disable=not progress):
        chunk = pairs[start:start + batch_size]
        images = np.stack([np.stack([view(a)[0], view(q)[0]]) for a, q in chunk])  # [B, 2, S, S, 3]
        x = torch.from_numpy(images).permute(0, 1, 4, 2, 3).float() / 255.0
        pose_enc = model(x)[-1][:, 1].double().numpy()  # [B, 9] query frame
        R_pred = matrix_from_quat_xyzw(pose_enc[:, 3:7] / np.linalg.norm(pose_enc[:, 3:7], axis=1, keepdims=True))
        for (a, q), R in zip(chunk, R_pred):
            R_a, R_q = view(a)[1], view(q)[1]
            R_est = R if absolute else R @ R_a
            gaps.append(float(geodesic_angle_deg(R_q @ R_a.T, np.eye(3))))
            geo.append(float(geodesic_angle_deg(R_est, R_q)))
            ypr.append(angle_error_deg(yaw_pitch_roll_deg_from_matrix(R_est), yaw_pitch_roll_deg_from_matrix(R_q)))
    gaps_a, geo_a, ypr_a = np.array(gaps), np.array(geo), np.array(ypr)

    def stats(mask: np.ndarray) -> dict[str, Any]:
        if not mask.any():
            return {"pairs": 0}
        e = ypr_a[mask]
        return {"pairs": int(mask.sum()), "geodesic_deg": float(geo_a[mask].mean()),
                "yaw": float(e[:, 0].mean()), "pitch": float(e[:, 1].mean()), "roll": float(e[:, 2].mean()),
                "mae": float(e.mean())}

    bins = []
    for lo, hi in zip(GAP_BINS_DEG[:-1], GAP_BINS_DEG[1:]):
        bins.append({"gap_deg": [lo, hi], **stats((gaps_a >= lo) & (gaps_a < hi))})
    return {
        "mode": "absolute" if absolute else "relative",
        "data": str(data_root), "pairs": len(pairs), "image_size": size, "crop": crop,
        "all": stats(np.ones_like(gaps_a, dtype=bool)),
        "gap_le_30": stats(gaps_a <= 30.0),
        "gap_ge_60": stats(gaps_a >= 60.0),
        "by_gap": bins,
        "raw": {"gap_deg": gaps, "geodesic_deg": geo},
    }


def plot_error_vs_gap(results: list[dict[str, Any]], path: Path) -> None:
    """Mean geodesic error per gap bin, one line per result (e.g. relative vs absolute)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        xs = [(b["gap_deg"][0] + b["gap_deg"][1]) / 2 for b in r["by_gap"] if b["pairs"]]
        ys = [b["geodesic_deg"] for b in r["by_gap"] if b["pairs"]]
        ax.plot(xs, ys, "o-", label=f"{r['mode']} ({r['pairs']} pairs)")
    ax.set_xlabel("anchor-query rotation gap (deg)")
    ax.set_ylabel("query rotation error (deg)")
    ax.set_title("Error vs anchor gap, held-out synthetic identities")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> int:
    from hpe_core.vggt.checkpoints import load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    parser.add_argument("--data", type=Path, required=True, help="held-out data root (hpe-synth layout)")
    parser.add_argument("--absolute", action="store_true", help="the model predicts absolute poses")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop", choices=["box", "aligned"], help="crop to cut (default: the model's trained crop)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the error-vs-gap plot here")
    args = parser.parse_args(argv)
    result = evaluate_pairs(load_model(args.model), args.data, args.pairs, args.absolute, seed=args.seed,
                            crop=args.crop)
    printable = {k: v for k, v in result.items() if k != "raw"}
    print(json.dumps(printable, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot_error_vs_gap([result], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
