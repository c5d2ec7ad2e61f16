"""The training loop on the tiny preset: loss goes down, exact resume, outputs on disk."""
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.vggt.checkpoints import load_model
from hpe_training.train.batch import collate_pairs, make_pair_sample
from hpe_training.train.checkpointing import latest_checkpoint, read_checkpoint
from hpe_training.train.config import TrainConfig
from hpe_training.train.sampling import EpochSampler, SeededDataset
from hpe_training.train.trainer import Trainer
from hpe_training.train.validation import evaluate, query_rotation
from hpe_training.train.distributed import DistContext

SIZE = 56


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run ~10x faster on one thread than on two on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyPairs(torch.utils.data.Dataset):
    """Pairs of one synthetic 'head' (a bright blob placed by the pose) with random poses.

    Augmentation noise is drawn from torch's global RNG, so exact resume only holds if the
    trainer seeds every sample deterministically.
    """

    def __init__(self, n, seed=0, absolute=False, noise=0.05, size=SIZE):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            ypr = rng.uniform(-40, 40, size=(2, 3))
            R = torch.as_tensor(matrix_from_yaw_pitch_roll_deg(ypr[:, 0], ypr[:, 1], ypr[:, 2]))
            t = torch.as_tensor(np.c_[rng.uniform(-0.05, 0.05, (2, 2)), rng.uniform(0.5, 0.7, (2, 1))])
            f = rng.uniform(50, 70, size=2)
            K = torch.zeros(2, 3, 3, dtype=torch.float64)
            K[:, 0, 0] = K[:, 1, 1] = torch.as_tensor(f)
            K[:, 0, 2] = K[:, 1, 2] = size / 2
            K[:, 2, 2] = 1
            images = torch.zeros(2, 3, size, size)
            yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
            for v in range(2):
                cx, cy = size / 2 + 40 * float(R[v, 0, 2]), size / 2 + 40 * float(R[v, 1, 2])
                images[v] = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 60.0)[None] * torch.tensor(
                    [0.9, 0.6, 0.3])[:, None, None]
            self.items.append((images, R, t, K))
        self.absolute, self.noise = absolute, noise

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        images, R, t, K = self.items[i]
        images = (images + self.noise * torch.rand(images.shape)).clamp(0, 1)
        return make_pair_sample(images, R, t, K, absolute=self.absolute)


def _cfg(tmp_path, name, **kw):
    base = dict(train_root="unused", preset="tiny", image_size=SIZE, mode="lora", batch_size=1,
                accumulation_steps=2, epochs=3, lr=1e-3, min_lr=1e-5, warmup_fraction=0.2, seed=5,
                num_workers=0, device="cpu", output_dir=str(tmp_path / name), checkpoint_every=0,
                progress=False, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def test_contract_relative_targets():
    sample = TinyPairs(1, absolute=False)[0]
    assert sample["images"].shape == (2, 3, SIZE, SIZE)
    anchor, query = sample["pose_enc"]
    assert torch.allclose(anchor[:7], torch.tensor([0, 0, 0, 0, 0, 0, 1.0]), atol=1e-6)
    R = sample["abs_rotation"].double()
    R_rel = R[1] @ R[0].T
    # the query target decodes to T_q inv(T_a); composing with the true anchor gives R_q
    back = query_rotation(sample["pose_enc"][None].double(), R[:1], absolute=False)[0]
    assert torch.allclose(back, R[1], atol=1e-5)
    assert torch.allclose(query_rotation(sample["pose_enc"][None].double(), R[:1], absolute=True)[0], R_rel,
                          atol=1e-5)
    absolute = TinyPairs(1, absolute=True)[0]
    assert torch.allclose(query_rotation(absolute["pose_enc"][None].double(), R[:1], True)[0], R[1], atol=1e-5)


def test_validation_of_the_ground_truth_is_zero_error():
    dataset = SeededDataset(TinyPairs(3, noise=0.0))
    batch = collate_pairs([dataset[(i, 0)] for i in range(3)])

    class Oracle(torch.nn.Module):  # returns the targets: validation must then report ~0 degrees
        def forward(self, images):
            return [batch["pose_enc"]] * 4

    ctx = DistContext(0, 1, 0, torch.device("cpu"), False)
    from hpe_training.train.loss import PoseLossConfig

    metrics = evaluate(Oracle(), [batch], torch.device("cpu"), False, PoseLossConfig(), ctx)
    assert metrics["pairs"] == 3 and metrics["mae"] < 1e-3 and metrics["loss"] < 1e-6


def test_sampler_is_deterministic_and_resumable():
    full = list(EpochSampler(10, seed=1, epoch=2, rank=1, world_size=3))
    assert len(full) == 4
    assert list(EpochSampler(10, seed=1, epoch=2, rank=1, world_size=3, start=2)) == full[2:]
    assert full != list(EpochSampler(10, seed=1, epoch=3, rank=1, world_size=3))
    ranks = [i for r in range(2) for i, _ in EpochSampler(10, seed=1, epoch=0, rank=r, world_size=2)]
    assert sorted(ranks) == list(range(10))
    dataset = SeededDataset(TinyPairs(2))
    a, b = dataset[(1, 123)], dataset[(1, 123)]
    assert torch.equal(a["images"], b["images"]) and not torch.equal(a["images"], dataset[(1, 124)]["images"])


def test_training_reduces_the_loss_on_a_fixed_batch(tmp_path):
    cfg = _cfg(tmp_path, "fit", mode="lora", batch_size=2, accumulation_steps=1, epochs=12, lr=1e-3,
               min_lr=1e-3, warmup_fraction=0.0, validate=False)
    trainer = Trainer(cfg, TinyPairs(2, noise=0.0))
    result = trainer.train()
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert len(losses) == 12
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.6 * losses[0], losses


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    train_set, val_set = TinyPairs(6, seed=1), TinyPairs(2, seed=2)
    # 6 pairs, batch 1 x accumulation 2 -> 3 optimizer steps per epoch; capped at 4 steps:
    # validation after step 3 (end of epoch 0) and step 4 (end of training, mid-epoch 1)
    run_a = Trainer(_cfg(tmp_path, "a", max_steps=4), train_set, val_set).train()
    assert run_a.total_steps == 4 and sorted(run_a.losses) == list(range(4))

    cfg_b = _cfg(tmp_path, "b", max_steps=4)
    first = Trainer(cfg_b, train_set, val_set).train(until_step=2)  # stops mid-epoch 0
    assert first.step == 2 and first.final_model is None
    second = Trainer(cfg_b, train_set, val_set).train(resume=True)
    assert sorted(second.losses) == [2, 3]
    for step in range(2):
        assert first.losses[step] == run_a.losses[step]
    for step in (2, 3):
        assert second.losses[step] == run_a.losses[step]  # bit-identical on one device

    weights_a = load_file(str(latest_checkpoint(tmp_path / "a") / "weights.safetensors"))
    weights_b = load_file(str(latest_checkpoint(tmp_path / "b") / "weights.safetensors"))
    assert weights_a.keys() == weights_b.keys() and any(".lora_B." in k for k in weights_a)
    for key in weights_a:
        assert torch.equal(weights_b[key], weights_a[key]), key
    assert [v["epoch"] for v in second.validations] == [0, 1]
    for va, vb in zip(run_a.validations, second.validations):
        assert vb["mae"] == pytest.approx(va["mae"], abs=1e-4)

    # outputs: metrics JSON, TensorBoard events, trainer state loadable with weights_only, final model
    out = tmp_path / "b"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [v["step"] for v in metrics["validations"]] == [3, 4]
    assert all(k in metrics["validations"][0] for k in ("yaw", "pitch", "roll", "mae", "loss"))
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    state = read_checkpoint(latest_checkpoint(out)).state
    assert state["step"] == 4 and state["scheduler"]["step"] == 4
    assert (latest_checkpoint(out) / "adapter" / "adapter_config.json").is_file()
    assert (latest_checkpoint(out) / "adapter" / "camera_head.safetensors").is_file()
    final = load_model(out / "model")
    with torch.no_grad():
        images = collate_pairs([val_set[0]])["images"]
        trainer_b = Trainer(cfg_b, train_set, val_set)
        trainer_b.resume()
        expected = trainer_b.model(images)[-1]
        torch.testing.assert_close(final(images)[-1], expected, atol=1e-5, rtol=1e-5)


def test_resume_rejects_a_changed_config(tmp_path):
    train_set = TinyPairs(4)
    Trainer(_cfg(tmp_path, "c", validate=False), train_set).train(until_step=1)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(_cfg(tmp_path, "c", batch_size=2, accumulation_steps=1, validate=False), train_set).resume()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_training_and_resume(tmp_path):
    train_set = TinyPairs(6, seed=1)
    trainer = Trainer(_cfg(tmp_path, "gpu_a", device="cuda", max_steps=4, validate=False), train_set)
    assert trainer.use_bf16 and next(trainer.model.parameters()).is_cuda
    run_a = trainer.train()
    assert all(math.isfinite(v) for v in run_a.losses.values())
    cfg_b = _cfg(tmp_path, "gpu_b", device="cuda", max_steps=4, validate=False)
    Trainer(cfg_b, train_set).train(until_step=2)
    resumed = Trainer(cfg_b, train_set).train(resume=True)
    for step in (2, 3):  # GPU kernels may reorder sums: equal up to bf16 noise
        assert resumed.losses[step] == pytest.approx(run_a.losses[step], abs=1e-3)
    assert (tmp_path / "gpu_b" / "model" / "model.safetensors").is_file()


def test_cpu_bf16_runs_the_forward_pass_in_bfloat16_and_still_learns(tmp_path):
    cfg = _cfg(tmp_path, "bf16", mode="full", batch_size=2, accumulation_steps=1, epochs=24, lr=1e-3,
               min_lr=1e-3, warmup_fraction=0.0, validate=False, cpu_bf16=True)
    trainer = Trainer(cfg, TinyPairs(2, noise=0.0))
    seen = set()
    linear = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    result = trainer.train()
    assert seen == {torch.bfloat16}
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.6 * losses[0], losses
    off = Trainer(_cfg(tmp_path, "fp32", batch_size=2, accumulation_steps=1, epochs=1, validate=False),
                  TinyPairs(2, noise=0.0))
    seen.clear()
    next(m for m in off.model.modules() if isinstance(m, torch.nn.Linear)).register_forward_hook(
        lambda module, args, out: seen.add(out.dtype))
    off.train()
    assert seen == {torch.float32}


def test_final_model_records_the_size_it_was_trained_at(tmp_path):
    """Issue 14: a model trained at 28 px (tiny preset: img_size 56) saved img_size 56 alone;
    its config now records trained_img_size 28, with the preset's pos_embed shape."""
    cfg = _cfg(tmp_path, "size28", image_size=28, batch_size=2, accumulation_steps=1, epochs=1, validate=False)
    result = Trainer(cfg, TinyPairs(2, noise=0.0, size=28)).train()
    saved = json.loads((result.final_model / "config.json").read_text())
    assert (saved["img_size"], saved["trained_img_size"]) == (56, 28)
    final = load_model(result.final_model)
    assert final.config.default_input_size == 28
    assert final.aggregator.patch_embed.pos_embed.shape == (1, 17, 64)


def test_final_model_is_saved_without_a_deep_copy(tmp_path, monkeypatch):
    """Issue 14: the final save deep-copied the whole (1B) model to merge LoRA into the copy."""
    import copy

    real_deepcopy = copy.deepcopy

    def refuse(obj, *args, **kwargs):  # dataclasses.asdict deep-copies plain values: allowed
        if isinstance(obj, torch.nn.Module):
            raise AssertionError(f"copy.deepcopy of a {type(obj).__name__} while saving the final model")
        return real_deepcopy(obj, *args, **kwargs)

    cfg = _cfg(tmp_path, "nocopy", batch_size=2, accumulation_steps=1, epochs=1, validate=False)
    trainer = Trainer(cfg, TinyPairs(2, noise=0.0))
    trainer.train()
    images = collate_pairs([TinyPairs(1, seed=3)[0]])["images"]
    with torch.no_grad():
        expected = trainer.model(images)[-1]
    monkeypatch.setattr(copy, "deepcopy", refuse)
    path = trainer.save_final_model()
    with torch.no_grad():
        assert torch.equal(trainer.model(images)[-1], expected)  # the training model is untouched
        torch.testing.assert_close(load_model(path)(images)[-1], expected, atol=1e-5, rtol=1e-5)
