"""A colcon build of a workspace that contains this repository yields the ROS 2 package hpe_ros.

This is what a user with a ROS 2 distribution does before `ros2 launch hpe_ros
head_pose.launch.py`; here it runs against the PyPI ROS wheels of the venv.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory) -> Path:
    colcon = Path(sys.executable).with_name("colcon")
    if not colcon.exists():
        pytest.skip("colcon is installed by tools/setup.sh")
    ws = tmp_path_factory.mktemp("ws")
    (ws / "src").mkdir()
    (ws / "src" / "hpe").symlink_to(REPO_ROOT, target_is_directory=True)
    env = dict(os.environ)
    prefix = sys.prefix
    env["CMAKE_PREFIX_PATH"] = prefix
    env["AMENT_PREFIX_PATH"] = prefix
    listed = subprocess.run([str(colcon), "list"], cwd=ws, env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    # Exactly one package, hpe_ros, built by ament_cmake (not the setup.py beside it).
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["hpe_ros"]
    assert "(ros.ament_cmake)" in listed.stdout
    build = subprocess.run(
        [str(colcon), "build", "--merge-install", "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return ws / "install"


def test_package_layout(colcon_install: Path):
    share = colcon_install / "share" / "hpe_ros"
    assert (share / "launch" / "head_pose.launch.py").is_file()
    assert list((share / "config").glob("*.yaml"))
    assert (share / "package.xml").is_file()
    for exe in ("head_pose_node", "camera_player_node"):
        path = colcon_install / "lib" / "hpe_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), path
    site = colcon_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for pkg in ("hpe_core", "hpe_training", "hpe_ros"):
        assert (site / pkg / "__init__.py").is_file(), pkg
    # The interfaces sit in the same hpe_ros package as our modules.
    for iface in ("msg/_head_pose.py", "msg/_head_pose_array.py", "srv/_capture_anchor.py",
                  "srv/_clear_anchors.py", "srv/_save_anchors.py", "srv/_load_anchors.py"):
        assert (site / "hpe_ros" / iface).is_file(), iface


def test_installed_package_imports_without_the_checkout(colcon_install: Path, tmp_path: Path):
    """hpe_core, hpe_ros and hpe_ros.msg import from the install tree (not the checkout)."""
    site = colcon_install / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    code = (
        "import sys, hpe_ros, hpe_core\n"
        f"assert hpe_ros.__path__[0].startswith({str(site)!r}), hpe_ros.__path__\n"
        f"assert hpe_core.__file__.startswith({str(site)!r}), hpe_core.__file__\n"
        "import hpe_ros.msg\n"
        f"assert hpe_ros.msg.__file__.startswith({str(site)!r}), hpe_ros.msg.__file__\n"
        "from hpe_ros.msg import HeadPoseArray\n"
        "from hpe_ros.srv import CaptureAnchor\n"
        "print('ok', len(HeadPoseArray().heads))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    env["LD_LIBRARY_PATH"] = str(colcon_install / "lib") + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    # PYTHONPATH puts the install tree before the venv (and the checkout's .pth entry).
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok 0" in result.stdout
