"""Debug overlay: face boxes, track ids and projected head axes on an RGB image (numpy/OpenCV).

No ROS types here: the node converts the returned array with
``hpe_ros.image_conversion.rgb_to_image_msg``.

Head axes are drawn by projecting the head frame's origin and the tips of its axes
(``axis_length_m`` along head x, y, z) with the camera ``K`` through ``cv2.projectPoints``
(no distortion): x red, y green, z blue (RGB colours; z points away from the camera for a
face that looks at it). Axes whose points lie behind the camera (``z <= min_depth_m``) are
not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# RGB colours of the head axes.
AXIS_COLORS_RGB: tuple[tuple[int, int, int], ...] = ((255, 0, 0), (0, 255, 0), (0, 0, 255))

_TRACK_PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (255, 200, 0), (0, 200, 255), (255, 0, 200), (120, 255, 120), (255, 120, 60), (160, 120, 255),
)


@dataclass(frozen=True)
class DebugFace:
    """One face to draw.

    Attributes:
        box_xyxy: ``[4]`` box ``[x1, y1, x2, y2]`` in pixels.
        track_id: tracker id (labels and picks the box colour).
        pose_cam: ``[4, 4]`` ``T_cam_from_head`` in metres, or ``None`` (box only).
        label: extra text after the id (e.g. ``"y 12 p -3 r 1"``).
    """

    box_xyxy: ArrayLike
    track_id: int
    pose_cam: Optional[ArrayLike] = None
    label: str = ""


def track_color_rgb(track_id: int) -> tuple[int, int, int]:
    """A fixed RGB colour per track id."""
    return _TRACK_PALETTE_RGB[int(track_id) % len(_TRACK_PALETTE_RGB)]


def project_head_axes(
    pose_cam: ArrayLike, K: ArrayLike, axis_length_m: float = 0.1, min_depth_m: float = 1e-3
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Project the head origin and its three axis tips into the image.

    Args:
        pose_cam: ``[4, 4]`` ``T_cam_from_head`` (metres, camera optical frame).
        K: ``[3, 3]`` camera intrinsics in pixels.
        axis_length_m: length of each axis, metres.
        min_depth_m: points with camera z at or below this are marked invisible.

    Returns:
        ``(points_px [4, 2], visible [4])``: pixel ``(u, v)`` of the origin and of the x, y, z
        tips, and whether each lies in front of the camera.
    """
    T = np.asarray(pose_cam, dtype=np.float64)
    points_head = np.vstack([np.zeros(3), axis_length_m * np.eye(3)])
    rvec, _ = cv2.Rodrigues(T[:3, :3])
    tvec = T[:3, 3].reshape(3, 1)
    points_px, _ = cv2.projectPoints(points_head, rvec, tvec, np.asarray(K, dtype=np.float64), None)
    depth = points_head @ T[:3, :3].T[:, 2] + T[2, 3]
    return points_px.reshape(4, 2), depth > min_depth_m


# Projected coordinates are clipped to this many pixels so that points near the camera plane
# cannot overflow OpenCV's int coordinates (cv2.line clips the segment to the image itself).
_PIXEL_CLIP = 1e6


def _pixel(p: FloatArray) -> tuple[int, int]:
    u, v = np.clip(np.asarray(p, dtype=np.float64), -_PIXEL_CLIP, _PIXEL_CLIP)
    return int(round(float(u))), int(round(float(v)))


def draw_debug_image(
    rgb: NDArray[np.uint8],
    K: ArrayLike,
    faces: Sequence[DebugFace],
    *,
    axis_length_m: float = 0.1,
    thickness: int = 2,
) -> NDArray[np.uint8]:
    """Draw boxes, ids and head axes on a copy of ``rgb``.

    Args:
        rgb: ``[H, W, 3]`` uint8 RGB image (not modified).
        K: ``[3, 3]`` intrinsics of that image, pixels.
        faces: faces to draw.
        axis_length_m: drawn length of each head axis, metres.
        thickness: line thickness in pixels.

    Returns:
        ``[H, W, 3]`` uint8 RGB, a new C-contiguous array.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"draw_debug_image: expected [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
    canvas = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    for face in faces:
        color = track_color_rgb(face.track_id)
        x1, y1, x2, y2 = (int(round(float(v))) for v in np.asarray(face.box_xyxy).reshape(4))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        text = f"#{face.track_id}" + (f" {face.label}" if face.label else "")
        cv2.putText(canvas, text, (x1, max(y1 - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
        if face.pose_cam is None:
            continue
        points, visible = project_head_axes(face.pose_cam, K, axis_length_m)
        if not visible[0]:
            continue
        origin = _pixel(points[0])
        for axis in range(3):
            if visible[axis + 1]:
                tip = _pixel(points[axis + 1])
                cv2.line(canvas, origin, tip, AXIS_COLORS_RGB[axis], thickness, cv2.LINE_AA)
        cv2.circle(canvas, origin, thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return canvas
