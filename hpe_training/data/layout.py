"""Reader for the VGGT-HPE on-disk layout (ours from ``hpe-synth`` and the paper's FLAME renders).

``<root>/identity_*/lighting_*/expr_*/view_*/`` with ``output.png``,
``output_opencv_camera.pkl`` ({R, t, K}: world-to-camera, OpenCV optical frame, pixels),
``output_object_transform_post_render.pkl`` ({R_world, t_world}: head-to-world) and
``face_bbox.npy`` ([4] x0, y0, x1, y1 pixels). Translations are metres. Head-to-camera:
R = R_w2c R_world, t = R_w2c t_world + t. Pickles are loaded with a restricted unpickler.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpe_training.data.camera import head_to_camera
from hpe_training.data.safe_pickle import safe_load

_LEVELS = ("identity", "lighting", "expr", "view")
_NAME = re.compile(r"^(identity|lighting|expr|view)_(\d+)$")
IMAGE_NAME = "output.png"
CAMERA_NAME = "output_opencv_camera.pkl"
OBJECT_NAME = "output_object_transform_post_render.pkl"
BBOX_NAME = "face_bbox.npy"
LANDMARKS_NAME = "landmarks.npy"


@dataclass(frozen=True, order=True)
class SampleKey:
    """Indices of one view: identity, lighting, expression and view numbers."""

    identity: int
    lighting: int
    expr: int
    view: int


@dataclass(frozen=True)
class Sample:
    """One view on disk."""

    key: SampleKey
    directory: Path


@dataclass(frozen=True)
class Annotation:
    """Geometry of one view.

    Attributes:
        K: [3, 3] intrinsics (pixels).
        R_w2c: [3, 3], t_w2c: [3] world-to-camera (metres).
        R_h2w: [3, 3], t_h2w: [3] head-to-world (metres).
        R_h2c: [3, 3], t_h2c: [3] head-to-camera (metres), composed from the above.
        bbox: [4] float32 face box x0, y0, x1, y1 (pixels), or None if the file is missing.
    """

    K: np.ndarray
    R_w2c: np.ndarray
    t_w2c: np.ndarray
    R_h2w: np.ndarray
    t_h2w: np.ndarray
    R_h2c: np.ndarray
    t_h2c: np.ndarray
    bbox: np.ndarray | None


def _index(name: str, level: str) -> int | None:
    m = _NAME.match(name)
    if m is None or m.group(1) != level:
        return None
    return int(m.group(2))


def _matrix(d: dict, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    if not isinstance(d, dict) or key not in d:
        raise ValueError(f"{path}: expected a dict with key '{key}'")
    arr = np.asarray(d[key], dtype=np.float64)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: '{key}' has shape {arr.shape}, expected {shape}")
    return arr.reshape(shape)


class LayoutReader:
    """Enumerate and load views of a dataset root in the VGGT-HPE layout."""

    def __init__(self, root: str | Path) -> None:
        """Scan ``root``; samples are sorted by (identity, lighting, expr, view).

        Raises:
            FileNotFoundError: if the root does not exist or holds no complete view.
        """
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root not found: {self.root}")
        samples = []
        for d_id in sorted(self.root.iterdir()):
            i = _index(d_id.name, "identity")
            if i is None or not d_id.is_dir():
                continue
            for d_l in sorted(d_id.iterdir()):
                li = _index(d_l.name, "lighting")
                if li is None or not d_l.is_dir():
                    continue
                for d_e in sorted(d_l.iterdir()):
                    e = _index(d_e.name, "expr")
                    if e is None or not d_e.is_dir():
                        continue
                    for d_v in sorted(d_e.iterdir()):
                        v = _index(d_v.name, "view")
                        if v is None or not (d_v / IMAGE_NAME).is_file() or not (d_v / CAMERA_NAME).is_file():
                            continue
                        samples.append(Sample(SampleKey(i, li, e, v), d_v))
        if not samples:
            raise FileNotFoundError(f"no views (identity_*/lighting_*/expr_*/view_*/) under {self.root}")
        self.samples: list[Sample] = sorted(samples, key=lambda s: s.key)

    def __len__(self) -> int:
        return len(self.samples)

    def identities(self) -> list[int]:
        """Sorted identity indices present."""
        return sorted({s.key.identity for s in self.samples})

    @staticmethod
    def load_image(sample: Sample) -> np.ndarray:
        """RGB image [H, W, 3] uint8."""
        import cv2

        bgr = cv2.imread(str(sample.directory / IMAGE_NAME), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read image {sample.directory / IMAGE_NAME}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    @staticmethod
    def load_annotation(sample: Sample) -> Annotation:
        """Intrinsics, world/head poses, head-to-camera pose and face box of one view."""
        cam_path = sample.directory / CAMERA_NAME
        obj_path = sample.directory / OBJECT_NAME
        cam = safe_load(cam_path)
        K = _matrix(cam, "K", (3, 3), cam_path)
        R_w2c = _matrix(cam, "R", (3, 3), cam_path)
        t_w2c = _matrix(cam, "t", (3,), cam_path)
        if obj_path.is_file():
            obj = safe_load(obj_path)
            R_h2w = _matrix(obj, "R_world", (3, 3), obj_path)
            t_h2w = _matrix(obj, "t_world", (3,), obj_path)
        else:
            R_h2w, t_h2w = np.eye(3), np.zeros(3)
        R_h2c, t_h2c = head_to_camera(R_w2c, t_w2c, R_h2w, t_h2w)
        bbox_path = sample.directory / BBOX_NAME
        bbox = np.load(bbox_path, allow_pickle=False).astype(np.float32).reshape(4) if bbox_path.is_file() else None
        return Annotation(K=K, R_w2c=R_w2c, t_w2c=t_w2c, R_h2w=R_h2w, t_h2w=t_h2w,
                          R_h2c=R_h2c, t_h2c=t_h2c, bbox=bbox)

    @staticmethod
    def load_landmarks(sample: Sample) -> np.ndarray | None:
        """[L, 2] float32 pixel landmarks (hpe-synth output only), or None."""
        path = sample.directory / LANDMARKS_NAME
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def groups(self) -> dict[tuple[int, int], list[int]]:
        """Sample indices grouped by (identity, lighting), the unit that pairs share."""
        out: dict[tuple[int, int], list[int]] = {}
        for k, s in enumerate(self.samples):
            out.setdefault((s.key.identity, s.key.lighting), []).append(k)
        return out
