"""REP 155 per-face publishers are made and destroyed by the node's frame worker while the
executor spins in another thread. A destroyed publisher that still had an event handler in the
executor's wait set killed the node ("InvalidHandle: cannot use Destroyable because destruction
was requested", seen in a full CI run); the per-face publishers therefore carry no event handler."""
from __future__ import annotations

import threading

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("hri_msgs.msg")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from hpe_core.pipeline import HeadEstimate  # noqa: E402
from hpe_ros.rep155 import Rep155Publisher  # noqa: E402

pytestmark = [pytest.mark.ros]


def _head(track_id: int) -> HeadEstimate:
    return HeadEstimate(track_id=track_id, person=f"person_{track_id}",
                        box_xyxy=np.array([100.0, 100.0, 200.0, 220.0]), pose_cam=None, confidence=0.9,
                        anchor_ids=(), nearest_gap_deg=float("nan"), yaw_pitch_roll_deg=None,
                        facing_camera=False, facing_angle_deg=float("nan"), keyframe_added=None,
                        source="no_anchor")


def test_faces_come_and_go_from_a_worker_thread_while_the_executor_spins() -> None:
    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("hpe_rep155_threads", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        rep = Rep155Publisher(node, grace_s=0.0)
        rgb = np.zeros((480, 640, 3), np.uint8)
        errors: list[BaseException] = []
        handlers_seen: list[int] = []

        def worker() -> None:
            try:
                for i in range(150):  # a face appears, then is gone: publishers made, then destroyed
                    rep.publish(Header(), rgb, [_head(i)], None, lambda t: None, stamp_s=2.0 * i)
                    handlers_seen.extend(len(p.event_handlers) for p in vars(rep._faces[rep.face_ids[0]]).values()
                                         if hasattr(p, "event_handlers"))
                    rep.publish(Header(), rgb, [], None, lambda t: None, stamp_s=2.0 * i + 1.0)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            executor.spin_once(timeout_sec=0.001)  # raises if a destroyed handle is in the wait set
        thread.join()
        assert not errors, errors
        assert rep.face_ids == []  # every face's publishers were destroyed again
        assert handlers_seen and set(handlers_seen) == {0}, "per-face publishers must carry no event handler"
        rep.close()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
