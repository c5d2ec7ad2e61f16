"""Running statistics of the head pose node for /diagnostics (plain Python, thread-safe)."""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Iterable, Optional


def expected_error_summary(expected_errors_deg: Iterable[float]) -> dict[str, Optional[float]]:
    """``{"mean": ..., "max": ...}`` of the known (finite) expected errors, degrees; both
    ``None`` when no error is known (no head, or only NaN)."""
    known = [float(e) for e in expected_errors_deg if math.isfinite(e)]
    if not known:
        return {"mean": None, "max": None}
    return {"mean": sum(known) / len(known), "max": max(known)}


class NodeStats:
    """Frame rate over a sliding window, mean latency per stage, drops, the last error and
    the expected orientation error of the last processed frame's heads.

    Times are wall-clock seconds from ``time.monotonic`` (not the image stamps).
    """

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._done: deque[float] = deque()
        self._latency_sum: dict[str, float] = {}
        self._latency_n = 0
        self.frames_processed = 0
        self.frames_failed = 0
        self.frames_skipped = 0
        self.last_error: Optional[str] = None
        self._last_error_t: Optional[float] = None
        self._expected_errors_deg: tuple[float, ...] = ()

    def frame_done(self, timings_ms: dict[str, float], expected_errors_deg: Iterable[float] = ()) -> None:
        """A frame was processed: its stage timings (ms) and the ``expected_error_deg``
        (degrees, NaN = unknown) of each of its heads with a pose."""
        now = time.monotonic()
        errors = tuple(float(e) for e in expected_errors_deg)
        with self._lock:
            self.frames_processed += 1
            self._expected_errors_deg = errors
            self._done.append(now)
            for key, value in timings_ms.items():
                self._latency_sum[key] = self._latency_sum.get(key, 0.0) + float(value)
            self._latency_n += 1

    def frame_failed(self, error: str) -> None:
        with self._lock:
            self.frames_failed += 1
            self.last_error = error
            self._last_error_t = time.monotonic()

    def frame_skipped(self, reason: str) -> None:
        with self._lock:
            self.frames_skipped += 1
            self.last_error = reason
            self._last_error_t = time.monotonic()

    def snapshot(self) -> dict[str, Any]:
        """Stats for :func:`hpe_ros.diagnostics_conversion.diagnostic_array_from_stats`;
        mean latencies are over the frames since the previous snapshot."""
        now = time.monotonic()
        with self._lock:
            while self._done and now - self._done[0] > self.window_s:
                self._done.popleft()
            rate = len(self._done) / self.window_s
            latency = {k: v / self._latency_n for k, v in self._latency_sum.items()} if self._latency_n else {}
            self._latency_sum.clear()
            self._latency_n = 0
            return {
                "rate_hz": rate,
                "latency_ms": latency,
                "expected_error_deg": expected_error_summary(self._expected_errors_deg),
                "frames_processed": self.frames_processed,
                "frames_failed": self.frames_failed,
                "frames_skipped": self.frames_skipped,
                "last_error": self.last_error,
                "last_error_age_s": None if self._last_error_t is None else now - self._last_error_t,
            }
