"""Drive a head pose node from outside: the node in its own process, and a client node in the
calling process (publishing camera frames, receiving /head_pose, /tf and /diagnostics, calling
services). Used by the cross-process tests (``tests/ros/node_harness.py``) and by the soak
benchmark (``hpe-soak``).

The client spins in a background thread, so callers can wait on futures and message lists with
bounded timeouts. Keep everything on loopback: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and the
Fast DDS profile ``config/fastdds_loopback.xml`` (tests/conftest.py and :func:`loopback_env` set
them).
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
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage

from hpe_ros.camera_info_conversion import camera_info_from_intrinsics
from hpe_ros.image_conversion import rgb_to_image_msg
from hpe_ros.msg import HeadPoseArray
from hpe_ros.pose_conversion import time_msg_from_seconds

REPO_ROOT = Path(__file__).resolve().parents[1]
NODE = "head_pose_node"


def loopback_env() -> None:
    """Keep ROS 2 discovery on this machine (loopback only), unless already configured."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_loopback.xml"))


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
                 remaps: Optional[dict[str, str]] = None, env: Optional[dict[str, str]] = None,
                 params_file: Optional[Path] = None) -> None:
        """Start the node; ``env`` entries are added to this process's environment;
        ``params_file`` replaces the repository's YAML."""
        cmd = [sys.executable, "-m", "hpe_ros.head_pose_node", "--autostart", "--ros-args",
               "--params-file", str(params_file or REPO_ROOT / "config" / "head_pose.yaml")]
        for key, value in overrides.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            cmd += ["-p", f"{key}:={text}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_bytes(self) -> Optional[int]:
        """Resident memory of the node process (Linux ``/proc``), or ``None`` when it is gone."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self._log.closed:
            return self.proc.returncode
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
        self.heads_received_s: list[float] = []  # time.monotonic() at arrival, one per entry of heads
        self.tf: list[TFMessage] = []
        self.diagnostics: list[DiagnosticArray] = []
        tf_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        n = self.node
        self.pub_image = n.create_publisher(Image, f"{camera_ns}/image", qos_profile_sensor_data)
        self.pub_info = n.create_publisher(CameraInfo, f"{camera_ns}/camera_info", qos_profile_sensor_data)
        self.pub_compressed = n.create_publisher(CompressedImage, f"{camera_ns}/image/compressed", qos_profile_sensor_data)
        self.sub_heads = n.create_subscription(HeadPoseArray, "/head_pose", self._on_heads, 10)
        n.create_subscription(TFMessage, "/tf", self.tf.append, tf_qos)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        # one thread: its callbacks only append to lists (less CPU taken from the node it measures)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_heads(self, msg: HeadPoseArray) -> None:
        self.heads_received_s.append(time.monotonic())
        self.heads.append(msg)

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

    def publish_info(self, msg: CameraInfo) -> None:
        self.pub_info.publish(msg)

    def publish_compressed(self, msg: CompressedImage) -> None:
        self.pub_compressed.publish(msg)

    def wait_connected(self, timeout_s: float = 60.0, compressed: bool = False) -> bool:
        pub = self.pub_compressed if compressed else self.pub_image
        return bool(wait_for(lambda: pub.get_subscription_count() > 0
                             and self.sub_heads.get_publisher_count() > 0, timeout_s, 0.1))

    # -- diagnostics
    def diagnostic_status(self, since: int = 0) -> list[dict[str, str]]:
        """The node's /diagnostics statuses received from index ``since`` on, each as a dict of
        its key-value pairs plus ``"level"`` (0 OK, 1 WARN, 2 ERROR, as text) and ``"message"``."""
        out = []
        for array in self.diagnostics[since:]:
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                values["level"] = str(status.level[0] if isinstance(status.level, bytes) else int(status.level))
                values["message"] = status.message
                out.append(values)
        return out

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
        req = SetParameters.Request(parameters=[parameter_msg(name, value)])
        return self.call(SetParameters, f"/{NODE}/set_parameters", req).results[0]


def parameter_msg(name: str, value: Any) -> Parameter:
    """``rcl_interfaces/Parameter`` of a Python value (bool, int, float or str)."""
    if isinstance(value, bool):
        pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, int):
        pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    elif isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return Parameter(name=name, value=pv)
