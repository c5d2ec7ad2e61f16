"""Runs any :class:`~hpe_core.estimator.interface.PoseEstimator` over protocol pairs of frames.

Preprocessing follows the VGGT-HPE BIWI protocol: MTCNN (facenet-pytorch) on the full frame,
the most confident face (:class:`FaceFinder`, once per frame and shared by every estimator),
then the crop the estimator asks for (:attr:`PoseEstimator.crop_mode`, cut by
:func:`hpe_core.face_crop.cut_face_crop` as the node cuts it): ``"paper"`` (square crop, margin
0.4 around the box centre, zero padding, resized to the input) or ``"aligned"`` (the
landmark-normalised virtual crop, from MTCNN's five landmarks). Each crop's
:class:`~hpe_core.crop_camera.CropCamera` goes to the estimator with it, and every estimate is
composed through the crop's virtual camera (:mod:`hpe_core.virtual_camera`), exactly as the
node does, so poses come back as ``R_cam_from_head`` in the real camera's optical frame.

* Relative method, pair (a, q): ``T_q = to_cam_q(T_rel @ to_virt_a(T_a))`` with ``T_a`` the
  anchor's known pose (ground truth, or an absolute method's prediction).
* Absolute method: the query alone. An estimator with its own absolute pose
  (:meth:`PoseEstimator.absolute_pose`, e.g. the face mesh) gives it; a VGGT checkpoint trained
  in absolute mode (:func:`has_absolute_pose` false) is a two-view network trained to output
  each view's own pose: it is given the query as both frames (``absolute_by_self_pair``).

Frames where MTCNN finds no face are reported and left out of every pair that needs them,
unless the frame carries a known face box (our rendered sets do: the generator's projected face
region, the box the training crops are cut around), which is then used instead (without
landmarks) and counted. An estimator may also see no face in a crop it is given (the face
mesh: its face score below 0.5, :func:`sees_face`); such pairs are counted per method and
left out, and so are non-finite estimates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from hpe_core.crop import PAPER_MARGIN
from hpe_core.crop_camera import CropCamera
from hpe_core.estimator.interface import AnchorFeatures, PoseEstimator, RelativePose
from hpe_core.face_crop import CROP_MODES, cut_face_crop
from hpe_core.geometry.transforms import make_transform
from hpe_core.virtual_camera import head_pose_virtual_to_cam, query_pose_from_relative

FloatArray = NDArray[np.float64]

#: Estimator kinds whose :meth:`~PoseEstimator.absolute_pose` is ``None`` exactly when they see
#: no face in a crop (the face mesh: face score < 0.5), so that it tells which pairs they fail on.
#: Others (VGGT always answers; a fused estimator falls back on VGGT) are taken to see every crop.
FACE_FLAGGING_KINDS = ("facemesh",)


def has_absolute_pose(estimator: PoseEstimator) -> bool:
    """The estimator implements :meth:`PoseEstimator.absolute_pose` (VGGT backends do not)."""
    return type(estimator).absolute_pose is not PoseEstimator.absolute_pose


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
class FaceBox:
    """The face of a frame that every crop of it is cut around.

    Attributes:
        box_xyxy: ``[4]`` ``(x0, y0, x1, y1)`` pixels.
        landmarks5: ``[5, 2]`` MTCNN landmarks (pixels), or ``None`` (a known box).
        detected: MTCNN found it (False: the frame's known box stands in).
    """

    box_xyxy: FloatArray
    landmarks5: Optional[FloatArray]
    detected: bool

    @property
    def size_px(self) -> float:
        """The box's larger side, pixels."""
        return float(max(self.box_xyxy[2] - self.box_xyxy[0], self.box_xyxy[3] - self.box_xyxy[1]))


class FaceFinder:
    """MTCNN's most confident face of every frame (or the frame's known box), found once."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self._faces: dict[int, Optional[FaceBox]] = {}

    def find(self, key: int, frame: FrameInput, image: Optional[NDArray[np.uint8]] = None) -> Optional[FaceBox]:
        """The face of frame ``key`` (None: no face found and no box known); ``image`` is the
        frame's image when the caller has it loaded already."""
        if key not in self._faces:
            faces = self.detector.detect(frame.load_image() if image is None else image)
            if faces:
                best = max(faces, key=lambda d: d.score)
                lm = None if best.landmarks5 is None else np.asarray(best.landmarks5, dtype=np.float64)
                self._faces[key] = FaceBox(np.asarray(best.box_xyxy, dtype=np.float64), lm, True)
            elif frame.face_box is not None:
                self._faces[key] = FaceBox(np.asarray(frame.face_box, dtype=np.float64), None, False)
            else:
                self._faces[key] = None
        return self._faces[key]

    def found(self, key: int) -> Optional[FaceBox]:
        """The face of frame ``key`` when it was looked for already (never runs the detector)."""
        return self._faces.get(key)

    @property
    def missed(self) -> list[int]:
        """Keys of the frames where MTCNN found no face so far (with or without a known box)."""
        return sorted(k for k, f in self._faces.items() if f is None or not f.detected)

    @property
    def skipped(self) -> list[int]:
        """Keys of the frames left without a face box (no face found, no known box)."""
        return sorted(k for k, f in self._faces.items() if f is None)


@dataclass(frozen=True)
class FaceCrop:
    """A frame's face crop for one estimator.

    Attributes:
        crop: ``uint8 [S, S, 3]`` RGB at the estimator's input size.
        camera: how the crop images the scene (its virtual camera included).
        face: the box (and landmarks) it was cut around.
    """

    crop: NDArray[np.uint8]
    camera: CropCamera
    face: FaceBox

    @property
    def R_virt_from_cam(self) -> FloatArray:
        """``[3, 3]`` the crop's virtual camera rotation."""
        return self.camera.virtual_from_cam


class FaceCropper:
    """Crops of one kind (size, mode, margin) of every frame, computed once per frame and kept.

    ``finder``: the face finder to share with other croppers (default: a new one with
    ``detector``), so MTCNN runs once per frame whatever the number of crop kinds.
    ``intermediate_size``: paper crops only (:func:`hpe_core.crop.crop_face`).
    """

    def __init__(self, detector, input_size: int, margin: float = PAPER_MARGIN,
                 intermediate_size: Optional[int] = None, mode: str = "paper",
                 finder: Optional[FaceFinder] = None) -> None:
        if mode not in CROP_MODES:
            raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
        self.finder = finder if finder is not None else FaceFinder(detector)
        self.input_size = int(input_size)
        self.margin = float(margin)
        self.intermediate_size = intermediate_size
        self.mode = mode
        self._crops: dict[int, Optional[FaceCrop]] = {}

    @property
    def spec(self) -> tuple[int, str, float, Optional[int]]:
        """``(input_size, mode, margin, intermediate_size)``: croppers with the same spec cut the same crops."""
        return (self.input_size, self.mode, self.margin, self.intermediate_size)

    def crop(self, key: int, frame: FrameInput) -> Optional[FaceCrop]:
        """The crop of frame ``key`` (None when no face was found and no box is known)."""
        if key not in self._crops:
            image = frame.load_image()
            face = self.finder.find(key, frame, image)
            if face is None:
                self._crops[key] = None
            else:
                crop, camera = cut_face_crop(image, frame.K, face.box_xyxy, self.input_size, self.mode,
                                             face.landmarks5, margin=self.margin,
                                             intermediate_size=self.intermediate_size)
                self._crops[key] = FaceCrop(crop, camera, face)
        return self._crops[key]

    @property
    def missed(self) -> list[int]:
        """:attr:`FaceFinder.missed` of the shared finder."""
        return self.finder.missed

    @property
    def skipped(self) -> list[int]:
        """:attr:`FaceFinder.skipped` of the shared finder."""
        return self.finder.skipped


@dataclass(frozen=True)
class PairEstimate:
    """One method's estimate for one (anchor, query) pair of frame keys.

    Attributes:
        anchor, query: frame keys.
        R_query: ``[3, 3]`` estimated ``R_cam_from_head`` of the query (real camera).
        R_anchor: ``[3, 3]`` the anchor rotation it was composed with (the truth, or an absolute
            method's prediction); for an absolute method, the true anchor rotation of the pair
            it stands for.
        residual: the estimator's own error signal for this estimate (the face mesh: fit
            residual, mm), or None.
    """

    anchor: int
    query: int
    R_query: FloatArray
    R_anchor: FloatArray
    residual: Optional[float] = None


def _finite(rel: RelativePose) -> bool:
    return bool(np.all(np.isfinite(rel.rotation)) and np.all(np.isfinite(rel.translation)))


class PairRunner:
    """One estimator over frames identified by integer keys (module docstring).

    Args:
        frames: every frame, indexed by key.
        cropper: the crops this estimator is given (its input size and crop mode).
        estimator: any :class:`PoseEstimator`.
        absolute_by_self_pair: absolute estimates come from the query paired with itself (a
            VGGT checkpoint trained in absolute mode) rather than from ``absolute_pose``.
        progress: progress bars.
    """

    def __init__(self, frames: Sequence[FrameInput], cropper: FaceCropper, estimator: PoseEstimator,
                 absolute_by_self_pair: bool = False, progress: bool = True) -> None:
        self.frames = list(frames)
        self.cropper = cropper
        self.estimator = estimator
        self.absolute_by_self_pair = absolute_by_self_pair
        self.progress = progress
        self._features: dict[int, AnchorFeatures] = {}
        self._absolute: dict[int, Optional[tuple[FloatArray, Optional[float]]]] = {}

    def crop(self, key: int) -> Optional[FaceCrop]:
        """The estimator's crop of frame ``key`` (None: no face box)."""
        return self.cropper.crop(key, self.frames[key])

    def _anchor_features(self, key: int, crop: FaceCrop) -> AnchorFeatures:
        if key not in self._features:
            self._features[key] = self.estimator.embed_anchors(crop.crop[None], [crop.camera])
        return self._features[key]

    @property
    def has_absolute(self) -> bool:
        """This runner can give absolute poses (:meth:`absolute_pose`)."""
        return self.absolute_by_self_pair or has_absolute_pose(self.estimator)

    def absolute_pose(self, key: int) -> Optional[tuple[FloatArray, Optional[float]]]:
        """``([4, 4] T_cam_from_head, residual or None)`` of frame ``key`` from its crop alone
        (None: no crop, or the estimator saw no face). The translation is the estimator's
        (metres, virtual camera moved to the real one)."""
        if not self.has_absolute:
            raise RuntimeError(f"{self.estimator.name} gives no absolute pose")
        if key not in self._absolute:
            crop = self.crop(key)
            result = None
            if crop is not None and self.absolute_by_self_pair:
                out = self.estimator.estimate(self._anchor_features(key, crop), crop.crop, crop.camera)
                if _finite(out):
                    T_virt = make_transform(out.rotation[0], out.translation[0])
                    residual = None if out.residual is None else float(out.residual[0])
                    result = (head_pose_virtual_to_cam(T_virt, crop.R_virt_from_cam), residual)
            elif crop is not None:
                pose = self.estimator.absolute_pose(crop.crop, crop.camera)
                if pose is not None and np.all(np.isfinite(pose.pose_virtual)):
                    result = (head_pose_virtual_to_cam(pose.pose_virtual, crop.R_virt_from_cam), float(pose.residual))
            self._absolute[key] = result
        return self._absolute[key]

    def sees_face(self, key: int) -> bool:
        """The estimator sees a face in the crop of frame ``key`` (module docstring; True for
        estimator kinds not in :data:`FACE_FLAGGING_KINDS`)."""
        if self.estimator.estimator_kind not in FACE_FLAGGING_KINDS or not has_absolute_pose(self.estimator):
            return True
        return self.absolute_pose(key) is not None

    def run_relative(self, pairs: Sequence[tuple[int, int]],
                     anchor_pose: Optional[Callable[[int], Optional[FloatArray]]] = None,
                     desc: str = "pairs") -> tuple[list[PairEstimate], int]:
        """Relative estimates of the pairs: ``(estimates, pairs without a face)``.

        Pairs with a frame without a face box are left out silently (the finder counts those
        frames); pairs where the estimator sees no face in either crop, gives a non-finite
        estimate, or (with ``anchor_pose``) has no anchor pose are counted and left out.

        Args:
            pairs: ``(anchor key, query key)``.
            anchor_pose: key -> ``[4, 4]`` anchor pose to compose with (None: unavailable);
                default the ground truth.
        """
        kept: list[PairEstimate] = []
        no_face = 0
        for a, q in tqdm(pairs, desc=desc, unit="pair", disable=not self.progress):
            ca, cq = self.crop(a), self.crop(q)
            if ca is None or cq is None:
                continue
            T_a = self.frames[a].T_cam_from_head if anchor_pose is None else anchor_pose(a)
            if T_a is None or not (self.sees_face(a) and self.sees_face(q)):
                no_face += 1
                continue
            rel = self.estimator.estimate(self._anchor_features(a, ca), cq.crop, cq.camera)
            if not _finite(rel):
                no_face += 1
                continue
            T_q = query_pose_from_relative(rel.as_matrices()[0], T_a, ca.R_virt_from_cam, cq.R_virt_from_cam)
            residual = None if rel.residual is None else float(rel.residual[0])
            kept.append(PairEstimate(a, q, T_q[:3, :3], np.asarray(T_a)[:3, :3], residual))
        return kept, no_face

    def run_absolute(self, pairs: Sequence[tuple[int, int]], desc: str = "queries") -> tuple[list[PairEstimate], int]:
        """Absolute estimates of the pairs' queries (each query estimated once): ``(estimates,
        pairs without a face)``, counted and left out as in :meth:`run_relative`."""
        queries = sorted({q for _, q in pairs})
        for q in tqdm(queries, desc=desc, unit="frame", disable=not self.progress):
            if self.crop(q) is not None:
                self.absolute_pose(q)
        kept: list[PairEstimate] = []
        no_face = 0
        for a, q in pairs:
            if self.crop(q) is None:
                continue
            pose = self.absolute_pose(q)
            if pose is None:
                no_face += 1
                continue
            kept.append(PairEstimate(a, q, pose[0][:3, :3], self.frames[a].T_cam_from_head[:3, :3], pose[1]))
        return kept, no_face
