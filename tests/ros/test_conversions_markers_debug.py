"""RViz markers (hpe_ros.markers) and the debug overlay (hpe_ros.debug_image)."""
from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.visualization import DebugFace, draw_debug_image, project_head_axes
from hpe_ros.markers import head_markers


def pose(yaw: float, pitch: float, roll: float, t: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = matrix_from_yaw_pitch_roll_deg(yaw, pitch, roll)
    T[:3, 3] = t
    return T


POSES = np.stack([pose(20, -10, 5, (0.1, 0.0, 1.0)), pose(-30, 0, 0, (-0.3, 0.1, 2.0)), np.eye(4)])
POSES[2, :3, 3] = (0.0, 0.0, 1.5)


def test_marker_count_ids_and_headers() -> None:
    stamp = Time(sec=3, nanosec=14)
    msg = head_markers(stamp, "cam_optical", ["1", "2", "3"], POSES)
    msg = deserialize_message(serialize_message(msg), MarkerArray)
    assert len(msg.markers) == 1 + 2 * 3
    assert msg.markers[0].action == Marker.DELETEALL
    added = [m for m in msg.markers if m.action == Marker.ADD]
    arrows = [m for m in added if m.type == Marker.ARROW]
    labels = [m for m in added if m.type == Marker.TEXT_VIEW_FACING]
    assert len(arrows) == 3 and len(labels) == 3
    assert sorted(m.id for m in arrows) == [0, 1, 2]
    for m in msg.markers:
        assert m.header.stamp == stamp and m.header.frame_id == "cam_optical"
    assert labels[0].text.startswith("1 ") and "y +20" in labels[0].text
    assert len(head_markers(stamp, "cam", ["1", "2", "3"], POSES, clear_previous=False).markers) == 6
    assert len(head_markers(stamp, "cam", [], np.zeros((0, 4, 4))).markers) == 1


def test_arrow_points_along_head_forward() -> None:
    msg = head_markers(Time(), "cam", ["a"], POSES[:1], arrow_length_m=0.3, gaze_offset_head=(0, 0, 0))
    arrow = msg.markers[1]
    start = np.array([arrow.points[0].x, arrow.points[0].y, arrow.points[0].z])
    end = np.array([arrow.points[1].x, arrow.points[1].y, arrow.points[1].z])
    np.testing.assert_allclose(start, POSES[0, :3, 3], atol=1e-12)
    np.testing.assert_allclose(end - start, -0.3 * POSES[0, :3, 2], atol=1e-12)


def test_marker_input_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="face ids"):
        head_markers(Time(), "cam", ["1"], POSES)


K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 120.0], [0.0, 0.0, 1.0]])


def test_project_head_axes_matches_pinhole() -> None:
    T = POSES[0]
    points, visible = project_head_axes(T, K, axis_length_m=0.1)
    assert visible.all()
    tips_cam = T[:3, :3] @ np.vstack([np.zeros(3), 0.1 * np.eye(3)]).T + T[:3, 3:4]
    expected = (K @ tips_cam)[:2] / tips_cam[2]
    np.testing.assert_allclose(points, expected.T, atol=1e-9)


def test_debug_image_draws_at_projected_head_centre() -> None:
    black = np.zeros((240, 320, 3), np.uint8)
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, 1.0)  # projects to the principal point (160, 120)
    face = DebugFace(box_xyxy=(110, 70, 210, 170), track_id=4, pose_cam=T, label="y 0")
    out = draw_debug_image(black, K, [face])
    assert not black.any()  # input untouched
    assert out.shape == black.shape and out.dtype == np.uint8
    assert out[118:123, 158:163].any()  # something at the projected centre
    # The x axis (red) goes to the right of the centre: u = 160 + 300 * 0.1 = 190.
    r, g, b = (int(c) for c in out[120, 175])
    assert r > 200 and g < 60 and b < 60
    # The y axis (green) goes down: v = 150.
    r, g, b = (int(c) for c in out[135, 160])
    assert g > 200 and r < 60 and b < 60
    assert out[70, 150].any()  # box top edge


def test_debug_image_skips_axes_behind_camera() -> None:
    black = np.zeros((240, 320, 3), np.uint8)
    T = np.eye(4)
    T[:3, 3] = (0.0, 0.0, -1.0)
    out = draw_debug_image(black, K, [DebugFace(box_xyxy=(10, 10, 20, 20), track_id=0, pose_cam=T)])
    assert not out[100:140, 140:180].any()
    assert out[10, 15].any()
