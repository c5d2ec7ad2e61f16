"""The node process against the fuzzer's findings (issue 17): each request or input that killed,
silenced or corrupted the node on c8f92d0 is sent to a real node process, which must answer it
with a reason, keep its state, and serve the next good frame.

One node (raw images, the tiny random-weight VGGT export: plumbing, not accuracy) serves the
module in order; the save/load race with cleanup comes last.
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
from lifecycle_msgs.msg import Transition  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hpe_core.anchors import persistence  # noqa: E402
from hpe_core.anchors.anchor import Anchor, AnchorSource  # noqa: E402
from hpe_core.anchors.pool import AnchorPool  # noqa: E402
from hpe_ros.pose_conversion import time_msg_from_seconds  # noqa: E402
from hpe_ros.srv import CaptureAnchor, LoadAnchors, SaveAnchors  # noqa: E402
from node_harness import NODE, Client, Feeder, NodeProcess, heads_after, wait_for  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
FRAME = "test_cam_optical_frame"
CROP = 56  # the tiny preset's input size


class HostileRig:
    def __init__(self, tiny_model: Path, work: Path) -> None:
        self.work, self.anchor_dir = work, work / "anchors"
        self.anchor_dir.mkdir()
        self.node = NodeProcess({"estimator": "vggt", "model_path": str(tiny_model), "anchors.dir": str(self.anchor_dir),
                                 "anchors.max_people": 200, "detection.every_n_frames": 1, "diagnostics_period_s": 0.2},
                                work / "node.log", remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})
        self.client = Client()

    def alive(self) -> bool:
        return self.node.proc.poll() is None

    def serves(self, frames, with_k: bool = True, frame_id: str = FRAME, timeout_s: float = 60.0) -> bool:
        n = len(self.client.heads)
        feeder = Feeder(self.client, frames, K if with_k else None, frame_id)
        return feeder.until(lambda: heads_after(self.client, n), timeout_s)

    def status(self, since: int = 0) -> list[dict[str, str]]:
        return self.client.diagnostic_status(since)

    def anchors_total(self) -> int:
        assert wait_for(lambda: self.status(), 10.0)
        latest = self.status()[-1]
        return sum(int(v) for k, v in latest.items() if k.startswith("anchors_per_track."))

    def capture(self, position=(0.0, 0.0, 1.0), quaternion=(0.0, 0.0, 0.0, 1.0)):
        req = CaptureAnchor.Request(track_id=-1, use_given_pose=True)
        req.pose.position.x, req.pose.position.y, req.pose.position.z = (float(v) for v in position)
        o = req.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quaternion)
        return self.client.call(CaptureAnchor, f"/{NODE}/capture_anchor", req)

    def load(self, name: str):
        return self.client.call(LoadAnchors, f"/{NODE}/load_anchors", LoadAnchors.Request(path=name))


@pytest.fixture(scope="module")
def rig(tiny_model, frames, tmp_path_factory):
    r = HostileRig(tiny_model, tmp_path_factory.mktemp("hostile"))
    try:
        assert r.client.wait_connected(90.0), "node did not come up:\n" + r.node.log()
        assert r.serves(frames, timeout_s=90.0), r.node.log()
        yield r
    finally:
        r.client.close()
        r.node.stop()


# -- requests that killed the node ---------------------------------------------------------------
@pytest.mark.parametrize("position,quaternion,text", [
    ((0, 0, 1), (0, 0, 0, 0), "unit quaternion"),
    ((0, 0, 1), (1e-300, 0, 0, 0), "unit quaternion"),
    ((1e300, 0, 1), (0, 0, 0, 1), "m from the camera"),
    ((0, 0, float("nan")), (0, 0, 0, 1), "finite"),
])
def test_capture_with_an_unusable_pose_is_refused_and_changes_nothing(rig, frames, position, quaternion, text):
    assert rig.serves(frames)
    before = rig.anchors_total()
    res = rig.capture(position, quaternion)
    assert not res.success and text in res.message and "anchors unchanged" in res.message, res.message
    assert rig.alive(), rig.node.log()
    since = len(rig.client.diagnostics)
    assert wait_for(lambda: len(rig.client.diagnostics) > since + 1, 10.0)
    assert rig.anchors_total() == before  # the bootstrapped guess was not removed
    assert rig.serves(frames)


def test_a_valid_capture_still_works(rig, frames):
    assert rig.serves(frames)
    res = rig.capture((0.0, 0.0, 1.0))
    assert res.success, res.message


# -- input that silenced the node ----------------------------------------------------------------
def test_a_refused_frame_stamped_ahead_does_not_poison_the_order_check(rig, frames):
    ahead = Image(height=480, width=640, encoding="yuv422", step=1280, data=bytes(1280 * 480))
    ahead.header.frame_id = FRAME
    ahead.header.stamp = time_msg_from_seconds(time.time() + 3600.0)
    for _ in range(3):
        rig.client.publish_raw(ahead)
        time.sleep(0.2)
    assert rig.serves(frames, timeout_s=30.0), rig.node.log()


def test_a_valid_frame_stamped_at_the_end_of_time_is_dropped_and_output_goes_on(rig, frames):
    since = len(rig.client.diagnostics)
    for _ in range(3):
        rig.client.publish_frame(frames[0], 2.0**31 - 1, K, FRAME)
        time.sleep(0.2)
    assert rig.serves(frames, timeout_s=30.0), rig.node.log()
    assert wait_for(lambda: any(int(s.get("frames_stamp_ahead", "0")) >= 1 for s in rig.status(since)), 10.0)


def test_an_empty_frame_id_still_gets_head_poses_and_one_warning(rig, frames):
    tracebacks_before = rig.node.log().count("Traceback")
    n = len(rig.client.heads)
    feeder = Feeder(rig.client, frames, K, "")
    assert feeder.until(lambda: [m for m in heads_after(rig.client, n) if m.header.frame_id == ""], 60.0), rig.node.log()
    feeder.feed(10, period_s=0.1)
    log = rig.node.log()
    assert log.count("Traceback") == tracebacks_before
    assert log.count("no TF published") == 1, log[-3000:]
    assert rig.serves(frames)


def test_absurd_camera_info_is_refused_and_frames_go_on_with_the_default_field_of_view(rig, frames):
    since = len(rig.client.diagnostics)
    info = CameraInfo(width=640, height=480)
    info.k = [1e-300, 0.0, 319.5, 0.0, 1e-300, 239.5, 0.0, 0.0, 1.0]
    info.header.frame_id = FRAME
    for _ in range(3):
        rig.client.publish_info(info)
        time.sleep(0.2)
    assert wait_for(lambda: any("implausible" in s.get("camera_info", "") for s in rig.status(since)), 15.0), \
        [s.get("camera_info") for s in rig.status(since)][-3:]
    assert rig.serves(frames, with_k=False), rig.node.log()
    assert rig.serves(frames)  # good intrinsics again


# -- files that killed the node or were accepted and broke every frame ----------------------------
def wrap(payload: bytes) -> bytes:
    """A pool file around ``payload`` with a correct header and checksum (the attacker's own)."""
    header = {"format": "hpe-anchor-pool", "version": 1, "payload_bytes": len(payload),
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header).encode() + b"\n" + payload


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def pool_file(people: int, per_person: int, crop_hw=(CROP, CROP)) -> bytes:
    rng = np.random.default_rng(0)
    anchors = []
    for p in range(people):
        for i in range(per_person):
            pose = np.eye(4)
            pose[:3, 3] = [0.0, 0.0, 1.0 + 0.01 * i]
            anchors.append(Anchor(anchor_id=f"person_{p}-b{i}", track_id=f"person_{p}",
                                  crop=rng.integers(0, 256, (*crop_hw, 3), dtype=np.uint8), pose_cam=pose,
                                  virtual_from_cam=np.eye(3), source=AnchorSource.BOOTSTRAPPED, quality=0.3,
                                  created_at=1.0, parent_ids=(), chain_depth=0, accumulated_uncertainty_deg=25.0))
    return persistence.encode_pool(AnchorPool.from_anchors(anchors))


def test_crafted_pool_files_are_refused_and_the_running_pool_kept(rig, frames):
    files = {
        "deep_list.hpepool": wrap(npz(metadata=np.frombuffer(b"[" * 60_000, np.uint8), pose_cam=np.zeros((0, 4, 4)),
                                      virtual_from_cam=np.zeros((0, 3, 3)))),
        "deep_object.hpepool": wrap(npz(metadata=np.frombuffer(b'{"a":' * 200_000, np.uint8),
                                        pose_cam=np.zeros((0, 4, 4)), virtual_from_cam=np.zeros((0, 3, 3)))),
        "tiny_crop.hpepool": pool_file(1, 1, (1, 1)),
        "thin_crop.hpepool": pool_file(1, 1, (7, 3000)),
        "too_many.hpepool": pool_file(1, 40),  # anchors.max_per_track is 12
    }
    for name, data in files.items():
        (rig.anchor_dir / name).write_bytes(data)
    before = rig.anchors_total()
    for name in files:
        res = rig.load(name)
        assert not res.success and "running pool kept" in res.message, (name, res.message)
        assert rig.alive(), (name, rig.node.log()[-3000:])
    assert rig.anchors_total() == before
    assert rig.serves(frames)


# -- parameters ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,value", [
    ("anchors.max_accumulated_uncertainty_deg", 0.0), ("anchors.max_per_track", 2),
    ("frames.face_prefix", "a/b"), ("frames.camera_frame", ".."), ("frames.camera_frame", "x" * 10_000),
    ("frames.gaze_prefix", "gaze\x01"),
])
def test_parameters_the_next_configure_would_refuse_are_refused(rig, name, value):
    result = rig.client.set_parameter(name, value)
    assert not result.successful and result.reason


def test_reconfigure_succeeds_after_the_refused_parameters(rig, frames):
    assert rig.client.lifecycle(Transition.TRANSITION_DEACTIVATE)
    assert rig.client.lifecycle(Transition.TRANSITION_CLEANUP)
    assert rig.client.lifecycle(Transition.TRANSITION_CONFIGURE), rig.node.log()[-3000:]
    assert rig.client.lifecycle(Transition.TRANSITION_ACTIVATE)
    assert rig.serves(frames, timeout_s=90.0)


def test_detector_settings_apply_at_run_time(rig, frames):
    assert rig.client.set_parameter("detection.min_face_px", 1000).successful
    feeder = Feeder(rig.client, frames, K, FRAME)
    feeder.feed(12, period_s=0.15)  # the track dies after max_missed detections without a face
    n = len(rig.client.heads)
    feeder.feed(8, period_s=0.15)
    assert wait_for(lambda: len(rig.client.heads) > n, 10.0)
    assert not heads_after(rig.client, n), "faces still found with detection.min_face_px 1000"
    assert rig.client.set_parameter("detection.min_face_px", 40).successful
    assert rig.serves(frames)


# -- a save or load racing a cleanup -------------------------------------------------------------
def test_save_and_load_of_a_large_pool_racing_cleanup(rig, frames):
    (rig.anchor_dir / "large.hpepool").write_bytes(pool_file(167, 12))  # 2004 anchors
    res = rig.load("large.hpepool")
    assert res.success and res.anchors == 2004, res.message
    for service, request in ((SaveAnchors, SaveAnchors.Request(path="raced.hpepool")),
                             (LoadAnchors, LoadAnchors.Request(path="large.hpepool"))):
        answers = {}
        name = "save_anchors" if service is SaveAnchors else "load_anchors"
        def call() -> None:
            try:
                answers["srv"] = rig.client.call(service, f"/{NODE}/{name}", request)
            except TimeoutError as exc:  # cleanup destroyed the service before the request reached it
                answers["lost"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.05)
        assert rig.client.lifecycle(Transition.TRANSITION_DEACTIVATE)
        assert rig.client.lifecycle(Transition.TRANSITION_CLEANUP)
        caller.join(60.0)
        assert rig.alive(), rig.node.log()[-3000:]
        assert ("srv" in answers and answers["srv"].message) or "lost" in answers, answers
        assert rig.client.lifecycle(Transition.TRANSITION_CONFIGURE), rig.node.log()[-3000:]
        assert rig.client.lifecycle(Transition.TRANSITION_ACTIVATE)
        assert rig.serves(frames, timeout_s=90.0)
    if (rig.anchor_dir / "raced.hpepool").exists():  # whatever was written is whole
        assert len(persistence.load(rig.anchor_dir / "raced.hpepool")) == 2004
