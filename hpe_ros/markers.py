"""RViz markers for estimated heads: a gaze arrow and a text label per face.

All markers are stamped with the image's stamp and expressed in the camera optical frame
(``header.frame_id`` of the image). The arrow starts at the eyes' midpoint (the ``gaze_<id>``
frame's origin, see :mod:`hpe_ros.pose_conversion`) and points along the head's forward
direction (head -z); the label floats above the head centre (camera -y is up in the image)
and reads ``"<face_id>  y <yaw> p <pitch> r <roll>"`` in degrees (BIWI convention,
``hpe_core.geometry.euler``).

By default the array starts with a ``DELETEALL`` marker so that faces that left the view do not
leave stale markers; marker ids are then simply the face's index in this message.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
from numpy.typing import ArrayLike
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_ros.pose_conversion import DEFAULT_GAZE_OFFSET_HEAD_M, gaze_pose_from_head

GAZE_NAMESPACE = "hpe_gaze"
LABEL_NAMESPACE = "hpe_label"


def head_label(face_id: str, pose_cam: ArrayLike) -> str:
    """Text label of a head: id and yaw / pitch / roll in whole degrees."""
    yaw, pitch, roll = yaw_pitch_roll_deg_from_matrix(np.asarray(pose_cam, dtype=np.float64)[:3, :3])
    return f"{face_id}  y {yaw:+.0f} p {pitch:+.0f} r {roll:+.0f}"


def _point(v: np.ndarray) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def head_markers(
    stamp: Time,
    frame_id: str,
    face_ids: Sequence[str],
    poses_cam: ArrayLike,
    *,
    arrow_length_m: float = 0.25,
    gaze_offset_head: ArrayLike = DEFAULT_GAZE_OFFSET_HEAD_M,
    text_height_m: float = 0.05,
    lifetime_s: float = 0.5,
    clear_previous: bool = True,
    color_rgba: Optional[tuple[float, float, float, float]] = None,
) -> MarkerArray:
    """Markers for a set of heads seen in one image.

    Args:
        stamp: the image's stamp.
        frame_id: the camera optical frame.
        face_ids: ``N`` REP 155 face id strings.
        poses_cam: ``[N, 4, 4]`` ``T_cam_from_head`` (metres).
        arrow_length_m: gaze arrow length, metres.
        gaze_offset_head: ``[3]`` eyes' midpoint in the head frame (arrow start), metres.
        text_height_m: label text height, metres.
        lifetime_s: marker lifetime in seconds (0 = forever).
        clear_previous: start with a ``DELETEALL`` marker.
        color_rgba: arrow colour (RGBA in ``[0, 1]``); green when ``None``.

    Returns:
        MarkerArray with ``2 N`` markers (``+1`` with ``clear_previous``): for face ``i`` an
        ``ARROW`` (namespace ``hpe_gaze``, id ``i``) and a ``TEXT_VIEW_FACING`` label
        (namespace ``hpe_label``, id ``i``).
    """
    poses = np.asarray(poses_cam, dtype=np.float64).reshape(-1, 4, 4)
    if len(face_ids) != poses.shape[0]:
        raise ValueError(f"head_markers: {len(face_ids)} face ids but {poses.shape[0]} poses")
    lifetime_ns = int(round(lifetime_s * 1e9))
    lifetime = Duration(sec=lifetime_ns // 1_000_000_000, nanosec=lifetime_ns % 1_000_000_000)
    r, g, b, a = (float(c) for c in (color_rgba or (0.1, 0.9, 0.2, 1.0)))
    arrow_color = ColorRGBA(r=r, g=g, b=b, a=a)
    markers: list[Marker] = []
    if clear_previous:
        clear = Marker(action=Marker.DELETEALL)
        clear.header.stamp = stamp
        clear.header.frame_id = frame_id
        markers.append(clear)
    for index, (face_id, pose) in enumerate(zip(face_ids, poses)):
        T_gaze = gaze_pose_from_head(pose, gaze_offset_head)
        start = T_gaze[:3, 3]
        end = start + arrow_length_m * T_gaze[:3, 2]

        arrow = Marker(ns=GAZE_NAMESPACE, id=index, type=Marker.ARROW, action=Marker.ADD)
        arrow.header.stamp = stamp
        arrow.header.frame_id = frame_id
        arrow.pose.orientation.w = 1.0
        arrow.points = [_point(start), _point(end)]
        # With points: x = shaft diameter, y = head diameter, z = head length (metres).
        arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.01, 0.02, 0.03
        arrow.color = arrow_color
        arrow.lifetime = lifetime
        markers.append(arrow)

        label = Marker(ns=LABEL_NAMESPACE, id=index, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        label.header.stamp = stamp
        label.header.frame_id = frame_id
        above = pose[:3, 3] + np.array([0.0, -0.15, 0.0])  # 15 cm above the head centre
        label.pose.position = _point(above)
        label.pose.orientation.w = 1.0
        label.scale.z = text_height_m
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        label.text = head_label(str(face_id), pose)
        label.lifetime = lifetime
        markers.append(label)
    return MarkerArray(markers=markers)
