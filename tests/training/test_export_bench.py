"""``hpe-bench`` (latency of the exported and eager backends) on the tiny preset, few runs."""

import importlib.util
import json

import pytest
import torch

from hpe_training.bench.cli import EXIT_NO_CUDA, main
from hpe_training.bench.timing import measure_latency


def test_cpu_benchmark_reports_every_backend_and_k(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--preset", "tiny", "--runs", "2", "--warmup", "1", "--anchors", "1", "2",
                 "--threads", "1", "--pipeline-frames", "6", "--batched-frames", "6", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "machine:" in printed and "logical cores" in printed and "cache saving" in printed
    assert "pipeline stages" in printed and "peak" in printed and "faces batched" in printed
    results = json.loads(out.read_text())
    assert results["preset"] == "tiny" and results["input_size_hw"] == [56, 56]
    assert results["machine"]["torch"] == torch.__version__ and results["machine"]["onnxruntime"]
    rows = results["results"]
    assert [(r["backend"].split()[0], r["K"]) for r in rows] == [
        ("torch", 1), ("torch", 2), ("onnxruntime", 1), ("onnxruntime", 2)]
    for row in rows:
        for kind in ("cached", "uncached"):
            stats = row[kind]
            assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"] and stats["runs"] == 2
        assert row["cache_saving"] == pytest.approx(1 - row["cached"]["median_ms"] / row["uncached"]["median_ms"])
    assert [r["ratio_to_reference"] for r in rows[:2]] == [1.0, 1.0]
    assert rows[2]["ratio_to_reference"] == pytest.approx(
        rows[2]["cached"]["median_ms"] / rows[0]["cached"]["median_ms"])
    # pipeline stages: per backend, one and three faces, every stage timed
    stages = results["pipeline_stages"]
    mesh = [("facemesh", 1), ("facemesh", 3)] * 2 if importlib.util.find_spec("ai_edge_litert") else []
    assert [(r["backend"].split()[0], r["faces"]) for r in stages] == [
        ("torch", 1), ("torch", 3), ("onnxruntime", 1), ("onnxruntime", 3)] + mesh
    if mesh:
        assert "2 workers" in stages[-1]["backend"]
    for r in stages:
        assert r["frames_timed"] == 3
        assert set(r["stages"]) == {"detect", "crop", "estimate", "fuse", "total"}
        assert r["stages"]["total"]["median_ms"] >= r["stages"]["detect"]["median_ms"] > 0
    three = [r for r in stages if r["faces"] == 3]
    assert all(r["mean_heads_estimated"] >= 2 for r in three)  # MTCNN finds the side-by-side heads
    assert results["memory_end"]["peak_rss_mib"] >= results["memory_end"]["rss_mib"] > 50
    # faces batched: the same estimators and streams, per-face and batched estimate stage timed
    batched = results["faces_batched"]
    assert [(r["backend"], r["faces"]) for r in batched] == [(r["backend"], r["faces"]) for r in stages]
    for r in batched:
        assert r["frames_timed"] == 3 and r["per_face_ms"] > 0 and r["batched_ms"] > 0
        assert r["speedup"] == pytest.approx(r["per_face_ms"] / r["batched_ms"])


def test_gpu_mode_says_why_it_cannot_run(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the GPU benchmark is too slow for the test suite")
    assert main(["--gpu"]) == EXIT_NO_CUDA
    assert "no CUDA GPU" in capsys.readouterr().err


def test_measure_latency_counts_calls():
    calls = []
    stats = measure_latency(lambda: calls.append(1), runs=5, warmup=2)
    assert len(calls) == 7 and stats.runs == 5 and stats.warmup == 2
    with pytest.raises(ValueError):
        measure_latency(lambda: None, runs=0, warmup=0)


def test_flops_of_a_cached_estimate_and_fraction_of_peak():
    """FLOPs grow with K by the pair stage only (the query is embedded once), and the
    fraction of peak is achieved / peak."""
    from hpe_core.vggt.config import get_preset
    from hpe_training.bench.flops import cached_estimate_flops, fraction_of_peak, peak_tflops

    config = get_preset("tiny")
    f1, f2, f4 = (cached_estimate_flops(config, k, (56, 56)) for k in (1, 2, 4))
    assert 0 < f1 < f2 < f4
    assert f4 - f2 == pytest.approx(2 * (f2 - f1), rel=1e-6)  # linear in K: one pair stage per anchor
    out = fraction_of_peak(int(2e12), 4.0, 989.0)
    assert out["achieved_tflops"] == pytest.approx(500.0) and out["fraction_of_peak"] == pytest.approx(500 / 989)
    assert fraction_of_peak(int(1e12), 1.0, None)["fraction_of_peak"] is None
    assert peak_tflops("NVIDIA H200") == 989.0 and peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("Some GPU") is None and peak_tflops(None) is None


@pytest.mark.slow
@pytest.mark.ros
def test_node_end_to_end_with_one_and_three_faces(tmp_path, capsys):
    """--node-seconds runs the real node (own process, shipped model) on both streams."""
    pytest.importorskip("rclpy")
    out = tmp_path / "bench.json"
    assert main(["--preset", "tiny", "--runs", "1", "--warmup", "0", "--anchors", "1", "--no-onnxruntime",
                 "--threads", "1", "--pipeline-frames", "0", "--node-seconds", "3", "--json", str(out)]) == 0
    assert "node end to end" in capsys.readouterr().out
    rows = json.loads(out.read_text())["node_end_to_end"]
    assert [r["faces"] for r in rows] == ["1", "3"]
    for r in rows:
        assert r["published"] >= 60 and 0 < r["answered"] <= r["published"]
        assert r["answers_in_stamp_order"] and r["latency_p50_ms"] > 0
