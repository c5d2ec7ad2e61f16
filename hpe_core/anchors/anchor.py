"""One anchor: a face crop of a tracked head with a known (or trusted) head pose.

VGGT-HPE estimates the query head's pose *relative* to an anchor image; the query pose then
follows from the anchor's pose (``T_q = T_rel @ T_a``). An :class:`Anchor` keeps what that
needs: the crop the estimator sees, the head pose in the real camera optical frame
(``pose_cam`` = ``T_cam_from_head``, 4x4, x right / y down / z forward, metres) and the crop's
virtual-camera rotation (``virtual_from_cam`` = ``R_virt_from_cam``, 3x3, see
:mod:`hpe_core.virtual_camera`). The estimator works in virtual frames:
:attr:`Anchor.pose_virtual` is ``T_virt_from_head = [R_virt_from_cam | 0] @ T_cam_from_head``.

Where an anchor comes from (:class:`AnchorSource`):

* ``CALIBRATED``: the pose was given from outside (a calibration step, a ground-truth rig);
  a root of trust, chain depth 0, no accumulated uncertainty.
* ``BOOTSTRAPPED``: the pose came from an absolute estimator (e.g. a first guess when no
  calibrated anchor exists); a root, chain depth 0, with the caller's uncertainty.
* ``KEYFRAME``: the pose is itself a fused estimate from other anchors; chain depth is the
  parent's plus one and the uncertainty grows along the chain.

Arrays are copied on construction and made read-only so that an anchor can be shared between
threads (the pool hands out the same objects to readers). Only :attr:`Anchor.features`, the
estimator's cached per-anchor features, is set later (lazily, never persisted).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpe_core.crop_camera import CropCamera
from hpe_core.virtual_camera import head_pose_cam_to_virtual

FloatArray = NDArray[np.float64]

#: Tolerance for accepting a matrix as a rotation (orthonormality and det = +1).
ROTATION_TOLERANCE = 1e-5


class AnchorSource(str, enum.Enum):
    """Where an anchor's pose came from; the value is the persisted name."""

    CALIBRATED = "calibrated"
    BOOTSTRAPPED = "bootstrapped"
    KEYFRAME = "keyframe"

    @property
    def id_letter(self) -> str:
        """Letter used in anchor ids: ``c``, ``b`` or ``k`` (``"<track>-k3"``)."""
        return {"calibrated": "c", "bootstrapped": "b", "keyframe": "k"}[self.value]

    @property
    def is_root(self) -> bool:
        """Calibrated and bootstrapped anchors start a chain (depth 0); keyframes do not."""
        return self is not AnchorSource.KEYFRAME


def check_rotation(R: ArrayLike, name: str) -> FloatArray:
    """Return ``R`` as a float64 ``[3, 3]`` copy, or raise ``ValueError`` if it is not a rotation."""
    m = np.array(R, dtype=np.float64, copy=True)
    if m.shape != (3, 3):
        raise ValueError(f"{name} must be [3, 3], got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be finite")
    if np.abs(m.T @ m - np.eye(3)).max() > ROTATION_TOLERANCE or abs(np.linalg.det(m) - 1.0) > ROTATION_TOLERANCE:
        raise ValueError(f"{name} is not a rotation matrix (orthonormal with det +1)")
    return m


#: Farthest head an anchor may hold, metres from the camera (a pose beyond it is a mistake: it
#: would make every later estimate from that anchor fail).
MAX_POSE_DISTANCE_M = 100.0


def check_pose(T: ArrayLike, name: str) -> FloatArray:
    """Return ``T`` as a float64 ``[4, 4]`` copy, or raise ``ValueError`` if it is not rigid or
    its translation is farther than :data:`MAX_POSE_DISTANCE_M`."""
    m = np.array(T, dtype=np.float64, copy=True)
    if m.shape != (4, 4):
        raise ValueError(f"{name} must be [4, 4], got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be finite")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError(f"{name} last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    check_rotation(m[:3, :3], f"{name} rotation")
    largest = float(np.max(np.abs(m[:3, 3])))
    distance = float(np.linalg.norm(m[:3, 3])) if largest <= MAX_POSE_DISTANCE_M else largest
    if distance > MAX_POSE_DISTANCE_M:
        raise ValueError(f"{name} translation is {distance:.4g} m from the camera (at most {MAX_POSE_DISTANCE_M} m)")
    return m


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(eq=False)
class Anchor:
    """An anchor crop with its head pose.

    Attributes:
        anchor_id: unique id inside its pool, ``"<track>-<letter><n>"`` (``c`` calibrated,
            ``b`` bootstrapped, ``k`` keyframe), e.g. ``"face_3-k2"``.
        track_id: the tracked head this anchor belongs to.
        crop: ``uint8`` RGB ``[H, W, 3]`` face crop at the estimator's input size.
        pose_cam: ``[4, 4]`` head pose ``T_cam_from_head`` in the real camera optical frame
            (metres).
        virtual_from_cam: ``[3, 3]`` ``R_virt_from_cam`` of the crop (identity for a crop
            centred on the optical axis).
        source: where the pose came from.
        quality: trust in this anchor, 0..1 (1 for calibrated, the fused confidence for
            keyframes).
        created_at: creation time, seconds (``time.time()`` or the image stamp).
        parent_ids: anchors a keyframe was derived from, the primary (nearest) parent first;
            empty for roots.
        chain_depth: 0 for roots, parent's depth + 1 for keyframes.
        accumulated_uncertainty_deg: expected rotation error of ``pose_cam`` in degrees
            (0 for calibrated; grows along a keyframe chain).
        crop_from_cam: ``[3, 3]`` how the crop images the scene
            (:class:`hpe_core.crop_camera.CropCamera`), or ``None`` when unknown (pools saved
            before it was recorded); geometric estimators (the face mesh) use it.
        features: opaque cached estimator features for this single anchor (e.g. an
            ``AnchorFeatures`` of length 1); ``None`` until computed; saved with the pool only
            when the estimator marks them ``persistable`` (the face mesh's landmarks).
    """

    anchor_id: str
    track_id: str
    crop: NDArray[np.uint8]
    pose_cam: FloatArray
    virtual_from_cam: FloatArray
    source: AnchorSource
    quality: float
    created_at: float
    parent_ids: tuple[str, ...] = ()
    chain_depth: int = 0
    accumulated_uncertainty_deg: float = 0.0
    crop_from_cam: Optional[FloatArray] = None
    features: Optional[Any] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.anchor_id, str) or not self.anchor_id:
            raise ValueError("anchor_id must be a non-empty string")
        if not isinstance(self.track_id, str) or not self.track_id:
            raise ValueError("track_id must be a non-empty string")
        crop = np.array(self.crop, copy=True)
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] == 0 or crop.shape[1] == 0:
            raise ValueError(f"crop must be uint8 RGB [H, W, 3], got {crop.dtype} {crop.shape}")
        self.crop = _frozen(crop)
        self.pose_cam = _frozen(check_pose(self.pose_cam, "pose_cam"))
        self.virtual_from_cam = _frozen(check_rotation(self.virtual_from_cam, "virtual_from_cam"))
        if self.crop_from_cam is not None:
            m = np.array(self.crop_from_cam, dtype=np.float64, copy=True)
            if m.shape != (3, 3) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) < 1e-12:
                raise ValueError("crop_from_cam must be a finite, invertible [3, 3] matrix")
            self.crop_from_cam = _frozen(m)
        self.source = AnchorSource(self.source)
        self.quality = float(self.quality)
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"quality must be in [0, 1], got {self.quality}")
        self.created_at = float(self.created_at)
        if not math.isfinite(self.created_at):
            raise ValueError("created_at must be finite (seconds)")
        self.parent_ids = tuple(str(p) for p in self.parent_ids)
        self.chain_depth = int(self.chain_depth)
        self.accumulated_uncertainty_deg = float(self.accumulated_uncertainty_deg)
        if not (math.isfinite(self.accumulated_uncertainty_deg) and self.accumulated_uncertainty_deg >= 0.0):
            raise ValueError("accumulated_uncertainty_deg must be finite and >= 0")
        if self.source.is_root:
            if self.chain_depth != 0 or self.parent_ids:
                raise ValueError(f"a {self.source.value} anchor is a root: chain_depth 0 and no parents")
        elif self.chain_depth < 1 or not self.parent_ids:
            raise ValueError("a keyframe anchor needs parent_ids and chain_depth >= 1")
        if self.source is AnchorSource.CALIBRATED and self.accumulated_uncertainty_deg != 0.0:
            raise ValueError("a calibrated anchor has no accumulated uncertainty")

    @property
    def crop_camera(self) -> Optional[CropCamera]:
        """The crop's :class:`~hpe_core.crop_camera.CropCamera`, or ``None`` if unknown."""
        if self.crop_from_cam is None:
            return None
        return CropCamera(self.crop_from_cam, self.virtual_from_cam)

    @property
    def rotation_cam(self) -> FloatArray:
        """``[3, 3]`` head rotation ``R_cam_from_head`` in the real camera frame."""
        return self.pose_cam[:3, :3]

    @property
    def pose_virtual(self) -> FloatArray:
        """``[4, 4]`` head pose in the crop's virtual camera, ``T_virt_from_head`` (metres)."""
        return head_pose_cam_to_virtual(self.pose_cam, self.virtual_from_cam)

    @property
    def rotation_virtual(self) -> FloatArray:
        """``[3, 3]`` head rotation in the crop's virtual camera (what the crop shows)."""
        return self.virtual_from_cam @ self.pose_cam[:3, :3]
