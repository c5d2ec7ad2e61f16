"""``hpe-train`` end to end on a tiny hpe-synth dataset (real reader, pairs and generator)."""
import json

import pytest
import torch

from hpe_core.vggt.checkpoints import load_model
from hpe_training.synth.generator import SynthConfig, generate
from hpe_training.train.batch import check_sample
from hpe_training.train.cli import main
from hpe_training.train.config import TrainConfig
from hpe_training.train.data import build_datasets


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    common = dict(lightings=1, expressions=1, views=3, size=64, mesh_level=3, photos=False)
    generate(SynthConfig(out=root / "train", identities=2, **common), progress=False)
    generate(SynthConfig(out=root / "val", identities=1, identity_offset=100, **common), progress=False)
    return root / "train", root / "val"


def _write_config(path, train, val, out, **extra):
    cfg = {"train_root": str(train), "val_root": str(val), "preset": "tiny", "image_size": 56,
           "batch_size": 1, "accumulation_steps": 2, "epochs": 1, "num_workers": 0, "device": "cpu",
           "output_dir": str(out), "checkpoint_every": 1, "progress": False, "seed": 3,
           "data_options": {"margin_range": [0.4, 0.6]}, **extra}
    path.write_text(json.dumps(cfg))
    return path


def test_datasets_follow_the_contract(synth_roots):
    train, val = synth_roots
    cfg = TrainConfig(train_root=str(train), val_root=str(val), preset="tiny", image_size=56)
    train_set, val_set = build_datasets(cfg)
    assert len(train_set) == 6 and len(val_set) == 3
    sample = train_set[0]
    check_sample(sample)
    assert sample["images"].shape == (2, 3, 56, 56)
    assert torch.allclose(sample["pose_enc"][0, :7], torch.tensor([0, 0, 0, 0, 0, 0, 1.0]), atol=1e-5)
    absolute, _ = build_datasets(TrainConfig(train_root=str(train), preset="tiny", image_size=56, absolute=True))
    anchor_abs = absolute[0]
    assert not torch.allclose(anchor_abs["pose_enc"][0, :3], torch.zeros(3), atol=1e-3)  # own pose, not identity
    assert torch.allclose(anchor_abs["abs_rotation"], sample["abs_rotation"], atol=1e-6)
    with pytest.raises(ValueError, match="data_options"):
        build_datasets(TrainConfig(train_root=str(train), data_options={"bogus": 1}))


def test_cli_trains_validates_and_exports(synth_roots, tmp_path, capsys):
    train, val = synth_roots
    out = tmp_path / "run"
    config = _write_config(tmp_path / "train.json", train, val, out)
    assert main(["--config", str(config), "--override", "lr=5e-4", "--override", "max_steps=2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["total_steps"] == 2
    assert summary["validation"]["pairs"] == 3 and summary["validation"]["mae"] >= 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["validations"]) == 1
    model = load_model(out / "model")  # merged LoRA in our format, what hpe-export reads
    assert model(torch.rand(1, 2, 3, 56, 56))[-1].shape == (1, 2, 9)
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000001", "step_00000002"]
    # resuming a finished run does no step and keeps the result
    assert main(["--config", str(config), "--override", "max_steps=2", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2


def test_cli_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: half\n")
    assert main(["--config", str(bad)]) == 2
    assert "mode" in capsys.readouterr().err
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"train_root: {tmp_path / 'nowhere'}\npreset: tiny\nimage_size: 56\n")
    assert main(["--config", str(missing)]) == 2
