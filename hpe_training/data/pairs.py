"""Anchor/query pairs for VGGT-HPE training.

A pair shares identity and lighting (expression and view are free). Each view gets its own
square face crop (random margin 0.4-0.6 and shift) with updated intrinsics; both views get
the same photometric augmentation. Targets are camera-from-head poses, either normalised so
the anchor is the identity (``relative``: T_rel = T_q inv(T_a)) or each view's own pose
(``absolute``).

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

from hpe_training.data.augment import PairAugmenter
from hpe_training.data.camera import to_homogeneous
from hpe_training.data.crop import crop_image, crop_intrinsics, random_box, square_box
from hpe_training.data.layout import LayoutReader
from hpe_training.data.pose import fov_from_intrinsics, pose_encoding, quaternion_xyzw, relative_to_anchor
from hpe_core.virtual_camera import head_pose_cam_to_virtual, virtual_camera_rotation

MODES = ("relative", "absolute")


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
    """

    size: int = 224
    mode: str = "relative"
    margin_range: tuple[float, float] = (0.4, 0.6)
    max_shift: float = 0.1
    augment: bool = True
    seed: int = 0
    near_fraction: float = 0.0
    near_gap_deg: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
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
        self.augmenter = PairAugmenter() if config.augment else None
        self.epoch = 0

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
        if rng is None:
            box = square_box(bbox, float(np.mean(cfg.margin_range)))
        else:
            box = random_box(bbox, rng, cfg.margin_range, cfg.max_shift)
        centre_px = np.array([box.x0 + box.side / 2.0, box.y0 + box.side / 2.0])
        return (crop_image(image, box, cfg.size), crop_intrinsics(ann.K, box, cfg.size),
                to_homogeneous(ann.R_h2c, ann.t_h2c), virtual_camera_rotation(ann.K, centre_px))

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
