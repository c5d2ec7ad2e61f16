"""LatestQueue: bounded, drop-oldest, never blocks the producer."""
from __future__ import annotations

import threading
import time

import pytest

from hpe_core.latest_queue import LatestQueue


def test_latest_wins_and_counts_drops():
    q: LatestQueue[int] = LatestQueue(capacity=1)
    for i in range(5):
        assert q.put(i)
    assert len(q) == 1
    assert q.dropped == 4
    assert q.get(timeout_s=0.1) == 4
    assert q.get(timeout_s=0.01) is None


def test_capacity_two_keeps_newest_two_in_order():
    q: LatestQueue[int] = LatestQueue(capacity=2)
    for i in range(6):
        q.put(i)
    assert [q.get(0.01), q.get(0.01)] == [4, 5]
    assert q.high_water == 2


def test_slow_consumer_queue_stays_bounded():
    """A producer at ~1 kHz against a consumer at ~50 Hz: the queue never grows past capacity."""
    q: LatestQueue[int] = LatestQueue(capacity=1)
    seen: list[int] = []
    stop = threading.Event()

    def consumer() -> None:
        while not stop.is_set():
            item = q.get(timeout_s=0.05)
            if item is not None:
                seen.append(item)
                time.sleep(0.02)

    worker = threading.Thread(target=consumer)
    worker.start()
    max_len = 0
    for i in range(300):
        q.put(i)
        max_len = max(max_len, len(q))
        time.sleep(0.001)
    stop.set()
    q.close()
    worker.join(timeout=2)
    assert max_len <= 1 and q.high_water == 1
    assert seen == sorted(seen)  # order kept
    assert q.dropped > 0 and len(seen) + q.dropped + len(q) == 300


def test_close_wakes_waiting_consumer_and_refuses_put():
    q: LatestQueue[int] = LatestQueue()
    results: list = []
    t = threading.Thread(target=lambda: results.append(q.get(timeout_s=5.0)))
    t.start()
    time.sleep(0.05)
    q.close()
    t.join(timeout=1)
    assert not t.is_alive() and results == [None]
    assert q.put(1) is False


def test_bad_capacity():
    with pytest.raises(ValueError):
        LatestQueue(capacity=0)
