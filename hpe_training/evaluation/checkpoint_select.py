"""Every checkpoint of a training run measured on real faces and on held-out renders: the curve
of a round, and model selection by the real-face figures.

For each ``<run>/checkpoints/step_*`` (and ``<run>/model`` when it exists) not measured yet:

* the weights as a model directory (the run's preset, ``trained_img_size`` and ``trained_crop``
  as ``hpe-train`` records them), in a temporary folder;
* ``hpe-eval real``'s roll sweep (scikit-image's astronaut) and mirror pairs (``--labelled``)
  through the node's pipeline with ``estimator: vggt`` on the torch backend and the model's own
  crop (:mod:`hpe_training.evaluation.real`);
* held-out synthetic pairs (``--val``, :func:`hpe_training.evaluation.synthetic_pairs.evaluate_pairs`).

One JSON line per checkpoint goes to ``<out>/checkpoints.jsonl`` (appended, so a watcher that is
stopped continues), and ``<out>/checkpoints.png`` plots the figures against the step.
Selection (:func:`real_score`): the mean of the roll-sweep mean error and the mirror-pair error
at true gaps <= 90 deg, both real faces, degrees; lower is better. The dev faces are only
measured, never trained on.

    python -m hpe_training.evaluation.checkpoint_select --run .hpe/runs/default_small \\
        --labelled ../shared/real_faces/aflw2000_dev --val .hpe/data/val --out .hpe/runs/default_small/selection --watch
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from hpe_training.train.checkpointing import STATE_FILE, WEIGHTS_FILE

RESULTS_FILE = "checkpoints.jsonl"
PLOT_FILE = "checkpoints.png"


def real_score(row: dict[str, Any]) -> float:
    """Selection score of a measured checkpoint (module docstring), degrees; NaN when unmeasured."""
    roll, mirror = row.get("roll_sweep_mean_deg", math.nan), row.get("mirror_error_le90_deg", math.nan)
    return 0.5 * (roll + mirror)


def candidates(run: Path) -> list[tuple[str, Path]]:
    """``(label, directory)`` of every complete checkpoint (by step) and the final model."""
    out = []
    root = run / "checkpoints"
    if root.is_dir():
        for d in sorted(root.glob("step_*")):
            if (d / WEIGHTS_FILE).is_file() and (d / STATE_FILE).is_file():
                out.append((d.name, d))
    if (run / "model" / "config.json").is_file():
        out.append(("model", run / "model"))
    return out


def model_from_checkpoint(directory: Path):
    """The deployable :class:`~hpe_core.vggt.model.VGGTCamera` of a checkpoint or model directory."""
    from hpe_core.vggt.checkpoints import load_model, load_state_dict_into, read_state_dict
    from hpe_core.vggt.config import get_preset
    from hpe_core.vggt.model import VGGTCamera

    if (directory / "config.json").is_file():
        return load_model(directory)
    state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    train_cfg = state["config"]
    if train_cfg.get("mode") in ("lora", "head_only"):
        raise ValueError(f"{directory}: only full/scratch checkpoints are measured here (mode {train_cfg.get('mode')})")
    config = get_preset(train_cfg["preset"])
    config.trained_img_size = int(train_cfg["image_size"])
    config.trained_crop = "aligned" if (train_cfg.get("data_options") or {}).get("crop") == "aligned" else "paper"
    model = VGGTCamera(config)
    load_state_dict_into(model, read_state_dict(directory / WEIGHTS_FILE), source=str(directory), strict=True)
    return model.eval()


def measure(directory: Path, label: str, labelled: Optional[Path], val: Optional[Path], val_pairs: int) -> dict[str, Any]:
    """The real-face and held-out synthetic figures of one checkpoint."""
    from hpe_core.vggt.checkpoints import save_model
    from hpe_training.evaluation.real import real_figures
    from hpe_training.evaluation.synthetic_pairs import evaluate_pairs

    model = model_from_checkpoint(directory)
    row: dict[str, Any] = {"checkpoint": label, "step": _step_of(label, directory), "crop": model.config.crop_mode,
                           "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="hpe-select-") as tmp:
        save_model(model, tmp)
        real = real_figures(Path(tmp), labelled)
        row.update({k: v for k, v in real.items() if k != "targets"})
    if val is not None and val.is_dir():
        syn = evaluate_pairs(model, val, n_pairs=val_pairs, progress=False)
        row.update(synthetic_gap_le30_deg=syn["gap_le_30"].get("geodesic_deg", math.nan),
                   synthetic_gap_ge60_deg=syn["gap_ge_60"].get("geodesic_deg", math.nan),
                   synthetic_all_deg=syn["all"].get("geodesic_deg", math.nan), synthetic_pairs=syn["pairs"])
    row["real_score_deg"] = real_score(row)
    return row


def _step_of(label: str, directory: Path) -> int:
    if label.startswith("step_"):
        return int(label.split("_", 1)[1])
    state = directory.parent / "checkpoints"
    steps = [int(d.name.split("_", 1)[1]) for d in state.glob("step_*")] if state.is_dir() else []
    return max(steps) if steps else -1


def read_rows(out: Path) -> list[dict[str, Any]]:
    """The rows measured so far."""
    path = out / RESULTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Real-face and synthetic figures against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r for r in rows if r["step"] >= 0), key=lambda r: r["step"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, label in (("roll_sweep_mean_deg", "real: roll sweep mean"),
                       ("mirror_error_le90_deg", "real: mirror pairs, gap <= 90"),
                       ("synthetic_gap_le30_deg", "held-out renders: gap <= 30"),
                       ("synthetic_gap_ge60_deg", "held-out renders: gap >= 60")):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=label)
    slope = [(r["step"], r["mirror_slope"]) for r in rows if "mirror_slope" in r]
    if slope:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in slope], [p[1] for p in slope], "k--", lw=0.8, label="real: mirror gap slope")
        ax2.set_ylabel("mirror gap slope (target >= 0.85)")
        ax2.set_ylim(0, 1.2)
        ax2.legend(loc="upper center", fontsize=8)
    ax.set_xlabel("optimizer step of the round"); ax.set_ylabel("mean error (deg)")
    ax.set_title("Checkpoints on real faces and held-out renders"); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)


def measure_new(run: Path, out: Path, labelled: Optional[Path], val: Optional[Path], val_pairs: int) -> list[dict[str, Any]]:
    """Measure every candidate not in ``out`` yet; returns the new rows."""
    out.mkdir(parents=True, exist_ok=True)
    done = {r["checkpoint"] for r in read_rows(out)}
    new = []
    for label, directory in candidates(run):
        if label in done:
            continue
        try:
            row = measure(directory, label, labelled, val, val_pairs)
        except FileNotFoundError:  # a checkpoint removed (keep_checkpoints) while we read it
            continue
        with open(out / RESULTS_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")
        new.append(row)
        print(f"[select] {label}: roll {row.get('roll_sweep_mean_deg', math.nan):.2f}, mirror<=90 "
              f"{row.get('mirror_error_le90_deg', math.nan):.2f} (slope {row.get('mirror_slope', math.nan):.2f}), "
              f"synthetic<=30 {row.get('synthetic_gap_le30_deg', math.nan):.2f}, score {row['real_score_deg']:.2f}",
              flush=True)
    if new:
        plot(read_rows(out), out / PLOT_FILE)
    return new


def best(rows: Sequence[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The row with the lowest :func:`real_score`."""
    scored = [r for r in rows if math.isfinite(r.get("real_score_deg", math.nan))]
    return min(scored, key=lambda r: r["real_score_deg"]) if scored else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="hpe-train output_dir")
    p.add_argument("--out", type=Path, required=True, help="where checkpoints.jsonl and the plot go")
    p.add_argument("--labelled", type=Path, help="labelled real photos (AFLW2000 .jpg+.mat) for the mirror pairs")
    p.add_argument("--val", type=Path, help="held-out rendered identities (VGGT-HPE layout)")
    p.add_argument("--val-pairs", type=int, default=300)
    p.add_argument("--watch", action="store_true", help="keep measuring new checkpoints until the run's model exists")
    p.add_argument("--poll-s", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (leave the rest to training)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    while True:
        measure_new(args.run, args.out, args.labelled, args.val, args.val_pairs)
        if not args.watch or (args.run / "model" / "config.json").is_file() and any(
                r["checkpoint"] == "model" for r in read_rows(args.out)):
            break
        time.sleep(args.poll_s)
    chosen = best(read_rows(args.out))
    if chosen is not None:
        print(f"[select] best by real-face score: {chosen['checkpoint']} ({chosen['real_score_deg']:.2f} deg)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
