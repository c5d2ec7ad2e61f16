"""Hostile values at the ROS boundary (issue 17), without a node: CameraInfo that is finite but
absurd, compressed-image bombs refused from their headers, parameters validated together, frame
names, capture poses."""
from __future__ import annotations

import resource
import struct
import zlib

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
from geometry_msgs.msg import Pose  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage  # noqa: E402

from hpe_ros.camera_info_conversion import CameraInfoError, intrinsics_from_camera_info  # noqa: E402
from hpe_ros.compressed_header import declared_size  # noqa: E402
from hpe_ros.image_conversion import ImageConversionError, compressed_msg_to_rgb  # noqa: E402
from hpe_ros.pose_conversion import pose_matrix_from_request  # noqa: E402
from hpe_ros.parameters import PARAMETERS, frame_id_problem, validate, validate_together  # noqa: E402

DEFAULTS = {spec.name: spec.default for spec in PARAMETERS}


# -- CameraInfo ---------------------------------------------------------------------------------
def camera_info(fx=525.0, fy=525.0, cx=319.5, cy=239.5, skew=0.0, width=640, height=480) -> CameraInfo:
    msg = CameraInfo()
    msg.width, msg.height = width, height
    msg.k = [fx, skew, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    return msg


@pytest.mark.parametrize("values", [dict(fx=1e-300, fy=1e-300), dict(fx=5e-324, fy=5e-324), dict(cx=1e300),
                                    dict(skew=1e300), dict(fy=525e6), dict(width=10**6)])
def test_finite_but_absurd_camera_info_is_refused(values):
    with pytest.raises(CameraInfoError):
        intrinsics_from_camera_info(camera_info(**values))


def test_plausible_camera_info_is_kept():
    for values in (dict(), dict(fx=200.0, fy=200.0), dict(fx=6000.0, fy=6000.0), dict(cx=-100.0, cy=900.0)):
        assert intrinsics_from_camera_info(camera_info(**values)).width == 640


# -- compressed bombs ---------------------------------------------------------------------------
def png_declaring(width: int, height: int) -> bytes:
    """A PNG header declaring ``width x height`` grey pixels, with one small IDAT (a bomb's start)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100_000)) + chunk(b"IEND", b"")


def test_png_bomb_is_refused_from_its_header_without_decoding():
    msg = CompressedImage(format="png", data=png_declaring(30000, 30000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageConversionError, match="png header.*exceeds"):
        compressed_msg_to_rgb(msg, max_pixels=4096 * 4096)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"peak memory grew {grown_mb:.0f} MB"


def test_jpeg_size_is_read_from_the_start_of_frame():
    ok, jpg = cv2.imencode(".jpg", np.zeros((48, 80, 3), np.uint8))
    assert ok
    assert declared_size(jpg.tobytes()) == ("jpeg", 80, 48)
    data = bytearray(jpg.tobytes())
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", 40000, 40000)  # a JPEG declaring 40000 x 40000
    with pytest.raises(ImageConversionError, match="jpeg header.*exceeds"):
        compressed_msg_to_rgb(CompressedImage(format="jpeg", data=bytes(data)), max_pixels=4096 * 4096)


def test_other_formats_are_refused_by_name():
    ok, bmp = cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageConversionError, match="neither PNG nor JPEG"):
        compressed_msg_to_rgb(CompressedImage(format="bmp", data=bmp.tobytes()))


def test_a_real_png_still_decodes():
    ok, png = cv2.imencode(".png", np.full((30, 40, 3), 7, np.uint8))
    assert compressed_msg_to_rgb(CompressedImage(format="png", data=png.tobytes())).shape == (30, 40, 3)


# -- parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("changes", [
    {"anchors.max_accumulated_uncertainty_deg": 0.0},
    {"anchors.max_per_track": 2},  # below anchors.per_estimate = 3
    {"anchors.per_estimate": 8, "anchors.max_per_track": 4},
])
def test_parameters_that_the_next_configure_would_refuse_are_refused_now(changes):
    assert validate_together({**DEFAULTS, **changes}) is not None


def test_parameters_that_fit_together_are_accepted():
    assert validate_together(DEFAULTS) is None
    assert validate_together({**DEFAULTS, "anchors.per_estimate": 2, "anchors.max_per_track": 2}) is None


@pytest.mark.parametrize("name,value", [
    ("frames.camera_frame", ".."), ("frames.camera_frame", "/camera"), ("frames.camera_frame", "a//b"),
    ("frames.camera_frame", "x" * 10_000), ("frames.camera_frame", "cam\x07era"), ("frames.camera_frame", "my camera"),
    ("frames.face_prefix", "a/b"), ("frames.face_prefix", ".."), ("frames.gaze_prefix", "g\n"),
    ("frames.face_prefix", "f" * 10_000),
])
def test_frame_names_must_be_valid_tf_frames(name, value):
    assert validate(name, value) is not None


def test_valid_frame_names_pass():
    for frame in ("camera_color_optical_frame", "robot1/head_camera", "cam-0.optical"):
        assert frame_id_problem(frame) is None
    assert validate("frames.face_prefix", "face_") is None
    assert frame_id_problem("") is not None


# -- capture poses ------------------------------------------------------------------------------
@pytest.mark.parametrize("q", [(0, 0, 0, 0), (1e-300, 0, 0, 0), (0.5, 0, 0, 0.5), (np.nan, 0, 0, 1), (1e300, 0, 0, 1e300)])
def test_capture_orientation_must_be_a_unit_quaternion(q):
    pose = Pose()
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
    with pytest.raises(ValueError, match="unit quaternion"):
        pose_matrix_from_request(pose)


def test_capture_pose_conversion():
    pose = Pose()
    pose.position.z = 1.5
    pose.orientation.w = 1.0
    T = pose_matrix_from_request(pose)
    assert np.allclose(T[:3, :3], np.eye(3)) and T[2, 3] == 1.5
    pose.position.x = float("inf")
    with pytest.raises(ValueError, match="finite"):
        pose_matrix_from_request(pose)
