"""Log throttling per cause: a repeated problem is logged once, then at most once per period
with how many repeats were held back, while a new cause is logged at once.

rclpy's ``throttle_duration_sec`` throttles per call site: two different problems on the same
line silence each other, and one problem at 30 Hz still floods a log every period with the same
11-line traceback. :class:`CauseThrottle` keys on the cause (e.g. the exception type and message)
instead. Thread-safe; the number of remembered causes is bounded (oldest forgotten first), so
random input cannot grow it without limit.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class LogDecision:
    """Whether to log now.

    Attributes:
        log: write the line now.
        first: the first time this cause is seen (worth a traceback).
        suppressed: repeats of the cause held back since it was last logged.
    """

    log: bool
    first: bool = False
    suppressed: int = 0

    def suffix(self) -> str:
        """Text to append to the line: how many repeats were held back (empty when none)."""
        return f" (repeated {self.suppressed} more times since last logged)" if self.suppressed else ""


class CauseThrottle:
    """Per-cause throttle (module docstring)."""

    def __init__(self, period_s: float = 10.0, max_causes: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if period_s < 0 or max_causes < 1:
            raise ValueError(f"period_s must be >= 0 and max_causes >= 1, got {period_s}, {max_causes}")
        self.period_s, self.max_causes, self._clock = period_s, max_causes, clock
        self._lock = threading.Lock()
        self._causes: "OrderedDict[str, list[float]]" = OrderedDict()  # cause -> [last logged at, held back]

    def check(self, cause: str, now_s: Optional[float] = None) -> LogDecision:
        """Decide on one occurrence of ``cause`` (any string; only its first 200 characters count)."""
        key = cause[:200]
        now = self._clock() if now_s is None else now_s
        with self._lock:
            entry = self._causes.get(key)
            if entry is None:
                self._causes[key] = [now, 0]
                while len(self._causes) > self.max_causes:
                    self._causes.popitem(last=False)
                return LogDecision(True, first=True)
            self._causes.move_to_end(key)
            if now - entry[0] >= self.period_s:
                held, entry[0], entry[1] = int(entry[1]), now, 0
                return LogDecision(True, suppressed=held)
            entry[1] += 1
            return LogDecision(False)
