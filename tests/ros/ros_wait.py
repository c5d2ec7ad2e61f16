"""Bounded waiting helpers for in-process rclpy tests (discovery and message arrival)."""
from __future__ import annotations

import time
from typing import Callable

import rclpy
from rclpy.executors import Executor


def spin_until(executor: Executor, condition: Callable[[], bool], timeout_s: float,
               step_s: float = 0.05) -> bool:
    """Spin ``executor`` until ``condition()`` is true or ``timeout_s`` (seconds) passes.

    Returns whether the condition became true. Never blocks longer than ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=step_s)
    return condition()


def ok() -> bool:
    return rclpy.ok()
