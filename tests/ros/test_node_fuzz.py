"""Our own fuzzer in CI (issue 17): seeded, bounded batches of random images, CameraInfo,
service requests, mutated pool files and parameters against a real node process
(:mod:`hpe_training.bench.fuzz`); after every batch the node must be alive, answer a good frame
and stay under a memory bound. ``hpe-fuzz`` runs the same for longer."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
from hpe_ros.node_driver import NodeProcess, wait_for  # noqa: E402
from hpe_training.bench.fuzz import CAMERA_NS, NodeFuzzer  # noqa: E402
from node_harness import Client  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

#: Resident memory bound of the node under fuzzing, MB (the tiny model's node idles near 500 MB).
RSS_LIMIT_MB = 1500.0


@pytest.mark.parametrize("compressed,seed", [(False, 17), (True, 18)], ids=["raw", "compressed"])
def test_fuzzed_node_stays_alive_answers_and_bounded(tiny_model, frames, tmp_path, compressed, seed):
    anchor_dir = tmp_path / "anchors"
    anchor_dir.mkdir()
    topic = "image/compressed" if compressed else "image"
    node = NodeProcess({"estimator": "vggt", "model_path": str(tiny_model), "anchors.dir": str(anchor_dir),
                        "use_compressed": compressed, "detection.every_n_frames": 1},
                       tmp_path / "node.log", remaps={topic: f"{CAMERA_NS}/{topic}", "camera_info": f"{CAMERA_NS}/camera_info"})
    client = Client(camera_ns=CAMERA_NS)
    try:
        assert client.wait_connected(90.0, compressed=compressed), node.log()
        fuzzer = NodeFuzzer(node, client, frames[0], anchor_dir, seed=seed, compressed=compressed)
        fuzzer.check(RSS_LIMIT_MB, timeout_s=90.0)
        summary = fuzzer.run(4, RSS_LIMIT_MB, images=60)
        assert not summary.failure, summary.failure + "\n" + node.log()[-4000:]
        assert summary.batches == 4
        assert summary.sent["capture_anchor"] == 16 and summary.sent["parameter"] == 32
        assert summary.service_failures > 0  # hostile requests were refused, with answers
        assert wait_for(lambda: node.proc.poll() is None, 1.0)
        assert "Traceback" not in node.log() or node.log().count("Traceback") <= 3, node.log()[-4000:]
    finally:
        client.close()
        node.stop()
