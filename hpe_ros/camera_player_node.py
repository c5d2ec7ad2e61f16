"""Camera player node: publishes a recorded or rendered sequence as a camera would.

Sources (parameter ``source``):
  * a sequence folder written by ``python -m hpe_training.synth.sequence`` (frames with known
    head poses: the ground truth is also published, on ``ground_truth/head_pose``, with
    ``confidence`` 1 and ``expected_error_deg`` 0: the poses the frames were rendered at);
  * a video file, or a folder of images (no ground truth; intrinsics from ``hfov_deg``).

Publishes ``image`` (sensor_msgs/Image rgb8) and ``camera_info`` at ``rate_hz``, stamped with
the node clock at publication, with ``frame_id`` as the optical frame. Stops after the last
frame (``loop: false``) or starts over. ``wait_for_subscribers: N`` holds the first frame until
N subscribers of ``image`` are matched (so that a recorder misses nothing).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from hpe_core.crop import intrinsics_from_fov
from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_ros.camera_info_conversion import camera_info_from_intrinsics
from hpe_ros.image_conversion import rgb_to_image_msg
from hpe_ros.msg import HeadPose, HeadPoseArray
from hpe_ros.pose_conversion import pose_msg_from_matrix


class FrameSource:
    """Frames (RGB uint8 [H, W, 3]), intrinsics K [3, 3] and optional true poses [P, 4, 4]."""

    def __init__(self, source: str, hfov_deg: float) -> None:
        path = Path(source).expanduser()
        self.poses: Optional[np.ndarray] = None
        if (path / "sequence.json").is_file():
            from hpe_training.synth.sequence import load_sequence

            seq = load_sequence(path)
            self.frames = list(seq.frames)
            self.K = np.asarray(seq.K, dtype=np.float64)
            self.poses = np.asarray(seq.poses_cam, dtype=np.float64)
        else:
            from hpe_core.video_cli import read_frames

            self.frames = [rgb for _, rgb in read_frames(path, 30.0)]
            if not self.frames:
                raise ValueError(f"no frames in {path}")
            h, w = self.frames[0].shape[:2]
            self.K = intrinsics_from_fov(w, h, hfov_deg)

    def __len__(self) -> int:
        return len(self.frames)


class CameraPlayerNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("camera_player", **kwargs)
        self.declare_parameter("source", "")
        self.declare_parameter("rate_hz", 10.0)
        self.declare_parameter("loop", False)
        self.declare_parameter("frame_id", "camera_optical_frame")
        self.declare_parameter("hfov_deg", 60.0)
        self.declare_parameter("start_delay_s", 0.0)
        self.declare_parameter("wait_for_subscribers", 0)
        source = self.get_parameter("source").value
        if not source:
            raise ValueError("parameter 'source' is required (sequence folder, video file or image folder)")
        self.src = FrameSource(source, self.get_parameter("hfov_deg").value)
        self.frame_id = self.get_parameter("frame_id").value
        self.loop = self.get_parameter("loop").value
        self.pub_image = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.pub_truth = self.create_publisher(HeadPoseArray, "ground_truth/head_pose", 10)
        self.index = 0
        self.published = 0
        self.done = False
        self._matched = False
        self._delay_until = self.get_clock().now().nanoseconds * 1e-9 + self.get_parameter("start_delay_s").value
        self.timer = self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._tick)
        self.get_logger().info(f"playing {len(self.src)} frames from {source}")

    def _tick(self) -> None:
        if self.done or self.get_clock().now().nanoseconds * 1e-9 < self._delay_until:
            return
        wanted = self.get_parameter("wait_for_subscribers").value
        if self.published == 0 and wanted > 0 and not self._matched:
            if self.pub_image.get_subscription_count() >= wanted:
                # matched: give the readers a moment to match us too (best-effort QoS would
                # otherwise lose the first frames)
                self._matched = True
                self._delay_until = self.get_clock().now().nanoseconds * 1e-9 + 1.0
            return
        if self.index >= len(self.src):
            if not self.loop:
                self.done = True
                self.get_logger().info(f"end of sequence after {self.published} frames")
                return
            self.index = 0
        rgb = self.src.frames[self.index]
        stamp = self.get_clock().now().to_msg()
        h, w = rgb.shape[:2]
        self.pub_info.publish(camera_info_from_intrinsics(self.src.K, w, h, stamp=stamp, frame_id=self.frame_id))
        self.pub_image.publish(rgb_to_image_msg(rgb, stamp=stamp, frame_id=self.frame_id))
        if self.src.poses is not None:
            truth = HeadPoseArray()
            truth.header.stamp = stamp
            truth.header.frame_id = self.frame_id
            for person, T in enumerate(self.src.poses[self.index]):
                head = HeadPose()
                head.header = truth.header
                head.track_id = person
                head.face_id = f"truth_{person}"
                head.pose = pose_msg_from_matrix(T)
                head.yaw_deg, head.pitch_deg, head.roll_deg = (float(v) for v in yaw_pitch_roll_deg_from_matrix(T[:3, :3]))
                head.confidence = 1.0
                head.expected_error_deg = 0.0  # the rendered pose itself: exact
                truth.heads.append(head)
            self.pub_truth.publish(truth)
        self.index += 1
        self.published += 1


def main(argv: Optional[list[str]] = None) -> int:
    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = CameraPlayerNode()
    except (ValueError, FileNotFoundError) as exc:
        print(f"camera_player: {exc}", file=sys.stderr)
        rclpy.shutdown()
        return 2
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
