"""A bounded, thread-safe, latest-wins queue between a producer (camera callback) and a worker.

A camera delivers frames at a fixed rate whatever the model's speed. When the worker is slower
than the camera, the oldest waiting frames are dropped so that the worker always starts on the
newest frame and latency stays bounded; the producer never blocks.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Generic, Optional, TypeVar

T = TypeVar("T")


class LatestQueue(Generic[T]):
    """Drop-oldest queue of at most ``capacity`` items (1 = latest frame wins).

    ``put`` never blocks; ``get`` blocks until an item arrives, ``timeout_s`` passes, or the
    queue is closed. ``dropped`` counts items discarded unseen; ``high_water`` is the most items
    ever waiting at once (never above ``capacity``: the bound that diagnostics report).
    """

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: Deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.put_count = 0
        self.high_water = 0

    def put(self, item: T) -> bool:
        """Add ``item``; returns False (and drops it) only when the queue is closed."""
        with self._cond:
            if self._closed:
                return False
            self.put_count += 1
            while len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return True

    def get(self, timeout_s: Optional[float] = None) -> Optional[T]:
        """The oldest waiting item, or ``None`` on timeout or when closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout=timeout_s):
                return None
            if self._items:
                return self._items.popleft()
            return None

    def clear(self) -> int:
        """Drop every waiting item; returns how many were dropped."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.dropped += n
            return n

    def close(self) -> None:
        """Wake every waiting ``get``; later ``put`` calls are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed
