"""Checkpoints measured on a real face (the astronaut's roll sweep) for model selection, and the
model card's real-face section."""
from __future__ import annotations

import json
import math

import pytest
import torch

from hpe_core.vggt.config import get_preset
from hpe_core.vggt.model import VGGTCamera
from hpe_training.evaluation.checkpoint_select import (PLOT_FILE, best, candidates, measure_new, model_from_checkpoint,
                                                       read_rows)
from hpe_training.evaluation.ship_model import real_section
from hpe_training.train.checkpointing import write_checkpoint


def _run_with_checkpoints(tmp_path, steps=(10, 20)):
    torch.manual_seed(0)
    run = tmp_path / "run"
    models = {}
    for step in steps:
        model = VGGTCamera(get_preset("tiny"))
        state = {"config": {"preset": "tiny", "image_size": 56, "mode": "full", "data_options": {"crop": "aligned"}}}
        write_checkpoint(run, step, model.state_dict(), state, keep=5)
        models[step] = model
    return run, models


def test_checkpoint_becomes_the_model_it_was(tmp_path):
    run, models = _run_with_checkpoints(tmp_path, steps=(10,))
    [(label, directory)] = candidates(run)
    assert label == "step_00000010"
    model = model_from_checkpoint(directory)
    assert model.config.crop_mode == "aligned" and model.config.default_input_size == 56
    for key, value in models[10].state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_new_checkpoints_are_measured_once_on_the_real_face(tmp_path):
    run, _ = _run_with_checkpoints(tmp_path)
    out = tmp_path / "selection"
    rows = measure_new(run, out, labelled=None, val=None, val_pairs=0)
    assert [r["checkpoint"] for r in rows] == ["step_00000010", "step_00000020"]
    for r in rows:
        assert r["crop"] == "aligned" and r["step"] in (10, 20)
        assert math.isfinite(r["roll_sweep_mean_deg"]) and r["roll_sweep_mean_deg"] >= 0
        assert math.isnan(r["real_score_deg"])  # no mirror pairs without labelled photos
    assert (out / PLOT_FILE).is_file()
    assert measure_new(run, out, labelled=None, val=None, val_pairs=0) == []  # nothing new
    assert len(read_rows(out)) == 2
    assert best(read_rows(out)) is None


def test_best_is_the_lowest_real_score():
    rows = [{"checkpoint": "a", "real_score_deg": 9.0}, {"checkpoint": "b", "real_score_deg": 4.0},
            {"checkpoint": "c", "real_score_deg": float("nan")}]
    assert best(rows)["checkpoint"] == "b"


def test_card_real_section_marks_each_target():
    real = {"measured": "2026-12-03T10:00Z", "labelled": "dev", "roll_sweep_mean_deg": 1.5, "roll_sweep_max_deg": 3.0,
            "mirror_error_le90_deg": 20.0, "mirror_pairs_le90": 5, "mirror_error_gt90_deg": 60.0,
            "mirror_pairs_gt90": 3, "mirror_slope": 0.9, "mirror_found": 8,
            "targets": {"roll_sweep_mean_deg": 2.0, "mirror_error_le90_deg": 12.0, "mirror_slope": 0.85}}
    text = real_section({"real_faces": real})
    roll, near, slope = [line for line in text.splitlines() if line.startswith("| roll") or "<= 90 deg (" in line
                         or "slope (" in line]
    assert roll.endswith("| met |") and near.endswith("| NOT met |") and slope.endswith("| met |")
    assert real_section({}) == ""
    json.dumps(real)  # what ship_model stores is JSON


@pytest.mark.parametrize("mode", ["lora", "head_only"])
def test_adapter_checkpoints_are_refused(tmp_path, mode):
    model = VGGTCamera(get_preset("tiny"))
    d = write_checkpoint(tmp_path / "r", 1, model.state_dict(), {"config": {"preset": "tiny", "image_size": 56,
                                                                          "mode": mode}})
    with pytest.raises(ValueError, match="full/scratch"):
        model_from_checkpoint(d)
