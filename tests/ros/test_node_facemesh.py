"""The node as its own process with ``estimator: facemesh`` (the default) on a real face:
the public-domain astronaut rolled by known angles, /head_pose following the roll."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("ai_edge_litert")
from hpe_core.geometry.rotations import geodesic_angle_deg, matrix_from_quat_xyzw  # noqa: E402
from node_harness import Client, NodeProcess, wait_for  # noqa: E402

pytestmark = [pytest.mark.ros]
FRAME = "cam_optical_frame"


def test_node_with_facemesh_follows_a_real_face_rolled_by_known_angles(tmp_path):
    from skimage import data

    from hpe_training.evaluation.real import rz, sweep_frame

    frame0 = sweep_frame(data.astronaut())
    K = np.array([[554.3, 0.0, 319.5], [0.0, 554.3, 239.5], [0.0, 0.0, 1.0]])
    # 5-deg steps: at 10-deg steps the rotated face jumps far enough to start a new track and
    # person (the jumping-face tracking of issue 16), which this test is not about
    angles = [0.0, 0.0, 0.0, 5.0, 10.0, 15.0, 20.0, 15.0, 10.0, 5.0, 0.0, -5.0, -10.0]
    node = NodeProcess({"estimator": "facemesh", "anchors.dir": str(tmp_path), "detection.every_n_frames": 1},
                       tmp_path / "node.log", remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})
    client = Client()
    poses = {}
    try:
        assert client.wait_connected(90.0), node.log()
        time.sleep(1.0)
        for i, a in enumerate(angles):
            M = cv2.getRotationMatrix2D((319.5, 239.5), a, 1.0)
            t = 300.0 + 0.2 * i
            client.publish_frame(cv2.warpAffine(frame0, M, (640, 480)), t, K, FRAME)
            assert wait_for(lambda: any(abs(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 - t) < 1e-6
                                        for m in client.heads), 30.0), node.log()
        time.sleep(0.5)
    finally:
        client.close()
        node.stop()
    for msg in client.heads:
        if msg.heads:
            key = round(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 - 300.0, 6)
            q = msg.heads[0].pose.orientation
            poses[round(key / 0.2)] = matrix_from_quat_xyzw(np.array([q.x, q.y, q.z, q.w]))
    # the tracker confirms a face on its third sight (min_hits 3): frame 2 is the first with a pose
    assert 2 in poses and len(poses) >= len(angles) - 2, sorted(poses)
    errors = [float(geodesic_angle_deg(poses[i], rz(-angles[i]) @ poses[2])) for i in poses]
    assert max(errors) < 3.0, errors
