"""Test harness: the head pose node in its own process and a client in the test process.

The implementation is :mod:`hpe_ros.node_driver` (shared with the soak benchmark); this module
keeps the names the tests import.
"""
import time
from typing import Any, Callable

import numpy as np

from hpe_ros.node_driver import NODE, REPO_ROOT, Client, NodeProcess, wait_for

__all__ = ["NODE", "REPO_ROOT", "Client", "Feeder", "NodeProcess", "heads_after", "wait_for"]


class Feeder:
    """Publishes ``frames`` in turn (with ``K`` on camera_info), stamped with the wall clock.

    Stamps are ``time.time()`` and strictly increasing across every Feeder of the process, so a
    new Feeder never sends frames the node sees as out of order (it drops those).
    """

    _last_stamp_s = 0.0

    def __init__(self, client: Client, frames: list[np.ndarray], K: np.ndarray, frame_id: str) -> None:
        self.client, self.frames, self.K, self.frame_id, self.i = client, frames, K, frame_id, 0

    @classmethod
    def next_stamp(cls) -> float:
        """A stamp later than every stamp handed out so far (seconds)."""
        cls._last_stamp_s = max(cls._last_stamp_s + 1e-3, time.time())
        return cls._last_stamp_s

    @property
    def t(self) -> float:
        return Feeder._last_stamp_s

    def feed(self, n: int, period_s: float = 0.15) -> None:
        for _ in range(n):
            self.client.publish_frame(self.frames[self.i % len(self.frames)], self.next_stamp(), self.K, self.frame_id)
            self.i += 1
            time.sleep(period_s)

    def until(self, condition: Callable[[], Any], timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.feed(1)
            if condition():
                return True
        return bool(condition())


def heads_after(client: Client, count_before: int) -> list:
    """/head_pose messages with at least one head, from index ``count_before`` on."""
    return [m for m in client.heads[count_before:] if m.heads]
