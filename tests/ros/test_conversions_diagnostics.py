"""Stats dict -> diagnostic_msgs/DiagnosticArray and its level rules (hpe_ros.diagnostics_conversion);
the node's running stats (hpe_ros.node_stats) into it."""
from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.serialization import deserialize_message, serialize_message

from hpe_ros.diagnostics_conversion import (
    DiagnosticRules,
    diagnostic_array_from_stats,
    diagnostic_level,
)
from hpe_ros.node_stats import NodeStats

HEALTHY = {
    "enabled": True,
    "rate_hz": 14.5,
    "latency_ms": {"detect": 12.0, "estimate": 40.5},
    "backend": "onnxruntime-cpu",
    "anchors_per_track": {3: 2, 5: 1},
    "last_error": None,
    "dropped_frames": 4,
}


def _with(**changes) -> dict:
    stats = dict(HEALTHY)
    stats.update(changes)
    return stats


@pytest.mark.parametrize(
    ("stats", "level", "fragment"),
    [
        (HEALTHY, DiagnosticStatus.OK, "14.5 Hz"),
        (_with(last_error="engine failed", last_error_age_s=1.0), DiagnosticStatus.ERROR, "engine failed"),
        (_with(last_error="engine failed"), DiagnosticStatus.ERROR, "engine failed"),  # unknown age
        (_with(last_error="engine failed", last_error_age_s=60.0), DiagnosticStatus.OK, "Hz"),
        (_with(rate_hz=0.0), DiagnosticStatus.WARN, "no frames"),
        (_with(rate_hz=None), DiagnosticStatus.WARN, "no frames"),
        (_with(enabled=False, rate_hz=0.0), DiagnosticStatus.OK, "disabled"),
        (_with(enabled=False, last_error="boom", last_error_age_s=0.5), DiagnosticStatus.ERROR, "boom"),
    ],
)
def test_level_rules(stats: dict, level: bytes, fragment: str) -> None:
    got_level, message = diagnostic_level(stats)
    assert got_level == level
    assert fragment in message


def test_configurable_thresholds() -> None:
    rules = DiagnosticRules(error_hold_s=100.0, min_rate_hz=20.0, max_total_latency_ms=50.0)
    assert diagnostic_level(_with(last_error="x", last_error_age_s=60.0), rules)[0] == DiagnosticStatus.ERROR
    level, message = diagnostic_level(HEALTHY, rules)
    assert level == DiagnosticStatus.WARN and "too low" in message
    level, message = diagnostic_level(_with(rate_hz=30.0), rules)
    assert level == DiagnosticStatus.WARN and "52.5 ms" in message
    with pytest.raises(ValueError, match="error_hold_s"):
        DiagnosticRules(error_hold_s=-1.0)
    with pytest.raises(ValueError, match="max_total_latency_ms"):
        DiagnosticRules(max_total_latency_ms=0.0)


def test_array_has_one_status_with_values() -> None:
    stamp = Time(sec=5)
    msg = diagnostic_array_from_stats(_with(extra_note="hello"), stamp=stamp, hardware_id="cam0")
    msg = deserialize_message(serialize_message(msg), DiagnosticArray)
    assert msg.header.stamp == stamp
    assert len(msg.status) == 1
    status = msg.status[0]
    assert status.name == "hpe: head_pose_node" and status.hardware_id == "cam0"
    assert status.level == DiagnosticStatus.OK
    values = {kv.key: kv.value for kv in status.values}
    assert values["rate_hz"] == "14.500"
    assert values["latency_ms.detect"] == "12.000"
    assert values["latency_ms.total"] == "52.500"
    assert values["anchors_per_track.3"] == "2" and values["anchors_per_track.5"] == "1"
    assert values["backend"] == "onnxruntime-cpu"
    assert values["dropped_frames"] == "4"
    assert values["enabled"] == "true"
    assert values["last_error"] == ""
    assert values["extra_note"] == "hello"


def test_error_status_message() -> None:
    msg = diagnostic_array_from_stats(_with(last_error="CUDA OOM", last_error_age_s=0.2))
    assert msg.status[0].level == DiagnosticStatus.ERROR
    assert "CUDA OOM" in msg.status[0].message


def test_the_pipelines_own_total_is_listed_once_and_drives_the_latency_warning() -> None:
    """The node's stats carry the pipeline's ``total`` beside the stages (FrameResult.timings_ms);
    before issue 16's fix it was added to them and listed twice (ros2-real-clients.md)."""
    stats = _with(rate_hz=30.0, latency_ms={"detect": 12.0, "estimate": 40.5, "fuse": 1.0, "total": 54.0})
    msg = diagnostic_array_from_stats(stats, stamp=Time(sec=1), hardware_id="cam0")
    keys = [kv.key for kv in msg.status[0].values]
    assert keys.count("latency_ms.total") == 1
    assert {kv.key: kv.value for kv in msg.status[0].values}["latency_ms.total"] == "54.000"
    level, message = diagnostic_level(stats, DiagnosticRules(max_total_latency_ms=50.0))
    assert level == DiagnosticStatus.WARN and "54.0 ms" in message  # not 107.5
    assert diagnostic_level(stats, DiagnosticRules(max_total_latency_ms=60.0))[0] == DiagnosticStatus.OK


def _published_values(stats: NodeStats) -> dict[str, str]:
    """The key-values of the /diagnostics message made from ``stats``, read back from the wire."""
    msg = diagnostic_array_from_stats(stats.snapshot())
    msg = deserialize_message(serialize_message(msg), DiagnosticArray)
    return {kv.key: kv.value for kv in msg.status[0].values}


def test_expected_error_of_the_last_frames_heads() -> None:
    stats = NodeStats()
    stats.frame_done({"total": 30.0}, [9.0, 9.0])
    stats.frame_done({"total": 30.0}, [2.0, float("nan"), 5.0])  # the last frame counts; NaN = unknown
    values = _published_values(stats)
    assert values["expected_error_deg.mean"] == "3.500"
    assert values["expected_error_deg.max"] == "5.000"


@pytest.mark.parametrize("errors", [[], [float("nan")]], ids=["no head", "unknown"])
def test_expected_error_empty_when_not_known(errors: list) -> None:
    stats = NodeStats()
    stats.frame_done({"total": 30.0}, [4.0])
    stats.frame_done({"total": 30.0}, errors)
    values = _published_values(stats)
    assert values["expected_error_deg.mean"] == "" and values["expected_error_deg.max"] == ""
