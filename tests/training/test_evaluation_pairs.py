"""Pair evaluation by anchor gap on generated held-out data (tiny model, real data pipeline)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera
from hpe_training.evaluation.synthetic_pairs import GAP_BINS_DEG, evaluate_pairs, plot_error_vs_gap, sample_pairs
from hpe_training.synth.generator import SynthConfig, generate


@pytest.fixture(scope="module")
def val_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    generate(SynthConfig(out=root, identities=2, lightings=1, expressions=1, views=4, size=96, seed=5,
                         mesh_level=3, msaa=0, photos=False), progress=False)
    return root


def test_sample_pairs_distinct_within_groups_and_deterministic():
    groups = [[0, 1, 2], [3, 4]]
    pairs = sample_pairs(groups, 5, seed=1)
    assert pairs == sample_pairs(groups, 5, seed=1) and len(set(pairs)) == 5
    assert all((a in g and q in g and a != q) for a, q in pairs for g in groups if a in g)
    assert len(sample_pairs(groups, 100, seed=1)) == 3 * 2 + 2 * 1


def test_evaluate_pairs_bins_cover_every_pair(val_root, tmp_path):
    torch.manual_seed(0)
    model = VGGTCamera(get_preset("tiny"))
    result = evaluate_pairs(model, val_root, n_pairs=20, progress=False)
    assert result["pairs"] == 20 == result["all"]["pairs"]
    assert sum(b["pairs"] for b in result["by_gap"]) == 20
    assert [b["gap_deg"][0] for b in result["by_gap"]] == list(GAP_BINS_DEG[:-1])
    gaps = np.array(result["raw"]["gap_deg"])
    assert result["gap_le_30"]["pairs"] == int((gaps <= 30).sum())
    # an untrained network is far from the truth: the metric is not trivially zero
    assert result["all"]["geodesic_deg"] > 5.0
    absolute = evaluate_pairs(model, val_root, n_pairs=20, absolute=True, progress=False)
    assert absolute["all"]["geodesic_deg"] != result["all"]["geodesic_deg"]
    plot_error_vs_gap([result, absolute], tmp_path / "gap.png")
    assert (tmp_path / "gap.png").stat().st_size > 1000
