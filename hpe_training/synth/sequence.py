"""Rendered test/demo sequences with known head poses (``python -m hpe_training.synth.sequence``).

A sequence is a short synthetic "video" of one or two procedural heads (see
:mod:`hpe_training.synth.head`) moving along a smooth, known trajectory in front of a fixed
camera, rendered with the generator's :class:`~hpe_training.synth.render.HeadRenderer`.

Frames and conventions:
  * Camera: OpenCV optical frame (x right, y down, z forward), metres. Intrinsics from
    :func:`hpe_core.crop.intrinsics_from_fov` (square pixels, principal point at
    ``((W - 1) / 2, (H - 1) / 2)``, pixel centres at integer coordinates).
  * Head frame: as in :mod:`hpe_training.synth` (origin midway between the ears, x to the
    person's left, y down, z backwards; identity head-to-camera rotation = facing the camera
    squarely). Poses are camera-from-head 4x4 matrices ``[R | t]`` in metres.
  * Trajectory angles are BIWI Euler angles (:mod:`hpe_core.geometry.euler`,
    ``R = Rx(-pitch) Ry(yaw) Rz(roll)``) **about the camera axes**, i.e. ``yaw = 0`` means the
    face is parallel to the image plane, not "looking into the lens". The two differ by the
    angle of the viewing ray (``atan(x / z)``); the single-head trajectories keep the head
    within about 1 cm of the optical axis at 0.8 m, so that difference stays below 1 degree.
    :func:`ray_relative_rotation` gives the rotation relative to facing the viewing ray.
  * Face boxes ``[x0, y0, x1, y1]`` (pixels) are the generator's :func:`face_bbox`: the box of
    the projected face-region vertices (brows to chin, outer eye corners plus margin), clipped
    to the image, ignoring occlusion by the other head.

The renderer draws square images, so a ``W x H`` frame is rendered as the centre crop of a
``max(W, H)`` square whose intrinsics are shifted accordingly (no mesh/render code here).

On disk (:func:`save_sequence`): ``frame_0000.png`` ... (RGB) and ``sequence.json`` (written
last, atomically) holding the config, K, stamps, per-frame per-head poses and boxes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import replace, dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from hpe_core.crop import intrinsics_from_fov
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_training.data.camera import project_points
from hpe_training.synth.expression import PRESETS, Expression
from hpe_training.synth.generator import face_bbox
from hpe_training.synth.head import HeadModel, build_head, shader_params
from hpe_training.synth.identity import sample_identity
from hpe_training.synth.render import HeadRenderer
from hpe_training.synth.scene import (Lighting, ViewSample, body_transform, head_transform, sample_background,
                                      sample_lighting)
from hpe_training.synth.writer import encode_png

SEQUENCE_FORMAT_VERSION = 1
KINDS = ("yaw_sweep", "crossing", "static", "scan")

#: Fixed, soft frontal "studio" lighting (camera frame; directions from the surface to the
#: light, y down) used unless ``SequenceConfig.lighting`` picks a sampled one.
STUDIO_LIGHTING = Lighting(key_dir=(0.35, -0.45, -0.82), key_rgb=(1.5, 1.45, 1.38),
                           fill_dir=(-0.5, -0.1, -0.86), fill_rgb=(0.45, 0.45, 0.5),
                           amb_top=(0.3, 0.3, 0.32), amb_bottom=(0.18, 0.17, 0.16), exposure=0.95)

#: Fraction of the head rotation (as a rotation vector) that the torso follows.
TORSO_FOLLOW = 0.25


@dataclass(frozen=True)
class SequenceConfig:
    """Settings of one rendered sequence (validated on construction).

    Attributes:
        kind: trajectory, one of ``KINDS``:
            ``"yaw_sweep"``: one head, yaw ``max_yaw_deg * sin(2 pi s)`` for the phase
            ``s = i / (n_frames - 1)`` (frontal -> +max -> frontal -> -max -> frontal) with a
            pitch wave ``pitch_amp_deg * sin(4 pi s)`` and a slow position drift of
            ``drift_m``;
            ``"crossing"``: two heads walking past each other horizontally (head 0 left to
            right at ``distance_m``, head 1 right to left ``crossing_depth_gap_m`` further
            away, so head 0 occludes head 1 in the middle), with a yaw wave of +-15 deg and a
            pitch wave of ``pitch_amp_deg`` (random phases from the seed);
            ``"static"``: one head, constant pose (``static_yaw_deg``, ``static_pitch_deg``,
            roll 0) and no drift;
            ``"scan"``: one head sweeping the pose space like a BIWI subject: yaw
            ``max_yaw_deg * sin(2 pi s)``, pitch ``pitch_amp_deg * sin(6 pi s + a)`` and roll
            ``roll_amp_deg * sin(10 pi s + b)`` (phases a, b from the seed), with drift;
            frame 0 has yaw 0.
        n_frames: number of frames N (>= 2).
        width, height: image size in pixels.
        hfov_deg: horizontal field of view, degrees.
        fps: frame rate; frame i is stamped ``i / fps`` seconds.
        seed: seed of identities, background, drift phases (and sampled lighting).
        identity: identity index of head 0 (``sample_identity(seed, identity)``).
        second_identity: identity index of head 1 (two-head kinds); None -> ``identity + 1``.
        expression: expression preset name (:data:`hpe_training.synth.expression.PRESETS`).
        max_yaw_deg: yaw amplitude of ``yaw_sweep`` and ``scan`` (degrees, camera axes, < 90).
        pitch_amp_deg: pitch-wave amplitude (degrees).
        roll_amp_deg: roll-wave amplitude of ``scan`` (degrees).
        distance_m: depth of head 0's centre (metres). 0.8 m at hfov 60 and 640 px gives a
            face about 80-100 px wide (MTCNN box), a good size for the detector.
        crossing_depth_gap_m: extra depth of head 1 in ``crossing`` (metres, > 0).
        crossing_half_range_m: heads move from ``-r`` to ``+r`` in x at their depth (metres).
        drift_m: amplitude of the slow head-centre drift in x and y (metres).
        static_yaw_deg, static_pitch_deg: pose of ``static``.
        lighting: None = :data:`STUDIO_LIGHTING`; an int = ``sample_lighting(seed, identity, lighting)``.
        mesh_level: icosphere level of the head mesh (3-7).
        msaa: MSAA samples (0, 1, 2, 4, 8).
    """

    kind: str = "yaw_sweep"
    n_frames: int = 90
    width: int = 640
    height: int = 480
    hfov_deg: float = 60.0
    fps: float = 15.0
    seed: int = 0
    identity: int = 0
    second_identity: Optional[int] = None
    expression: str = "neutral"
    max_yaw_deg: float = 60.0
    pitch_amp_deg: float = 8.0
    roll_amp_deg: float = 0.0
    distance_m: float = 0.8
    crossing_depth_gap_m: float = 0.3
    crossing_half_range_m: float = 0.3
    drift_m: float = 0.01
    static_yaw_deg: float = 0.0
    static_pitch_deg: float = 0.0
    lighting: Optional[int] = None
    mesh_level: int = 5
    msaa: int = 4

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.n_frames < 2:
            raise ValueError(f"n_frames must be >= 2, got {self.n_frames}")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError(f"width/height must be in [16, 4096], got {self.width}x{self.height}")
        if not 10.0 <= self.hfov_deg <= 120.0:
            raise ValueError(f"hfov_deg must be in [10, 120], got {self.hfov_deg}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.seed < 0 or self.identity < 0 or (self.second_identity is not None and self.second_identity < 0):
            raise ValueError("seed and identity indices must be >= 0")
        if self.expression not in PRESETS:
            raise ValueError(f"expression must be one of {sorted(PRESETS)}, got {self.expression!r}")
        if not 0.0 <= self.max_yaw_deg < 90.0:
            raise ValueError(f"max_yaw_deg must be in [0, 90), got {self.max_yaw_deg}")
        if not 0.0 <= self.pitch_amp_deg <= 45.0:
            raise ValueError(f"pitch_amp_deg must be in [0, 45], got {self.pitch_amp_deg}")
        if not 0.0 <= self.roll_amp_deg <= 40.0:
            raise ValueError(f"roll_amp_deg must be in [0, 40], got {self.roll_amp_deg}")
        if not 0.3 <= self.distance_m <= 5.0:
            raise ValueError(f"distance_m must be in [0.3, 5], got {self.distance_m}")
        if not 0.0 < self.crossing_depth_gap_m <= 2.0:
            raise ValueError(f"crossing_depth_gap_m must be in (0, 2], got {self.crossing_depth_gap_m}")
        if not 0.0 <= self.crossing_half_range_m <= 2.0:
            raise ValueError(f"crossing_half_range_m must be in [0, 2], got {self.crossing_half_range_m}")
        if not 0.0 <= self.drift_m <= 0.1:
            raise ValueError(f"drift_m must be in [0, 0.1], got {self.drift_m}")
        if abs(self.static_yaw_deg) >= 90.0 or abs(self.static_pitch_deg) > 60.0:
            raise ValueError("static pose out of range (|yaw| < 90, |pitch| <= 60)")
        if self.lighting is not None and self.lighting < 0:
            raise ValueError("lighting must be None or >= 0")
        if not 3 <= self.mesh_level <= 7:
            raise ValueError("mesh_level must be in [3, 7]")
        if self.msaa not in (0, 1, 2, 4, 8):
            raise ValueError("msaa must be one of 0, 1, 2, 4, 8")

    @property
    def n_heads(self) -> int:
        """Number of heads P in every frame."""
        return 2 if self.kind == "crossing" else 1

    @property
    def identities(self) -> tuple[int, ...]:
        """Identity index of each head, ``[P]``."""
        if self.n_heads == 1:
            return (self.identity,)
        second = self.identity + 1 if self.second_identity is None else self.second_identity
        return (self.identity, second)

    def to_json(self) -> dict:
        """Plain-JSON dictionary (inverse: ``SequenceConfig(**d)``)."""
        return dataclasses.asdict(self)


@dataclass
class RenderedSequence:
    """A rendered sequence and its ground truth.

    Attributes:
        frames: [N, H, W, 3] uint8 RGB.
        K: [3, 3] float64 intrinsics (pixels).
        poses_cam: [N, P, 4, 4] float64 camera-from-head transforms (metres, OpenCV frame).
        boxes: [N, P, 4] float32 face boxes (x0, y0, x1, y1) in pixels, clipped to the image.
            The projected head centre ``K t`` lies inside its face box for |yaw| <= 45 deg; beyond
            about 55-60 deg it leaves the box (the centre is midway between the ears, behind
            the face region).
        landmarks: [N, P, 6, 2] float32 projected landmarks (pixels, order ``LANDMARK_NAMES``).
        stamps_s: [N] float64 timestamps (seconds, ``i / fps``).
        yaw_pitch_roll_deg: [N, P, 3] float64 trajectory angles (BIWI convention, camera axes).
        config: the configuration it was rendered from.
    """

    frames: np.ndarray
    K: np.ndarray
    poses_cam: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    stamps_s: np.ndarray
    yaw_pitch_roll_deg: np.ndarray
    config: SequenceConfig

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def hold_first_frame(seq: RenderedSequence, n_hold: int) -> RenderedSequence:
    """The sequence with its first frame shown ``n_hold`` more times at the start (a person
    who looks at the camera for a moment before turning), stamps re-spaced at the config's fps."""
    if n_hold < 0:
        raise ValueError(f"n_hold must be >= 0, got {n_hold}")

    def hold(a: np.ndarray) -> np.ndarray:
        return np.concatenate([np.repeat(a[:1], n_hold, axis=0), a], axis=0)

    n = len(seq) + n_hold
    return replace(seq, frames=hold(seq.frames), poses_cam=hold(seq.poses_cam), boxes=hold(seq.boxes),
                   landmarks=hold(seq.landmarks), yaw_pitch_roll_deg=hold(seq.yaw_pitch_roll_deg),
                   stamps_s=np.arange(n, dtype=np.float64) / seq.config.fps)


def sequence_intrinsics(config: SequenceConfig) -> np.ndarray:
    """K [3, 3] of the sequence's ``width x height`` images (see the module docstring)."""
    return intrinsics_from_fov(config.width, config.height, config.hfov_deg)


def head_trajectory(config: SequenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """The known trajectory of every head.

    Returns:
        (yaw_pitch_roll_deg [N, P, 3] BIWI angles about the camera axes (degrees),
        t_cam [N, P, 3] head centres in the camera frame (metres)).
    """
    n, p = config.n_frames, config.n_heads
    s = np.arange(n, dtype=np.float64) / (n - 1)
    rng = np.random.default_rng([int(config.seed), 7100003, int(config.identity)])
    phases = rng.uniform(0.0, 2.0 * np.pi, (p, 2))
    angles = np.zeros((n, p, 3))
    t = np.zeros((n, p, 3))
    if config.kind == "yaw_sweep":
        angles[:, 0, 0] = config.max_yaw_deg * np.sin(2.0 * np.pi * s)
        angles[:, 0, 1] = config.pitch_amp_deg * np.sin(4.0 * np.pi * s)
        t[:, 0, 0] = config.drift_m * np.sin(2.0 * np.pi * s + phases[0, 0])
        t[:, 0, 1] = config.drift_m * np.sin(2.0 * np.pi * s + phases[0, 1])
        t[:, 0, 2] = config.distance_m
    elif config.kind == "crossing":
        r = config.crossing_half_range_m
        for k, direction in enumerate((1.0, -1.0)):
            depth = config.distance_m + k * config.crossing_depth_gap_m
            # eased motion: slow at the ends, fastest when the heads cross
            x = direction * r * -np.cos(np.pi * s)
            t[:, k, 0] = x * depth / config.distance_m  # same image span for both heads
            t[:, k, 1] = config.drift_m * np.sin(2.0 * np.pi * s + phases[k, 1])
            t[:, k, 2] = depth
            angles[:, k, 0] = 15.0 * np.sin(2.0 * np.pi * s + phases[k, 0])
            angles[:, k, 1] = config.pitch_amp_deg * np.sin(2.0 * np.pi * s + phases[k, 1])
    elif config.kind == "scan":
        angles[:, 0, 0] = config.max_yaw_deg * np.sin(2.0 * np.pi * s)
        angles[:, 0, 1] = config.pitch_amp_deg * np.sin(6.0 * np.pi * s + phases[0, 0])
        angles[:, 0, 2] = config.roll_amp_deg * np.sin(10.0 * np.pi * s + phases[0, 1])
        t[:, 0, 0] = config.drift_m * np.sin(2.0 * np.pi * s + phases[0, 1])
        t[:, 0, 1] = config.drift_m * np.sin(2.0 * np.pi * s + phases[0, 0])
        t[:, 0, 2] = config.distance_m
    else:  # static
        angles[:, 0, 0] = config.static_yaw_deg
        angles[:, 0, 1] = config.static_pitch_deg
        t[:, 0, 2] = config.distance_m
    return angles, t


def trajectory_poses(config: SequenceConfig) -> np.ndarray:
    """Camera-from-head poses [N, P, 4, 4] (metres) of :func:`head_trajectory`."""
    angles, t = head_trajectory(config)
    poses = np.zeros(angles.shape[:2] + (4, 4))
    poses[..., :3, :3] = matrix_from_yaw_pitch_roll_deg(angles[..., 0], angles[..., 1], angles[..., 2])
    poses[..., :3, 3] = t
    poses[..., 3, 3] = 1.0
    return poses


def ray_relative_rotation(pose_cam: np.ndarray) -> np.ndarray:
    """Head rotation relative to "facing the viewing ray" instead of the camera axes.

    Args:
        pose_cam: [..., 4, 4] camera-from-head poses (metres).

    Returns:
        [..., 3, 3] ``R_ray^T R`` where ``R_ray`` is the smallest rotation taking the camera's
        +z axis onto the ray from the camera to the head centre; identity = the face looks
        straight into the lens.
    """
    pose = np.asarray(pose_cam, np.float64)
    ray = pose[..., :3, 3] / np.linalg.norm(pose[..., :3, 3], axis=-1, keepdims=True)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(np.broadcast_to(z, ray.shape), ray)
    angle = np.arctan2(np.linalg.norm(axis, axis=-1), ray[..., 2])
    norm = np.linalg.norm(axis, axis=-1, keepdims=True)
    rotvec = np.where(norm > 1e-12, axis / np.maximum(norm, 1e-12), 0.0) * angle[..., None]
    r_ray = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(ray.shape[:-1] + (3, 3))
    return np.swapaxes(r_ray, -1, -2) @ pose[..., :3, :3]


def _expression(name: str) -> Expression:
    return Expression(name, **PRESETS[name])


def _view(R: np.ndarray, t: np.ndarray, K: np.ndarray, background) -> ViewSample:
    """A generator ViewSample for a given head pose (torso follows the head partly)."""
    rv = Rotation.from_matrix(R).as_rotvec() * TORSO_FOLLOW
    euler = Rotation.from_matrix(R).as_euler("YXZ", degrees=True)
    return ViewSample(R_h2c=R, t_h2c=t, K=K, R_b2c=Rotation.from_rotvec(rv).as_matrix(), background=background,
                      euler_deg=(float(euler[0]), float(euler[1]), float(euler[2])))


def render_sequence(config: SequenceConfig, progress: bool = False) -> RenderedSequence:
    """Render the sequence described by ``config`` (deterministic for a given config).

    Two heads are composited back to front: the far head is rendered over the background, the
    near head over transparent black, and the near one's premultiplied colour is laid over
    (``out = near + (1 - alpha_near) * far``), which is exact for non-intersecting heads.

    Args:
        config: sequence settings.
        progress: show a tqdm progress bar.

    Returns:
        The frames and their ground truth.
    """
    w, h = config.width, config.height
    side = max(w, h)
    ox, oy = (side - w) // 2, (side - h) // 2
    K = sequence_intrinsics(config)
    K_sq = K.copy()
    K_sq[0, 2] += ox
    K_sq[1, 2] += oy
    angles, _ = head_trajectory(config)
    poses = trajectory_poses(config)
    n, p = poses.shape[:2]
    bg_rng = np.random.default_rng([int(config.seed), 7200011, int(config.identity)])
    background = sample_background(bg_rng, 0)
    light = STUDIO_LIGHTING if config.lighting is None else sample_lighting(config.seed, config.identity,
                                                                            config.lighting)
    heads: list[tuple[HeadModel, dict]] = []
    for ident in config.identities:
        idp = sample_identity(config.seed, ident)
        expr = _expression(config.expression)
        heads.append((build_head(idp, expr, level=config.mesh_level), shader_params(idp, expr)))
    frames = np.zeros((n, h, w, 3), np.uint8)
    boxes = np.zeros((n, p, 4), np.float32)
    landmarks = np.zeros((n, p, 6, 2), np.float32)
    renderer = HeadRenderer(side, (), samples=config.msaa)
    try:
        if p == 1:
            renderer.set_mesh(heads[0][0].mesh, heads[0][1])
        for i in tqdm(range(n), desc="hpe-sequence", unit="frame", disable=not progress):
            order = np.argsort(-poses[i, :, 2, 3], kind="stable")  # far to near
            image = None
            for rank, k in enumerate(order):
                head, uniforms = heads[k]
                view_sq = _view(poses[i, k, :3, :3], poses[i, k, :3, 3], K_sq, background)
                if p > 1:
                    renderer.set_mesh(head.mesh, uniforms)
                rgba = renderer.render(K_sq, head_transform(view_sq), body_transform(view_sq), light,
                                       background if rank == 0 else None)
                crop = rgba[oy:oy + h, ox:ox + w].astype(np.float32)
                if image is None:
                    image = crop[..., :3]
                else:
                    image = crop[..., :3] + (1.0 - crop[..., 3:4] / 255.0) * image
                view = dataclasses.replace(view_sq, K=K)
                box = face_bbox(head, view, side)
                boxes[i, k] = np.clip(box, 0.0, [w, h, w, h])
                landmarks[i, k] = project_points(K, view.R_h2c, view.t_h2c, head.landmarks)
            frames[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    finally:
        renderer.release()
    stamps = np.arange(n, dtype=np.float64) / config.fps
    return RenderedSequence(frames=frames, K=K, poses_cam=poses, boxes=boxes, landmarks=landmarks,
                            stamps_s=stamps, yaw_pitch_roll_deg=angles, config=config)


def frame_name(index: int) -> str:
    """File name of frame ``index`` (``frame_0000.png``)."""
    return f"frame_{index:04d}.png"


def save_sequence(seq: RenderedSequence, out_dir: Path | str, png_compression: int = 3) -> Path:
    """Write ``seq`` to ``out_dir`` (created): PNG frames, then ``sequence.json`` last.

    An existing ``sequence.json`` is removed first and frames of an older, longer sequence
    in the folder are deleted, so image-folder readers (``hpe-video``) see only this one.

    ``sequence.json`` is written to a temporary file and renamed, so a folder holding a
    ``sequence.json`` always has all its frames.

    Returns:
        The path of ``sequence.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sequence.json").unlink(missing_ok=True)  # the folder is invalid until we are done
    names = [frame_name(i) for i in range(len(seq))]
    for stale in set(p.name for p in out.glob("frame_*.png")) - set(names):  # from an older, longer sequence
        (out / stale).unlink()
    for name, rgb in zip(names, seq.frames):
        (out / name).write_bytes(encode_png(np.ascontiguousarray(rgb), png_compression))
    n, p = seq.poses_cam.shape[:2]
    doc = {
        "format": "hpe-synth-sequence",
        "version": SEQUENCE_FORMAT_VERSION,
        "config": seq.config.to_json(),
        "width": int(seq.frames.shape[2]),
        "height": int(seq.frames.shape[1]),
        "n_frames": int(n),
        "n_heads": int(p),
        "identities": list(seq.config.identities),
        "K": np.asarray(seq.K, np.float64).tolist(),
        "frames": names,
        "stamps_s": [float(v) for v in seq.stamps_s],
        "poses_cam": np.asarray(seq.poses_cam, np.float64).tolist(),
        "boxes": np.asarray(seq.boxes, np.float64).tolist(),
        "landmarks": np.asarray(seq.landmarks, np.float64).tolist(),
        "yaw_pitch_roll_deg": np.asarray(seq.yaw_pitch_roll_deg, np.float64).tolist(),
        "conventions": {
            "poses_cam": "[N][P][4][4] camera-from-head, metres, OpenCV optical frame (x right, y down, "
                         "z forward); head frame x = person's left, y down, z backwards; identity = facing "
                         "the camera squarely",
            "K": "pixels, pixel centres at integer coordinates",
            "boxes": "[N][P][4] face box x0, y0, x1, y1 pixels (projected face region, occlusion ignored)",
            "landmarks": "[N][P][6][2] pixels, order nose_tip, right_eye, left_eye, mouth_right, mouth_left, "
                         "head_centre",
            "yaw_pitch_roll_deg": "[N][P][3] BIWI Euler angles about the camera axes, R = Rx(-pitch) Ry(yaw) Rz(roll)",
        },
    }
    tmp = out / "sequence.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, out / "sequence.json")
    return out / "sequence.json"


def load_sequence(out_dir: Path | str) -> RenderedSequence:
    """Read a folder written by :func:`save_sequence`.

    Raises:
        FileNotFoundError: no ``sequence.json`` or a missing frame.
        ValueError: an unknown format or inconsistent shapes.
    """
    root = Path(out_dir)
    doc = json.loads((root / "sequence.json").read_text())
    if doc.get("format") != "hpe-synth-sequence" or doc.get("version") != SEQUENCE_FORMAT_VERSION:
        raise ValueError(f"{root}: not an hpe-synth sequence (version {SEQUENCE_FORMAT_VERSION})")
    frames = []
    for name in doc["frames"]:
        bgr = cv2.imread(str(root / name), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{root / name}: missing or unreadable frame")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    n, p = int(doc["n_frames"]), int(doc["n_heads"])
    seq = RenderedSequence(
        frames=np.stack(frames), K=np.asarray(doc["K"], np.float64),
        poses_cam=np.asarray(doc["poses_cam"], np.float64).reshape(n, p, 4, 4),
        boxes=np.asarray(doc["boxes"], np.float32).reshape(n, p, 4),
        landmarks=np.asarray(doc["landmarks"], np.float32).reshape(n, p, 6, 2),
        stamps_s=np.asarray(doc["stamps_s"], np.float64).reshape(n),
        yaw_pitch_roll_deg=np.asarray(doc["yaw_pitch_roll_deg"], np.float64).reshape(n, p, 3),
        config=SequenceConfig(**doc["config"]))
    if seq.frames.shape != (n, doc["height"], doc["width"], 3):
        raise ValueError(f"{root}: frames {seq.frames.shape} do not match n_frames/height/width")
    return seq


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    d = SequenceConfig()
    ap = argparse.ArgumentParser(prog="python -m hpe_training.synth.sequence",
                                 description="Render a synthetic head sequence with known poses.")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--kind", choices=KINDS, default=d.kind)
    ap.add_argument("--frames", type=int, default=d.n_frames)
    ap.add_argument("--max-yaw", type=float, default=d.max_yaw_deg, help="yaw_sweep amplitude, degrees")
    ap.add_argument("--pitch-amp", type=float, default=d.pitch_amp_deg, help="pitch wave amplitude, degrees")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--identity", type=int, default=d.identity)
    ap.add_argument("--second-identity", type=int, default=None)
    ap.add_argument("--expression", default=d.expression, choices=sorted(PRESETS))
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--height", type=int, default=d.height)
    ap.add_argument("--hfov", type=float, default=d.hfov_deg, help="horizontal field of view, degrees")
    ap.add_argument("--fps", type=float, default=d.fps)
    ap.add_argument("--distance", type=float, default=d.distance_m, help="head depth, metres")
    ap.add_argument("--lighting", type=int, default=None, help="sampled lighting index (default: studio)")
    ap.add_argument("--mesh-level", type=int, default=d.mesh_level)
    ap.add_argument("--msaa", type=int, default=d.msaa)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        cfg = SequenceConfig(kind=args.kind, n_frames=args.frames, width=args.width, height=args.height,
                             hfov_deg=args.hfov, fps=args.fps, seed=args.seed, identity=args.identity,
                             second_identity=args.second_identity, expression=args.expression,
                             max_yaw_deg=args.max_yaw, pitch_amp_deg=args.pitch_amp, distance_m=args.distance,
                             lighting=args.lighting, mesh_level=args.mesh_level, msaa=args.msaa)
    except ValueError as exc:
        print(f"hpe-sequence: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    seq = render_sequence(cfg, progress=not args.quiet)
    t1 = time.perf_counter()
    path = save_sequence(seq, args.out)
    if not args.quiet:
        print(f"hpe-sequence: {len(seq)} frames ({cfg.n_heads} head(s)) rendered in {t1 - t0:.1f} s "
              f"({len(seq) / max(t1 - t0, 1e-9):.1f} frames/s), written to {path.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
