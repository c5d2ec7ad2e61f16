"""The vggt-1b preset has exactly the official aggregator.* / camera_head.* keys and shapes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera, lora_target_module_names

MANIFEST = Path(__file__).resolve().parents[2].parent / "shared" / "oracle" / "vggt_1b_state_dict_shapes.json"

pytestmark = pytest.mark.skipif(not MANIFEST.is_file(), reason=f"1B key manifest not found at {MANIFEST}")


@pytest.fixture(scope="module")
def meta_model() -> VGGTCamera:
    with torch.device("meta"):
        return VGGTCamera(get_preset("vggt-1b"))


@pytest.fixture(scope="module")
def official_shapes() -> dict:
    return json.loads(MANIFEST.read_text())["keys"]


def test_1b_keys_and_shapes_equal_the_official_manifest(meta_model: VGGTCamera, official_shapes: dict) -> None:
    expected = {k: tuple(v) for k, v in official_shapes.items() if k.startswith(("aggregator.", "camera_head."))}
    ours = {k: tuple(v.shape) for k, v in meta_model.state_dict().items()}
    assert len(expected) == 1279
    assert sorted(set(expected) - set(ours)) == []  # nothing missing
    assert sorted(set(ours) - set(expected)) == []  # nothing extra
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert wrong == {}
    assert all(v.device.type == "meta" for v in meta_model.state_dict().values())


def test_1b_manifest_other_heads_are_the_only_rest(official_shapes: dict) -> None:
    rest = {k.split(".", 1)[0] for k in official_shapes if not k.startswith(("aggregator.", "camera_head."))}
    assert rest == {"depth_head", "point_head", "track_head"}


def test_1b_lora_targets(meta_model: VGGTCamera) -> None:
    names = lora_target_module_names(meta_model)
    assert len(names) == 24 * 2 * 4
    assert all(n.startswith(("aggregator.frame_blocks.", "aggregator.global_blocks.")) for n in names)
    lora_params = 0
    for name in names:
        layer = meta_model.get_submodule(name)
        lora_params += 8 * (layer.in_features + layer.out_features)
    assert lora_params == 6_291_456  # "about 6.3 M" in the paper
