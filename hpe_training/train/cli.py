"""``hpe-train``: train VGGT-HPE from a YAML/JSON config.

Examples::

    hpe-train --config configs/train_lora.yaml
    hpe-train --config configs/train_lora.yaml --override lr=5e-5 --override max_steps=2000 --resume
    torchrun --nproc_per_node 4 -m hpe_training.train.cli --config configs/train_lora.yaml

Under torchrun every process runs this entry point; the process group is initialised from the
environment (env://; nccl on CUDA, gloo on CPU). Prints the final validation metrics as JSON.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from hpe_training.train.config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``hpe-train``."""
    p = argparse.ArgumentParser(prog="hpe-train", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True, help="training config (.yaml/.yml/.json)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (repeatable), e.g. lr=5e-5 or data_options.margin=0.5")
    p.add_argument("--resume", action="store_true",
                   help="continue from <output_dir>/checkpoints/latest (fresh start when there is none)")
    p.add_argument("--log-level", default="INFO", help="Python logging level")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (2 on a configuration error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = TrainConfig.from_file(args.config, args.override)
    except ValueError as exc:
        print(f"hpe-train: {exc}", file=sys.stderr)
        return 2

    from hpe_training.train.data import build_datasets
    from hpe_training.train.distributed import init_distributed, shutdown_distributed
    from hpe_training.train.trainer import Trainer

    try:
        train_set, val_set = build_datasets(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hpe-train: {exc}", file=sys.stderr)
        return 2
    ctx = init_distributed(cfg.device)
    try:
        trainer = Trainer(cfg, train_set, val_set, ctx)
        result = trainer.train(resume=args.resume)
        trainer.close()
        if ctx.is_main:
            summary = {"step": result.step, "total_steps": result.total_steps,
                       "final_model": str(result.final_model) if result.final_model else None,
                       "validation": result.validations[-1] if result.validations else None}
            print(json.dumps(summary))
    finally:
        shutdown_distributed(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
