"""Head poses (numpy 4x4) <-> geometry_msgs, stamps <-> builtin_interfaces/Time, and TF frames.

Frames (see ``msg/HeadPose.msg``): poses are ``T_cam_from_head`` ``[4, 4]`` float64, metres,
in the camera optical frame (REP 103: x right, y down, z forward). The head frame has x to the
image right, y down and z away from the camera when the person faces the camera squarely
(identity rotation = facing the camera), so the face looks along the head's **-z** axis.

TF frames published per face (REP 155 names, both children of the camera optical frame and
stamped with the image's stamp):

* ``face_<id>``: the head pose itself (origin at the head centre). With
  ``face_axes="head"`` (default) its axes are the head frame's above. With
  ``face_axes="rep155"`` they follow REP 155's face frame instead: x forward (out of the face,
  head -z), y to the person's left (head +x), z up towards the scalp (head -y).
* ``gaze_<id>``: REP 155 optical-style gaze frame at the eyes' midpoint: z along the gaze
  direction, x to the person's right, y down. We do not estimate eye gaze, so the gaze
  direction is the head's forward axis (head -z). Relative to the head frame this is a
  180 degree rotation about the head's y axis, ``R_head_from_gaze = diag(-1, 1, -1)``
  (x -> -x, y -> y, z -> -z; a proper rotation, det +1), and the origin is
  ``gaze_offset_head``, the eyes' midpoint expressed in the head frame.

Quaternions are ``(x, y, z, w)`` as in ``geometry_msgs/Quaternion``, converted with
``hpe_core.geometry.rotations``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from numpy.typing import ArrayLike, NDArray
from tf2_msgs.msg import TFMessage

from hpe_core.geometry.rotations import matrix_from_quat_xyzw, quat_xyzw_from_matrix
from hpe_core.geometry.transforms import make_transform

FloatArray = NDArray[np.float64]

NANOSECONDS_PER_SECOND = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

# Rotation of the gaze frame in the head frame: 180 degrees about the head's y axis.
R_HEAD_FROM_GAZE: FloatArray = np.diag([-1.0, 1.0, -1.0])
# Rotation of REP 155's face frame (x forward, y left, z up) in our head frame.
# Columns: face x = head -z, face y = head +x, face z = head -y.
R_HEAD_FROM_REP155_FACE: FloatArray = np.array(
    [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]]
)
# Eyes' midpoint in the head frame, metres: 9 cm in front of the head centre (head -z), an
# adult average (head length about 19 cm). Pass gaze_offset_head=(0, 0, 0) when the pose
# origin is already at the eyes (e.g. a position estimated at the face surface).
DEFAULT_GAZE_OFFSET_HEAD_M: tuple[float, float, float] = (0.0, 0.0, -0.09)

FaceAxes = Literal["head", "rep155"]

# Tolerances for accepting a 4x4 as a rigid transform.
_ROTATION_TOL = 1e-6


def _check_rigid(T: ArrayLike, what: str) -> FloatArray:
    T_arr = np.asarray(T, dtype=np.float64)
    if T_arr.shape != (4, 4):
        raise ValueError(f"{what}: expected a [4, 4] transform, got shape {T_arr.shape}")
    if not np.all(np.isfinite(T_arr)):
        raise ValueError(f"{what}: transform contains NaN or inf")
    if not np.allclose(T_arr[3], [0.0, 0.0, 0.0, 1.0], atol=_ROTATION_TOL):
        raise ValueError(f"{what}: last row must be [0, 0, 0, 1], got {T_arr[3].tolist()}")
    R = T_arr[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=_ROTATION_TOL) or np.linalg.det(R) <= 0.0:
        raise ValueError(f"{what}: the upper-left 3x3 block is not a rotation matrix")
    return T_arr


def _quaternion_msg(R: FloatArray) -> Quaternion:
    x, y, z, w = (float(v) for v in quat_xyzw_from_matrix(R))
    return Quaternion(x=x, y=y, z=z, w=w)


def _rotation_from_msg(q: Quaternion) -> FloatArray:
    return matrix_from_quat_xyzw(np.array([q.x, q.y, q.z, q.w], dtype=np.float64))


def pose_msg_from_matrix(T: ArrayLike) -> Pose:
    """``[4, 4]`` rigid transform (e.g. ``T_cam_from_head``, metres) -> ``geometry_msgs/Pose``.

    Raises:
        ValueError: not a finite ``[4, 4]`` rigid transform.
    """
    T_arr = _check_rigid(T, "pose_msg_from_matrix")
    x, y, z = (float(v) for v in T_arr[:3, 3])
    return Pose(position=Point(x=x, y=y, z=z), orientation=_quaternion_msg(T_arr[:3, :3]))


def matrix_from_pose_msg(msg: Pose) -> FloatArray:
    """``geometry_msgs/Pose`` -> ``[4, 4]`` float64 transform (quaternion normalised).

    Raises:
        ValueError: zero-norm quaternion.
    """
    p = msg.position
    return make_transform(_rotation_from_msg(msg.orientation), [p.x, p.y, p.z])


#: A quaternion given in a request may be this far from unit norm (it is then normalised).
QUATERNION_NORM_TOLERANCE = 0.01


def pose_matrix_from_request(msg: Pose) -> FloatArray:
    """``geometry_msgs/Pose`` from a request (capture_anchor) -> ``[4, 4]``, strictly checked:
    a finite position and a finite quaternion of unit norm within
    :data:`QUATERNION_NORM_TOLERANCE` (normalised); unlike :func:`matrix_from_pose_msg`, a
    quaternion far from unit norm (zero, tiny, huge, halved) is refused rather than normalised.

    Raises:
        ValueError: a position or orientation that is not usable, with the values.
    """
    position = np.array([msg.position.x, msg.position.y, msg.position.z], dtype=np.float64)
    if not np.all(np.isfinite(position)):
        raise ValueError(f"position must be finite, got {position.tolist()}")
    q = msg.orientation
    xyzw = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    scale = float(np.max(np.abs(xyzw)))  # the norm without overflow or underflow
    norm = scale * float(np.linalg.norm(xyzw / scale)) if 0.0 < scale < np.inf else float("nan")
    if not np.isfinite(norm) or abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise ValueError(f"orientation must be a unit quaternion (x, y, z, w), got {xyzw.tolist()} (norm {norm:.6g})")
    return make_transform(matrix_from_quat_xyzw(xyzw / norm), position)


def transform_msg_from_matrix(T: ArrayLike) -> Transform:
    """``[4, 4]`` rigid transform ``T_parent_from_child`` -> ``geometry_msgs/Transform``.

    Raises:
        ValueError: not a finite ``[4, 4]`` rigid transform.
    """
    T_arr = _check_rigid(T, "transform_msg_from_matrix")
    x, y, z = (float(v) for v in T_arr[:3, 3])
    return Transform(translation=Vector3(x=x, y=y, z=z), rotation=_quaternion_msg(T_arr[:3, :3]))


def matrix_from_transform_msg(msg: Transform) -> FloatArray:
    """``geometry_msgs/Transform`` -> ``[4, 4]`` float64 ``T_parent_from_child``.

    Raises:
        ValueError: zero-norm quaternion.
    """
    t = msg.translation
    return make_transform(_rotation_from_msg(msg.rotation), [t.x, t.y, t.z])


def time_msg_from_nanoseconds(nanoseconds: int) -> Time:
    """Integer nanoseconds -> ``builtin_interfaces/Time`` (``nanosec`` in ``[0, 1e9)``).

    Negative times are floored: ``-1`` ns is ``sec = -1, nanosec = 999999999``.

    Raises:
        ValueError: seconds outside the int32 range of ``Time.sec``.
    """
    sec, nanosec = divmod(int(nanoseconds), NANOSECONDS_PER_SECOND)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ValueError(f"time {nanoseconds} ns is outside the range of builtin_interfaces/Time")
    return Time(sec=sec, nanosec=nanosec)


def nanoseconds_from_time_msg(msg: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact)."""
    return int(msg.sec) * NANOSECONDS_PER_SECOND + int(msg.nanosec)


def time_msg_from_seconds(seconds: float) -> Time:
    """Float seconds -> ``builtin_interfaces/Time``, rounded to the nearest nanosecond.

    Raises:
        ValueError: NaN/inf, or outside the range of ``Time``.
    """
    if not np.isfinite(seconds):
        raise ValueError(f"time must be finite, got {seconds}")
    return time_msg_from_nanoseconds(round(float(seconds) * NANOSECONDS_PER_SECOND))


def seconds_from_time_msg(msg: Time) -> float:
    """``builtin_interfaces/Time`` -> float seconds (about 0.1 us resolution at epoch dates)."""
    return int(msg.sec) + int(msg.nanosec) * 1e-9


def gaze_pose_from_head(
    pose_cam: ArrayLike, gaze_offset_head: ArrayLike = DEFAULT_GAZE_OFFSET_HEAD_M
) -> FloatArray:
    """``T_cam_from_gaze`` ``[4, 4]`` of the REP 155 gaze frame (see the module docstring).

    Args:
        pose_cam: ``[4, 4]`` ``T_cam_from_head`` (metres, camera optical frame).
        gaze_offset_head: ``[3]`` eyes' midpoint in the head frame, metres.

    Returns:
        ``[4, 4]`` ``T_cam_from_gaze = T_cam_from_head @ [R_HEAD_FROM_GAZE | gaze_offset_head]``;
        its z axis (third column) is the head's forward direction in the camera frame.
    """
    T = _check_rigid(pose_cam, "gaze_pose_from_head")
    offset = np.asarray(gaze_offset_head, dtype=np.float64).reshape(3)
    return T @ make_transform(R_HEAD_FROM_GAZE, offset)


def face_frame_pose(pose_cam: ArrayLike, face_axes: FaceAxes = "head") -> FloatArray:
    """``T_cam_from_face`` ``[4, 4]`` of the ``face_<id>`` frame for the chosen axes convention."""
    T = _check_rigid(pose_cam, "face_frame_pose")
    if face_axes == "head":
        return T
    if face_axes == "rep155":
        return T @ make_transform(R_HEAD_FROM_REP155_FACE, np.zeros(3))
    raise ValueError(f"face_axes must be 'head' or 'rep155', got {face_axes!r}")


def face_frame_id(face_id: str) -> str:
    """TF frame name of a face (REP 155): ``face_<id>``."""
    return f"face_{face_id}"


def gaze_frame_id(face_id: str) -> str:
    """TF frame name of a face's gaze (REP 155): ``gaze_<id>``."""
    return f"gaze_{face_id}"


def _transform_stamped(stamp: Time, parent_frame: str, child_frame: str, T: FloatArray) -> TransformStamped:
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent_frame
    msg.child_frame_id = child_frame
    msg.transform = transform_msg_from_matrix(T)
    return msg


def head_tf_transforms(
    stamp: Time,
    parent_frame: str,
    face_id: str,
    pose_cam: ArrayLike,
    gaze_offset_head: ArrayLike = DEFAULT_GAZE_OFFSET_HEAD_M,
    face_axes: FaceAxes = "head",
) -> list[TransformStamped]:
    """The two TF transforms of one face: ``face_<id>`` and ``gaze_<id>``.

    Args:
        stamp: the image's stamp (both transforms carry it).
        parent_frame: the camera optical frame (the image's ``header.frame_id``).
        face_id: REP 155 face id string (e.g. ``"3"`` or ``"a1b2c"``).
        pose_cam: ``[4, 4]`` ``T_cam_from_head``, metres.
        gaze_offset_head: ``[3]`` eyes' midpoint in the head frame, metres.
        face_axes: axes of ``face_<id>``: ``"head"`` (our head frame) or ``"rep155"``.

    Returns:
        ``[face, gaze]`` ``TransformStamped``, both with ``header.frame_id = parent_frame``.

    Raises:
        ValueError: empty frame names or an invalid pose.
    """
    if not parent_frame:
        raise ValueError("head_tf_transforms: parent_frame must not be empty")
    if not str(face_id):
        raise ValueError("head_tf_transforms: face_id must not be empty")
    T_face = face_frame_pose(pose_cam, face_axes)
    T_gaze = gaze_pose_from_head(pose_cam, gaze_offset_head)
    return [
        _transform_stamped(stamp, parent_frame, face_frame_id(face_id), T_face),
        _transform_stamped(stamp, parent_frame, gaze_frame_id(face_id), T_gaze),
    ]


def tf_message(transforms: Sequence[TransformStamped]) -> TFMessage:
    """Wrap transforms in one ``tf2_msgs/TFMessage`` (what ``/tf`` carries)."""
    return TFMessage(transforms=list(transforms))
