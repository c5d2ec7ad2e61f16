"""``hpe-eval real``: real-face protocols with exact truth, run through the node's own pipeline.

Protocols (``../shared/notes/real-faces.md``); every frame goes through
:class:`hpe_core.pipeline.HeadPosePipeline`, built by :func:`hpe_core.pipeline_factory.build_pipeline`
exactly as the node and ``hpe-video`` build it (only the tracker is set for photos:
``min_hits=1``, so a face that jumps between unrelated photos is tracked from its first image):

* **roll sweep**: a real image in a 640x480 frame rotated about the principal point by
  ``a = 0, +-3, ..., +-60`` degrees (counter-clockwise on screen for ``a > 0``). That is a camera
  rotation about its optical axis, so the head's true rotation is ``Rz(-a) @ R_0`` (optical
  frame). The unrotated frame's face is the calibrated anchor (as ``hpe-video --calibrate-first``);
  the error is the geodesic angle between the estimated and the true rotation.
* **mirror pairs**: a labelled photo (AFLW2000 ``.mat`` ``Pose_Para``: pitch, yaw, roll in
  radians, or a CSV ``name,yaw,pitch,roll`` in degrees) and its left-right mirror about the
  principal point's column. Mirroring is ``M = diag(-1, 1, 1)`` on the world, so the head at
  ``R`` appears at ``M R M``: the true relative rotation is ``M R M R^T`` (about twice the yaw).
  The photo's face is the calibrated anchor at its labelled pose; the mirrored photo is the
  query. Reported: full error (geodesic between estimated and true relative rotation), the
  predicted/true gap slope (least squares through the origin), pairs beyond 90 deg apart.
* **videos**: unlabelled clips (GIF or any OpenCV video): each estimator's yaw trajectory per
  track and its frame-to-frame jitter (median absolute yaw change), with a plot.

Photos have no intrinsics; they are taken with ``--photo-hfov`` (default 20 deg: AFLW2000
images are 450-pixel crops around the face of larger photos, so the face fills the frame at a
normal viewing distance) and the sweep frame with 60 deg.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_core.pipeline import HeadPosePipeline, PipelineConfig, frontal_pose_from_box
from hpe_core.pipeline_factory import PipelineSettings, build_pipeline
from hpe_core.tracking.tracker import TrackerConfig

MIRROR = np.diag([-1.0, 1.0, 1.0])
PHOTO_TRACKER = TrackerConfig(min_hits=1, iou_threshold=0.01, max_missed=1)


def rz(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def sweep_frame(image_rgb: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """The image scaled into a ``height``-high, ``width``-wide frame (centred, black sides)."""
    h, w = image_rgb.shape[:2]
    s = min(width / w, height / h)
    resized = cv2.resize(image_rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    frame = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    frame[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    return frame


@dataclass(frozen=True)
class ModelChoice:
    """Which VGGT model the protocols run, and on which crops.

    Attributes:
        model_path: VGGT model directory (ONNX export or torch ``config.json`` +
            ``model.safetensors``); empty = the shipped default.
        backend: ``onnxruntime`` or ``torch`` (a training checkpoint needs ``torch``).
        crop_mode: ``auto`` (the estimator's own crop), ``paper`` or ``aligned``.
    """

    model_path: str = ""
    backend: str = "onnxruntime"
    crop_mode: str = "auto"


DEFAULT_CHOICE = ModelChoice()


def make_pipeline(estimator: str, hfov_deg: float, bootstrap: str = "none", estimators_cache: Optional[dict] = None,
                  choice: ModelChoice = DEFAULT_CHOICE) -> HeadPosePipeline:
    """The node's pipeline for ``estimator`` with the photo tracker (estimators are reused)."""
    settings = PipelineSettings(estimator=estimator, backend=choice.backend, model_path=choice.model_path,
                                pipeline=PipelineConfig(default_hfov_deg=hfov_deg, bootstrap=bootstrap,
                                                        tracker=PHOTO_TRACKER, crop_mode=choice.crop_mode))
    cache = estimators_cache if estimators_cache is not None else {}
    key = ("pipeline", estimator, choice.model_path, choice.backend)
    base = cache.get(key)
    if base is None:
        base = build_pipeline(settings)
        cache[key] = base
        return base
    return build_pipeline(settings, estimator=base.estimator, detector=base.scheduler.detector)


def _largest(result):
    return max(result.heads, key=lambda h: (h.box_xyxy[2] - h.box_xyxy[0]) * (h.box_xyxy[3] - h.box_xyxy[1]))


def roll_sweep(image_rgb: np.ndarray, estimator: str, step_deg: float = 3.0, max_deg: float = 60.0,
               cache: Optional[dict] = None, choice: ModelChoice = DEFAULT_CHOICE) -> dict:
    """The roll-sweep protocol (module docstring) for one estimator."""
    frame = sweep_frame(image_rgb)
    pipeline = make_pipeline(estimator, 60.0, "none", cache, choice)
    stamp = 0.0
    result = pipeline.process(frame, stamp)
    if not result.heads:
        raise RuntimeError("roll sweep: no face in the unrotated frame")
    head = _largest(result)
    anchor_pose = frontal_pose_from_box(head.box_xyxy, result.intrinsics)
    pipeline.capture_anchor(head.track_id, anchor_pose)
    K = result.intrinsics
    angles = list(np.arange(step_deg, max_deg + 1e-9, step_deg)) + list(-np.arange(step_deg, max_deg + 1e-9, step_deg))
    rows = []
    for sign_block in (angles[: len(angles) // 2], angles[len(angles) // 2:]):
        # sweep out from 0 and come back, so the face moves little between frames
        for a in [0.0] + sign_block:
            M = cv2.getRotationMatrix2D((float(K[0, 2]), float(K[1, 2])), float(a), 1.0)
            rotated = cv2.warpAffine(frame, M, (frame.shape[1], frame.shape[0]))
            stamp += 0.1
            res = pipeline.process(rotated, stamp, K)
            truth = rz(-a) @ anchor_pose[:3, :3]
            est = [h for h in res.heads if h.pose_cam is not None]
            if not est:
                rows.append({"angle_deg": float(a), "error_deg": float("nan"), "found": False})
                continue
            h = _largest(res) if res.heads else est[0]
            err = float(geodesic_angle_deg(h.pose_cam[:3, :3], truth)) if h.pose_cam is not None else float("nan")
            rows.append({"angle_deg": float(a), "error_deg": err, "found": h.pose_cam is not None,
                         "confidence": float(h.confidence)})
    errs = np.array([r["error_deg"] for r in rows if r["angle_deg"] != 0.0])
    return {"rows": rows, "mean_error_deg": float(np.nanmean(errs)), "max_error_deg": float(np.nanmax(errs)),
            "missed": int(np.isnan(errs).sum()), "frames": int(len(errs))}


@dataclass(frozen=True)
class LabelledPhoto:
    name: str
    image_rgb: np.ndarray
    yaw_pitch_roll_deg: tuple[float, float, float]


def read_labelled(folder: Path) -> list[LabelledPhoto]:
    """AFLW2000-style ``.jpg`` + ``.mat`` pairs, or images with a ``labels.csv`` (name,yaw,pitch,roll)."""
    photos = []
    csv_path = folder / "labels.csv"
    labels: dict[str, tuple[float, float, float]] = {}
    if csv_path.is_file():
        with open(csv_path) as f:
            for row in csv.DictReader(f):
                labels[row["name"]] = (float(row["yaw"]), float(row["pitch"]), float(row["roll"]))
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        if path.name in labels:
            ypr = labels[path.name]
        elif path.with_suffix(".mat").is_file():
            from scipy.io import loadmat

            pitch, yaw, roll = (float(v) for v in loadmat(str(path.with_suffix(".mat")))["Pose_Para"][0][:3])
            ypr = (math.degrees(yaw), math.degrees(pitch), math.degrees(roll))
        else:
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        photos.append(LabelledPhoto(path.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), ypr))
    return photos


def mirror_pairs(photos: Sequence[LabelledPhoto], estimator: str, hfov_deg: float = 20.0,
                 cache: Optional[dict] = None, choice: ModelChoice = DEFAULT_CHOICE) -> dict:
    """The mirror-pair protocol (module docstring) for one estimator."""
    rows = []
    for photo in photos:
        pipeline = make_pipeline(estimator, hfov_deg, "none", cache, choice)
        R = matrix_from_yaw_pitch_roll_deg(*photo.yaw_pitch_roll_deg)
        first = pipeline.process(photo.image_rgb, 0.0)
        mirrored = np.ascontiguousarray(photo.image_rgb[:, ::-1])
        true_rel = MIRROR @ R @ MIRROR @ R.T
        true_gap = float(geodesic_angle_deg(true_rel, np.eye(3)))
        row = {"name": photo.name, "yaw_deg": photo.yaw_pitch_roll_deg[0], "true_gap_deg": true_gap}
        if not first.heads:
            rows.append({**row, "found": False})
            continue
        head = _largest(first)
        anchor_pose = frontal_pose_from_box(head.box_xyxy, first.intrinsics, None)
        anchor_pose[:3, :3] = R
        pipeline.capture_anchor(head.track_id, anchor_pose)
        second = pipeline.process(mirrored, 1.0)
        est = [h for h in second.heads if h.pose_cam is not None]
        if not est:
            rows.append({**row, "found": False})
            continue
        h = max(est, key=lambda e: (e.box_xyxy[2] - e.box_xyxy[0]))
        pred_rel = h.pose_cam[:3, :3] @ R.T
        rows.append({**row, "found": True, "pred_gap_deg": float(geodesic_angle_deg(pred_rel, np.eye(3))),
                     "error_deg": float(geodesic_angle_deg(pred_rel, true_rel)), "confidence": float(h.confidence)})
    found = [r for r in rows if r.get("found")]
    true = np.array([r["true_gap_deg"] for r in found])
    pred = np.array([r["pred_gap_deg"] for r in found])
    near = [r["error_deg"] for r in found if r["true_gap_deg"] <= 90.0]
    far = [r["error_deg"] for r in found if r["true_gap_deg"] > 90.0]
    return {"rows": rows, "pairs": len(rows), "found": len(found),
            "slope": float(true @ pred / (true @ true)) if len(found) else float("nan"),
            "error_le90_deg": float(np.mean(near)) if near else float("nan"), "pairs_le90": len(near),
            "error_gt90_deg": float(np.mean(far)) if far else float("nan"), "pairs_gt90": len(far)}


def read_video(path: Path) -> list[np.ndarray]:
    """RGB frames of a GIF (Pillow) or any video OpenCV reads."""
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def video_trajectories(path: Path, estimator: str, fps: float = 12.5, cache: Optional[dict] = None,
                       choice: ModelChoice = DEFAULT_CHOICE) -> dict:
    """Yaw per frame and track, and the jitter, of one estimator on an unlabelled clip."""
    frames = read_video(path)
    settings = PipelineSettings(estimator=estimator, backend=choice.backend, model_path=choice.model_path,
                                pipeline=PipelineConfig(bootstrap="absolute", crop_mode=choice.crop_mode))
    base = make_pipeline(estimator, 60.0, "none", cache, choice)
    pipeline = build_pipeline(settings, estimator=base.estimator, detector=base.scheduler.detector)
    tracks: dict[int, list[tuple[int, float]]] = {}
    for i, frame in enumerate(frames):
        result = pipeline.process(frame, i / fps)
        for h in result.heads:
            if h.yaw_pitch_roll_deg is not None:
                tracks.setdefault(h.track_id, []).append((i, float(h.yaw_pitch_roll_deg[0])))
    jitter = {}
    for tid, series in tracks.items():
        yaws = np.array([y for _, y in series])
        jitter[str(tid)] = float(np.median(np.abs(np.diff(yaws)))) if len(yaws) > 1 else float("nan")
    return {"video": path.name, "frames": len(frames), "tracks": {str(k): v for k, v in tracks.items()},
            "jitter_deg": jitter}


#: Real-face targets of the VGGT estimator (issue 14), degrees / slope.
REAL_TARGETS = {"roll_sweep_mean_deg": 2.0, "mirror_error_le90_deg": 12.0, "mirror_slope": 0.85}


def real_figures(model_dir: Path, labelled: Optional[Path], backend: str = "torch") -> dict:
    """The roll sweep (scikit-image's astronaut) and, with ``labelled``, the mirror pairs of the
    VGGT model in ``model_dir`` on its own crop, as one flat dict with the targets checked."""
    from skimage import data

    choice = ModelChoice(model_path=str(model_dir), backend=backend)
    cache: dict = {}
    sweep = roll_sweep(data.astronaut(), "vggt", cache=cache, choice=choice)
    out = {"roll_sweep_mean_deg": sweep["mean_error_deg"], "roll_sweep_max_deg": sweep["max_error_deg"],
           "roll_sweep_missed": sweep["missed"]}
    photos = read_labelled(labelled) if labelled is not None and Path(labelled).is_dir() else []
    if photos:
        mirror = mirror_pairs(photos, "vggt", cache=cache, choice=choice)
        out.update(mirror_error_le90_deg=mirror["error_le90_deg"], mirror_pairs_le90=mirror["pairs_le90"],
                   mirror_error_gt90_deg=mirror["error_gt90_deg"], mirror_pairs_gt90=mirror["pairs_gt90"],
                   mirror_slope=mirror["slope"], mirror_found=mirror["found"], mirror_pairs=mirror["pairs"])
    out["targets"] = dict(REAL_TARGETS)
    met = [out["roll_sweep_mean_deg"] <= REAL_TARGETS["roll_sweep_mean_deg"]]
    if "mirror_slope" in out:
        met += [out["mirror_error_le90_deg"] <= REAL_TARGETS["mirror_error_le90_deg"],
                out["mirror_slope"] >= REAL_TARGETS["mirror_slope"]]
    out["meets_real_targets"] = bool(all(met)) if "mirror_slope" in out else None
    return out


def plot(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for est, r in results["roll_sweep"].items():
        rows = sorted(r["rows"], key=lambda x: x["angle_deg"])
        ax.plot([x["angle_deg"] for x in rows], [x["error_deg"] for x in rows], "o-", ms=3,
                label=f"{est}: mean {r['mean_error_deg']:.2f} deg")
    ax.set_xlabel("in-plane roll of the image (deg)"); ax.set_ylabel("rotation error (deg)")
    ax.set_title("Roll sweep of a real face (astronaut, exact truth)"); ax.legend(); ax.grid(alpha=0.3)
    paths.append(out / "roll_sweep.png"); fig.tight_layout(); fig.savefig(paths[-1], dpi=110); plt.close(fig)
    if results.get("mirror_pairs"):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        for est, r in results["mirror_pairs"].items():
            f = [x for x in r["rows"] if x.get("found")]
            ax.plot([x["true_gap_deg"] for x in f], [x["pred_gap_deg"] for x in f], "o",
                    label=f"{est}: slope {r['slope']:.2f}, err(<=90) {r['error_le90_deg']:.1f}")
        ax.plot([0, 150], [0, 150], "k--", lw=0.8)
        ax.set_xlabel("true gap (deg)"); ax.set_ylabel("predicted gap (deg)")
        ax.set_title("Mirror pairs of real labelled faces"); ax.legend(fontsize=8); ax.grid(alpha=0.3)
        paths.append(out / "mirror_pairs.png"); fig.tight_layout(); fig.savefig(paths[-1], dpi=110); plt.close(fig)
    vids = results.get("videos", {})
    names = sorted({v["video"] for per in vids.values() for v in per})
    if names:
        fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.6 * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            for est, per in vids.items():
                for v in per:
                    if v["video"] != name:
                        continue
                    for tid, series in v["tracks"].items():
                        ax.plot([i for i, _ in series], [y for _, y in series], "-o", ms=2,
                                label=f"{est} track {tid} (jitter {v['jitter_deg'][tid]:.1f})")
            ax.set_title(name, fontsize=9); ax.set_ylabel("yaw (deg)"); ax.grid(alpha=0.3); ax.legend(fontsize=7)
        axes[-1, 0].set_xlabel("frame")
        paths.append(out / "video_yaw.png"); fig.tight_layout(); fig.savefig(paths[-1], dpi=110); plt.close(fig)
    return paths


def run_real(out: Path, estimators: Iterable[str], sweep_image: Optional[np.ndarray], labelled: Optional[Path],
             videos: Sequence[Path], photo_hfov_deg: float = 20.0, progress: bool = True,
             choice: ModelChoice = DEFAULT_CHOICE) -> dict:
    """Every protocol for every estimator; writes ``results.json``, ``results.csv`` and plots.

    ``choice`` (model, backend, crop) applies to the VGGT estimators; the face mesh ignores
    the model and backend.
    """
    out.mkdir(parents=True, exist_ok=True)
    cache: dict = {}
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "photo_hfov_deg": photo_hfov_deg,
                     "model": {"path": choice.model_path or "(default)", "backend": choice.backend,
                               "crop_mode": choice.crop_mode},
                     "roll_sweep": {}, "mirror_pairs": {}, "videos": {}}
    photos = read_labelled(labelled) if labelled is not None and labelled.is_dir() else []
    for est in estimators:
        t0 = time.time()
        if sweep_image is not None:
            results["roll_sweep"][est] = roll_sweep(sweep_image, est, cache=cache, choice=choice)
        if photos:
            results["mirror_pairs"][est] = mirror_pairs(photos, est, photo_hfov_deg, cache=cache, choice=choice)
        results["videos"][est] = [video_trajectories(v, est, cache=cache, choice=choice) for v in videos]
        if progress:
            print(f"[hpe-eval real] {est}: done in {time.time() - t0:.0f} s", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["estimator", "protocol", "metric", "value"])
        for est, r in results["roll_sweep"].items():
            for k in ("mean_error_deg", "max_error_deg", "missed"):
                w.writerow([est, "roll_sweep", k, r[k]])
        for est, r in results["mirror_pairs"].items():
            for k in ("error_le90_deg", "pairs_le90", "error_gt90_deg", "pairs_gt90", "slope", "found"):
                w.writerow([est, "mirror_pairs", k, r[k]])
        for est, per in results["videos"].items():
            for v in per:
                for tid, j in v["jitter_deg"].items():
                    w.writerow([est, f"video:{v['video']}", f"jitter_deg_track_{tid}", j])
    plot(results, out)
    return results


def summary(results: dict) -> str:
    lines = ["estimator  roll sweep mean/max (deg)  mirror err<=90 (n)  err>90 (n)  slope"]
    for est in results["roll_sweep"] or results["mirror_pairs"]:
        rs = results["roll_sweep"].get(est, {})
        mp = results["mirror_pairs"].get(est, {})
        lines.append(f"{est:<10} {rs.get('mean_error_deg', float('nan')):6.2f} / {rs.get('max_error_deg', float('nan')):6.2f}"
                     f"           {mp.get('error_le90_deg', float('nan')):6.2f} ({mp.get('pairs_le90', 0)})"
                     f"       {mp.get('error_gt90_deg', float('nan')):6.2f} ({mp.get('pairs_gt90', 0)})"
                     f"  {mp.get('slope', float('nan')):.2f}")
    for est, per in results["videos"].items():
        for v in per:
            lines.append(f"{est:<10} video {v['video']}: tracks {sorted(v['tracks'])}, jitter {v['jitter_deg']}")
    return "\n".join(lines)
