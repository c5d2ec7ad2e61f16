"""Anchor/query pairs for VGGT-HPE training.

A pair shares identity and lighting (expression and view are free). Each view gets its own
square face crop (random margin 0.4-0.6 and shift) with updated intrinsics; both views get
the same photometric augmentation. Targets are camera-from-head poses, either normalised so
the anchor is the identity (``relative``: T_rel = T_q inv(T_a)) or each view's own pose
(``absolute``).

Crops (``PairConfig.crop``): ``box`` cuts a square around the render's face box (rounds 1-3);
``aligned`` cuts the node's landmark-normalised crop (:mod:`hpe_core.aligned_crop`: eyes level,
centred, scaled) from MTCNN's box and landmarks, as stored by :mod:`hpe_training.data.detections`
(so training sees the detector's run-time noise), with the crop's roll in its virtual camera.
Views MTCNN missed (profiles, and renders it scores too low) are cut from the render's box,
mapped to MTCNN's box convention by the dataset's median offset and scale, and levelled with the
render's own eye, nose and mouth points plus noise of the size MTCNN's landmarks have on the
views it found (:attr:`HeadPairDataset.landmark_noise`), so every crop is levelled as at run time.

Poses are expressed in each crop's *virtual camera* (:mod:`hpe_core.virtual_camera`: the
camera rotated to look along the ray through the crop centre), as at inference, where the
pipeline converts anchor and query poses with the same rotation. A crop only shows the head
relative to its viewing ray; targets in the real camera frame would ask the network for the
crop's position in the image, which it cannot see.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from hpe_training.data.augment import LEVELS, PairAugmenter
from hpe_training.data.camera import to_homogeneous
from hpe_training.data.crop import crop_image, crop_intrinsics, random_box, square_box
from hpe_training.data.detections import FaceDetection, has_detection_file, load_detection
from hpe_training.data.layout import LayoutReader
from hpe_training.data.pose import fov_from_intrinsics, pose_encoding, quaternion_xyzw, relative_to_anchor
from hpe_core.aligned_crop import aligned_crop
from hpe_core.crop import PAPER_MARGIN
from hpe_core.virtual_camera import head_pose_cam_to_virtual, virtual_camera_rotation

MODES = ("relative", "absolute")
CROPS = ("box", "aligned")


@dataclass(frozen=True)
class PairConfig:
    """Pair sampling and preprocessing settings.

    Attributes:
        size: output side S in pixels.
        mode: "relative" (anchor = identity) or "absolute" (each view's own pose).
        margin_range: crop side = max(face w, h) * (1 + margin), margin ~ U(range).
        max_shift: crop centre shift ~ U(-max_shift, max_shift) x side, per axis.
        augment: apply the shared photometric augmentation.
        seed: base seed; pair k of epoch e is drawn from (seed, e, k).
        near_fraction: share of pairs whose query is drawn among the anchor's group members
            within ``near_gap_deg`` of it (head-to-camera rotation angle), when it has any;
            the others draw the query uniformly from the group. 0 = uniform (the paper).
        near_gap_deg: the gap bound of those near pairs, degrees.
        crop: ``"box"`` or ``"aligned"`` (module docstring).
        aligned_margin_range: ``aligned`` crops: margin around MTCNN's box ~ U(range) (the node
            uses the paper's 0.4).
        aligned_max_shift: ``aligned`` crops: MTCNN's box shifted by U(-s, s) x its side per axis.
        augment_level: ``"standard"`` or ``"wide"`` (:mod:`hpe_training.data.augment`).
    """

    size: int = 224
    mode: str = "relative"
    margin_range: tuple[float, float] = (0.4, 0.6)
    max_shift: float = 0.1
    augment: bool = True
    seed: int = 0
    near_fraction: float = 0.0
    near_gap_deg: float = 30.0
    crop: str = "box"
    aligned_margin_range: tuple[float, float] = (0.3, 0.5)
    aligned_max_shift: float = 0.03
    augment_level: str = "standard"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {self.crop!r}")
        if self.augment_level not in LEVELS:
            raise ValueError(f"augment_level must be one of {LEVELS}, got {self.augment_level!r}")
        lo, hi = self.aligned_margin_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"aligned_margin_range must satisfy 0 <= lo <= hi, got {self.aligned_margin_range}")
        if not 0.0 <= self.aligned_max_shift < 0.5:
            raise ValueError(f"aligned_max_shift must be in [0, 0.5), got {self.aligned_max_shift}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        lo, hi = self.margin_range
        if not 0.0 <= lo <= hi:
            raise ValueError(f"margin_range must satisfy 0 <= lo <= hi, got {self.margin_range}")
        if not 0.0 <= self.max_shift < 0.5:
            raise ValueError(f"max_shift must be in [0, 0.5), got {self.max_shift}")
        if not 0.0 <= self.near_fraction <= 1.0:
            raise ValueError(f"near_fraction must be in [0, 1], got {self.near_fraction}")
        if not 0.0 < self.near_gap_deg <= 180.0:
            raise ValueError(f"near_gap_deg must be in (0, 180], got {self.near_gap_deg}")


def render_landmarks5(landmarks6: np.ndarray | None) -> np.ndarray | None:
    """``[5, 2]`` MTCNN-ordered points (image-left eye, image-right eye, nose, image-left and
    image-right mouth corner, for a frontal face) from ``hpe-synth``'s ``[6, 2]`` landmarks
    (:data:`hpe_training.synth.head.LANDMARK_NAMES`: nose tip, right eye, left eye, mouth right,
    mouth left, head centre; right/left are the person's); ``None`` without them."""
    if landmarks6 is None:
        return None
    lm = np.asarray(landmarks6, np.float64).reshape(-1, 2)
    if lm.shape[0] < 5 or not np.all(np.isfinite(lm[:5])):
        return None
    return lm[[1, 2, 0, 3, 4]].copy()


class PairSampler:
    """Deterministic choice of (anchor, query) sample indices of a :class:`LayoutReader`.

    With ``near_fraction`` > 0 the head-to-camera rotations of all samples are read once (the
    annotations, not the images), and that share of the pairs takes its query among the
    anchor's group members within ``near_gap_deg`` of it.
    """

    def __init__(self, reader: LayoutReader, seed: int = 0, near_fraction: float = 0.0,
                 near_gap_deg: float = 30.0) -> None:
        self.reader = reader
        self.seed = int(seed)
        self.near_fraction = float(near_fraction)
        groups = reader.groups()
        self._group_of = {}
        for members in groups.values():
            for idx in members:
                self._group_of[idx] = members
        self._near_of: dict[int, list[int]] = {}
        if self.near_fraction > 0.0:
            rotations = [reader.load_annotation(s).R_h2c for s in reader.samples]
            cos_bound = np.cos(np.deg2rad(near_gap_deg))
            for members in groups.values():
                R = np.stack([rotations[m] for m in members])  # [M, 3, 3]
                # cos(angle(R_i R_j^T)) = (trace(R_i R_j^T) - 1) / 2
                cos_gap = (np.einsum("iab,jab->ij", R, R) - 1.0) / 2.0
                for i, m in enumerate(members):
                    self._near_of[m] = [members[j] for j in np.flatnonzero(cos_gap[i] >= cos_bound) if j != i]

    def pair(self, index: int, epoch: int = 0) -> tuple[int, int]:
        """Anchor = sample ``index``; query = another sample of its (identity, lighting)."""
        members = self._group_of[index]
        if len(members) < 2:
            raise ValueError(f"sample {index} has no partner with the same identity and lighting")
        rng = np.random.default_rng([self.seed, 7919, int(epoch), int(index)])
        others = [m for m in members if m != index]
        if self.near_fraction > 0.0:
            near = self._near_of.get(index, [])
            if near and rng.uniform() < self.near_fraction:
                return index, int(near[rng.integers(len(near))])
        return index, int(others[rng.integers(len(others))])


class HeadPairDataset(Dataset):
    """Torch dataset of anchor/query pairs.

    ``dataset[k]`` returns a dict:
        images: [2, 3, S, S] float32 in [0, 1] (frame 0 = anchor, frame 1 = query).
        R: [2, 3, 3], t: [2, 3] (metres), quat: [2, 4] (x, y, z, w): target camera-from-head
            poses (relative mode: frame 0 is the identity, frame 1 is T_q inv(T_a)).
        fov: [2, 2] (fov_h, fov_w) radians of each crop; pose_enc: [2, 9] absT_quaR_FoV.
        K: [2, 3, 3] crop intrinsics; T_abs: [2, 4, 4] absolute head poses in each crop's
        virtual camera.
        keys: [2, 4] int64 (identity, lighting, expr, view).
    """

    def __init__(self, reader: LayoutReader, config: PairConfig = PairConfig()) -> None:
        self.reader = reader
        self.config = config
        self.sampler = PairSampler(reader, config.seed, config.near_fraction, config.near_gap_deg)
        self.augmenter = PairAugmenter(config.augment_level) if config.augment else None
        self.epoch = 0
        self._detections: list[FaceDetection | None] = []
        self._miss_box_map = (np.zeros(2), 1.0)
        #: ``[5, 2]`` robust standard deviation of MTCNN's landmarks about the render's, in
        #: units of MTCNN's box side (``aligned`` crops; zeros until measured).
        self.landmark_noise = np.zeros((5, 2))
        if config.crop == "aligned":
            self._read_detections()

    def _read_detections(self) -> None:
        """Load every view's MTCNN answer and fit how MTCNN's boxes sit on the render's boxes."""
        missing = [s.directory for s in self.reader.samples if not has_detection_file(s)]
        if missing:
            raise FileNotFoundError(
                f"crop 'aligned' needs MTCNN's answers: {len(missing)} views lack them (first: {missing[0]}); "
                f"run python -m hpe_training.data.detections --root {self.reader.root}")
        self._detections = [load_detection(s) for s in self.reader.samples]
        offsets, scales, residuals = [], [], []
        for sample, det in zip(self.reader.samples, self._detections):
            if det is None:
                continue
            bbox = self.reader.load_annotation(sample).bbox
            if bbox is None:
                continue
            side = max(float(bbox[2] - bbox[0]), float(bbox[3] - bbox[1]), 1.0)
            centre = 0.5 * (np.asarray(bbox[:2], np.float64) + np.asarray(bbox[2:], np.float64))
            offsets.append((0.5 * (det.box_xyxy[:2] + det.box_xyxy[2:]) - centre) / side)
            det_side = max(det.box_xyxy[2] - det.box_xyxy[0], det.box_xyxy[3] - det.box_xyxy[1])
            scales.append(det_side / side)
            render = render_landmarks5(self.reader.load_landmarks(sample))
            if render is not None:
                residuals.append((det.landmarks5 - render) / det_side)
        if offsets:
            self._miss_box_map = (np.median(np.stack(offsets), axis=0), float(np.median(scales)))
        if residuals:
            r = np.stack(residuals)  # [N, 5, 2]
            self.landmark_noise = 1.4826 * np.median(np.abs(r - np.median(r, axis=0)), axis=0)

    def detection_rate(self) -> float:
        """Share of views MTCNN found a face in (``aligned`` crops only; NaN otherwise)."""
        if not self._detections:
            return float("nan")
        return float(np.mean([d is not None for d in self._detections]))

    def _detector_box(self, index: int, render_box: np.ndarray, rng: np.random.Generator | None
                      ) -> tuple[np.ndarray, np.ndarray | None]:
        """MTCNN's box and landmarks of a view, or the render's box and points in MTCNN's
        convention with MTCNN-sized landmark noise (none when ``rng`` is None)."""
        det = self._detections[index]
        if det is not None:
            return det.box_xyxy, det.landmarks5
        offset, scale = self._miss_box_map
        b = np.asarray(render_box, np.float64)
        side = max(b[2] - b[0], b[3] - b[1], 1.0)
        centre = 0.5 * (b[:2] + b[2:]) + offset * side
        half = 0.5 * scale * side
        box = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
        landmarks = render_landmarks5(self.reader.load_landmarks(self.reader.samples[index]))
        if landmarks is not None and rng is not None:
            landmarks = landmarks + rng.normal(size=(5, 2)) * self.landmark_noise * (2.0 * half)
        return box, landmarks

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (changes partners, crops and augmentation draws)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.reader)

    def load_view(self, index: int, rng: np.random.Generator | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Crop one view.

        Args:
            rng: random crop draw, or None for the centred box with the mean margin.

        Returns:
            (image [S, S, 3] uint8, crop K [3, 3], camera-from-head T [4, 4] in the real
            camera, R_virt_from_cam [3, 3] of the crop's virtual camera).
        """
        cfg = self.config
        sample = self.reader.samples[index]
        ann = self.reader.load_annotation(sample)
        image = self.reader.load_image(sample)
        bbox = ann.bbox if ann.bbox is not None else np.array([0, 0, image.shape[1], image.shape[0]], np.float32)
        if cfg.crop == "aligned":
            return self._load_aligned_view(index, image, ann, bbox, rng)
        if rng is None:
            box = square_box(bbox, float(np.mean(cfg.margin_range)))
        else:
            box = random_box(bbox, rng, cfg.margin_range, cfg.max_shift)
        centre_px = np.array([box.x0 + box.side / 2.0, box.y0 + box.side / 2.0])
        return (crop_image(image, box, cfg.size), crop_intrinsics(ann.K, box, cfg.size),
                to_homogeneous(ann.R_h2c, ann.t_h2c), virtual_camera_rotation(ann.K, centre_px))

    def _load_aligned_view(self, index: int, image: np.ndarray, ann, bbox: np.ndarray,
                           rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`load_view` for ``aligned`` crops (same returns; the rotation includes the roll)."""
        cfg = self.config
        box, landmarks = self._detector_box(index, bbox, rng)
        margin = PAPER_MARGIN
        if rng is not None:
            margin = float(rng.uniform(*cfg.aligned_margin_range))
            side = max(box[2] - box[0], box[3] - box[1])
            shift = rng.uniform(-cfg.aligned_max_shift, cfg.aligned_max_shift, size=2) * side
            box = box + np.concatenate([shift, shift])
        crop, geometry = aligned_crop(image, ann.K, box, cfg.size, landmarks, margin=margin)
        return (crop, geometry.K_crop, to_homogeneous(ann.R_h2c, ann.t_h2c), geometry.R_virt_from_cam)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        a_idx, q_idx = self.sampler.pair(index, self.epoch)
        rng = np.random.default_rng([cfg.seed, 104729, self.epoch, int(index)])
        views = [self.load_view(i, rng) for i in (a_idx, q_idx)]
        images = [v[0] for v in views]
        if self.augmenter is not None:
            images, _ = self.augmenter(images, int(rng.integers(2 ** 31)))
        Ks = [v[1] for v in views]
        T_abs = [head_pose_cam_to_virtual(v[2], v[3]) for v in views]  # virtual-camera poses
        targets = list(relative_to_anchor(T_abs[0], T_abs[1])) if cfg.mode == "relative" else T_abs
        s = cfg.size
        samples = [self.reader.samples[i].key for i in (a_idx, q_idx)]
        return {
            "images": torch.from_numpy(np.stack(images).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous(),
            "R": torch.tensor(np.stack([T[:3, :3] for T in targets]), dtype=torch.float32),
            "t": torch.tensor(np.stack([T[:3, 3] for T in targets]), dtype=torch.float32),
            "quat": torch.tensor(np.stack([quaternion_xyzw(T[:3, :3]) for T in targets]), dtype=torch.float32),
            "fov": torch.tensor([fov_from_intrinsics(K, s, s) for K in Ks], dtype=torch.float32),
            "pose_enc": torch.tensor(np.stack([pose_encoding(T, K, s, s) for T, K in zip(targets, Ks)]),
                                     dtype=torch.float32),
            "K": torch.tensor(np.stack(Ks), dtype=torch.float32),
            "T_abs": torch.tensor(np.stack(T_abs), dtype=torch.float32),
            "keys": torch.tensor([[k.identity, k.lighting, k.expr, k.view] for k in samples], dtype=torch.int64),
        }
