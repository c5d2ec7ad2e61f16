"""The node started with exactly the arguments `ros2 launch hpe_ros head_pose.launch.py
namespace:=/robot1` passes (namespace, node name, params file, remaps): the YAML's parameters
apply (top key ``/**``), which the old top key ``head_pose_node:`` did not under a namespace.
`launch` itself cannot be installed here (ros2-on-pip.md); test_launch_static checks the file."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")
from rcl_interfaces.srv import GetParameters  # noqa: E402

from node_harness import REPO_ROOT, Client, NodeProcess  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAUNCH_REMAPS = {"__ns": "/robot1", "__node": "head_pose_node", "image": "/camera/image_raw",
                 "image/compressed": "/camera/image_raw/compressed", "camera_info": "/camera/camera_info"}


def yaml_with(tmp_path: Path, top_key: str) -> Path:
    """The repository's parameter file with its top key ``top_key`` and one non-default value."""
    data = yaml.safe_load((REPO_ROOT / "config" / "head_pose.yaml").read_text())
    (params,) = data.values()
    params["ros__parameters"]["detection"]["every_n_frames"] = 7
    path = tmp_path / f"params_{top_key.strip('/*') or 'all'}.yaml"
    path.write_text(yaml.safe_dump({top_key: params}))
    return path


def every_n_frames_of(client: Client) -> int:
    req = GetParameters.Request(names=["detection.every_n_frames"])
    return client.call(GetParameters, "/robot1/head_pose_node/get_parameters", req, timeout_s=60.0).values[0].integer_value


@pytest.mark.parametrize("top_key,applies", [("/**", True), ("head_pose_node", False)])
def test_the_yaml_applies_under_a_namespace(tiny_model, tmp_path, top_key, applies):
    node = NodeProcess({"estimator": "vggt", "model_path": str(tiny_model)}, tmp_path / "node.log",
                       remaps=LAUNCH_REMAPS, params_file=yaml_with(tmp_path, top_key))
    client = Client()
    try:
        assert (every_n_frames_of(client) == 7) is applies, node.log()[-2000:]
    finally:
        client.close()
        node.stop()


def test_the_repository_yaml_uses_the_wildcard_key():
    assert list(yaml.safe_load((REPO_ROOT / "config" / "head_pose.yaml").read_text())) == ["/**"]
