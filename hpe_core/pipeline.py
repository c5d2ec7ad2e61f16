"""The per-frame head pose pipeline: frame -> faces -> tracks -> head poses from anchors.

One object used by the ROS node, ``hpe-video`` and the evaluations alike:

1. the detection scheduler runs the face detector on some frames and the tracker's prediction
   gives every confirmed face a box on every frame;
2. each face gets the paper's square crop at the estimator's input size, the crop's
   intrinsics, and its virtual camera (``R_virt_from_cam``: the crop seen by a camera looking
   straight at the face);
3. each tracked person has anchors in the :class:`~hpe_core.anchors.pool.AnchorPool`; the
   ``K`` anchors nearest in rotation to the person's last pose are run against the crop in one
   batched forward pass (anchor features are cached), their relative estimates are composed
   with the anchors' poses and fused (robust rotation average, confidence);
4. confident estimates far from every anchor become keyframe anchors.

People and tracks: the tracker's ids (``track_id``, never reused) name faces in outputs; the
pool is keyed by a *person* key. A new track adopts the anchors of a person whose track was
lost, when it is the only face in view (so a user who steps out of view and back keeps the
calibration); otherwise it starts a new person. A person without anchors is bootstrapped
(``bootstrap="frontal"``: its first sight is taken as facing the camera, marked
``BOOTSTRAPPED`` with a large uncertainty) or waits for :meth:`HeadPosePipeline.capture_anchor`.

Frames: camera optical frame (x right, y down, z forward), poses ``T_cam_from_head`` (4x4,
metres), identity rotation = facing the camera squarely. Images are ``uint8`` RGB ``[H, W, 3]``.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from hpe_core.anchors.anchor import Anchor, AnchorSource, check_pose
from hpe_core.anchors.consensus import ConsensusParams, EstimateErrors, FusedPose, fuse_relative_estimates
from hpe_core.anchors.features import anchor_features
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.anchors.pool import AnchorPool
from hpe_core.crop import DEFAULT_HFOV_DEG, PAPER_MARGIN, resolve_intrinsics
from hpe_core.detection.scheduler import DetectionScheduleConfig, DetectionScheduler
from hpe_core.detection.types import FaceDetector
from hpe_core.crop_camera import CropCamera
from hpe_core.error_model import ErrorModels, HopErrorModel, keyframe_expected_to_help
from hpe_core.face_crop import cut_face_crop
from hpe_core.estimator.interface import EstimateRequest, PoseEstimator, RelativePose
from hpe_core.geometry.euler import yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.transforms import make_transform
from hpe_core.tracking.tracker import FaceTracker, TrackedFace, TrackerConfig
from hpe_core.virtual_camera import head_pose_virtual_to_cam, virtual_camera_rotation

FloatArray = NDArray[np.float64]

#: Typical face width (cheek to cheek) that a detector's box spans, metres. Used only to place a
#: frontal anchor (calibration without a given pose, bootstrapping) at a plausible distance.
FACE_WIDTH_M = 0.15
#: Distance from the face surface to the head centre (between the ears), metres.
HEAD_CENTRE_BEHIND_FACE_M = 0.09
#: Expected rotation error of a bootstrapped "first sight is frontal" anchor, degrees.
BOOTSTRAP_UNCERTAINTY_DEG = 10.0
#: Expected rotation error of an anchor bootstrapped at an absolute estimate, degrees.
ABSOLUTE_BOOTSTRAP_UNCERTAINTY_DEG = 6.0


class PipelineError(RuntimeError):
    """A request the pipeline cannot serve (no such track, no face in view, ...)."""


class StaleFrameError(ValueError):
    """A frame whose stamp is older than the last processed one (it is not processed)."""


class BackendError(RuntimeError):
    """The estimator (inference backend) failed on a frame; ``__cause__`` is its exception.

    Distinguishes a failing backend (retry, fall back to another backend) from bad input
    (``ValueError``: skip the frame).
    """


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of :class:`HeadPosePipeline` (validated).

    Attributes:
        crop_margin: relative margin of the square crop (paper: 0.4).
        default_hfov_deg: horizontal field of view when no intrinsics are given, degrees.
        bootstrap: ``"absolute"`` (a person's first sight is a bootstrapped anchor at the
            estimator's absolute estimate, the paper's predicted-anchor setting; falls back to
            ``"frontal"`` for estimators without one), ``"frontal"`` (taken as facing the
            camera) or ``"none"`` (see module docstring).
        crop_mode: ``"paper"`` (VGGT-HPE's box crop), ``"aligned"`` (landmark-normalised,
            :mod:`hpe_core.aligned_crop`) or ``"auto"`` (the estimator's own choice).
        facing_cone_deg: a head faces the camera when its forward axis is within this angle of
            the direction to the camera, degrees.
        adopt_lost_person: a lone new track takes over the anchors of a lost person.
        max_people: people whose anchors are kept; when a new person would exceed it, the
            least recently seen person without a calibrated anchor (and not in view) is
            forgotten, so a stream of false or passing faces cannot grow memory without bound.
        batch_faces: all faces of a frame go to the estimator in one
            :meth:`~hpe_core.estimator.interface.PoseEstimator.estimate_batch` call (else one
            ``estimate`` call per face; the results are the same).
        detection: when the detector runs.
        tracker: tracker settings.
        policy: anchor policy (selection K, keyframes, capacity).
        consensus: fusion weights and confidence scales.
    """

    crop_margin: float = PAPER_MARGIN
    default_hfov_deg: float = DEFAULT_HFOV_DEG
    bootstrap: str = "absolute"
    crop_mode: str = "auto"
    facing_cone_deg: float = 20.0
    adopt_lost_person: bool = True
    max_people: int = 32
    batch_faces: bool = True
    detection: DetectionScheduleConfig = field(default_factory=DetectionScheduleConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    policy: AnchorPolicy = field(default_factory=AnchorPolicy)
    consensus: ConsensusParams = field(default_factory=ConsensusParams)

    def __post_init__(self) -> None:
        if not 0.0 <= self.crop_margin <= 2.0:
            raise ValueError(f"crop_margin must be in [0, 2], got {self.crop_margin}")
        if not 1.0 <= self.default_hfov_deg < 180.0:
            raise ValueError(f"default_hfov_deg must be in [1, 180), got {self.default_hfov_deg}")
        if self.bootstrap not in ("absolute", "frontal", "none"):
            raise ValueError(f"bootstrap must be 'absolute', 'frontal' or 'none', got {self.bootstrap!r}")
        if self.crop_mode not in ("auto", "paper", "aligned"):
            raise ValueError(f"crop_mode must be 'auto', 'paper' or 'aligned', got {self.crop_mode!r}")
        if not 0.0 < self.facing_cone_deg <= 180.0:
            raise ValueError(f"facing_cone_deg must be in (0, 180], got {self.facing_cone_deg}")
        if isinstance(self.max_people, bool) or not isinstance(self.max_people, int) or self.max_people < 1:
            raise ValueError(f"max_people must be an int >= 1, got {self.max_people!r}")


@dataclass(frozen=True)
class HeadEstimate:
    """One head in one frame.

    Attributes:
        track_id: tracker id (stable while in view).
        person: anchor-pool key of the person.
        box_xyxy: ``[4]`` face box, pixels.
        pose_cam: ``[4, 4]`` ``T_cam_from_head`` (metres), or ``None`` when the person has no
            anchor yet (``bootstrap="none"`` before a capture).
        confidence: 0..1.
        anchor_ids: anchors fused for this pose.
        nearest_gap_deg: rotation gap to the nearest anchor, degrees.
        yaw_pitch_roll_deg: ``[3]`` BIWI / 6DRepNet Euler angles of ``pose_cam``.
        facing_camera: the head's forward axis points at the camera within the cone.
        facing_angle_deg: angle between the head's forward axis and the direction to the camera.
        keyframe_added: id of a keyframe anchor made from this frame, if any.
        source: ``"estimated"``, ``"bootstrapped"`` (the pose is a fresh bootstrap anchor's) or
            ``"no_anchor"``.
        expected_error_deg: the expected rotation error of ``pose_cam``, degrees (from the
            estimators' fitted error models, the anchors' own uncertainty and the estimates'
            disagreement; :mod:`hpe_core.error_model`); ``nan`` without a pose. ``confidence``
            is derived from it (:func:`hpe_core.error_model.confidence_from_expected_error`).
        fused: the fusion's details (every estimate, its anchor, gap, weight and expected
            error), for diagnostics and ``hpe-eval errors``; ``None`` without an estimate.
        relative: the estimator's raw output for this face, or ``None``.
    """

    track_id: int
    person: str
    box_xyxy: FloatArray
    pose_cam: Optional[FloatArray]
    confidence: float
    anchor_ids: tuple[str, ...]
    nearest_gap_deg: float
    yaw_pitch_roll_deg: Optional[FloatArray]
    facing_camera: bool
    facing_angle_deg: float
    keyframe_added: Optional[str]
    source: str
    expected_error_deg: float = float("nan")
    fused: Optional[FusedPose] = field(default=None, repr=False, compare=False)
    relative: Optional[RelativePose] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FrameResult:
    """Output of :meth:`HeadPosePipeline.process`.

    Attributes:
        heads: one entry per confirmed face, ordered by track id.
        detector_ran: the face detector ran on this frame.
        intrinsics: ``[3, 3]`` camera intrinsics used (given or from the default FoV).
        timings_ms: milliseconds per stage: ``detect`` (detector + tracker), ``crop``,
            ``estimate`` (network), ``fuse`` (consensus and keyframes), ``total``.
    """

    heads: tuple[HeadEstimate, ...]
    detector_ran: bool
    intrinsics: FloatArray
    timings_ms: dict[str, float]


@dataclass
class _FaceView:
    """A face's crop in the latest frame (kept for captures)."""

    face: TrackedFace
    crop: NDArray[np.uint8]
    K: FloatArray
    camera: CropCamera

    @property
    def virtual_from_cam(self) -> FloatArray:
        return self.camera.virtual_from_cam


def frontal_pose_from_box(box_xyxy: Sequence[float], K: FloatArray,
                          rotation_virtual: Optional[FloatArray] = None,
                          R_virt_from_cam: Optional[FloatArray] = None) -> FloatArray:
    """A head facing the camera squarely (or turned by ``rotation_virtual``), placed from its box.

    The head looks along the viewing ray through the box centre (identity rotation in the
    virtual camera of that ray) at a distance where a face of :data:`FACE_WIDTH_M` spans the
    box width, plus :data:`HEAD_CENTRE_BEHIND_FACE_M` to the head centre.

    Args:
        box_xyxy: ``[4]`` face box, pixels.
        K: ``[3, 3]`` camera intrinsics.
        rotation_virtual: ``[3, 3]`` head rotation relative to facing the camera (in the
            virtual camera of the box centre, or of ``R_virt_from_cam``); identity when ``None``.
        R_virt_from_cam: ``[3, 3]`` the virtual camera ``rotation_virtual`` is given in
            (e.g. a landmark-aligned crop's, roll included); the box centre's when ``None``.

    Returns:
        ``[4, 4]`` ``T_cam_from_head`` (metres).
    """
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    width_px = max(x1 - x0, 1.0)
    centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    if R_virt_from_cam is None:
        R_virt_from_cam = virtual_camera_rotation(K, centre)
    ray = np.linalg.solve(K, np.array([centre[0], centre[1], 1.0]))
    ray /= np.linalg.norm(ray)
    face_distance = float(K[0, 0]) * FACE_WIDTH_M / width_px
    position = ray * (face_distance + HEAD_CENTRE_BEHIND_FACE_M)
    R = np.eye(3) if rotation_virtual is None else np.asarray(rotation_virtual, dtype=np.float64)
    T_virt = make_transform(R, R_virt_from_cam @ position)
    return head_pose_virtual_to_cam(T_virt, R_virt_from_cam)


def face_size_px(box_xyxy: Sequence[float]) -> float:
    """The longer side of a face box, pixels (a feature of the error models)."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    return max(x1 - x0, y1 - y0, 1.0)


def facing_angle_deg(pose_cam: FloatArray) -> float:
    """Angle between the head's forward axis (head -z) and the direction to the camera, degrees."""
    forward = -pose_cam[:3, 2]
    to_camera = -pose_cam[:3, 3]
    norm = float(np.linalg.norm(to_camera))
    if norm < 1e-9:
        return 0.0
    cos = float(np.clip(forward @ to_camera / norm, -1.0, 1.0))
    return math.degrees(math.acos(cos))


class HeadPosePipeline:
    """Frame-in, head-poses-out (module docstring). Thread-safe: one lock guards the state, so
    service calls (capture, clear, save, load) may come from other threads than ``process``.
    """

    def __init__(
        self,
        estimator: PoseEstimator,
        detector: FaceDetector,
        config: Optional[PipelineConfig] = None,
        pool: Optional[AnchorPool] = None,
    ) -> None:
        self.config = config if config is not None else PipelineConfig()
        self.estimator = estimator
        self.scheduler = DetectionScheduler(detector, FaceTracker(self.config.tracker), self.config.detection)
        self.pool = pool if pool is not None else AnchorPool(self.config.policy)
        self._lock = threading.RLock()
        self._person_of_track: dict[int, str] = {}
        self._last_rotation: dict[str, FloatArray] = {}
        self._last_seen: dict[str, float] = {}
        self._views: dict[int, _FaceView] = {}
        self._mesh_landmarks: dict[int, FloatArray] = {}
        self._next_person = 1
        self._last_stamp: Optional[float] = None

    # ------------------------------------------------------------------ per frame
    def process(self, image_rgb: NDArray[np.uint8], stamp_s: float,
                intrinsics: Optional[FloatArray] = None) -> FrameResult:
        """Estimate every tracked head in one frame.

        Args:
            image_rgb: ``uint8`` ``[H, W, 3]`` RGB.
            stamp_s: capture time in seconds; must not go backwards.
            intrinsics: ``[3, 3]`` camera K, or ``None`` for ``default_hfov_deg``.

        Raises:
            ValueError: not a uint8 ``[H, W, 3]`` image (nothing changes).
            StaleFrameError: ``stamp_s`` is older than the previous frame's (nothing changes).
            BackendError: the estimator raised; the frame gives no result, the tracks and
                anchors stay usable for the next frame.
        """
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
        with self._lock:
            if self._last_stamp is not None and stamp_s < self._last_stamp:
                raise StaleFrameError(f"frame stamp {stamp_s:.6f} s is older than the last one {self._last_stamp:.6f} s")
            self._last_stamp = stamp_s
            h, w = image.shape[:2]
            K = resolve_intrinsics(intrinsics, w, h, self.config.default_hfov_deg)
            t0 = time.perf_counter()
            scheduled = self.scheduler.process(image, stamp_s)
            t1 = time.perf_counter()
            faces = [f for f in scheduled.faces if f.confirmed]
            views = {f.track_id: self._crop(image, f, K) for f in faces}
            t2 = time.perf_counter()
            self._views = views
            self._mesh_landmarks = {}
            self._assign_people(faces, stamp_s)
            heads, estimate_s = self._estimate_heads([views[f.track_id] for f in faces], stamp_s)
            t3 = time.perf_counter()
            timings = {
                "detect": (t1 - t0) * 1e3,
                "crop": (t2 - t1) * 1e3,
                "estimate": estimate_s * 1e3,
                "fuse": (t3 - t2 - estimate_s) * 1e3,
                "total": (t3 - t0) * 1e3,
            }
            return FrameResult(tuple(heads), scheduled.detector_ran, K, timings)

    def _crop(self, image: NDArray[np.uint8], face: TrackedFace, K: FloatArray) -> _FaceView:
        size = self.estimator.input_size[0]
        mode = self.estimator.crop_mode if self.config.crop_mode == "auto" else self.config.crop_mode
        crop, camera = cut_face_crop(image, K, face.box_xyxy, size, mode, face.landmarks5,
                                     margin=self.config.crop_margin)
        return _FaceView(face, crop, K, camera)

    def _initial_pose(self, view: _FaceView) -> tuple[FloatArray, bool]:
        """A person's first pose: the estimator's absolute estimate (``bootstrap="absolute"``,
        when it has one) or facing the camera; returns ``(T_cam_from_head, from_estimate)``."""
        if self.config.bootstrap == "absolute":
            try:
                absolute = self.estimator.absolute_pose(view.crop, view.camera)
            except Exception:  # noqa: BLE001 - fall back to the frontal guess
                absolute = None
            if absolute is not None:
                R_virt = absolute.pose_virtual[:3, :3]
                # the rotation from the estimate, the position from the box (as the frontal guess)
                return frontal_pose_from_box(view.face.box_xyxy, view.K, R_virt,
                                             R_virt_from_cam=view.virtual_from_cam), True
        return frontal_pose_from_box(view.face.box_xyxy, view.K), False

    def _assign_people(self, faces: Sequence[TrackedFace], stamp_s: float) -> None:
        """Give new tracks a person key (adopting a lost person's anchors when alone); forget
        dead tracks and, beyond ``max_people``, the least recently seen uncalibrated people."""
        live = self.scheduler.tracker.live_track_ids()
        for track_id in [t for t in self._person_of_track if t not in live]:
            del self._person_of_track[track_id]
        visible = {f.track_id for f in faces}
        active_people = {self._person_of_track[t] for t in visible if t in self._person_of_track}
        new_tracks = [f.track_id for f in faces if f.track_id not in self._person_of_track]
        for track_id in new_tracks:
            person = None
            if self.config.adopt_lost_person and len(faces) == 1:
                lost = [p for p in self.pool.tracks() if p not in active_people]
                if lost:
                    person = max(lost, key=lambda p: self._last_seen.get(p, -math.inf))
            if person is None:
                person = f"person_{self._next_person}"
                self._next_person += 1
            self._person_of_track[track_id] = person
            active_people.add(person)
        for track_id in visible:
            self._last_seen[self._person_of_track[track_id]] = stamp_s
        self._forget_people(active_people)

    def _forget_people(self, in_view: set[str]) -> None:
        """Keep at most ``max_people`` people: forget the least recently seen ones that are not
        in view and hold no calibrated anchor (calibrations are the user's; only
        ``clear_anchors`` removes them)."""
        known = set(self.pool.tracks()) | set(self._last_seen) | set(self._person_of_track.values())
        excess = len(known) - self.config.max_people
        if excess <= 0:
            return
        tracked = set(self._person_of_track.values())
        candidates = [p for p in known if p not in in_view and p not in tracked
                      and not any(a.source is AnchorSource.CALIBRATED for a in self.pool.anchors(p))]
        candidates.sort(key=lambda p: self._last_seen.get(p, -math.inf))
        for person in candidates[:excess]:
            self.pool.remove_track(person)
            self._last_seen.pop(person, None)
            self._last_rotation.pop(person, None)

    def _estimate_heads(self, views: Sequence[_FaceView], stamp_s: float) -> tuple[list[HeadEstimate], float]:
        """Every face's head (in the order of ``views``) and the seconds spent in the estimator.

        A face without anchors is bootstrapped (or left without a pose); the others go to the
        estimator together (``config.batch_faces``: one ``estimate_batch`` call) or one by one.
        """
        heads: list[Optional[HeadEstimate]] = [None] * len(views)
        pending: list[tuple[int, str, list[Anchor]]] = []
        for i, view in enumerate(views):
            person = self._person_of_track[view.face.track_id]
            anchors = self.pool.anchors(person)
            if anchors:
                prior = self._last_rotation.get(person, anchors[0].rotation_cam)
                pending.append((i, person, list(self.pool.select(
                    person, prior, view.virtual_from_cam,
                    expected_error=self._anchor_error_function(view, prior)).anchors)))
            else:
                heads[i] = self._first_sight(view, person, stamp_s)
        t0 = time.perf_counter()
        try:
            requests = [EstimateRequest(anchor_features(chosen, self.estimator), views[i].crop, views[i].camera)
                        for i, _, chosen in pending]
            if self.config.batch_faces:
                results = self.estimator.estimate_batch(requests) if requests else []
            else:
                results = [self.estimator.estimate(r.anchor_features, r.query_crop, r.camera) for r in requests]
            if len(results) != len(requests):
                raise RuntimeError(f"estimate_batch gave {len(results)} results for {len(requests)} faces")
        except Exception as exc:  # noqa: BLE001 - any estimator failure is a backend failure
            raise BackendError(f"estimator {type(self.estimator).__name__} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        spent = time.perf_counter() - t0
        for (i, person, chosen), rel in zip(pending, results):
            heads[i] = self._estimated_head(views[i], person, chosen, rel, stamp_s)
        return [h for h in heads if h is not None], spent

    def _first_sight(self, view: _FaceView, person: str, stamp_s: float) -> HeadEstimate:
        """The head of a person without anchors: a bootstrapped anchor, or no pose."""
        if self.config.bootstrap == "none":
            return self._head(view, person, None, 0.0, (), float("nan"), None, "no_anchor")
        pose, estimated = self._initial_pose(view)
        uncertainty = ABSOLUTE_BOOTSTRAP_UNCERTAINTY_DEG if estimated else BOOTSTRAP_UNCERTAINTY_DEG
        anchor = self.pool.add_bootstrapped(
            person, view.crop, pose, view.virtual_from_cam, uncertainty_deg=uncertainty,
            created_at=stamp_s, crop_from_cam=view.camera.crop_from_cam)
        self._last_rotation[person] = pose[:3, :3]
        return self._head(view, person, pose, 0.3, (anchor.anchor_id,), 0.0, None, "bootstrapped",
                          expected_error_deg=uncertainty)

    def _estimated_head(self, view: _FaceView, person: str, chosen: list[Anchor], rel: RelativePose,
                        stamp_s: float) -> HeadEstimate:
        """Fuse one face's relative poses into its head pose; maybe add a keyframe."""
        self._remember_mesh_landmarks(view, rel)
        per_estimate = [chosen[j] for j in rel.anchor_indices(len(chosen))]
        fused = fuse_relative_estimates(per_estimate, rel.rotation, rel.translation, view.virtual_from_cam,
                                        self.config.consensus, self._estimate_errors(view, rel))
        self._last_rotation[person] = fused.rotation_cam
        keyframe = None
        if self._keyframe_helps(view, person, fused):
            decision = self.pool.maybe_add_keyframe(person, view.crop, fused, created_at=stamp_s,
                                                    crop_from_cam=view.camera.crop_from_cam)
            keyframe = decision.anchor.anchor_id if decision.added and decision.anchor is not None else None
        return self._head(view, person, fused.pose_cam, fused.confidence, fused.anchor_ids,
                          fused.nearest_gap_deg, keyframe, "estimated", fused,
                          expected_error_deg=fused.expected_error_deg, relative=rel)

    # ------------------------------------------------------------------ error models
    def _error_models(self) -> Optional[ErrorModels]:
        models = getattr(self.estimator, "error_models", None)
        return models if isinstance(models, ErrorModels) else None

    def _hop_models(self) -> dict[str, HopErrorModel]:
        """The fitted hop models of the estimator kinds this estimator runs ({} when any is missing)."""
        models = self._error_models()
        if models is None:
            return {}
        kind = self.estimator.estimator_kind
        kinds = ("facemesh", "vggt") if kind == "fused" else (kind,)
        if not all(k in models.hops for k in kinds):
            return {}
        return {k: models.hops[k] for k in kinds}

    def _estimate_errors(self, view: _FaceView, rel: RelativePose) -> Optional[EstimateErrors]:
        """The error models of this face's estimates, or ``None`` when the estimator has none."""
        hops = self._hop_models()
        sources = rel.sources if rel.sources is not None else (self.estimator.estimator_kind,) * len(rel)
        if not hops or any(s not in hops for s in sources):
            return None
        models = self._error_models()
        heads = models.heads if models is not None else {}
        return EstimateErrors(tuple(hops[s] for s in sources), tuple(sources), face_size_px(view.face.box_xyxy),
                              rel.residual, heads.get(self.estimator.estimator_kind))

    @staticmethod
    def _hop_error(hops: dict[str, HopErrorModel], face_px: float, gap_deg: FloatArray, yaw_deg: float) -> FloatArray:
        """``[N]`` expected error of one estimate per gap, the estimators combined (inverse variance)."""
        precision = sum(1.0 / m.expected_error_deg(gap_deg, face_px, yaw_deg) ** 2 for m in hops.values())
        return 1.0 / np.sqrt(precision)

    def _anchor_error_function(self, view: _FaceView, prior: FloatArray):
        """For selection: the expected error of the estimate each anchor would give (its own
        uncertainty and the hop error at its gap), or ``None`` (select by gap)."""
        hops = self._hop_models()
        if not hops:
            return None
        yaw = float(yaw_pitch_roll_deg_from_matrix(view.virtual_from_cam @ prior)[0])
        face = face_size_px(view.face.box_xyxy)

        def expected(anchors: Sequence[Anchor], gaps_deg: FloatArray) -> FloatArray:
            hop = self._hop_error(hops, face, np.asarray(gaps_deg, dtype=np.float64), yaw)
            u = np.array([a.accumulated_uncertainty_deg for a in anchors])
            return np.sqrt(u ** 2 + hop ** 2)
        return expected

    def _keyframe_helps(self, view: _FaceView, person: str, fused: FusedPose) -> bool:
        """Whether a keyframe at this estimate would help later frames: a head turning on by
        ``keyframe_min_gap_deg`` beyond it is expected to be better estimated from the keyframe
        (its expected error and one short hop) than from the anchor it would come from (that
        anchor's uncertainty and the longer hop). Always true without error models (the pool's
        rules alone decide)."""
        hops = self._hop_models()
        if not hops or not math.isfinite(fused.expected_error_deg):
            return True
        parent = next((a for a in self.pool.anchors(person) if a.anchor_id == fused.nearest_anchor_id), None)
        if parent is None:
            return True
        face = face_size_px(view.face.box_xyxy)
        return keyframe_expected_to_help(fused.expected_error_deg, parent.accumulated_uncertainty_deg,
                                         fused.nearest_gap_deg, self.config.policy.keyframe_min_gap_deg,
                                         lambda gaps: self._hop_error(hops, face, gaps, fused.query_yaw_deg))

    def _head(self, view: _FaceView, person: str, pose: Optional[FloatArray], confidence: float,
              anchor_ids: tuple[str, ...], gap_deg: float, keyframe: Optional[str], source: str,
              fused: Optional[FusedPose] = None, expected_error_deg: float = float("nan"),
              relative: Optional[RelativePose] = None) -> HeadEstimate:
        if pose is None:
            ypr, angle = None, float("nan")
        else:
            ypr = np.asarray(yaw_pitch_roll_deg_from_matrix(pose[:3, :3]), dtype=np.float64)
            angle = facing_angle_deg(pose)
        return HeadEstimate(
            track_id=view.face.track_id, person=person, box_xyxy=np.asarray(view.face.box_xyxy, dtype=np.float64),
            pose_cam=pose, confidence=float(confidence), anchor_ids=tuple(anchor_ids),
            nearest_gap_deg=float(gap_deg), yaw_pitch_roll_deg=ypr,
            facing_camera=bool(pose is not None and angle <= self.config.facing_cone_deg),
            facing_angle_deg=angle, keyframe_added=keyframe, source=source,
            expected_error_deg=float(expected_error_deg), fused=fused, relative=relative)

    # ------------------------------------------------------------------ requests
    def capture_anchor(self, track_id: Optional[int] = None,
                       pose_cam: Optional[FloatArray] = None, pose_from_estimate: bool = False) -> Anchor:
        """:meth:`capture_anchor_of_track` without the track id."""
        return self.capture_anchor_of_track(track_id, pose_cam, pose_from_estimate)[1]

    def capture_anchor_of_track(self, track_id: Optional[int] = None, pose_cam: Optional[FloatArray] = None,
                                pose_from_estimate: bool = False) -> tuple[int, Anchor]:
        """Calibrate: the face of ``track_id`` (``None``: the largest face) in the latest frame
        becomes a calibrated anchor at ``pose_cam`` (``None``: facing the camera squarely, or,
        with ``pose_from_estimate``, at the estimator's absolute estimate when it has one).

        The person's bootstrapped anchors and the keyframes derived from them are dropped:
        a calibration supersedes guesses.

        Returns:
            ``(track id, anchor)``: the tracker's id of the face that was captured (the largest
            face's when ``track_id`` was ``None`` or negative) and the new anchor.

        Raises:
            PipelineError: no face in the latest frame, or no such track.
            ValueError: ``pose_cam`` not a rigid ``[4, 4]`` transform with a finite translation
                within :data:`~hpe_core.anchors.anchor.MAX_POSE_DISTANCE_M` in front of the
                camera (the pool is unchanged).
        """
        with self._lock:
            if not self._views:
                raise PipelineError("no face in the latest frame")
            if track_id is None or track_id < 0:
                def area(v: _FaceView) -> float:
                    b = v.face.box_xyxy
                    return float((b[2] - b[0]) * (b[3] - b[1]))
                view = max(self._views.values(), key=area)
            elif track_id in self._views:
                view = self._views[track_id]
            else:
                raise PipelineError(f"track {track_id} is not in the latest frame (tracks: {sorted(self._views)})")
            person = self._person_of_track[view.face.track_id]
            if pose_cam is not None:
                # validated before anything changes: a refused pose leaves the pool as it was
                pose = check_pose(pose_cam, "capture pose")
                if pose[2, 3] <= 0.0:
                    raise ValueError(f"capture pose must be in front of the camera (z > 0), got z = {pose[2, 3]:.4g} m")
            elif pose_from_estimate and self.config.bootstrap == "absolute":
                pose = self._initial_pose(view)[0]
            else:
                pose = frontal_pose_from_box(view.face.box_xyxy, view.K)
            superseded = [a for a in self.pool.anchors(person)
                          if a.source is not AnchorSource.CALIBRATED and not self._descends_from_calibrated(person, a)]
            for anchor in superseded:
                self.pool.remove_anchor(person, anchor.anchor_id)
            try:
                anchor = self.pool.add_calibrated(person, view.crop, pose, view.virtual_from_cam,
                                                  crop_from_cam=view.camera.crop_from_cam)
            except Exception:
                for old in superseded:  # put the guesses back: a failed request changes nothing
                    self.pool.restore_anchor(old)
                raise
            self._last_rotation[person] = pose[:3, :3]
            return view.face.track_id, anchor

    def _descends_from_calibrated(self, person: str, anchor: Anchor) -> bool:
        by_id = {a.anchor_id: a for a in self.pool.anchors(person)}
        current: Optional[Anchor] = anchor
        for _ in range(64):
            if current is None:
                return False
            if current.source is AnchorSource.CALIBRATED:
                return True
            parents = getattr(current, "parent_ids", ()) or ()
            current = by_id.get(parents[0]) if parents else None
        return False

    def clear_anchors(self, track_id: Optional[int] = None) -> int:
        """Remove the anchors of the person of ``track_id`` (``None`` or negative: everyone's).

        Returns how many anchors were removed.
        """
        with self._lock:
            if track_id is None or track_id < 0:
                removed = len(self.pool)
                self.pool.clear()
                self._last_rotation.clear()
                return removed
            person = self._person_of_track.get(track_id)
            if person is None:
                raise PipelineError(f"unknown track {track_id}")
            removed = self.pool.remove_track(person)
            self._last_rotation.pop(person, None)
            return removed

    def update_config(self, config: PipelineConfig) -> None:
        """Apply new settings from the next frame on (tracks and anchors are kept; a new anchor
        policy applies to the same anchors)."""
        with self._lock:
            self.config = config
            self.scheduler.config = config.detection
            self.pool.set_policy(config.policy)

    def replace_pool(self, pool: AnchorPool) -> None:
        """Swap in a loaded pool (features are recomputed lazily)."""
        with self._lock:
            self.pool.replace_with(pool)
            self._last_rotation.clear()

    def _remember_mesh_landmarks(self, view: _FaceView, rel: RelativePose) -> None:
        """Keep the estimator's dense landmarks of this query (the face mesh has them), mapped
        from crop pixels to image pixels through the crop camera: ``p_img ~ K @ crop_from_cam^-1 @ p_crop``."""
        crop_px = rel.query_landmarks_px
        if crop_px is None:
            self._mesh_landmarks.pop(view.face.track_id, None)
            return
        homogeneous = np.concatenate([crop_px, np.ones((len(crop_px), 1))], axis=1)
        image = homogeneous @ (view.K @ np.linalg.inv(view.camera.crop_from_cam)).T
        self._mesh_landmarks[view.face.track_id] = image[:, :2] / image[:, 2:3]

    def mesh_landmarks_of(self, track_id: int) -> Optional[FloatArray]:
        """``[478, 2]`` face-mesh landmarks (image pixels) of a face in the latest frame, when the
        estimator produced them for it this frame; ``None`` otherwise."""
        with self._lock:
            if track_id not in self._views:
                return None
            landmarks = self._mesh_landmarks.get(track_id)
            return None if landmarks is None else landmarks.copy()

    def landmarks5_of(self, track_id: int) -> Optional[FloatArray]:
        """``[5, 2]`` detector landmarks (pixels of the latest frame) of a face in view, or ``None``."""
        with self._lock:
            view = self._views.get(track_id)
            if view is None or view.face.landmarks5 is None:
                return None
            return np.asarray(view.face.landmarks5, dtype=np.float64).copy()

    def tracks_in_view(self) -> list[int]:
        with self._lock:
            return sorted(self._views)

    def person_of(self, track_id: int) -> Optional[str]:
        with self._lock:
            return self._person_of_track.get(track_id)
