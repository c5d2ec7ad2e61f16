"""VGGTConfig: presets, validation, JSON round trip, parameter budgets."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hpe_core.vggt.config import PRESET_NAMES, VGGTConfig, get_preset
from hpe_core.vggt.model import VGGTCamera

ORACLE_CONFIG = Path(__file__).resolve().parents[2].parent / "shared" / "oracle" / "vggt_tiny_config.json"


def _n_params(config: VGGTConfig) -> int:
    with torch.device("meta"):
        model = VGGTCamera(config)
    return sum(p.numel() for p in model.parameters())


def test_presets_build_and_round_trip(tmp_path: Path) -> None:
    assert set(PRESET_NAMES) == {"vggt-1b", "tiny", "small"}
    for name in PRESET_NAMES:
        config = get_preset(name)
        path = tmp_path / f"{name}.json"
        config.to_json(path)
        assert VGGTConfig.from_json(path) == config
        assert VGGTConfig.from_dict(json.loads(config.to_json())) == config


def test_get_preset_returns_independent_copies() -> None:
    a = get_preset("tiny")
    a.depth = 7
    assert get_preset("tiny").depth == 2


def test_unknown_preset_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown VGGT preset"):
        get_preset("huge")


@pytest.mark.skipif(not ORACLE_CONFIG.is_file(), reason=f"oracle config not found at {ORACLE_CONFIG}")
def test_tiny_preset_equals_the_oracle_config() -> None:
    assert VGGTConfig.from_json(ORACLE_CONFIG) == get_preset("tiny")


def test_parameter_counts() -> None:
    # official figure (shared notes): aggregator + camera head = 1,125,286,930 parameters
    assert _n_params(get_preset("vggt-1b")) == 1_125_286_930
    small = _n_params(get_preset("small"))
    assert 5_000_000 < small < 15_000_000
    assert _n_params(get_preset("tiny")) < 1_000_000


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"embed_dim": 100}, "num_heads"),
        ({"img_size": 50}, "multiple of patch_size"),
        ({"num_heads": 32}, "multiple of 4"),  # head dim 64 / 32 = 2: too small for 2D RoPE
        ({"aa_order": ["frame", "frame"]}, "aa_order"),
        ({"aa_block_size": 3}, "aa_block_size"),
        ({"rope_freq": 0}, "rope_freq"),
        ({"camera_head": {"dim_in": 64}}, "2 \\* embed_dim"),
        ({"camera_head": {"dim_in": 128, "fl_act": "sigmoid"}}, "fl_act"),
        ({"patch_embed": {"kind": "resnet"}}, "patch_embed.kind"),
        ({"bogus": 1}, "unknown field"),
        ({"camera_head": {"dim_in": 128, "bogus": 1}}, "unknown field"),
    ],
)
def test_invalid_configs_raise_clear_value_errors(changes: dict, message: str) -> None:
    data = get_preset("tiny").to_dict()
    for key, value in changes.items():
        if isinstance(value, dict) and key in ("camera_head", "patch_embed"):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    with pytest.raises(ValueError, match=message):
        VGGTConfig.from_dict(data)


def test_from_json_rejects_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        VGGTConfig.from_json(path)


def test_trained_img_size_is_a_default_input_size_not_a_shape() -> None:
    """Issue 14: a model trained at 224 px saved ``img_size: 518``. The trained size has its own
    field; ``img_size`` (the positional-embedding shape) stays, so the 1B weights still load."""
    def shapes(config: VGGTConfig) -> dict:
        with torch.device("meta"):
            return {k: tuple(v.shape) for k, v in VGGTCamera(config).state_dict().items()}

    official = get_preset("vggt-1b")
    trained = VGGTConfig.from_dict({**official.to_dict(), "trained_img_size": 224})
    assert (trained.img_size, trained.trained_img_size, trained.default_input_size) == (518, 224, 224)
    assert official.default_input_size == 518 and official.trained_img_size is None
    assert shapes(trained) == shapes(official)
    assert shapes(trained)["aggregator.patch_embed.pos_embed"] == (1, 37 * 37 + 1, 1024)
    # JSON round trip; left out of the JSON when None (presets, oracle and old files unchanged)
    assert VGGTConfig.from_dict(json.loads(trained.to_json())) == trained
    assert json.loads(trained.to_json())["trained_img_size"] == 224
    for name in PRESET_NAMES:
        assert "trained_img_size" not in get_preset(name).to_dict()
    for bad in (0, 30, 7, True, "224"):
        with pytest.raises(ValueError, match="trained_img_size"):
            VGGTConfig.from_dict({**get_preset("tiny").to_dict(), "trained_img_size": bad})
