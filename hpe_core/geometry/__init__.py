"""Geometry core: rotations, rigid transforms, VGGT pose encoding, Euler angles, averaging.

Everything here is numpy (float64) with leading batch dimensions; ``torch_ops`` holds the
differentiable torch counterparts (imported explicitly, so numpy users need not load torch).
"""

from hpe_core.geometry.averaging import (
    PoseMean,
    RotationMean,
    average_transforms,
    chordal_mean_rotation,
    geodesic_median_rotation,
)
from hpe_core.geometry.euler import (
    angle_error_deg,
    mae_yaw_pitch_roll,
    matrix_from_yaw_pitch_roll_deg,
    signed_angle_diff_deg,
    yaw_pitch_roll_deg_from_matrix,
)
from hpe_core.geometry.pose_encoding import (
    POSE_ENCODING_DIM,
    POSE_ENCODING_TYPE,
    extrinsics_intrinsics_from_pose_encoding,
    pose_encoding_from_extrinsics_intrinsics,
)
from hpe_core.geometry.rotations import (
    axis_angle_from_matrix,
    canonical_quat_xyzw,
    geodesic_angle_deg,
    geodesic_angle_rad,
    matrix_from_quat_xyzw,
    matrix_from_rot6d,
    project_to_so3,
    quat_wxyz_from_xyzw,
    quat_xyzw_from_matrix,
    quat_xyzw_from_wxyz,
    rot6d_from_matrix,
    rotation_between_vectors,
    rotation_from_axis_angle,
    skew,
    so3_exp,
    so3_log,
)
from hpe_core.geometry.transforms import (
    apply_relative,
    compose_transforms,
    invert_transform,
    make_transform,
    relative_transform,
    split_transform,
    transform_points,
)

__all__ = [
    "POSE_ENCODING_DIM",
    "POSE_ENCODING_TYPE",
    "angle_error_deg",
    "apply_relative",
    "average_transforms",
    "axis_angle_from_matrix",
    "canonical_quat_xyzw",
    "chordal_mean_rotation",
    "compose_transforms",
    "extrinsics_intrinsics_from_pose_encoding",
    "geodesic_angle_deg",
    "geodesic_angle_rad",
    "geodesic_median_rotation",
    "invert_transform",
    "mae_yaw_pitch_roll",
    "make_transform",
    "matrix_from_quat_xyzw",
    "matrix_from_rot6d",
    "matrix_from_yaw_pitch_roll_deg",
    "pose_encoding_from_extrinsics_intrinsics",
    "PoseMean",
    "project_to_so3",
    "quat_wxyz_from_xyzw",
    "quat_xyzw_from_matrix",
    "quat_xyzw_from_wxyz",
    "relative_transform",
    "rot6d_from_matrix",
    "rotation_between_vectors",
    "rotation_from_axis_angle",
    "RotationMean",
    "signed_angle_diff_deg",
    "skew",
    "so3_exp",
    "so3_log",
    "split_transform",
    "transform_points",
    "yaw_pitch_roll_deg_from_matrix",
]
