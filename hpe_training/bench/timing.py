"""Wall-clock latency statistics of a callable."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Latency over ``runs`` timed calls after ``warmup`` untimed ones, in milliseconds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    runs: int
    warmup: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_latency(fn: Callable[[], Any], runs: int, warmup: int) -> LatencyStats:
    """Call ``fn`` ``warmup`` times, then time ``runs`` calls with ``time.perf_counter``.

    ``fn`` must return only once its work is finished (the estimators copy their result to the
    host, which synchronises CUDA).
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got {runs}, {warmup}")
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - start) * 1000.0
    return LatencyStats(float(np.median(times)), float(np.percentile(times, 90)), float(times.min()),
                        runs, warmup)
