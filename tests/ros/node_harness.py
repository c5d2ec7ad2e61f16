"""Test harness: the head pose node in its own process, and a client node in the test process
(publishing camera frames, receiving /head_pose, /tf and /diagnostics, calling services).

The client spins in a background thread, so tests can wait on futures and message lists with
bounded timeouts. Everything stays on loopback (tests/conftest.py sets the discovery range and
the Fast DDS profile).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from hpe_ros.camera_info_conversion import camera_info_from_intrinsics
from hpe_ros.image_conversion import rgb_to_image_msg
from hpe_ros.msg import HeadPoseArray
from hpe_ros.pose_conversion import time_msg_from_seconds

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE = "head_pose_node"


def wait_for(condition: Callable[[], Any], timeout_s: float, step_s: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step_s)
    return condition()


class NodeProcess:
    """``python -m hpe_ros.head_pose_node --autostart`` with the repo's YAML plus overrides."""

    def __init__(self, overrides: dict[str, Any], log_path: Path,
                 remaps: Optional[dict[str, str]] = None) -> None:
        cmd = [sys.executable, "-m", "hpe_ros.head_pose_node", "--autostart", "--ros-args",
               "--params-file", str(REPO_ROOT / "config" / "head_pose.yaml")]
        for key, value in overrides.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            cmd += ["-p", f"{key}:={text}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: the node shuts down cleanly
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


class Client:
    """The test side: camera publisher, output subscribers, service clients."""

    def __init__(self, camera_ns: str = "/test_cam") -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("hpe_test_client", context=self.context)
        self.heads: list[HeadPoseArray] = []
        self.tf: list[TFMessage] = []
        self.diagnostics: list[DiagnosticArray] = []
        tf_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        n = self.node
        self.pub_image = n.create_publisher(Image, f"{camera_ns}/image", qos_profile_sensor_data)
        self.pub_info = n.create_publisher(CameraInfo, f"{camera_ns}/camera_info", qos_profile_sensor_data)
        self.sub_heads = n.create_subscription(HeadPoseArray, "/head_pose", self.heads.append, 10)
        n.create_subscription(TFMessage, "/tf", self.tf.append, tf_qos)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(n)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    # -- camera
    def publish_frame(self, rgb: np.ndarray, stamp_s: float, K: Optional[np.ndarray] = None,
                      frame_id: str = "test_cam_optical_frame") -> None:
        stamp = time_msg_from_seconds(stamp_s)
        msg = rgb_to_image_msg(rgb, stamp=stamp, frame_id=frame_id)
        if K is not None:
            self.pub_info.publish(camera_info_from_intrinsics(K, rgb.shape[1], rgb.shape[0], stamp=stamp, frame_id=frame_id))
        self.pub_image.publish(msg)

    def publish_raw(self, msg: Image) -> None:
        self.pub_image.publish(msg)

    def wait_connected(self, timeout_s: float = 60.0) -> bool:
        return bool(wait_for(lambda: self.pub_image.get_subscription_count() > 0
                             and self.sub_heads.get_publisher_count() > 0, timeout_s, 0.1))

    # -- services
    def call(self, srv_type, name: str, request, timeout_s: float = 30.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            if not wait_for(future.done, timeout_s):
                raise TimeoutError(f"service {name} did not answer")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def lifecycle(self, transition_id: int) -> bool:
        req = ChangeState.Request()
        req.transition = Transition(id=transition_id)
        return self.call(ChangeState, f"/{NODE}/change_state", req, timeout_s=60.0).success

    def state(self) -> str:
        return self.call(GetState, f"/{NODE}/get_state", GetState.Request()).current_state.label

    def set_parameter(self, name: str, value: Any):
        if isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        elif isinstance(value, float):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        req = SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
        return self.call(SetParameters, f"/{NODE}/set_parameters", req).results[0]
