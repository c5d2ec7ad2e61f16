"""Node statistics (a plain dict) -> diagnostic_msgs/DiagnosticArray with one status.

Stats keys understood (all optional; unknown keys are published as strings too):

====================  ===========================  ============================================
key                   type                         meaning
====================  ===========================  ============================================
enabled               bool                         processing switched on (``enable`` service)
rate_hz               float                        processed frames per second (recent window)
latency_ms            Mapping[str, float]          latency per stage, ms (e.g. detect, estimate)
expected_error_deg    Mapping[str, float or None]  ``mean`` and ``max`` expected orientation error,
                                                   degrees, over the heads of the last processed
                                                   frame whose error is known (``None``, shown
                                                   empty: no such head)
backend               str                          estimator backend (cpu / cuda / tensorrt)
anchors_per_track     Mapping[track id, int]       anchors held per track
last_error            str or None                  text of the last error (empty/None = none)
last_error_age_s      float or None                seconds since that error
dropped_frames        int                          frames dropped by the input queue (total)
queue_capacity        int                          size of the node's latest-wins input queue
queue_high_water      int                          most frames ever waiting in it (<= capacity)
frames_out_of_order   int                          frames dropped: stamp not later than the last
                                                   processed one (``hpe_core.frame_order``)
frames_too_old        int                          frames dropped: older than ``max_frame_age_s``
                                                   behind the newest stamp seen
====================  ===========================  ============================================

Level rules (first match wins; thresholds in :class:`DiagnosticRules`):

1. ERROR: ``last_error`` is set and ``last_error_age_s <= error_hold_s`` (an error with
   unknown age counts as recent).
2. OK "disabled": ``enabled`` is false (no output is expected).
3. WARN: ``rate_hz`` is missing or ``<= min_rate_hz`` while enabled (no frames processed).
4. WARN: the total latency (the pipeline's ``total``, else the sum of the stages) exceeds
   ``max_total_latency_ms`` (when that is set).
5. OK otherwise.

Older errors stay visible in the key-value pairs without raising the level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

DEFAULT_STATUS_NAME = "hpe: head_pose_node"

OK: bytes = DiagnosticStatus.OK
WARN: bytes = DiagnosticStatus.WARN
ERROR: bytes = DiagnosticStatus.ERROR

_KNOWN_KEYS = (
    "enabled",
    "rate_hz",
    "latency_ms",
    "expected_error_deg",
    "backend",
    "anchors_per_track",
    "last_error",
    "last_error_age_s",
    "dropped_frames",
)


@dataclass(frozen=True)
class DiagnosticRules:
    """Thresholds of the level rules (see the module docstring).

    Attributes:
        error_hold_s: an error younger than this (seconds) makes the status ERROR.
        min_rate_hz: a rate at or below this (Hz) while enabled makes the status WARN.
        max_total_latency_ms: summed stage latency (ms) above which the status is WARN;
            ``None`` disables the rule.
    """

    error_hold_s: float = 5.0
    min_rate_hz: float = 0.0
    max_total_latency_ms: Optional[float] = None

    def __post_init__(self) -> None:
        if not self.error_hold_s >= 0.0:
            raise ValueError(f"error_hold_s must be >= 0, got {self.error_hold_s}")
        if not self.min_rate_hz >= 0.0:
            raise ValueError(f"min_rate_hz must be >= 0, got {self.min_rate_hz}")
        if self.max_total_latency_ms is not None and not self.max_total_latency_ms > 0.0:
            raise ValueError(f"max_total_latency_ms must be > 0 or None, got {self.max_total_latency_ms}")


def diagnostic_level(
    stats: Mapping[str, Any], rules: DiagnosticRules = DiagnosticRules()
) -> tuple[bytes, str]:
    """Level (``DiagnosticStatus.OK/WARN/ERROR``, a one-byte ``bytes``) and summary message."""
    last_error = stats.get("last_error") or ""
    age = stats.get("last_error_age_s")
    if last_error and (age is None or float(age) <= rules.error_hold_s):
        age_text = "" if age is None else f" ({float(age):.1f} s ago)"
        return ERROR, f"error{age_text}: {last_error}"
    if not stats.get("enabled", True):
        return OK, "disabled"
    rate = stats.get("rate_hz")
    if rate is None or float(rate) <= rules.min_rate_hz:
        if not rate:
            return WARN, "enabled but no frames processed"
        return WARN, f"rate {float(rate):.1f} Hz is too low"
    total_ms = total_latency_ms(stats.get("latency_ms") or {})
    if rules.max_total_latency_ms is not None and total_ms > rules.max_total_latency_ms:
        return WARN, f"latency {total_ms:.1f} ms exceeds {rules.max_total_latency_ms:.1f} ms"
    return OK, f"running at {float(rate):.1f} Hz"


def total_latency_ms(latency: Mapping[str, Any]) -> float:
    """The frame's total latency, ms: its ``total`` entry when the pipeline reports one (it
    does: ``FrameResult.timings_ms``), else the sum of the stages (never both added up)."""
    if "total" in latency:
        return float(latency["total"])
    return float(sum(float(v) for v in latency.values()))


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return ""
    return str(value)


def diagnostic_values(stats: Mapping[str, Any]) -> list[KeyValue]:
    """Flatten the stats into key-value pairs (nested mappings as ``outer.inner`` keys)."""
    values: list[KeyValue] = []
    for key in _KNOWN_KEYS + tuple(sorted(k for k in stats if k not in _KNOWN_KEYS)):
        if key not in stats:
            continue
        value = stats[key]
        if isinstance(value, Mapping):
            if key == "latency_ms" and "total" not in value:  # one latency_ms.total, never two
                values.append(KeyValue(key="latency_ms.total", value=_format(total_latency_ms(value))))
            for inner in sorted(value, key=str):
                values.append(KeyValue(key=f"{key}.{inner}", value=_format(value[inner])))
        else:
            values.append(KeyValue(key=key, value=_format(value)))
    return values


def diagnostic_array_from_stats(
    stats: Mapping[str, Any],
    *,
    stamp: Optional[Time] = None,
    hardware_id: str = "",
    name: str = DEFAULT_STATUS_NAME,
    rules: DiagnosticRules = DiagnosticRules(),
) -> DiagnosticArray:
    """Build the ``/diagnostics`` message of the node.

    Args:
        stats: node statistics (keys in the module docstring).
        stamp: ``header.stamp`` (the node clock's now; zero when ``None``).
        hardware_id: e.g. the camera's frame id or device name.
        name: status name.
        rules: level thresholds.

    Returns:
        DiagnosticArray with exactly one DiagnosticStatus.
    """
    level, message = diagnostic_level(stats, rules)
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=diagnostic_values(stats),
    )
    array_msg = DiagnosticArray(status=[status])
    if stamp is not None:
        array_msg.header.stamp = stamp
    return array_msg
