"""The head pose node as its own process, driven over ROS 2 from the test process.

Model: a tiny VGGT with random weights exported to ONNX (the default backend), so this file
checks the node's plumbing (lifecycle, topics, TF, services, parameters, bad input), not its
accuracy (the trained default model's accuracy is checked by the demo/accuracy tests).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy")
from lifecycle_msgs.msg import Transition  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from hpe_ros.pose_conversion import time_msg_from_seconds  # noqa: E402
from hpe_ros.srv import CaptureAnchor, ClearAnchors, LoadAnchors, SaveAnchors  # noqa: E402
from node_harness import NODE, Client, Feeder, NodeProcess, heads_after, wait_for  # noqa: E402

pytestmark = pytest.mark.ros

K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
CAMERA_FRAME = "test_cam_optical_frame"


@pytest.fixture(scope="module")
def system(tiny_model, tmp_path_factory):
    anchor_dir = tmp_path_factory.mktemp("anchors")
    log = tmp_path_factory.mktemp("logs") / "node.log"
    node = NodeProcess({"estimator": "vggt", "model_path": str(tiny_model), "anchors.dir": str(anchor_dir),
                        "detection.every_n_frames": 1, "diagnostics_period_s": 0.2},
                       log, remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})
    client = Client()
    try:
        assert client.wait_connected(90.0), "node did not come up:\n" + node.log()
        yield node, client, anchor_dir
    finally:
        client.close()
        node.stop()


def test_outputs_stamped_with_the_image(system, frames):
    node, client, _ = system
    feeder = Feeder(client, frames, K, CAMERA_FRAME)
    assert feeder.until(lambda: heads_after(client, 0), 90.0), node.log()
    msg = heads_after(client, 0)[-1]
    head = msg.heads[0]
    assert msg.header.frame_id == CAMERA_FRAME and head.header.frame_id == CAMERA_FRAME
    assert head.face_id == f"f{head.track_id:05d}"  # REP 155 id, as in TF face_<id>
    assert len(head.anchor_ids) >= 1 and 0.0 <= head.confidence <= 1.0
    # the expected orientation error: degrees >= 0, or NaN (unknown); /diagnostics carries the
    # last frame's mean and max (empty when unknown)
    assert math.isnan(head.expected_error_deg) or head.expected_error_deg >= 0.0
    assert wait_for(lambda: any(int(s.get("frames_processed", "0")) > 0 for s in client.diagnostic_status()), 10.0)
    status = [s for s in client.diagnostic_status() if int(s.get("frames_processed", "0")) > 0][-1]
    mean, worst = status["expected_error_deg.mean"], status["expected_error_deg.max"]
    assert (mean == "") == (worst == "")
    if mean:
        assert 0.0 <= float(mean) <= float(worst)
    q = head.pose.orientation
    assert abs(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w - 1.0) < 1e-6
    assert head.roi.width > 0 and head.roi.height > 0
    # /tf: face_<id> and gaze_<id>, children of the camera frame, with the image's stamp.
    assert wait_for(lambda: any(t.child_frame_id == f"face_{head.face_id}" for m in client.tf for t in m.transforms), 10)
    stamps = {(t.header.stamp.sec, t.header.stamp.nanosec) for m in client.tf for t in m.transforms
              if t.child_frame_id in (f"face_{head.face_id}", f"gaze_{head.face_id}")}
    head_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in client.heads}
    assert stamps and stamps <= head_stamps
    parents = {t.header.frame_id for m in client.tf for t in m.transforms}
    assert parents == {CAMERA_FRAME}


def test_services(system, frames):
    node, client, anchor_dir = system
    feeder = Feeder(client, frames, K, CAMERA_FRAME)
    assert feeder.until(lambda: heads_after(client, 0), 60.0)
    res = client.call(CaptureAnchor, f"/{NODE}/capture_anchor", CaptureAnchor.Request(track_id=-1))
    assert res.success, res.message
    assert res.anchor_id
    # track_id -1 means "the largest face": the answer names the track that was captured
    assert res.track_id in {h.track_id for m in client.heads[-20:] for h in m.heads}, res
    res = client.call(SaveAnchors, f"/{NODE}/save_anchors", SaveAnchors.Request(path="pool1.hpepool"))
    assert res.success, res.message
    assert (anchor_dir / "pool1.hpepool").is_file()
    for bad in ("../escape.hpepool", "/etc/passwd", "sub/../../x"):
        res = client.call(LoadAnchors, f"/{NODE}/load_anchors", LoadAnchors.Request(path=bad))
        assert not res.success and "anchor" in res.message
    res = client.call(ClearAnchors, f"/{NODE}/clear_anchors", ClearAnchors.Request(track_id=-1))
    assert res.success and res.removed >= 1
    res = client.call(LoadAnchors, f"/{NODE}/load_anchors", LoadAnchors.Request(path="pool1.hpepool"))
    assert res.success and res.anchors >= 1, res.message
    # enable: off -> no more heads; on -> heads again.
    assert client.call(SetBool, f"/{NODE}/enable", SetBool.Request(data=False)).success
    feeder.feed(3)
    n = len(client.heads)
    feeder.feed(5)
    assert len(client.heads) == n
    assert client.call(SetBool, f"/{NODE}/enable", SetBool.Request(data=True)).success
    assert feeder.until(lambda: heads_after(client, n), 30.0)


def test_parameters_validated(system):
    _, client, _ = system
    result = client.set_parameter("facing.cone_deg", 500.0)
    assert not result.successful and "facing.cone_deg" in result.reason
    result = client.set_parameter("anchors.bootstrap", "sometimes")
    assert not result.successful and "bootstrap" in result.reason
    assert not client.set_parameter("backend", "torch").successful  # read-only at run time
    assert client.set_parameter("facing.cone_deg", 25.0).successful


def test_bad_frame_reported_and_node_keeps_serving(system, frames):
    node, client, _ = system
    feeder = Feeder(client, frames, K, CAMERA_FRAME)
    bad = Image(height=480, width=640, encoding="rgb8", step=100, data=bytes(100 * 480))
    bad.header.frame_id = CAMERA_FRAME
    bad.header.stamp = time_msg_from_seconds(Feeder.next_stamp())  # new: an old stamp is dropped first
    n_diag = len(client.diagnostics)
    client.publish_raw(bad)
    assert wait_for(lambda: any(s.level == b"\x02" and "step" in s.message + "".join(v.value for v in s.values)
                                for m in client.diagnostics[n_diag:] for s in m.status), 10.0), \
        [s.message for m in client.diagnostics[n_diag:] for s in m.status]
    n = len(client.heads)
    assert feeder.until(lambda: heads_after(client, n), 30.0), node.log()


def test_lifecycle_frees_and_recreates(system, frames):
    node, client, _ = system
    feeder = Feeder(client, frames, K, CAMERA_FRAME)
    assert client.state() == "active"
    assert client.lifecycle(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == "inactive"
    feeder.feed(2)
    n = len(client.heads)
    feeder.feed(4)
    assert len(client.heads) == n  # inactive: nothing published
    assert client.lifecycle(Transition.TRANSITION_CLEANUP)
    assert client.state() == "unconfigured"
    # cleanup freed the subscriptions and publishers
    assert wait_for(lambda: client.pub_image.get_subscription_count() == 0, 10.0)
    assert wait_for(lambda: client.sub_heads.get_publisher_count() == 0, 10.0)
    assert client.lifecycle(Transition.TRANSITION_CONFIGURE)
    assert client.lifecycle(Transition.TRANSITION_ACTIVATE)
    assert client.state() == "active"
    assert client.wait_connected(30.0)
    assert feeder.until(lambda: heads_after(client, n), 60.0), node.log()
