"""Poses, stamps and TF frames (hpe_ros.pose_conversion); a pipeline head -> hpe_ros/HeadPose
(hpe_ros.head_pose_conversion)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, Quaternion, Transform
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_core.pipeline import HeadEstimate
from hpe_ros.head_pose_conversion import head_pose_msg
from hpe_ros.msg import HeadPose, HeadPoseArray
from hpe_ros.pose_conversion import (
    head_tf_transforms,
    matrix_from_pose_msg,
    matrix_from_transform_msg,
    nanoseconds_from_time_msg,
    pose_msg_from_matrix,
    seconds_from_time_msg,
    tf_message,
    time_msg_from_nanoseconds,
    time_msg_from_seconds,
    transform_msg_from_matrix,
)

RNG = np.random.default_rng(7)


def random_rotation() -> np.ndarray:
    """Uniform-ish random rotation from the QR decomposition of a Gaussian matrix."""
    q, r = np.linalg.qr(RNG.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_pose() -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = random_rotation()
    T[:3, 3] = RNG.uniform(-1.0, 1.0, 3) + [0.0, 0.0, 1.5]
    return T


def test_pose_and_transform_round_trip_random_rotations() -> None:
    for _ in range(50):
        T = random_pose()
        pose = deserialize_message(serialize_message(pose_msg_from_matrix(T)), Pose)
        np.testing.assert_allclose(matrix_from_pose_msg(pose), T, atol=1e-12)
        tf = deserialize_message(serialize_message(transform_msg_from_matrix(T)), Transform)
        np.testing.assert_allclose(matrix_from_transform_msg(tf), T, atol=1e-12)
        q = pose.orientation
        assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1.0) < 1e-12


def test_quaternion_is_xyzw() -> None:
    T = np.eye(4)
    T[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # +90 deg about z
    q = pose_msg_from_matrix(T).orientation
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    # And back: a message quaternion (x=1, w=0) is a half-turn about x.
    R = matrix_from_pose_msg(Pose(orientation=Quaternion(x=1.0, y=0.0, z=0.0, w=0.0)))[:3, :3]
    np.testing.assert_allclose(R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)


@pytest.mark.parametrize(
    ("T", "pattern"),
    [
        (np.eye(3), "shape"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "rotation"),
        (np.diag([2.0, 1.0, 1.0, 1.0]), "rotation"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.vstack([np.eye(4)[:3], [[0.0, 0.0, 1.0, 1.0]]]), "last row"),
    ],
)
def test_invalid_matrices_rejected(T: np.ndarray, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        pose_msg_from_matrix(T)
    with pytest.raises(ValueError, match=pattern):
        transform_msg_from_matrix(T)


def test_zero_quaternion_rejected() -> None:
    with pytest.raises(ValueError, match="zero-norm"):
        matrix_from_pose_msg(Pose(orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=0.0)))


def test_time_conversions() -> None:
    for ns in (0, 1, 999_999_999, 1_700_000_000_123_456_789, -1, -1_500_000_000):
        msg = time_msg_from_nanoseconds(ns)
        assert 0 <= msg.nanosec < 1_000_000_000
        assert nanoseconds_from_time_msg(msg) == ns
    assert time_msg_from_nanoseconds(-1) == Time(sec=-1, nanosec=999_999_999)
    assert time_msg_from_seconds(12.25) == Time(sec=12, nanosec=250_000_000)
    assert seconds_from_time_msg(Time(sec=3, nanosec=500_000_000)) == 3.5
    t = 1_700_000_000.123456
    assert abs(seconds_from_time_msg(time_msg_from_seconds(t)) - t) < 1e-6
    with pytest.raises(ValueError, match="range"):
        time_msg_from_nanoseconds(2**31 * 1_000_000_000)
    with pytest.raises(ValueError, match="finite"):
        time_msg_from_seconds(float("nan"))


def test_head_tf_transforms_frames_and_gaze_axis() -> None:
    stamp = Time(sec=100, nanosec=42)
    offset = np.array([0.0, -0.01, -0.09])
    for _ in range(10):
        T = random_pose()
        face, gaze = head_tf_transforms(stamp, "cam_optical", "7", T, gaze_offset_head=offset)
        assert (face.child_frame_id, gaze.child_frame_id) == ("face_7", "gaze_7")
        for msg in (face, gaze):
            assert msg.header.frame_id == "cam_optical" and msg.header.stamp == stamp
        np.testing.assert_allclose(matrix_from_transform_msg(face.transform), T, atol=1e-12)
        T_gaze = matrix_from_transform_msg(gaze.transform)
        head_x, head_y, head_z = T[:3, 0], T[:3, 1], T[:3, 2]
        np.testing.assert_allclose(T_gaze[:3, 2], -head_z, atol=1e-12)  # gaze z = head forward
        np.testing.assert_allclose(T_gaze[:3, 0], -head_x, atol=1e-12)  # person's right
        np.testing.assert_allclose(T_gaze[:3, 1], head_y, atol=1e-12)  # down
        np.testing.assert_allclose(T_gaze[:3, 3], T[:3, :3] @ offset + T[:3, 3], atol=1e-12)


def test_face_looking_at_camera_gazes_at_camera() -> None:
    T = np.eye(4)
    T[:3, 3] = [0.2, 0.0, 1.0]
    _, gaze = head_tf_transforms(Time(), "cam", "a", T)
    T_gaze = matrix_from_transform_msg(gaze.transform)
    np.testing.assert_allclose(T_gaze[:3, 2], [0.0, 0.0, -1.0], atol=1e-12)
    assert T_gaze[2, 3] < 1.0  # the eyes are in front of the head centre, towards the camera


def test_rep155_face_axes() -> None:
    T = random_pose()
    face, gaze = head_tf_transforms(Time(), "cam", "b", T, face_axes="rep155")
    T_face = matrix_from_transform_msg(face.transform)
    np.testing.assert_allclose(T_face[:3, 0], -T[:3, 2], atol=1e-12)  # x forward (out of the face)
    np.testing.assert_allclose(T_face[:3, 1], T[:3, 0], atol=1e-12)  # y to the person's left
    np.testing.assert_allclose(T_face[:3, 2], -T[:3, 1], atol=1e-12)  # z up
    np.testing.assert_allclose(T_face[:3, 3], T[:3, 3], atol=1e-12)
    # REP 155: with gaze = head orientation, gaze z is colinear with face x.
    np.testing.assert_allclose(matrix_from_transform_msg(gaze.transform)[:3, 2], T_face[:3, 0], atol=1e-12)
    with pytest.raises(ValueError, match="face_axes"):
        head_tf_transforms(Time(), "cam", "b", T, face_axes="body")


def test_head_tf_rejects_empty_names() -> None:
    with pytest.raises(ValueError, match="parent_frame"):
        head_tf_transforms(Time(), "", "1", np.eye(4))
    with pytest.raises(ValueError, match="face_id"):
        head_tf_transforms(Time(), "cam", "", np.eye(4))


def test_tf_message_serialises() -> None:
    transforms = head_tf_transforms(Time(sec=1), "cam", "1", random_pose()) + head_tf_transforms(
        Time(sec=1), "cam", "2", random_pose()
    )
    msg = tf_message(transforms)
    assert isinstance(msg, TFMessage)
    back = deserialize_message(serialize_message(msg), TFMessage)
    assert [t.child_frame_id for t in back.transforms] == ["face_1", "gaze_1", "face_2", "gaze_2"]
    assert back == msg


def _head(pose_cam, expected_error_deg: float, box=(100.0, 80.0, 180.0, 190.0)) -> HeadEstimate:
    """A head as the pipeline makes it (its Euler angles computed from ``pose_cam``)."""
    ypr = None if pose_cam is None else yaw_pitch_roll_deg_from_matrix(pose_cam[:3, :3])
    return HeadEstimate(track_id=4, person="person_4", box_xyxy=np.array(box), pose_cam=pose_cam,
                        confidence=0.8, anchor_ids=("a1", "k2"), nearest_gap_deg=12.5,
                        yaw_pitch_roll_deg=ypr, facing_camera=True, facing_angle_deg=8.25,
                        keyframe_added=None, source="estimated", expected_error_deg=expected_error_deg)


def _over_the_wire(msg: HeadPose) -> HeadPose:
    """``msg`` inside a HeadPoseArray, serialised and read back (what a subscriber gets)."""
    array = HeadPoseArray(header=msg.header, heads=[msg])
    return deserialize_message(serialize_message(array), HeadPoseArray).heads[0]


def test_head_pose_msg_carries_every_field_of_the_head() -> None:
    T = random_pose()
    header = Header(stamp=Time(sec=12, nanosec=345), frame_id="cam_optical")
    head = _head(T, expected_error_deg=3.5)
    msg = _over_the_wire(head_pose_msg(head, header, "f00004"))
    assert msg.header.stamp == header.stamp and msg.header.frame_id == "cam_optical"
    assert (msg.track_id, msg.face_id) == (4, "f00004")
    np.testing.assert_allclose(matrix_from_pose_msg(msg.pose), T, atol=1e-12)
    np.testing.assert_allclose([msg.yaw_deg, msg.pitch_deg, msg.roll_deg], head.yaw_pitch_roll_deg, atol=1e-4)
    assert msg.expected_error_deg == 3.5  # float32 holds 3.5 exactly
    assert msg.confidence == pytest.approx(0.8, abs=1e-7)
    assert list(msg.anchor_ids) == ["a1", "k2"] and msg.anchor_gap_deg == 12.5
    assert msg.facing_camera and msg.facing_angle_deg == 8.25
    assert (msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height) == (100, 80, 80, 110)


def test_head_pose_msg_unknown_expected_error_stays_nan() -> None:
    msg = _over_the_wire(head_pose_msg(_head(random_pose(), float("nan")), Header(frame_id="cam"), "f00004"))
    assert math.isnan(msg.expected_error_deg)


def test_head_pose_msg_clips_the_box_and_refuses_a_head_without_pose() -> None:
    msg = head_pose_msg(_head(random_pose(), 1.0, box=(-20.0, -5.0, 40.0, 60.0)), Header(), "f00004")
    assert (msg.roi.x_offset, msg.roi.y_offset) == (0, 0)  # unsigned in the message: never negative
    with pytest.raises(ValueError, match="no pose"):
        head_pose_msg(_head(None, float("nan")), Header(), "f00004")
