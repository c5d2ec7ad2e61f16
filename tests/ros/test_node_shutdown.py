"""Ctrl-C (SIGINT) and SIGTERM while frames flow (issue 16, ros2-real-clients.md item 4): the
worker stops before the ROS context, so the node exits 0 without a traceback or a failed frame."""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
from node_harness import Client, Feeder, NodeProcess, heads_after, wait_for  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
FRAME = "test_cam_optical_frame"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGINT, signal.SIGTERM], ids=["int-1", "int-2", "term"])
def test_a_signal_while_frames_flow_exits_cleanly(tiny_model, frames, tmp_path, signum):
    node = NodeProcess({"estimator": "vggt", "model_path": str(tiny_model), "detection.every_n_frames": 1},
                       tmp_path / "node.log", remaps={"image": "/test_cam/image", "camera_info": "/test_cam/camera_info"})
    client = Client()
    streaming = threading.Event()
    try:
        assert client.wait_connected(90.0), node.log()
        feeder = Feeder(client, frames, K, FRAME)
        assert feeder.until(lambda: heads_after(client, 0), 90.0), node.log()

        def stream() -> None:
            while not streaming.is_set():
                feeder.feed(1, period_s=1 / 30)

        thread = threading.Thread(target=stream, daemon=True)
        thread.start()
        time.sleep(1.0)  # frames in flight, the worker busy
        node.proc.send_signal(signum)
        assert wait_for(lambda: node.proc.poll() is not None, 20.0), "the node did not stop:\n" + node.log()
        streaming.set()
        thread.join(5.0)
        log = node.log()
        assert node.proc.returncode == 0, log[-3000:]
        assert "Traceback" not in log and "frame failed" not in log, log[-3000:]
    finally:
        streaming.set()
        client.close()
        node.stop()
