"""hpe-soak's bookkeeping: answers matched to published frames, drops, backlog, memory slope.
(The stream itself runs against the real node in tests/ros/test_node_reliability.py.)"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from hpe_training.bench.soak import StreamRecord, build_parser, memory_slope_mb_per_min, summarize


def _answer(sec: int, nanosec: int):
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)), heads=[])


def test_summary_counts_drops_latency_order_and_backlog():
    record = StreamRecord(published_s={(1, 0): 10.0, (1, 500): 10.1, (2, 0): 10.2, (3, 0): 10.3},
                          heads_before=1, end_s=10.3)
    client = SimpleNamespace(
        heads=[_answer(0, 7), _answer(1, 0), _answer(2, 0), _answer(9, 9)],  # first: before; last: not ours
        heads_received_s=[9.0, 10.05, 10.5, 10.6])
    s = summarize(client, record)
    assert (s["published"], s["answered"], s["dropped"]) == (4, 2, 2)
    assert s["answers_in_stamp_order"] and s["backlog_after_stop"] == 1
    assert s["latency_p50_ms"] == pytest.approx((50.0 + 300.0) / 2)
    assert s["latency_max_ms"] == pytest.approx(300.0)
    out_of_order = SimpleNamespace(heads=[_answer(2, 0), _answer(1, 0)], heads_received_s=[10.3, 10.4])
    assert not summarize(out_of_order, StreamRecord(published_s=record.published_s, end_s=10.3))["answers_in_stamp_order"]


def test_memory_slope_skips_the_warm_up():
    flat_after_warm_up = [(0.0, 500e6), (10.0, 530e6)] + [(10.0 + 10 * i, 530e6) for i in range(1, 30)]
    assert memory_slope_mb_per_min(flat_after_warm_up) == pytest.approx(0.0, abs=1e-9)
    leak = [(60.0 * i, 500e6 + 3e6 * i) for i in range(12)]  # 3 MB a minute
    assert memory_slope_mb_per_min(leak) == pytest.approx(3.0)
    assert memory_slope_mb_per_min(leak[:2]) is None


def test_parser_defaults_to_ten_minutes_at_30_hz():
    args = build_parser().parse_args([])
    assert args.minutes == 10.0 and args.rate_hz == 30.0 and (args.width, args.height) == (640, 480)
