"""A head of the pipeline (:class:`~hpe_core.pipeline.HeadEstimate`) -> ``hpe_ros/HeadPose``.

Fields and frames as in ``msg/HeadPose.msg``: the pose is ``T_cam_from_head`` in the camera
optical frame (metres; REP 103: x right, y down, z forward), angles in degrees, the face box in
pixels.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hpe_ros.msg import HeadPose
from hpe_ros.pose_conversion import pose_msg_from_matrix

if TYPE_CHECKING:
    from std_msgs.msg import Header

    from hpe_core.pipeline import HeadEstimate


def head_pose_msg(head: "HeadEstimate", header: "Header", face_id: str) -> HeadPose:
    """One head of a frame -> the ``hpe_ros/HeadPose`` that ``/head_pose`` carries.

    Args:
        head: an estimate with a pose (``head.pose_cam``: ``[4, 4]`` ``T_cam_from_head``).
        header: the message header: the image's stamp, and the camera optical frame as
            ``frame_id``.
        face_id: the face's REP 155 id (e.g. ``"f00001"``).

    Returns:
        The message: pose and yaw/pitch/roll (degrees), ``confidence`` (0..1),
        ``expected_error_deg`` (degrees; NaN, "unknown", passes through), anchors and the gap
        to the nearest (degrees), facing the camera and its angle (degrees), and the face box
        (pixels; an offset left of or above the image becomes 0, width and height are the
        box's own).

    Raises:
        ValueError: ``head`` has no pose, or its pose is not a finite rigid transform.
    """
    if head.pose_cam is None:
        raise ValueError(f"head_pose_msg: track {head.track_id} has no pose")
    msg = HeadPose()
    msg.header = header
    msg.track_id = int(head.track_id)
    msg.face_id = face_id
    msg.pose = pose_msg_from_matrix(head.pose_cam)
    msg.yaw_deg, msg.pitch_deg, msg.roll_deg = (float(v) for v in head.yaw_pitch_roll_deg)
    msg.confidence = float(head.confidence)
    msg.expected_error_deg = float(head.expected_error_deg)
    msg.anchor_ids = list(head.anchor_ids)
    msg.anchor_gap_deg = float(head.nearest_gap_deg)
    msg.facing_camera = bool(head.facing_camera)
    msg.facing_angle_deg = float(head.facing_angle_deg)
    x0, y0, x1, y1 = head.box_xyxy
    msg.roi.x_offset, msg.roi.y_offset = max(int(x0), 0), max(int(y0), 0)
    msg.roi.width, msg.roi.height = max(int(x1 - x0), 0), max(int(y1 - y0), 0)
    return msg
