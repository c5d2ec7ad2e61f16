"""Runs a model over protocol pairs: MTCNN face crops, relative and absolute estimates.

Preprocessing follows the VGGT-HPE BIWI protocol: MTCNN (facenet-pytorch) on the full frame,
the most confident face, the paper's square crop (margin 0.4 around the box centre, zero
padding) resized to the model input. Each crop is treated as its virtual camera
(:mod:`hpe_core.virtual_camera`), exactly as the node does, so estimates come back as
``R_cam_from_head`` in the real camera's optical frame.

* Relative model, pair (a, q): ``T_q = to_cam_q(T_rel @ to_virt_a(T_a))`` with ``T_a`` the
  anchor's known pose (ground truth, or an absolute model's prediction).
* Absolute model: evaluated on the query alone. The network is a two-view model trained to
  output each view's own pose; it is given the query as both frames, and its query-frame
  output is the pose in the crop's virtual camera.

Frames where MTCNN finds no face are reported and left out of every pair that needs them,
unless the frame carries a known face box (our rendered sets do: the generator's projected face
region, the box the training crops are cut around), which is then used instead and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from hpe_core.crop import PAPER_MARGIN, crop_face
from hpe_core.estimator.interface import AnchorFeatures, RelativePoseEstimator
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import head_pose_virtual_to_cam, query_pose_from_relative, virtual_camera_rotation

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FrameInput:
    """One frame to evaluate: a loader for its RGB image, its intrinsics and true pose.

    Attributes:
        load_image: returns ``[H, W, 3]`` uint8 RGB.
        K: ``[3, 3]`` intrinsics (pixels).
        T_cam_from_head: ``[4, 4]`` true head pose (metres).
        face_box: ``[4]`` known face box ``(x0, y0, x1, y1)`` pixels used when MTCNN finds no
            face, or None (real data: such frames are skipped).
    """

    load_image: Callable[[], NDArray[np.uint8]]
    K: FloatArray
    T_cam_from_head: FloatArray
    face_box: Optional[FloatArray] = None


@dataclass(frozen=True)
class FaceCrop:
    """A frame's face crop: ``crop [S, S, 3]`` uint8 and ``R_virt_from_cam [3, 3]``."""

    crop: NDArray[np.uint8]
    R_virt_from_cam: FloatArray


class FaceCropper:
    """MTCNN + paper crop of every frame, computed once per frame and kept."""

    def __init__(self, detector, input_size: int, margin: float = PAPER_MARGIN,
                 intermediate_size: Optional[int] = None) -> None:
        self.detector = detector
        self.input_size = int(input_size)
        self.margin = float(margin)
        self.intermediate_size = intermediate_size
        self._crops: dict[int, Optional[FaceCrop]] = {}
        self._fallback: set[int] = set()

    def crop(self, key: int, frame: FrameInput) -> Optional[FaceCrop]:
        """The crop of frame ``key`` (None when no face was found and no box is known)."""
        if key not in self._crops:
            image = frame.load_image()
            faces = self.detector.detect(image)
            box = max(faces, key=lambda d: d.score).box_xyxy if faces else frame.face_box
            if box is None:
                self._crops[key] = None
            else:
                if not faces:
                    self._fallback.add(key)
                crop, geometry = crop_face(image, box, self.input_size, K=frame.K, margin=self.margin,
                                           intermediate_size=self.intermediate_size)
                self._crops[key] = FaceCrop(crop, virtual_camera_rotation(frame.K, geometry.center_px))
        return self._crops[key]

    @property
    def missed(self) -> list[int]:
        """Keys of the frames where MTCNN found no face so far (with or without a known box)."""
        return sorted(set(k for k, c in self._crops.items() if c is None) | self._fallback)

    @property
    def skipped(self) -> list[int]:
        """Keys of the frames left without a crop (no face found, no known box)."""
        return sorted(k for k, c in self._crops.items() if c is None)


class PairRunner:
    """Relative and absolute estimates over frames identified by integer keys."""

    def __init__(self, frames: Sequence[FrameInput], cropper: FaceCropper,
                 relative: Optional[RelativePoseEstimator] = None,
                 absolute: Optional[RelativePoseEstimator] = None, progress: bool = True) -> None:
        self.frames = list(frames)
        self.cropper = cropper
        self.relative = relative
        self.absolute = absolute
        self.progress = progress
        self._features: dict[tuple[int, int], AnchorFeatures] = {}
        self._absolute_pose: dict[int, Optional[FloatArray]] = {}

    def _crop(self, key: int) -> Optional[FaceCrop]:
        return self.cropper.crop(key, self.frames[key])

    def _anchor_features(self, estimator: RelativePoseEstimator, key: int, crop: FaceCrop) -> AnchorFeatures:
        cache_key = (id(estimator), key)
        if cache_key not in self._features:
            self._features[cache_key] = estimator.embed_anchors(crop.crop[None])
        return self._features[cache_key]

    def absolute_pose(self, key: int) -> Optional[FloatArray]:
        """``[4, 4]`` the absolute model's pose of frame ``key`` in its real camera (None: no face).

        The translation is the network's (metres, virtual camera moved to the real one).
        """
        if self.absolute is None:
            raise RuntimeError("no absolute model was given")
        if key not in self._absolute_pose:
            crop = self._crop(key)
            if crop is None:
                self._absolute_pose[key] = None
            else:
                features = self._anchor_features(self.absolute, key, crop)
                out = self.absolute.estimate(features, crop.crop)
                T_virt = make_transform(out.rotation[0], out.translation[0])
                self._absolute_pose[key] = head_pose_virtual_to_cam(T_virt, crop.R_virt_from_cam)
        return self._absolute_pose[key]

    def relative_pose(self, anchor: int, query: int, anchor_pose: Optional[FloatArray] = None) -> Optional[FloatArray]:
        """``[4, 4]`` query pose from the relative model and the anchor's pose (default: truth)."""
        if self.relative is None:
            raise RuntimeError("no relative model was given")
        a, q = self._crop(anchor), self._crop(query)
        if a is None or q is None:
            return None
        T_a = self.frames[anchor].T_cam_from_head if anchor_pose is None else anchor_pose
        rel = self.relative.estimate(self._anchor_features(self.relative, anchor, a), q.crop)
        return query_pose_from_relative(rel.as_matrices()[0], T_a, a.R_virt_from_cam, q.R_virt_from_cam)

    def run_relative(self, pairs: Sequence[tuple[int, int]], anchor_from_absolute: bool = False,
                     desc: str = "pairs") -> tuple[list[tuple[int, int]], FloatArray]:
        """Estimates of the pairs that have faces: ``(kept pairs, [P, 3, 3] query rotations)``.

        ``anchor_from_absolute``: the anchor's pose is the absolute model's prediction instead
        of the ground truth (pairs whose anchor it cannot predict are dropped).
        """
        kept, rotations = [], []
        for a, q in tqdm(pairs, desc=desc, unit="pair", disable=not self.progress):
            anchor_pose = None
            if anchor_from_absolute:
                anchor_pose = self.absolute_pose(a)
                if anchor_pose is None:
                    continue
            T = self.relative_pose(a, q, anchor_pose)
            if T is not None:
                kept.append((a, q))
                rotations.append(T[:3, :3])
        return kept, np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)

    def run_absolute(self, queries: Sequence[int], desc: str = "queries") -> tuple[list[int], FloatArray]:
        """Absolute estimates of the queries that have faces: ``(kept, [Q, 3, 3])``."""
        kept, rotations = [], []
        for q in tqdm(queries, desc=desc, unit="frame", disable=not self.progress):
            T = self.absolute_pose(q)
            if T is not None:
                kept.append(q)
                rotations.append(T[:3, :3])
        return kept, np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
