"""Reader of the BIWI Kinect Head Pose database layout, with poses moved to the RGB camera.

Layout (``../shared/notes/vggt-hpe-facts.md``; Fanelli et al., BIWI Kinect Head Pose Database)::

    ROOT/01/frame_00003_rgb.png     640x480 colour frame
    ROOT/01/frame_00003_pose.txt    3 lines: the 3x3 head rotation (rows), a blank line,
                                    then the head centre in millimetres
    ROOT/01/rgb.cal, depth.cal      lines 0-2: 3x3 intrinsics; line 4: distortion;
                                    lines 6-8: 3x3 rotation; line 10: translation (mm)
    ...
    ROOT/24/...

Poses in ``*_pose.txt`` are in the depth camera's frame: ``R`` (the matrix as written, rows)
is ``R_depth_from_head`` and the centre is ``X_depth``; ``R`` is what the FSA-Net / 6DRepNet
Euler convention (:mod:`hpe_core.geometry.euler`) reads yaw, pitch and roll from.

Calibration convention (assumed, stated here because the files do not say it): each
``.cal`` holds the extrinsics of that camera with respect to one common reference frame in
the OpenCV sense, ``X_cam = R X_ref + t`` (t in millimetres). The depth-to-RGB transform is
therefore ``T_rgb_from_depth = T_rgb_from_ref @ inv(T_depth_from_ref)``; with the identity in
``depth.cal`` (as in the released database) it is just ``rgb.cal``'s ``[R | t]``. It has not
been checked against the real database here (it cannot be downloaded on these machines).

Everything returned is in metres and the RGB camera's OpenCV optical frame (x right, y down,
z forward).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from hpe_core.geometry.transforms import invert_transform, make_transform

FloatArray = NDArray[np.float64]
_FRAME_RE = re.compile(r"^frame_(\d+)_rgb\.png$")
MM = 1e-3


class BiwiFormatError(ValueError):
    """A BIWI file that does not follow the layout (the message names the file)."""


@dataclass(frozen=True)
class Calibration:
    """One camera's ``.cal`` file.

    Attributes:
        K: ``[3, 3]`` intrinsics (pixels).
        distortion: ``[n]`` distortion coefficients as written.
        T_cam_from_ref: ``[4, 4]`` extrinsics (metres), ``X_cam = R X_ref + t``.
    """

    K: FloatArray
    distortion: FloatArray
    T_cam_from_ref: FloatArray


@dataclass(frozen=True)
class BiwiFrame:
    """One annotated frame.

    Attributes:
        subject: subject folder name (``"01"``).
        index: frame number from the file name.
        image_path: the RGB png.
        T_rgb_from_head: ``[4, 4]`` head pose in the RGB camera (metres).
        T_depth_from_head: ``[4, 4]`` the pose as written (depth camera, metres).
    """

    subject: str
    index: int
    image_path: Path
    T_rgb_from_head: FloatArray
    T_depth_from_head: FloatArray

    @property
    def rotation(self) -> FloatArray:
        """``[3, 3]`` ``R_rgb_from_head``."""
        return self.T_rgb_from_head[:3, :3]

    def load_image(self) -> NDArray[np.uint8]:
        """``[H, W, 3]`` uint8 RGB."""
        import cv2

        bgr = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise OSError(f"cannot read image {self.image_path}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class BiwiSubject:
    """A subject folder: its RGB intrinsics, depth-to-RGB transform and frames (sorted)."""

    name: str
    K_rgb: FloatArray
    T_rgb_from_depth: FloatArray
    frames: tuple[BiwiFrame, ...]

    @property
    def rotations(self) -> FloatArray:
        """``[N, 3, 3]`` head rotations in the RGB camera, frame order."""
        return np.stack([f.rotation for f in self.frames])


def _numbers(line: str, path: Path, line_no: int) -> list[float]:
    try:
        return [float(v) for v in line.split()]
    except ValueError as exc:
        raise BiwiFormatError(f"{path}: line {line_no + 1} is not numbers: {line.strip()!r}") from exc


def _rows(lines: Sequence[str], start: int, count: int, width: int, path: Path) -> FloatArray:
    out = []
    for k in range(start, start + count):
        if k >= len(lines):
            raise BiwiFormatError(f"{path}: expected at least {start + count} lines, got {len(lines)}")
        values = _numbers(lines[k], path, k)
        if len(values) != width:
            raise BiwiFormatError(f"{path}: line {k + 1} must hold {width} numbers, got {len(values)}")
        out.append(values)
    return np.asarray(out, dtype=np.float64)


def _check_rotation(R: FloatArray, path: Path) -> None:
    if not np.all(np.isfinite(R)) or np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0.99:
        raise BiwiFormatError(f"{path}: the 3x3 matrix is not a rotation")


def read_calibration(path: Path) -> Calibration:
    """Parse a ``rgb.cal`` / ``depth.cal`` file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise BiwiFormatError(f"{path}: calibration file missing")
    lines = path.read_text().splitlines()
    K = _rows(lines, 0, 3, 3, path)
    distortion = np.asarray(_numbers(lines[4], path, 4) if len(lines) > 4 else [], dtype=np.float64)
    R = _rows(lines, 6, 3, 3, path)
    t = _rows(lines, 10, 1, 3, path)[0]
    _check_rotation(R, path)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise BiwiFormatError(f"{path}: focal lengths must be positive")
    return Calibration(K=K, distortion=distortion, T_cam_from_ref=make_transform(R, t * MM))


def read_pose(path: Path) -> FloatArray:
    """``[4, 4]`` ``T_depth_from_head`` (metres) from a ``frame_XXXXX_pose.txt``."""
    path = Path(path)
    lines = [ln for ln in path.read_text().splitlines()]
    R = _rows(lines, 0, 3, 3, path)
    rest = [ln for ln in lines[3:] if ln.strip()]
    if not rest:
        raise BiwiFormatError(f"{path}: the head centre line is missing")
    centre = np.asarray(_numbers(rest[0], path, 4), dtype=np.float64)
    if centre.shape != (3,):
        raise BiwiFormatError(f"{path}: the head centre must be 3 numbers")
    _check_rotation(R, path)
    return make_transform(R, centre * MM)


def rgb_from_depth(depth: Calibration, rgb: Calibration) -> FloatArray:
    """``[4, 4]`` ``T_rgb_from_depth = T_rgb_from_ref @ inv(T_depth_from_ref)``."""
    return rgb.T_cam_from_ref @ invert_transform(depth.T_cam_from_ref)


def read_subject(folder: Path) -> BiwiSubject:
    """One subject folder (frames with both a png and a pose file, sorted by number)."""
    folder = Path(folder)
    rgb = read_calibration(folder / "rgb.cal")
    depth = read_calibration(folder / "depth.cal")
    T_rgb_from_depth = rgb_from_depth(depth, rgb)
    frames = []
    for png in sorted(folder.iterdir()):
        m = _FRAME_RE.match(png.name)
        if m is None:
            continue
        pose_path = folder / f"frame_{m.group(1)}_pose.txt"
        if not pose_path.is_file():
            continue
        T_depth = read_pose(pose_path)
        frames.append(BiwiFrame(subject=folder.name, index=int(m.group(1)), image_path=png,
                                T_rgb_from_head=T_rgb_from_depth @ T_depth, T_depth_from_head=T_depth))
    frames.sort(key=lambda f: f.index)
    if not frames:
        raise BiwiFormatError(f"{folder}: no frame_XXXXX_rgb.png with a matching _pose.txt")
    return BiwiSubject(name=folder.name, K_rgb=rgb.K, T_rgb_from_depth=T_rgb_from_depth, frames=tuple(frames))


def subject_folders(root: Path) -> list[Path]:
    """The subject folders of a BIWI root (two-digit names ``01``.. ``24``, sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"BIWI root not found: {root}")
    folders = sorted(d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"\d{2}", d.name))
    if not folders:
        raise FileNotFoundError(f"{root}: no subject folders (01 .. 24)")
    return folders


def read_biwi(root: Path, subjects: Sequence[str] | None = None) -> list[BiwiSubject]:
    """Every (or the named) subject of a BIWI root."""
    folders = subject_folders(root)
    if subjects:
        wanted = set(subjects)
        folders = [f for f in folders if f.name in wanted]
        missing = wanted - {f.name for f in folders}
        if missing:
            raise FileNotFoundError(f"{root}: no subject folder(s) {sorted(missing)}")
    return [read_subject(f) for f in folders]


def iter_frames(subjects: Sequence[BiwiSubject]) -> Iterator[BiwiFrame]:
    """All frames of all subjects, subject by subject."""
    for s in subjects:
        yield from s.frames
