"""sensor_msgs/CameraInfo <-> K and image size (hpe_ros.camera_info_conversion)."""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo

from hpe_ros.camera_info_conversion import (
    CameraInfoError,
    camera_info_from_intrinsics,
    intrinsics_from_camera_info,
)

K_REF = np.array([[610.5, 0.25, 321.0], [0.0, 612.0, 243.5], [0.0, 0.0, 1.0]])


def test_round_trip_and_fields() -> None:
    stamp = Time(sec=7, nanosec=9)
    msg = camera_info_from_intrinsics(K_REF, 640, 480, stamp=stamp, frame_id="cam_optical")
    msg = deserialize_message(serialize_message(msg), CameraInfo)
    assert msg.header.stamp == stamp and msg.header.frame_id == "cam_optical"
    assert (msg.width, msg.height) == (640, 480)
    assert msg.distortion_model == "plumb_bob"
    np.testing.assert_array_equal(np.asarray(msg.d), np.zeros(5))
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    P = np.asarray(msg.p).reshape(3, 4)
    np.testing.assert_array_equal(P[:, :3], K_REF)
    np.testing.assert_array_equal(P[:, 3], np.zeros(3))

    intr = intrinsics_from_camera_info(msg)
    np.testing.assert_array_equal(intr.K, K_REF)
    assert intr.size == (640, 480)
    assert intr.distortion_model == "plumb_bob"


def test_binning_and_roi_adjust_k_consistently() -> None:
    msg = camera_info_from_intrinsics(K_REF, 640, 480)
    msg.binning_x, msg.binning_y = 2, 4
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 40, 400, 320
    intr = intrinsics_from_camera_info(msg)
    assert intr.size == (200, 80)
    # A 3D point seen in the full sensor at (u, v) appears in the published image at
    # ((u - x_offset) / bx, (v - y_offset) / by).
    point = np.array([0.1, -0.05, 1.3])
    uv_full = (K_REF @ point)[:2] / point[2]
    uv_pub = (intr.K @ point)[:2] / point[2]
    np.testing.assert_allclose(uv_pub, [(uv_full[0] - 100) / 2, (uv_full[1] - 40) / 4])


def _info_with_k(k: list[float], width: int = 640, height: int = 480) -> CameraInfo:
    msg = CameraInfo(width=width, height=height)
    msg.k = k
    return msg


@pytest.mark.parametrize(
    ("k", "size", "pattern"),
    [
        ([0.0] * 9, (640, 480), "uncalibrated"),
        ([float("nan"), 0, 320, 0, 600, 240, 0, 0, 1], (640, 480), "NaN"),
        ([0.0, 0, 320, 0, 600, 240, 0, 0, 1], (640, 480), "positive"),
        ([600.0, 0, 320, 0, -600, 240, 0, 0, 1], (640, 480), "positive"),
        ([600.0, 0, 320, 0, 600, 240, 0, 0, 0], (640, 480), "last row"),
        ([600.0, 0, 320, 0, 600, 240, 0, 0, 1], (0, 480), "image size"),
    ],
)
def test_invalid_k_or_size_raises(k: list[float], size: tuple[int, int], pattern: str) -> None:
    with pytest.raises(CameraInfoError, match=pattern) as info:
        intrinsics_from_camera_info(_info_with_k(k, *size))
    assert isinstance(info.value, ValueError)


def test_roi_outside_sensor_raises() -> None:
    msg = camera_info_from_intrinsics(K_REF, 640, 480)
    msg.roi.x_offset, msg.roi.width, msg.roi.height = 500, 200, 100
    with pytest.raises(CameraInfoError, match="outside"):
        intrinsics_from_camera_info(msg)


def test_building_from_invalid_k_raises() -> None:
    with pytest.raises(CameraInfoError, match="uncalibrated"):
        camera_info_from_intrinsics(np.zeros((3, 3)), 640, 480)
    with pytest.raises(CameraInfoError, match="shape"):
        camera_info_from_intrinsics(np.eye(4), 640, 480)
