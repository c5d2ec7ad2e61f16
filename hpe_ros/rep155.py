"""REP 155 (ROS4HRI) face topics, as HRI pipelines (pyhri, libhri, hri_rviz,
hri_person_manager) read them, beside our own ``/head_pose``.

Published per frame when ``hri.enabled``:

* ``/humans/faces/tracked`` (``hri_msgs/IdsList``): the ids of the faces in view;
* per face ``/humans/faces/<id>/roi`` (``hri_msgs/NormalizedRegionOfInterest2D``: the face box
  normalised by the image size, clipped to [0, 1]; ``c`` the pose confidence),
  ``/humans/faces/<id>/cropped`` (``sensor_msgs/Image`` rgb8: the box cut from the image) and
  ``/humans/faces/<id>/aligned`` (rgb8: the landmark-normalised crop, eyes level,
  :mod:`hpe_core.aligned_crop`), each stamped with the image's header.

Face ids are REP 155 strings made from the tracker id (:func:`face_id_of`: ``f00001``; a ROS
name token may not start with a digit), the same ``<id>`` as in TF ``face_<id>``/``gaze_<id>``
and ``HeadPose.face_id``. A face's publishers are created when it first appears and destroyed
``grace_s`` seconds (of image stamps) after it was last in view.

``/humans/faces/<id>/landmarks`` (``hri_msgs/FacialLandmarks``) comes from the face mesh when it
runs (the ``facemesh`` estimator, on frames where it estimated the face): its 478 points, in image
pixels, mapped onto the 70 ROS4HRI landmarks by :data:`ROS4HRI_FROM_MESH`, normalised by the image
size; the pupils are the iris centres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from hpe_core.aligned_crop import aligned_crop

#: QoS of every REP 155 topic, as the reference node (hri_face_detect) publishes them: depth 1,
#: reliable, volatile (matches both reliable and best-effort subscribers).
FACE_IMAGE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
REP155_QOS = FACE_IMAGE_QOS
#: ROS4HRI landmark code -> MediaPipe face-mesh point, the correspondence the ros4hri reference
#: node uses (hri_face_detect: doc/mediapipe_face_mesh_2_ros4hri.md, and its node's table, which
#: adds the inner mouth's left and bottom points 64-67 and the pupils as the iris centres of the
#: 478-point mesh, 468 the person's right and 473 the left).
ROS4HRI_FROM_MESH: dict[int, int] = {
    0: 34, 1: 227, 2: 137, 3: 177, 4: 215, 5: 135, 6: 170, 7: 171, 8: 175,
    16: 264, 15: 447, 14: 366, 13: 401, 12: 435, 11: 364, 10: 395, 9: 396,
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107, 26: 300, 25: 293, 24: 334, 23: 296, 22: 336,
    36: 130, 37: 29, 38: 28, 39: 243, 41: 24, 40: 22, 45: 359, 44: 259, 43: 258, 42: 463, 46: 254, 47: 252,
    68: 468, 69: 473,
    27: 6, 28: 197, 29: 4, 30: 1, 31: 242, 32: 141, 33: 94, 34: 370, 35: 462,
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270, 54: 291, 59: 321, 58: 314, 57: 17, 56: 84, 55: 91,
    60: 62, 61: 41, 62: 12, 63: 271, 64: 292, 67: 403, 66: 15, 65: 179,
}
#: Side of the published aligned crop, pixels.
ALIGNED_SIZE_PX = 128
TRACKED_TOPIC = "/humans/faces/tracked"


def face_id_of(track_id: int) -> str:
    """The REP 155 face id of a tracker id: ``"f"`` and five or more digits (``7 -> "f00007"``)."""
    return f"f{int(track_id):05d}"


def normalized_roi(box_xyxy, width: int, height: int) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of a pixel box divided by the image size, clipped to [0, 1]."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    clip = lambda v: float(min(max(v, 0.0), 1.0))  # noqa: E731
    return clip(x0 / width), clip(y0 / height), clip(x1 / width), clip(y1 / height)


def facial_landmarks_msg(header, mesh_px: np.ndarray, width: int, height: int):
    """``hri_msgs/FacialLandmarks`` from ``[478, 2]`` face-mesh points in image pixels
    (:data:`ROS4HRI_FROM_MESH`; points outside the image are clipped and get ``c = 0.5``)."""
    from hri_msgs.msg import FacialLandmarks

    msg = FacialLandmarks(header=header, height=int(height), width=int(width))
    for code, point in enumerate(msg.landmarks):
        index = ROS4HRI_FROM_MESH.get(code)
        if index is None or index >= len(mesh_px):
            point.x = point.y = point.c = 0.0
            continue
        u, v = float(mesh_px[index, 0]) / width, float(mesh_px[index, 1]) / height
        inside = 0.0 <= u <= 1.0 and 0.0 <= v <= 1.0
        point.x, point.y = min(max(u, 0.0), 1.0), min(max(v, 0.0), 1.0)
        point.c = 1.0 if inside else 0.5
    return msg


@dataclass
class _FacePublishers:
    roi: Any
    cropped: Any
    aligned: Any
    landmarks: Any
    last_seen_s: float
    topics: list[str] = field(default_factory=list)


class Rep155Publisher:
    """The REP 155 face topics of one node (module docstring)."""

    def __init__(self, node, grace_s: float = 1.0) -> None:
        from hri_msgs.msg import IdsList

        self._node = node
        self.grace_s = grace_s
        self._faces: dict[str, _FacePublishers] = {}
        self._tracked = node.create_publisher(IdsList, TRACKED_TOPIC, REP155_QOS)

    @property
    def face_ids(self) -> list[str]:
        """Ids that currently have per-face publishers."""
        return sorted(self._faces)

    def publish(self, header, rgb: np.ndarray, heads, K: Optional[np.ndarray], landmarks_of, stamp_s: float,
                mesh_landmarks_of=lambda track_id: None) -> None:
        """Publish one frame's faces.

        Args:
            header: the image's ``std_msgs/Header``.
            rgb: ``[H, W, 3]`` uint8 RGB image.
            heads: the frame's :class:`~hpe_core.pipeline.HeadEstimate` s.
            K: ``[3, 3]`` intrinsics used for the frame.
            landmarks_of: ``track_id -> [5, 2] landmarks or None`` (for the aligned crop).
            mesh_landmarks_of: ``track_id -> [478, 2] face-mesh points (image pixels) or None``.
            stamp_s: the image stamp, seconds (for the grace period).
        """
        from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D

        from hpe_ros.image_conversion import rgb_to_image_msg

        height, width = rgb.shape[:2]
        ids = []
        for head in heads:
            face_id = face_id_of(head.track_id)
            ids.append(face_id)
            pubs = self._faces.get(face_id) or self._create(face_id, stamp_s)
            pubs.last_seen_s = stamp_s
            roi = NormalizedRegionOfInterest2D(header=header)
            roi.xmin, roi.ymin, roi.xmax, roi.ymax = normalized_roi(head.box_xyxy, width, height)
            roi.c = float(min(max(head.confidence, 0.0), 1.0))
            pubs.roi.publish(roi)
            x0, y0 = int(max(np.floor(head.box_xyxy[0]), 0)), int(max(np.floor(head.box_xyxy[1]), 0))
            x1, y1 = int(min(np.ceil(head.box_xyxy[2]), width)), int(min(np.ceil(head.box_xyxy[3]), height))
            if x1 > x0 and y1 > y0 and pubs.cropped.get_subscription_count() > 0:
                pubs.cropped.publish(rgb_to_image_msg(np.ascontiguousarray(rgb[y0:y1, x0:x1]), stamp=header.stamp,
                                                      frame_id=header.frame_id))
            if K is not None and pubs.aligned.get_subscription_count() > 0:  # a warp per face: only when read
                try:
                    crop, _ = aligned_crop(rgb, K, head.box_xyxy, ALIGNED_SIZE_PX, landmarks_of(head.track_id))
                except ValueError:  # a degenerate box: no aligned crop this frame
                    crop = None
                if crop is not None:
                    pubs.aligned.publish(rgb_to_image_msg(crop, stamp=header.stamp, frame_id=header.frame_id))
            mesh = mesh_landmarks_of(head.track_id)
            if mesh is not None:
                pubs.landmarks.publish(facial_landmarks_msg(header, mesh, width, height))
        self._tracked.publish(IdsList(header=header, ids=ids))
        for face_id in [f for f, p in self._faces.items() if f not in ids and stamp_s - p.last_seen_s > self.grace_s]:
            self._destroy(face_id)

    def _create(self, face_id: str, stamp_s: float) -> _FacePublishers:
        from hri_msgs.msg import FacialLandmarks, NormalizedRegionOfInterest2D
        from sensor_msgs.msg import Image

        from rclpy.event_handler import PublisherEventCallbacks

        base = f"/humans/faces/{face_id}"
        node = self._node

        def publisher(msg_type, topic: str, qos):
            # Made and destroyed by the frame worker, not the executor's thread: without event
            # handlers (rclpy's default incompatible-QoS one is a waitable), the executor never
            # holds these publishers, so destroying one cannot race its wait set (that race
            # killed the node: "InvalidHandle: cannot use Destroyable because destruction was
            # requested" in the executor's add_to_wait_set).
            return node.create_publisher(msg_type, topic, qos,
                                         event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))

        pubs = _FacePublishers(
            roi=publisher(NormalizedRegionOfInterest2D, f"{base}/roi", REP155_QOS),
            cropped=publisher(Image, f"{base}/cropped", FACE_IMAGE_QOS),
            aligned=publisher(Image, f"{base}/aligned", FACE_IMAGE_QOS),
            landmarks=publisher(FacialLandmarks, f"{base}/landmarks", REP155_QOS),
            last_seen_s=stamp_s)
        self._faces[face_id] = pubs
        return pubs

    def _destroy(self, face_id: str) -> None:
        pubs = self._faces.pop(face_id)
        for pub in (pubs.roi, pubs.cropped, pubs.aligned, pubs.landmarks):
            self._node.destroy_publisher(pub)

    def close(self) -> None:
        """Destroy every publisher (the node's cleanup)."""
        for face_id in list(self._faces):
            self._destroy(face_id)
        self._node.destroy_publisher(self._tracked)
