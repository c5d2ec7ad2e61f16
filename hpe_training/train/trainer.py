"""The VGGT-HPE training loop.

One optimizer step = ``accumulation_steps`` micro-batches of ``batch_size`` pairs per process
(DDP all-reduces the gradients of the last micro-batch only, ``no_sync`` before it), the
gradient clipped to ``grad_clip`` (L2 norm), then AdamW with the warm-up + cosine learning
rate of that step. bf16 autocast wraps the forward pass on CUDA (and on the CPU with
``cpu_bf16``); the loss is computed in float32.

Determinism and exact resume: the data order and each sample's augmentation randomness are
functions of (seed, epoch, position) (:mod:`hpe_training.train.sampling`), the model-side
torch RNG is reseeded from (seed, step, rank) before every step, and a checkpoint stores the
weights, AdamW and scheduler state and the step. A run resumed from step ``s`` therefore
computes exactly the losses and weights of an uninterrupted run (same device, same number of
processes).

Rank 0 alone writes TensorBoard logs (``<output_dir>/tensorboard``), the progress bar,
checkpoints, ``metrics.json`` and the final model (``<output_dir>/model``: our checkpoint
format, LoRA merged, consumable by ``hpe-export``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from hpe_core.vggt.checkpoints import save_state_dict
from hpe_training.train.batch import collate_pairs
from hpe_training.train.checkpointing import (latest_checkpoint, read_checkpoint, rng_state, set_rng_state,
                                              write_checkpoint)
from hpe_training.train.config import TrainConfig
from hpe_training.train.distributed import DistContext, all_reduce_sum, barrier, resolve_device
from hpe_training.train.loss import PoseLossConfig, pose_loss
from hpe_training.train.modes import build_training_model, deployable_state, load_saved_state, saved_state
from hpe_training.train.sampling import EpochSampler, SeededDataset, ShardSampler, dataset_length, step_seed
from hpe_training.train.schedule import StepScheduler, WarmupCosine
from hpe_training.train.validation import evaluate

logger = logging.getLogger(__name__)
FINAL_MODEL_DIR = "model"
METRICS_FILE = "metrics.json"
#: Config fields that must not change when resuming (they change weights or data order).
RESUME_LOCKED = ("mode", "preset", "init_checkpoint", "lora_rank", "lora_alpha", "absolute", "image_size",
                 "batch_size", "accumulation_steps", "seed")


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.train`.

    step: optimizer steps done in total; losses: {step: mean training loss of that step (over
    micro-batches and ranks)} for the steps run by this call; validations: one record per
    validation (epoch, step, loss and degrees); checkpoint: last checkpoint written (rank 0);
    final_model: the exported model directory when training finished (rank 0).
    """

    step: int
    total_steps: int
    losses: Dict[int, float] = field(default_factory=dict)
    validations: List[Dict[str, float]] = field(default_factory=list)
    checkpoint: Optional[Path] = None
    final_model: Optional[Path] = None


class Trainer:
    """Trains a VGGTCamera on a pair dataset following :class:`TrainConfig`.

    Args:
        cfg: the run's configuration.
        train_dataset: map-style dataset of contract samples (:mod:`hpe_training.train.batch`).
        val_dataset: held-out identities, same contract (validation skipped when None).
        ctx: distributed context from :func:`hpe_training.train.distributed.init_distributed`
            (single process on ``cfg.device`` when None).
    """

    def __init__(self, cfg: TrainConfig, train_dataset: Dataset, val_dataset: Optional[Dataset] = None,
                 ctx: Optional[DistContext] = None) -> None:
        self.cfg = cfg
        self.ctx = ctx or DistContext(0, 1, 0, resolve_device(cfg.device), distributed=False)
        self.device = self.ctx.device
        self.train_dataset = SeededDataset(train_dataset)
        self.val_dataset = SeededDataset(val_dataset) if val_dataset is not None else None
        self.loss_cfg = PoseLossConfig(gamma=cfg.loss_gamma, lambda_translation=cfg.lambda_translation,
                                       lambda_quaternion=cfg.lambda_quaternion, lambda_focal=cfg.lambda_focal)
        self.use_bf16 = cfg.bf16 and self.device.type == "cuda"
        self.forward_in_bf16 = self.use_bf16 or (cfg.cpu_bf16 and self.device.type == "cpu")

        self.model = build_training_model(cfg).to(self.device)
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError(f"mode {cfg.mode!r} left no trainable parameters")
        self.forward_module: nn.Module = self.model
        if self.ctx.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_module = DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = torch.optim.AdamW(self.trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)

        num_samples = dataset_length(train_dataset)
        self.samples_per_rank = math.ceil(num_samples / self.ctx.world_size)
        micro_per_epoch = self.samples_per_rank // cfg.batch_size
        self.steps_per_epoch = micro_per_epoch // cfg.accumulation_steps
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{num_samples} training pairs over {self.ctx.world_size} process(es) give no full optimizer "
                f"step (batch_size {cfg.batch_size} x accumulation_steps {cfg.accumulation_steps})")
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        self.scheduler = StepScheduler(self.optimizer, WarmupCosine(cfg.lr, cfg.min_lr, self.total_steps,
                                                                    cfg.warmup_fraction))
        self.step = 0
        self.validations: List[Dict[str, float]] = []
        self.output_dir = Path(cfg.output_dir)
        self._writer: Any = None
        self._saved_step = -1
        self._start_step = 0

    # ------------------------------------------------------------------ public
    def train(self, resume: bool = False, until_step: Optional[int] = None) -> TrainResult:
        """Run (or continue, with ``resume``) training up to the last step, or up to
        ``until_step`` optimizer steps (then a checkpoint is written and training can be resumed)."""
        if resume:
            self.resume()
        self._start_step = self.step
        stop = self.total_steps if until_step is None else min(until_step, self.total_steps)
        result = TrainResult(step=self.step, total_steps=self.total_steps)
        if self.ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.cfg.to_json(self.output_dir / "train_config.json")
        progress = self._progress_bar(stop)
        try:
            while self.step < stop:
                epoch, within = divmod(self.step, self.steps_per_epoch)
                batches = self._train_batches(epoch, start_step=within)
                while self.step < stop and within < self.steps_per_epoch:
                    stats = self._optimizer_step(batches)
                    result.losses[self.step - 1] = stats["loss"]
                    within += 1
                    self._log_step(stats, progress)
                    if within == self.steps_per_epoch or self.step == self.total_steps:
                        self._validate(epoch)
                    if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                        result.checkpoint = self.save_checkpoint()
            if (self.step == self.total_steps or until_step is not None) and self._saved_step != self.step:
                result.checkpoint = self.save_checkpoint()
            if self.step == self.total_steps:
                result.final_model = self.save_final_model()
        finally:
            if progress is not None:
                progress.close()
            if self._writer is not None:
                self._writer.flush()
        result.step = self.step
        result.validations = list(self.validations)
        return result

    def resume(self) -> bool:
        """Load the newest checkpoint of ``output_dir`` (all ranks); False when there is none."""
        directory = latest_checkpoint(self.output_dir)
        if directory is None:
            logger.warning("resume requested but %s has no checkpoint: starting from step 0", self.output_dir)
            return False
        loaded = read_checkpoint(directory)
        saved_cfg = loaded.state.get("config", {})
        changed = [k for k in RESUME_LOCKED if k in saved_cfg and saved_cfg[k] != getattr(self.cfg, k)]
        if changed:
            raise ValueError(f"cannot resume {directory}: config changed in {changed}")
        if int(loaded.state.get("world_size", self.ctx.world_size)) != self.ctx.world_size:
            logger.warning("resuming with %d processes, checkpoint written with %s: data order differs",
                           self.ctx.world_size, loaded.state.get("world_size"))
        if int(loaded.state.get("total_steps", self.total_steps)) != self.total_steps:
            logger.warning("resuming with %d total steps, checkpoint planned %s: the learning-rate curve changes",
                           self.total_steps, loaded.state.get("total_steps"))
        load_saved_state(self.model, loaded.weights, self.cfg)
        self.optimizer.load_state_dict(loaded.state["optimizer"])
        self.scheduler.load_state_dict(loaded.state["scheduler"])
        set_rng_state(loaded.state["rng"])
        self.step = loaded.step
        self.validations = [dict(v) for v in loaded.state.get("validations", [])]
        logger.info("resumed from %s at step %d", directory, self.step)
        return True

    def save_checkpoint(self) -> Optional[Path]:
        """Write a checkpoint of the current step (rank 0; other ranks wait). Returns its path."""
        path = None
        self._saved_step = self.step
        if self.ctx.is_main:
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "rng": rng_state(), "config": self.cfg.to_dict(), "world_size": self.ctx.world_size,
                     "total_steps": self.total_steps,
                     "validations": [dict(v) for v in self.validations]}
            adapter = self.model if self.cfg.mode == "lora" else None
            path = write_checkpoint(self.output_dir, self.step, saved_state(self.model, self.cfg), state,
                                    adapter_module=adapter, keep=self.cfg.keep_checkpoints)
        barrier(self.ctx)
        return path

    def save_final_model(self) -> Optional[Path]:
        """Rank 0: save the deployable model (LoRA folded in tensor by tensor, the training model
        left as it is; no copy of the model) in our checkpoint format."""
        path = None
        if self.ctx.is_main:
            config, state = deployable_state(self.model)
            path = save_state_dict(config, state, self.output_dir / FINAL_MODEL_DIR)
            del state
            logger.info("final model written to %s", path)
        barrier(self.ctx)
        return path

    # ------------------------------------------------------------------ steps
    def _train_batches(self, epoch: int, start_step: int) -> Iterator[Mapping[str, Tensor]]:
        start = start_step * self.cfg.accumulation_steps * self.cfg.batch_size
        set_epoch = getattr(self.train_dataset.dataset, "set_epoch", None)
        if callable(set_epoch):  # datasets whose randomness is keyed by (seed, epoch, index)
            set_epoch(epoch)
        sampler = EpochSampler(dataset_length(self.train_dataset), self.cfg.seed, epoch, self.ctx.rank,
                               self.ctx.world_size, start=start)
        return iter(self._loader(self.train_dataset, sampler, drop_last=True))

    def _loader(self, dataset: Dataset, sampler: Any, drop_last: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.cfg.seed)
        return DataLoader(dataset, batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=self.cfg.num_workers, collate_fn=collate_pairs, drop_last=drop_last,
                          pin_memory=self.device.type == "cuda", generator=generator)

    def _optimizer_step(self, batches: Iterator[Mapping[str, Tensor]]) -> Dict[str, float]:
        cfg = self.cfg
        torch.manual_seed(step_seed(cfg.seed, self.step, self.ctx.rank))
        self.optimizer.zero_grad(set_to_none=True)
        sums: Dict[str, float] = {}
        for micro in range(cfg.accumulation_steps):
            batch = next(batches)
            sync = micro == cfg.accumulation_steps - 1
            no_sync = (self.forward_module.no_sync() if self.ctx.distributed and not sync
                       else contextlib.nullcontext())
            with no_sync:
                loss, components = self._forward_loss(batch)
                (loss / cfg.accumulation_steps).backward()
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for name, value in components.items():
                sums[name] = sums.get(name, 0.0) + float(value)
        grad_norm = float("nan")
        if cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip))
        lr = self.scheduler.apply()
        self.optimizer.step()
        self.scheduler.advance()
        self.step += 1
        names = sorted(sums)
        totals = torch.tensor([sums[n] for n in names], dtype=torch.float64)
        totals = all_reduce_sum(totals, self.ctx) / (cfg.accumulation_steps * self.ctx.world_size)
        stats = {n: float(v) for n, v in zip(names, totals)}
        stats.update(lr=lr, grad_norm=grad_norm)
        return stats

    def _forward_loss(self, batch: Mapping[str, Tensor]):
        images = batch["images"].to(self.device, non_blocking=True)
        target = batch["pose_enc"].to(self.device, non_blocking=True)
        autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.forward_in_bf16
                    else contextlib.nullcontext())
        with autocast:
            predictions = self.forward_module(images)
        return pose_loss([p.float() for p in predictions], target, self.loss_cfg)

    # ------------------------------------------------------------------ validation and logging
    def _validate(self, epoch: int) -> None:
        if self.val_dataset is None or not self.cfg.validate:
            return
        sampler = ShardSampler(dataset_length(self.val_dataset), self.cfg.seed, self.ctx.rank, self.ctx.world_size)
        loader = self._loader(self.val_dataset, sampler, drop_last=False)
        metrics = evaluate(self.model, loader, self.device, self.cfg.absolute, self.loss_cfg, self.ctx,
                           autocast_bf16=self.use_bf16)
        record = {"epoch": float(epoch), "step": float(self.step), **metrics}
        self.validations.append(record)
        if self.ctx.is_main:
            writer = self._tensorboard()
            for name in ("loss", "yaw", "pitch", "roll", "mae"):
                writer.add_scalar(f"val/{name}", metrics[name], self.step)
            writer.flush()
            self._write_metrics()
            logger.info("epoch %d step %d: val loss %.4f, MAE %.2f deg (yaw %.2f pitch %.2f roll %.2f)",
                        epoch, self.step, metrics["loss"], metrics["mae"], metrics["yaw"], metrics["pitch"],
                        metrics["roll"])

    def _write_metrics(self) -> None:
        data = {"total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "absolute": self.cfg.absolute, "mode": self.cfg.mode, "validations": self.validations,
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path = self.output_dir / METRICS_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(path)

    def _tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"),
                                         purge_step=self._start_step or None)
        return self._writer

    def _log_step(self, stats: Dict[str, float], progress: Any) -> None:
        if not self.ctx.is_main:
            return
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}")
        if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
            writer = self._tensorboard()
            for name, value in stats.items():
                writer.add_scalar(f"train/{name}", value, self.step)

    def _progress_bar(self, stop: int):
        if not (self.ctx.is_main and self.cfg.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=stop, initial=self.step, desc="hpe-train", unit="step", dynamic_ncols=True)

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
