"""MCAP replay into the node gives the same outputs as live publishing.

Run 1: the test publishes camera frames live to a fresh node and records what it published to
an MCAP bag (hpe_ros.bag.Recorder, raw CDR). Run 2: a second fresh node gets the bag replayed
(hpe_ros.bag.replay, serialized bytes at the recorded pace). The /head_pose outputs, matched by
image stamp, must be the same. Live frames are published one at a time (each after the node's answer to the previous), and the
replay runs at half the recorded pace, so that the node drops none.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hpe_ros.bag import Recorder, read_mcap, replay  # noqa: E402
from hpe_ros.msg import HeadPoseArray  # noqa: E402
from node_harness import Client, NodeProcess, wait_for  # noqa: E402

RELIABLE_REPLAY_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

pytestmark = pytest.mark.ros

K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
N_FRAMES = 12


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_onnx")
    result = subprocess.run([sys.executable, "-m", "hpe_training.export.cli", "--preset", "tiny", "--random-init",
                             "--output", str(out), "--tensorrt", "skip"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def frames() -> list[np.ndarray]:
    from skimage import data

    photo = data.astronaut()
    out = []
    for i in range(N_FRAMES):
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[:, 40 + 5 * i:40 + 5 * i + 512] = photo[:480]
        out.append(canvas)
    return out


def outputs_by_stamp(messages) -> dict:
    out = {}
    for msg in messages:
        if msg.heads:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            out[key] = [(h.track_id, np.array([h.pose.position.x, h.pose.position.y, h.pose.position.z,
                                               h.pose.orientation.x, h.pose.orientation.y,
                                               h.pose.orientation.z, h.pose.orientation.w]), list(h.anchor_ids))
                        for h in msg.heads]
    return out


def start_node(tiny_model, tmp_path, name, image_qos="sensor_data"):
    return NodeProcess({"estimator": "vggt", "model_path": str(tiny_model), "anchors.dir": str(tmp_path / "anchors"),
                        "detection.every_n_frames": 1, "max_frame_age_s": 0.0, "image_qos": image_qos},
                       tmp_path / f"{name}.log",
                       remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})


def test_replayed_bag_gives_the_live_outputs(tiny_model, tmp_path):
    images = frames()
    # --- run 1: live
    node = start_node(tiny_model, tmp_path, "live")
    client = Client()
    recorder = Recorder(client.node, {"/test_cam/image": (Image, qos_profile_sensor_data),
                                      "/test_cam/camera_info": (CameraInfo, qos_profile_sensor_data)})
    try:
        assert client.wait_connected(90.0), node.log()
        assert wait_for(lambda: client.pub_image.get_subscription_count() >= 2, 20.0)  # node + recorder
        time.sleep(1.5)  # let the readers finish matching us (best-effort: early messages can be lost)
        for i, rgb in enumerate(images):
            stamp = 50.0 + 0.5 * i
            client.publish_frame(rgb, stamp, K, "test_cam_optical_frame")
            # the node answers every frame it processes (with or without heads): wait for it,
            # so that no frame is dropped by the latest-wins queue
            assert wait_for(lambda: any(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 == stamp
                                        for m in client.heads), 20.0), node.log()
            time.sleep(0.2)
        assert len(outputs_by_stamp(client.heads)) >= N_FRAMES - 3
        live = outputs_by_stamp(client.heads)
        bag = recorder.write_mcap(tmp_path / "live_bag")
    finally:
        client.close()
        node.stop()
    recorded = read_mcap(bag)
    assert sum(m.topic == "/test_cam/image" for m in recorded) == N_FRAMES

    # --- run 2: replay into a fresh node. Reliable QoS on both sides: a best-effort 900 KB image
    # lost on a loaded machine (one in about three full test runs) would make the outputs differ
    # for a reason that is not the replay's (the live run waits for each frame's answer instead).
    node = start_node(tiny_model, tmp_path, "replay", image_qos="reliable")
    client = Client(camera_ns="/unused")
    try:
        assert wait_for(lambda: client.sub_heads.get_publisher_count() > 0, 90.0), node.log()
        executor = SingleThreadedExecutor(context=client.context)
        probe = client.node.create_publisher(Image, "/test_cam/image", RELIABLE_REPLAY_QOS)
        assert wait_for(lambda: probe.get_subscription_count() > 0, 30.0)
        client.node.destroy_publisher(probe)
        types = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CameraInfo": CameraInfo}
        qos = {"/test_cam/image": RELIABLE_REPLAY_QOS, "/test_cam/camera_info": RELIABLE_REPLAY_QOS}
        client.executor.remove_node(client.node)
        executor.add_node(client.node)
        assert replay(client.node, executor, recorded, types, qos, speed=0.5) == len(recorded)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and len(outputs_by_stamp(client.heads)) < len(live):
            executor.spin_once(timeout_sec=0.1)
        replayed = outputs_by_stamp(client.heads)
    finally:
        client.close()
        node.stop()
    assert set(replayed) == set(live)
    for key in live:
        assert [(t, a) for t, _, a in live[key]] == [(t, a) for t, _, a in replayed[key]]
        for (_, p_live, _), (_, p_rep, _) in zip(live[key], replayed[key]):
            np.testing.assert_allclose(p_rep, p_live, atol=1e-5)
    # the bag also deserialises as images with their stamps
    first = deserialize_message(next(m.data for m in recorded if m.topic == "/test_cam/image"), Image)
    assert (first.header.stamp.sec, first.header.stamp.nanosec) == (50, 0)
