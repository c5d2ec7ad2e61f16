"""The shipping step's bookkeeping: training rounds appended once per run, budgets summed over
rounds, and the target verdict (the absolute baseline only counts with at least the relative
model's budget). The evaluation itself is covered by test_evaluation_pairs."""
from __future__ import annotations

import json
from pathlib import Path

from hpe_training.evaluation.ship_model import (
    append_round,
    baseline_verdict,
    meets_accuracy_target,
    read_history,
    total_steps,
)


def _fake_run(root: Path, steps: int, weights: bytes) -> Path:
    """A run directory as the trainer leaves it (config, metrics, final weights file)."""
    (root / "model").mkdir(parents=True)
    (root / "model" / "model.safetensors").write_bytes(weights)
    (root / "train_config.json").write_text(json.dumps({
        "mode": "full", "absolute": False, "batch_size": 16, "lr": 3e-4, "cpu_bf16": True,
        "train_root": ".hpe/data/train", "data_options": {"near_fraction": 0.7, "near_gap_deg": 30.0}}))
    (root / "metrics.json").write_text(json.dumps({"total_steps": steps}))
    return root


def test_rounds_are_appended_once_per_run_and_summed(tmp_path):
    model_dir = tmp_path / "default"
    model_dir.mkdir()
    (model_dir / "training_history.json").write_text(json.dumps(
        {"rounds": [{"round": 1, "date": "2026-11-22", "mode": "scratch", "steps": 1500}]}))
    run_a = _fake_run(tmp_path / "a", 3000, b"weights of run a")
    append_round(model_dir, run_a, "2 CPU threads", "10 min")
    history = append_round(model_dir, run_a, "2 CPU threads", "11 min")  # the same run shipped again
    assert [r["steps"] for r in history["rounds"]] == [1500, 3000]
    assert history["rounds"][-1]["wall_time"] == "11 min"
    run_b = _fake_run(tmp_path / "b", 8000, b"weights of run b")
    history = append_round(model_dir, run_b, "2 CPU threads", "95 min")
    assert [r["round"] for r in history["rounds"]] == [1, 2, 3]
    assert total_steps(read_history(model_dir)) == 12500
    assert history["rounds"][-1]["cpu_bf16"] is True and "0.7" in history["rounds"][-1]["data"]


def test_missing_history_is_empty(tmp_path):
    assert read_history(tmp_path) == {"rounds": []}
    assert total_steps(read_history(tmp_path)) == 0


def test_accuracy_target_needs_pairs_and_5_degrees():
    assert meets_accuracy_target({"pairs": 10, "mae": 4.9})
    assert not meets_accuracy_target({"pairs": 10, "mae": 5.1})
    assert not meets_accuracy_target({"pairs": 0})


def test_baseline_counts_only_with_at_least_the_relative_budget():
    better = baseline_verdict({"mae": 10.0}, {"mae": 12.0}, relative_steps=4500, absolute_steps=4500)
    assert better == {"relative_beats_absolute_on_hard_pairs": True, "absolute_budget_at_least_relative": True}
    longer = baseline_verdict({"mae": 10.0}, {"mae": 12.0}, relative_steps=12500, absolute_steps=4500)
    assert longer["relative_beats_absolute_on_hard_pairs"] and not longer["absolute_budget_at_least_relative"]
    worse = baseline_verdict({"mae": 22.0}, {"mae": 13.0}, relative_steps=4500, absolute_steps=4500)
    assert not worse["relative_beats_absolute_on_hard_pairs"]


def test_evaluation_is_recorded_in_the_latest_round_and_plotted(tmp_path):
    from hpe_training.evaluation.ship_model import held_out_summary, plot_training_rounds

    model_dir = tmp_path / "default"
    model_dir.mkdir()
    result = {"mode": "relative", "pairs": 40, "all": {"pairs": 40, "mae": 9.123},
              "gap_le_30": {"pairs": 10, "mae": 4.5}, "gap_ge_60": {"pairs": 0}}
    history = append_round(model_dir, _fake_run(tmp_path / "a", 3000, b"a"), "cpu", "1 min",
                           held_out_summary(result, "2026-12-01T00:00Z"))
    assert history["rounds"][-1]["held_out_mae_deg"] == {
        "evaluated": "2026-12-01T00:00Z", "pairs": 40, "all": 9.12, "gap_le_30": 4.5}
    assert read_history(model_dir) == history
    plot_training_rounds(history, None, tmp_path / "rounds.png")
    assert (tmp_path / "rounds.png").stat().st_size > 1000
