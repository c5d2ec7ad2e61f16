"""REP 155 output as a ros4hri consumer reads it (issue 16): the tracked list, then the per-face
topics it names; stamps, ids and ROI checked against the frames and the node's own /head_pose;
per-face topics destroyed after the face is gone. Real node process, tiny random-weight VGGT
(plumbing, not accuracy), the astronaut photo panning (one real face)."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
hri_msgs = pytest.importorskip("hri_msgs.msg")
from sensor_msgs.msg import Image  # noqa: E402

from node_harness import Client, Feeder, NodeProcess, heads_after, wait_for  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
FRAME = "test_cam_optical_frame"
#: Where the astronaut's face is in the 640x480 pan frames (pixels): x 270-330 as it pans, y ~120.
FACE_CENTRE_Y_PX = 120.0


def stamp_key(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def test_a_ros4hri_consumer_reads_our_faces(tiny_model, frames, tmp_path):
    node = NodeProcess({"estimator": "vggt", "model_path": str(tiny_model), "detection.every_n_frames": 1,
                        "hri.grace_s": 0.5},
                       tmp_path / "node.log", remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})
    client = Client()
    tracked: list = []
    per_face: dict[str, list] = {"roi": [], "cropped": [], "aligned": []}
    try:
        client.node.create_subscription(hri_msgs.IdsList, "/humans/faces/tracked", tracked.append, 10)
        assert client.wait_connected(90.0), node.log()
        feeder = Feeder(client, frames, K, FRAME)
        assert feeder.until(lambda: any(m.ids for m in tracked), 90.0), node.log()
        face_id = next(m.ids for m in tracked if m.ids)[0]
        assert face_id.startswith("f") and face_id[1:].isdigit()  # a valid ROS name token
        # as a consumer does: subscribe to the topics the tracked list names
        base = f"/humans/faces/{face_id}"
        client.node.create_subscription(hri_msgs.NormalizedRegionOfInterest2D, f"{base}/roi", per_face["roi"].append, 10)
        client.node.create_subscription(Image, f"{base}/cropped", per_face["cropped"].append, 10)
        client.node.create_subscription(Image, f"{base}/aligned", per_face["aligned"].append, 10)
        assert feeder.until(lambda: all(len(v) >= 3 for v in per_face.values()), 60.0), {k: len(v) for k, v in per_face.items()}

        heads = {stamp_key(m): m for m in client.heads if m.heads}
        matched = 0
        for roi in per_face["roi"]:
            head_msg = heads.get(stamp_key(roi))
            if head_msg is None:
                continue
            matched += 1
            head = head_msg.heads[0]
            assert head.face_id == face_id  # the same <id> as /head_pose and TF face_<id>
            assert roi.header.frame_id == FRAME
            expected = (head.roi.x_offset / 640, head.roi.y_offset / 480,
                        (head.roi.x_offset + head.roi.width) / 640, (head.roi.y_offset + head.roi.height) / 480)
            assert np.allclose((roi.xmin, roi.ymin, roi.xmax, roi.ymax), expected, atol=2 / 480)
            assert 0.0 <= roi.xmin < roi.xmax <= 1.0 and 0.0 <= roi.ymin < roi.ymax <= 1.0 and 0.0 <= roi.c <= 1.0
            assert roi.ymin * 480 < FACE_CENTRE_Y_PX < roi.ymax * 480  # the real face is inside
        assert matched >= 2
        image_stamps = {stamp_key(m) for m in client.heads}
        for kind in ("cropped", "aligned"):
            assert all(stamp_key(m) in image_stamps for m in per_face[kind])  # stamped with their image
        crop = per_face["cropped"][-1]
        assert crop.encoding == "rgb8" and 40 < crop.width < 400 and 40 < crop.height < 400
        aligned = per_face["aligned"][-1]
        assert (aligned.width, aligned.height) == (128, 128)
        assert TF_has(client, f"face_{face_id}")

        # the face leaves: the tracked list empties and its topics are destroyed after the grace period
        blank = [np.zeros_like(frames[0])]
        empty = Feeder(client, blank, K, FRAME)
        assert empty.until(lambda: tracked and not tracked[-1].ids, 60.0)
        empty.feed(8, period_s=0.15)
        assert wait_for(lambda: client.node.count_publishers(f"{base}/roi") == 0, 20.0), node.log()[-2000:]
        assert client.node.count_publishers("/humans/faces/tracked") == 1
    finally:
        client.close()
        node.stop()


def TF_has(client: Client, child: str) -> bool:
    return bool(wait_for(lambda: any(t.child_frame_id == child for m in client.tf for t in m.transforms), 10.0))


def test_landmarks_from_the_face_mesh_on_a_real_face(frames, tmp_path):
    """With the face mesh (the default estimator), /humans/faces/<id>/landmarks carries the 70
    ROS4HRI landmarks of the real astronaut face: inside the face's ROI, the person's right eye on
    the image's left, pupils between the eye corners, all 70 given."""
    FacialLandmarks = hri_msgs.FacialLandmarks
    node = NodeProcess({"detection.every_n_frames": 1}, tmp_path / "node.log",
                       remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})
    client = Client()
    tracked, rois, landmarks = [], [], []
    try:
        client.node.create_subscription(hri_msgs.IdsList, "/humans/faces/tracked", tracked.append, 10)
        assert client.wait_connected(90.0), node.log()
        feeder = Feeder(client, frames, K, FRAME)
        assert feeder.until(lambda: any(m.ids for m in tracked), 90.0), node.log()
        base = f"/humans/faces/{next(m.ids for m in tracked if m.ids)[0]}"
        client.node.create_subscription(hri_msgs.NormalizedRegionOfInterest2D, f"{base}/roi", rois.append, 10)
        client.node.create_subscription(FacialLandmarks, f"{base}/landmarks", landmarks.append, 10)
        assert feeder.until(lambda: len(landmarks) >= 2, 60.0), node.log()[-2000:]
        roi_by_stamp = {stamp_key(r): r for r in rois}
        msg = next(m for m in reversed(landmarks) if stamp_key(m) in roi_by_stamp)
        roi = roi_by_stamp[stamp_key(msg)]
        assert (msg.width, msg.height) == (640, 480) and len(msg.landmarks) == 70
        point = {code: msg.landmarks[code] for code in range(70)}
        for code in (FacialLandmarks.NOSE, FacialLandmarks.RIGHT_EYE_OUTSIDE, FacialLandmarks.LEFT_EYE_OUTSIDE,
                     FacialLandmarks.MENTON, FacialLandmarks.MOUTH_OUTER_TOP_3):
            p = point[code]
            assert p.c > 0 and roi.xmin - 0.02 <= p.x <= roi.xmax + 0.02 and roi.ymin - 0.05 <= p.y <= roi.ymax + 0.05, (code, p, roi)
        right, left = point[FacialLandmarks.RIGHT_EYE_OUTSIDE], point[FacialLandmarks.LEFT_EYE_OUTSIDE]
        assert right.x < left.x  # the person's right eye is on the image's left
        assert right.x < point[FacialLandmarks.RIGHT_PUPIL].x < point[FacialLandmarks.LEFT_PUPIL].x < left.x
        assert point[FacialLandmarks.MENTON].y > point[FacialLandmarks.NOSE].y > point[FacialLandmarks.SELLION].y
        assert all(point[c].c > 0.0 for c in range(70))  # every ROS4HRI landmark is given
    finally:
        client.close()
        node.stop()
