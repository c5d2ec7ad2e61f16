"""The camera player node (in process, real rclpy) on a sequence folder: its ground truth on
``ground_truth/head_pose`` is the poses the frames were made at, exact (confidence 1, expected
error 0 degrees)."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from hpe_ros.camera_player_node import CameraPlayerNode  # noqa: E402
from hpe_ros.msg import HeadPoseArray  # noqa: E402
from hpe_ros.pose_conversion import matrix_from_pose_msg  # noqa: E402
from hpe_training.synth.sequence import (RenderedSequence, SequenceConfig, save_sequence,  # noqa: E402
                                         sequence_intrinsics, trajectory_poses)
from ros_wait import spin_until  # noqa: E402

pytestmark = pytest.mark.ros


def _sequence_folder(tmp_path) -> tuple:
    """A 3-frame sequence folder (blank 64x48 frames: the player does not look at them) with
    the yaw sweep's true poses; returns the folder and the poses ``[N, 1, 4, 4]``."""
    config = SequenceConfig(kind="yaw_sweep", n_frames=3, width=64, height=48)
    poses = trajectory_poses(config)
    n, p = poses.shape[:2]
    seq = RenderedSequence(frames=np.zeros((n, 48, 64, 3), np.uint8), K=sequence_intrinsics(config),
                           poses_cam=poses, boxes=np.zeros((n, p, 4), np.float32),
                           landmarks=np.zeros((n, p, 6, 2), np.float32),
                           stamps_s=np.arange(n) / config.fps, yaw_pitch_roll_deg=np.zeros((n, p, 3)), config=config)
    save_sequence(seq, tmp_path / "seq")
    return tmp_path / "seq", poses


def test_ground_truth_is_exact(tmp_path):
    folder, poses = _sequence_folder(tmp_path)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        player = CameraPlayerNode(context=context, parameter_overrides=[
            Parameter("source", value=str(folder)), Parameter("rate_hz", value=20.0),
            Parameter("wait_for_subscribers", value=1)])
        listener = rclpy.create_node("hpe_truth_listener", context=context)
        received: list[HeadPoseArray] = []
        listener.create_subscription(HeadPoseArray, "ground_truth/head_pose", received.append, 10)
        listener.create_subscription(Image, "image", lambda _: None, qos_profile_sensor_data)  # starts the player
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(player)
        executor.add_node(listener)
        assert spin_until(executor, lambda: player.done and len(received) == len(poses), 20.0), \
            f"{len(received)} of {len(poses)} ground-truth messages"
        for i, msg in enumerate(received):
            (head,) = msg.heads
            assert head.confidence == 1.0 and head.expected_error_deg == 0.0
            np.testing.assert_allclose(matrix_from_pose_msg(head.pose), poses[i, 0], atol=1e-9)
        player.destroy_node()
        listener.destroy_node()
    finally:
        rclpy.shutdown(context=context)
