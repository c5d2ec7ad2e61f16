"""Our interfaces and tf2_msgs/TFMessage travel between two processes over ROS 2 (loopback)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is installed by tools/setup.sh")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from ros_wait import spin_until  # noqa: E402

pytestmark = pytest.mark.ros

PUBLISHER_SCRIPT = textwrap.dedent(
    """
    import time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from geometry_msgs.msg import TransformStamped
    from hpe_ros.msg import HeadPose, HeadPoseArray
    from tf2_msgs.msg import TFMessage

    rclpy.init()
    node = rclpy.create_node("hpe_test_publisher")
    tf_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
    pub_heads = node.create_publisher(HeadPoseArray, "head_pose", 10)
    pub_tf = node.create_publisher(TFMessage, "tf", tf_qos)
    deadline = time.monotonic() + 20.0
    # Publish at 10 Hz until the test process has received what it needs and kills us.
    while time.monotonic() < deadline:
        msg = HeadPoseArray()
        msg.header.frame_id = "camera_color_optical_frame"
        msg.header.stamp.sec = 1234
        head = HeadPose()
        head.header = msg.header
        head.track_id = 7
        head.face_id = "7"
        head.pose.position.z = 1.25
        head.pose.orientation.w = 1.0
        head.confidence = 0.75
        head.expected_error_deg = 3.5
        head.anchor_ids = ["7-a0", "7-k3"]
        head.anchor_gap_deg = 4.5
        head.facing_camera = True
        msg.heads = [head]
        pub_heads.publish(msg)
        tf = TransformStamped()
        tf.header = msg.header
        tf.child_frame_id = "face_7"
        tf.transform.translation.z = 1.25
        tf.transform.rotation.w = 1.0
        pub_tf.publish(TFMessage(transforms=[tf]))
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    """
)


def test_head_pose_array_and_tf_cross_process(tmp_path):
    from hpe_ros.msg import HeadPoseArray
    from tf2_msgs.msg import TFMessage

    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("hpe_test_listener", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        received_heads: list = []
        received_tf: list = []
        tf_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)
        node.create_subscription(HeadPoseArray, "head_pose", received_heads.append, 10)
        node.create_subscription(TFMessage, "tf", received_tf.append, tf_qos)
        got = spin_until(executor, lambda: received_heads and received_tf, timeout_s=20.0)
        assert got, f"nothing received; publisher output:\n{proc.stdout.read() if proc.poll() is not None else ''}"
        head = received_heads[0].heads[0]
        assert received_heads[0].header.frame_id == "camera_color_optical_frame"
        assert head.track_id == 7 and head.face_id == "7"
        assert head.pose.position.z == pytest.approx(1.25)
        assert list(head.anchor_ids) == ["7-a0", "7-k3"]
        assert head.anchor_gap_deg == pytest.approx(4.5)
        assert head.confidence == 0.75 and head.expected_error_deg == 3.5
        assert head.facing_camera
        tf = received_tf[0].transforms[0]
        assert tf.child_frame_id == "face_7"
        assert tf.header.frame_id == "camera_color_optical_frame"
        assert tf.transform.translation.z == pytest.approx(1.25)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        proc.kill()
        proc.wait(timeout=10)


def test_tf2_msgs_type_hash_is_the_real_one():
    """A locally built tf2_msgs must be wire compatible with real ROS 2 Kilted: same type hash."""
    import json

    from ament_index_python.packages import get_package_share_directory

    real_kilted_hash = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"

    share = get_package_share_directory("tf2_msgs")
    with open(f"{share}/msg/TFMessage.json") as f:
        data = json.load(f)
    hashes = {entry["type_name"]: entry["hash_string"] for entry in data["type_hashes"]}
    assert hashes["tf2_msgs/msg/TFMessage"] == real_kilted_hash


#: Type hashes of hri_msgs 2.0.0 (ROS4HRI, REP 155) built from upstream (ros2-real-clients.md).
REAL_HRI_MSGS_HASHES = {
    "IdsList": "RIHS01_7e0812d1ac945c98fd3e393568d581ad0ab567f37b24eff633eab778c1bfe62d",
    "NormalizedRegionOfInterest2D": "RIHS01_2e50c93f1ca166ee77af9a5424dc951ae4e452b740162a7f83c082d917dcaff5",
    "NormalizedPointOfInterest2D": "RIHS01_cc1d2f720c82afeb850ff1dbf66f41ecb7caf19f842987f1247e66160cf03953",
    "FacialLandmarks": "RIHS01_f1d6b0ba159f4d6be1632e5dfc9cb79ce5e35da73888da2a4789bd9b35112a63",
}


@pytest.mark.parametrize("name", sorted(REAL_HRI_MSGS_HASHES))
def test_hri_msgs_type_hashes_are_the_real_ones(name):
    """The hri_msgs that setup builds where the real one is absent (tools/ros/hri_msgs) is wire
    compatible with ROS4HRI consumers (pyhri, libhri, hri_rviz): the generated type hashes equal
    the real ones."""
    import json

    from ament_index_python.packages import get_package_share_directory

    with open(f"{get_package_share_directory('hri_msgs')}/msg/{name}.json") as f:
        data = json.load(f)
    hashes = {entry["type_name"]: entry["hash_string"] for entry in data["type_hashes"]}
    assert hashes[f"hri_msgs/msg/{name}"] == REAL_HRI_MSGS_HASHES[name]


def test_facial_landmarks_holds_the_70_ros4hri_codes():
    from hri_msgs.msg import FacialLandmarks

    msg = FacialLandmarks()
    assert len(msg.landmarks) == 70
    codes = {n: getattr(FacialLandmarks, n) for n in dir(FacialLandmarks)
             if n.isupper() and isinstance(getattr(FacialLandmarks, n), int)}
    assert sorted(codes.values()) == list(range(70))
    assert codes["RIGHT_EAR"] == 0 and codes["LEFT_EAR"] == 16 and codes["RIGHT_PUPIL"] == 68 and codes["LEFT_PUPIL"] == 69
