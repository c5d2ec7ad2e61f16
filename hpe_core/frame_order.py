"""Which camera frames to process, by stamp: frames must move forward in time.

A stream can deliver a frame late (a reordering transport, a bag replayed out of order, a second
publisher on the topic with a lagging clock). Processing it would move the trackers backwards
and publish a head pose (and TF) older than one already published, which TF listeners reject.
So the rule is:

* **out of order**: a frame whose stamp is not later than the last *processed* frame's stamp
  (older, or the same stamp again) is dropped;
* **too old**: a frame older than the newest stamp seen so far by more than ``max_age_s``
  (``0`` = no limit) is dropped, so a backlog never turns into stale output;
* **ahead**: a frame stamped more than ``max_ahead_s`` (``0`` = no limit) later than the
  receiver's clock (``now_s`` given to :meth:`FrameOrderGate.admit`; a clock at 0, e.g. sim time
  before the first ``/clock``, is not judged) is dropped *without being remembered*: one frame
  stamped an hour (or 2^31 s) ahead must not make every later good frame look old.

Judge only frames that are otherwise valid (the node converts and checks a frame first): a frame
refused for its encoding or size never reaches the gate, so its stamp is not remembered either.

Stamps are seconds (``header.stamp`` as a float). Counts are kept for diagnostics. A camera whose
clock jumps backwards (a restarted bag) is therefore ignored until its stamps pass the last
processed one again; :meth:`FrameOrderGate.reset` (the node does it on configure) forgets the
history.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class FrameVerdict:
    """Outcome of :meth:`FrameOrderGate.admit`.

    Attributes:
        admitted: process the frame.
        kind: ``"ok"``, ``"out_of_order"``, ``"too_old"`` or ``"ahead"``.
        reason: text for logs and diagnostics (empty when admitted).
    """

    admitted: bool
    kind: str = "ok"
    reason: str = ""


class FrameOrderGate:
    """Drop out-of-order and too-old frames (module docstring). Thread-safe."""

    def __init__(self, max_age_s: float = 0.0, max_ahead_s: float = 0.0) -> None:
        if max_age_s < 0 or max_ahead_s < 0:
            raise ValueError(f"max_age_s and max_ahead_s must be >= 0, got {max_age_s}, {max_ahead_s}")
        self.max_age_s = max_age_s
        self.max_ahead_s = max_ahead_s
        self._lock = threading.Lock()
        self.last_processed_s: Optional[float] = None
        self.newest_seen_s: Optional[float] = None
        self.out_of_order = 0
        self.too_old = 0
        self.ahead = 0

    def admit(self, stamp_s: float, now_s: Optional[float] = None) -> FrameVerdict:
        """Decide on one frame of stamp ``stamp_s`` (seconds) received at ``now_s`` (the
        receiver's clock, seconds; ``None`` or 0: not judged); an admitted or too-old frame is
        recorded as seen."""
        with self._lock:
            if not math.isfinite(stamp_s):
                self.ahead += 1
                return FrameVerdict(False, "ahead", f"frame stamp {stamp_s} is not finite: dropped")
            if self.max_ahead_s > 0 and now_s and stamp_s - now_s > self.max_ahead_s:
                self.ahead += 1
                return FrameVerdict(False, "ahead",
                                    f"frame stamp {stamp_s:.6f} s is {stamp_s - now_s:.3f} s ahead of this "
                                    f"node's clock (max {self.max_ahead_s} s; check the clocks' sync): dropped")
            self.newest_seen_s = stamp_s if self.newest_seen_s is None else max(self.newest_seen_s, stamp_s)
            last = self.last_processed_s
            if last is not None and stamp_s <= last:
                self.out_of_order += 1
                return FrameVerdict(False, "out_of_order",
                                    f"frame stamp {stamp_s:.6f} s is not later than the last processed "
                                    f"frame's {last:.6f} s (out of order or repeated): dropped")
            age = self.newest_seen_s - stamp_s
            if self.max_age_s > 0 and age > self.max_age_s:
                self.too_old += 1
                return FrameVerdict(False, "too_old",
                                    f"frame stamp {stamp_s:.6f} s is {age:.3f} s older than the newest "
                                    f"seen (max age {self.max_age_s} s): dropped")
            return FrameVerdict(True)

    def processed(self, stamp_s: float) -> None:
        """Record that the frame of ``stamp_s`` was processed (its output published)."""
        with self._lock:
            if self.last_processed_s is None or stamp_s > self.last_processed_s:
                self.last_processed_s = stamp_s

    def reset(self) -> None:
        """Forget every stamp (counts are kept)."""
        with self._lock:
            self.last_processed_s = None
            self.newest_seen_s = None
