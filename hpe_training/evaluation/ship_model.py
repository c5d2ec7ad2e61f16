"""Ship a trained model as the default: float16 checkpoint, measured figures, model card.

``python -m hpe_training.evaluation.ship_model --run RUN_DIR --val VAL_ROOT``

1. copies ``RUN_DIR/model`` (the trainer's final model) into ``hpe_core/models/default/torch``
   with float16 weights (half the size; loaded back as float32);
2. evaluates it on held-out identities (:mod:`hpe_training.evaluation.synthetic_pairs`), error by
   anchor-query gap, and writes ``metrics.json`` and ``docs/images/default_model_error_vs_gap.png``;
3. writes ``MODEL_CARD.md`` from the training config, the trainer's ``metrics.json`` and the
   evaluation, including whether the issue's targets are met (rotation MAE <= 5 deg for gaps
   <= 30 deg). Figures are never edited by hand: re-run this to refresh them.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / "hpe_core" / "models" / "default"
ABSOLUTE_DIR = REPO / "hpe_training" / "models" / "absolute_small"
PLOT = REPO / "docs" / "images" / "default_model_error_vs_gap.png"
TARGET_MAE_GAP_LE_30_DEG = 5.0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ship(run_dir: Path, val_root: Path, pairs: int, wall_time_note: str,
         absolute_run: Optional[Path] = None) -> dict:
    from hpe_core.vggt.checkpoints import load_model, save_model
    from hpe_training.evaluation.synthetic_pairs import evaluate_pairs, plot_error_vs_gap

    model = load_model(run_dir / "model")
    target = DEFAULT_DIR / "torch"
    if target.exists():
        shutil.rmtree(target)
    save_model(model, target, storage_dtype=torch.float16)
    shipped = load_model(target)  # evaluate what is shipped (float16 weights)
    result = evaluate_pairs(shipped, val_root, n_pairs=pairs)
    absolute = None
    if absolute_run is not None:  # the same preset and budget trained with --absolute
        if ABSOLUTE_DIR.exists():
            shutil.rmtree(ABSOLUTE_DIR)
        save_model(load_model(absolute_run / "model"), ABSOLUTE_DIR, storage_dtype=torch.float16)
        absolute = evaluate_pairs(load_model(ABSOLUTE_DIR), val_root, n_pairs=pairs, absolute=True)
    plot_error_vs_gap([result] + ([absolute] if absolute else []), PLOT)
    train_cfg = json.loads((run_dir / "train_config.json").read_text())
    train_metrics = json.loads((run_dir / "metrics.json").read_text())
    le30 = result["gap_le_30"]
    meets = bool(le30.get("pairs", 0) > 0 and le30["mae"] <= TARGET_MAE_GAP_LE_30_DEG)
    metrics = {
        "evaluated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "data": {"train": dataset_recipe(Path(train_cfg["train_root"])), "val": dataset_recipe(val_root)},
        "held_out": {k: v for k, v in result.items() if k != "raw"},
        "target_mae_gap_le_30_deg": TARGET_MAE_GAP_LE_30_DEG,
        "meets_targets": meets,
        "training": {"steps": train_metrics.get("total_steps"), "validations": train_metrics.get("validations")},
    }
    if absolute is not None:
        metrics["absolute_baseline"] = {k: v for k, v in absolute.items() if k != "raw"}
        metrics["relative_beats_absolute_on_hard_pairs"] = bool(
            result["gap_ge_60"]["mae"] < absolute["gap_ge_60"]["mae"])
    if absolute is not None:
        metrics["meets_targets"] = bool(meets and metrics["relative_beats_absolute_on_hard_pairs"])
    (DEFAULT_DIR / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (DEFAULT_DIR / "MODEL_CARD.md").write_text(card(train_cfg, metrics, wall_time_note))
    return metrics


def dataset_recipe(root: Path) -> dict:
    """What ``hpe-synth`` wrote in ``root/meta.json`` (counts, seed, offset, options)."""
    meta_path = Path(root) / "meta.json"
    if not meta_path.is_file():
        return {"root": str(root)}
    meta = json.loads(meta_path.read_text())
    keys = ("seed", "identity_offset", "counts", "image_size", "mesh_level", "msaa_samples", "near_views")
    return {"root": str(root), **{k: meta.get(k) for k in keys}}


def _recipe_text(d: dict) -> str:
    c = d.get("counts") or {}
    if not c:
        return f"`{d['root']}`"
    near = d.get("near_views") or {}
    near_text = (f", near views {near.get('fraction', 0):g} within {near.get('max_deg', 0):g} deg"
                 if near.get("fraction") else "")
    return (f"`{d['root']}` ({c['identities']} identities from {d['identity_offset']} x {c['lightings']} "
            f"lightings x {c['expressions']} expressions x {c['views']} views = {c['frames']} images, "
            f"seed {d['seed']}, {d['image_size'][0]} px, mesh level {d['mesh_level']}, MSAA {d['msaa_samples']}"
            f"{near_text})")


def _row(name: str, s: dict) -> str:
    if not s.get("pairs"):
        return f"| {name} | 0 | - | - | - | - | - |"
    return (f"| {name} | {s['pairs']} | {s['geodesic_deg']:.1f} | {s['yaw']:.1f} | {s['pitch']:.1f} | "
            f"{s['roll']:.1f} | {s['mae']:.1f} |")


def absolute_section(metrics: dict) -> str:
    a = metrics.get("absolute_baseline")
    if a is None:
        return "\nThe absolute baseline (same preset and budget, `--absolute`) has not been evaluated.\n"
    rows = [_row("all pairs", a["all"]), _row("gap <= 30 deg", a["gap_le_30"]), _row("gap >= 60 deg", a["gap_ge_60"])]
    rel, ab = metrics["held_out"]["gap_ge_60"]["mae"], a["gap_ge_60"]["mae"]
    word = "better" if metrics["relative_beats_absolute_on_hard_pairs"] else "NOT better"
    return f"""
## Absolute baseline (same preset, data, steps and seed; `--absolute`)
Shipped beside the benchmark code as `hpe_training/models/absolute_small` (float16).
The query's rotation predicted directly (no anchor), on the same held-out pairs:

| pairs | n | geodesic | yaw | pitch | roll | MAE |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

On hard pairs (gap >= 60 deg) the relative model's MAE is {rel:.1f} deg against {ab:.1f} deg for the
absolute one: relative is **{word}**.
"""


def _origin_text(cfg: dict) -> str:
    if cfg.get("init_checkpoint"):
        return (f"Training mode `{cfg['mode']}` from `{cfg['init_checkpoint']}` (our previous default model, itself\n"
                "  trained from random initialisation); no pretrained VGGT or DINOv2 weights (none can be\n"
                "  downloaded where this was trained). The absolute baseline starts from the same weights.")
    return (f"Training mode `{cfg['mode']}`: no pretrained VGGT or DINOv2 weights (none can be downloaded\n"
            "  where this was trained), so every parameter was trained from random initialisation.")


def _pairs_text(cfg: dict) -> str:
    opts = cfg.get("data_options") or {}
    if opts.get("near_fraction"):
        return (f"{opts['near_fraction'] * 100:.0f} % of the training pairs take a query within "
                f"{opts.get('near_gap_deg', 30):g} deg of the anchor, the others any view of the group")
    return "the query is any other view of the group"


def card(cfg: dict, metrics: dict, wall_time_note: str) -> str:
    h = metrics["held_out"]
    size_mb = (DEFAULT_DIR / "torch" / "model.safetensors").stat().st_size / 1e6
    rows = [_row("all pairs", h["all"]), _row("gap <= 30 deg", h["gap_le_30"]), _row("gap >= 60 deg", h["gap_ge_60"])]
    rows += [_row(f"gap {b['gap_deg'][0]:.0f}-{b['gap_deg'][1]:.0f} deg", b) for b in h["by_gap"]]
    verdict = ("meets" if metrics["meets_targets"] else "does NOT meet")
    if metrics["meets_targets"] is False and metrics["held_out"]["gap_le_30"].get("mae", 99) <= TARGET_MAE_GAP_LE_30_DEG:
        verdict = "meets the first but NOT the second of"
    return f"""# Model card: hpe default model

Written by `python -m hpe_training.evaluation.ship_model` on {metrics['evaluated']}; every figure
below was measured by that run or by the training run it names. Do not edit by hand.

## What it is
- Architecture: our VGGT camera branch (`hpe_core/vggt`), preset `{cfg['preset']}`
  ({cfg['image_size']} px input), relative mode (anchor = frame 0, the query's pose relative to it).
- Weights: `torch/model.safetensors`, float16 storage ({size_mb:.1f} MB), loaded as float32.
  The ONNX export the default backend uses is made from it by `tools/setup.sh` (`hpe-export`).
- {_origin_text(cfg)}

## Data recipe
Our synthetic heads (`hpe-synth`, procedural meshes rendered with moderngl/EGL on the CPU), in the
VGGT-HPE public layout: training {_recipe_text(metrics['data']['train'])}; held-out validation
{_recipe_text(metrics['data']['val'])}.
Pairs share identity and lighting; {_pairs_text(cfg)}; square crops with margin 0.4-0.6 and
shift; the same photometric augmentation on both views; targets in each crop's virtual camera.
Recipe file: `hpe_training/train/configs/default_small.yaml`.

## Training
- Steps: {metrics['training']['steps']} (batch {cfg['batch_size']}, AdamW lr {cfg['lr']}, weight decay
  {cfg['weight_decay']}, {int(cfg['warmup_fraction'] * 100)} % warm-up then cosine to {cfg['min_lr']}, grad clip
  {cfg['grad_clip']}), seed {cfg['seed']}; the paper's loss (gamma 0.6; L1 translation, L1 quaternion,
  0.5 x focal ratio).
- Hardware: {_cpu_name()}, 2 cores, no GPU (CPU training, one thread per run; the relative model and
  the absolute baseline trained side by side, each on one core).
- Wall time: {wall_time_note}

## Held-out figures (rotation of the query = predicted relative rotation x true anchor rotation)
{h['pairs']} pairs of held-out identities; errors in degrees (geodesic angle; BIWI yaw/pitch/roll
absolute errors with angle wrap).

| pairs | n | geodesic | yaw | pitch | roll | MAE |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Error vs gap plot: `docs/images/default_model_error_vs_gap.png`.
{absolute_section(metrics)}
## Targets
Target: rotation MAE <= {metrics['target_mae_gap_le_30_deg']:.0f} deg on pairs whose gap is <= 30 deg, and a
same-budget `--absolute` model worse on hard pairs (gap >= 60 deg). This model **{verdict}** the
targets (`meets_targets` in `metrics.json`). Tests that need a model within the target accuracy
skip while `metrics.json` says `meets_targets: false`.

## Limits
A small network trained briefly on the CPU without any pretrained weights, on stylised synthetic
heads: it is a working default that exercises the whole system, not an accurate head pose
estimator. For accuracy, train the `vggt-1b` preset from the official checkpoint with LoRA
(`hpe_training/train/configs/lora_vggt1b.yaml`) on a GPU, or run another round of this recipe
(copy the shipped `torch/` to `.hpe/init_model/torch`, then `hpe-train --config
hpe_training/train/configs/default_small.yaml`; `--resume` continues an interrupted round).
"""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="training output dir (with model/)")
    parser.add_argument("--val", type=Path, required=True, help="held-out data root")
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--wall-time", default="not recorded", help="text for the model card")
    parser.add_argument("--absolute-run", type=Path, help="training dir of the --absolute baseline")
    args = parser.parse_args(argv)
    metrics = ship(args.run, args.val, args.pairs, args.wall_time, args.absolute_run)
    print(json.dumps({k: metrics[k] for k in ("meets_targets", "target_mae_gap_le_30_deg")}, indent=1))
    print(json.dumps(metrics["held_out"]["gap_le_30"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
