"""Two-process DDP training on the CPU (gloo, torchrun, env://).

The test launches this very file with ``torchrun --nproc_per_node 2``; each process trains on
its shard and writes its final trainable weights. Both ranks must end identical, different
from the start, and equal (up to float summation order) to a one-process run whose batch holds
the same pairs (2 processes x batch 1 == 1 process x batch 2).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hpe_training.train.config import TrainConfig
from hpe_training.train.data import build_datasets
from hpe_training.train.distributed import init_distributed, shutdown_distributed
from hpe_training.train.modes import saved_state
from hpe_training.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]


def _run(config: TrainConfig, out: Path) -> None:
    """Train with ``config`` in this process (distributed when launched by torchrun) and write
    ``rank<r>_start.safetensors``, ``rank<r>_end.safetensors`` and ``rank<r>.json`` to ``out``."""
    torch.set_num_threads(1)
    ctx = init_distributed(config.device)
    try:
        train_set, val_set = build_datasets(config)
        trainer = Trainer(config, train_set, val_set, ctx)
        save_file(saved_state(trainer.model, config), str(out / f"rank{ctx.rank}_start.safetensors"))
        result = trainer.train()
        save_file(saved_state(trainer.model, config), str(out / f"rank{ctx.rank}_end.safetensors"))
        (out / f"rank{ctx.rank}.json").write_text(json.dumps(
            {"world_size": ctx.world_size, "losses": result.losses, "validations": result.validations}))
        trainer.close()
    finally:
        shutdown_distributed(ctx)


def _config(train, val, out, batch_size):
    return TrainConfig(train_root=str(train), val_root=str(val), preset="tiny", image_size=56,
                       batch_size=batch_size, accumulation_steps=2, epochs=2, lr=1e-3, num_workers=0,
                       device="cpu", output_dir=str(out), checkpoint_every=0, progress=False, seed=11)


def test_two_process_gloo_matches_one_process(tmp_path):
    from hpe_training.synth.generator import SynthConfig, generate

    common = dict(lightings=1, expressions=1, views=3, size=64, mesh_level=3, photos=False)
    generate(SynthConfig(out=tmp_path / "train", identities=2, **common), progress=False)
    generate(SynthConfig(out=tmp_path / "val", identities=1, identity_offset=50, **common), progress=False)

    ddp_out = tmp_path / "ddp"
    ddp_out.mkdir()
    config_path = tmp_path / "ddp.json"
    config_path.write_text(_config(tmp_path / "train", tmp_path / "val", ddp_out, batch_size=1).to_json())
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           __file__, str(config_path), str(ddp_out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [json.loads((ddp_out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 2
    start0, end0, end1 = (load_file(str(ddp_out / name)) for name in
                          ("rank0_start.safetensors", "rank0_end.safetensors", "rank1_end.safetensors"))
    assert end0.keys() == end1.keys() == start0.keys()
    for key in end0:
        assert torch.equal(end0[key], end1[key]), key
    assert any(not torch.equal(end0[k], start0[k]) for k in end0)
    assert all(not torch.equal(end0[k], start0[k]) for k in end0 if ".lora_B." in k)
    assert (ddp_out / "model" / "model.safetensors").is_file()  # rank 0 exported the merged model

    # the same pairs in one process with batch 2 give the same training (float order aside)
    single_out = tmp_path / "single"
    single_out.mkdir()
    _run(_config(tmp_path / "train", tmp_path / "val", single_out, batch_size=2), single_out)
    single = json.loads((single_out / "rank0.json").read_text())
    for step, loss in ranks[0]["losses"].items():
        assert abs(single["losses"][step] - loss) < 1e-5
    end_single = load_file(str(single_out / "rank0_end.safetensors"))
    for key in end0:
        torch.testing.assert_close(end_single[key], end0[key], atol=2e-5, rtol=1e-4)
    assert ranks[0]["validations"][-1]["pairs"] == 3
    assert abs(ranks[0]["validations"][-1]["mae"] - single["validations"][-1]["mae"]) < 1e-2


if __name__ == "__main__":
    _run(TrainConfig.from_file(sys.argv[1]), Path(sys.argv[2]))
