"""``hpe-eval errors``: fit the error models (:mod:`hpe_core.error_model`) on data with truth,
check their calibration on held-out identities, and write them beside the models.

Data, all run through the node's own pipeline (``estimator: fused``, so every face gets both
the face mesh's and VGGT's estimate against the same calibrated anchor; one anchor, no
keyframes, so every estimate is one hop from a perfect anchor):

* **real** (exact truth on real photos, ``../shared/notes/real-faces.md``): each labelled photo
  is the anchor at its labelled pose; the queries are the photo mirrored or not, rolled about
  the principal point by -30..30 deg, and at full or half resolution (half: JPEG quality 60), so
  the true rotation is ``Rz(-a) @ (M R M or R)`` exactly. The public-domain astronaut
  (scikit-image) in a 640x480 frame, rolled and halved the same way (no mirror: its absolute
  pose is not labelled, and a roll's or a rescale's relative truth does not need it).
* **synthetic**: ``scan`` sequences of held-out identities of our generator (identity indices
  from 200000, never in training; yaw +-70, pitch +-25, roll +-15 deg, at 0.7-1.5 m), frame 0
  the anchor at its true pose, every later frame a query.

Fitting: the hop model of each estimator on its estimates (gap, face size, yaw, residual ->
error), then each setting's head calibration (``facemesh``, ``vggt``, ``fused``: the fusion of
that setting's estimates with the hop models, raw expected error -> measured error).
Calibration check: leave one identity out (every photo and every rendered identity is one
group): each head's stated error comes from models fitted without its identity. Reported per
domain and setting in bins of the stated error: mean stated vs mean measured; the issue's
figure is "within 25 % in every bin with 20 or more heads". Plot: ``reliability.png``.

``--write`` stores the models fitted on everything: the face mesh's in
``hpe_core/models/facemesh/error_model.json``, VGGT's and the fused setting's beside the default
model (``hpe_core/models/default/error_model.json``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from hpe_core.anchors.anchor import Anchor, AnchorSource
from hpe_core.anchors.consensus import ConsensusParams, EstimateErrors, fuse_relative_estimates
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.crop import resolve_intrinsics
from hpe_core.error_model import ERROR_MODEL_FILE, ErrorModels, HeadCalibration, HopErrorModel
from hpe_core.geometry.euler import matrix_from_yaw_pitch_roll_deg, yaw_pitch_roll_deg_from_matrix
from hpe_core.geometry.rotations import geodesic_angle_deg
from hpe_core.pipeline import HeadPosePipeline, PipelineConfig, face_size_px, frontal_pose_from_box
from hpe_core.pipeline_factory import DEFAULT_MODEL_DIR, FACEMESH_ERROR_MODEL_DIR, PipelineSettings, build_pipeline
from hpe_core.tracking.tracker import TrackerConfig
from hpe_training.evaluation.real import MIRROR, PHOTO_TRACKER, LabelledPhoto, rz, sweep_frame

SETTINGS = ("facemesh", "vggt", "fused")
#: Bin edges of the stated expected error, degrees (reliability table and plot).
BIN_EDGES_DEG = (0.0, 1.5, 2.5, 4.0, 6.0, 9.0, 14.0, 22.0, 35.0, 60.0, 180.0)
#: A bin needs this many heads to count in the calibration figure.
MIN_BIN_SAMPLES = 20
#: Allowed relative gap between mean stated and mean measured error in a counted bin.
CALIBRATION_TOLERANCE = 0.25
REAL_ROLLS_DEG = (-30.0, -15.0, 0.0, 15.0, 30.0)
ASTRONAUT_ROLLS_DEG = (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0)
SCALES = (1.0, 0.5)


@dataclass
class HeadSample:
    """One query head with truth: what the fusion needs, for any subset of its estimates.

    Attributes:
        domain: ``real`` or ``synthetic``; group: its identity (the cross-validation group).
        face_px: face box's longer side (pixels); R_vq: ``[3, 3]`` query crop's ``R_virt_from_cam``.
        anchors: ``[M]`` the anchor of each estimate; rotation / translation: ``[M, 3, 3]`` /
        ``[M, 3]`` the relative estimates; residual: ``[M]``; sources: ``[M]`` estimator kinds.
        truth_cam: ``[3, 3]`` the true ``R_cam_from_head`` of the query.
    """

    domain: str
    group: str
    face_px: float
    R_vq: np.ndarray
    anchors: list[Anchor]
    rotation: np.ndarray
    translation: np.ndarray
    residual: np.ndarray
    sources: tuple[str, ...]
    truth_cam: np.ndarray

    def subset(self, setting: str) -> np.ndarray:
        """Indices of the estimates a setting fuses."""
        return np.array([i for i, s in enumerate(self.sources) if setting == "fused" or s == setting], dtype=np.int64)

    def estimate_rotations_cam(self) -> np.ndarray:
        """``[M, 3, 3]`` each estimate composed with its anchor (real camera frame)."""
        R_anchor_virt = np.stack([a.pose_virtual[:3, :3] for a in self.anchors])
        return self.R_vq.T @ (self.rotation @ R_anchor_virt)


def save_samples(samples: Sequence[HeadSample], path: Path) -> Path:
    """The samples as one ``.npz`` of plain arrays (no pickles), so a refit need not collect again."""
    arrays: dict[str, np.ndarray] = {
        "domain": np.array([s.domain for s in samples]), "group": np.array([s.group for s in samples]),
        "face_px": np.array([s.face_px for s in samples]), "R_vq": np.stack([s.R_vq for s in samples]),
        "truth_cam": np.stack([s.truth_cam for s in samples]),
        "count": np.array([len(s.sources) for s in samples]),
        "anchor_pose_cam": np.concatenate([np.stack([a.pose_cam for a in s.anchors]) for s in samples]),
        "anchor_virtual_from_cam": np.concatenate([np.stack([a.virtual_from_cam for a in s.anchors]) for s in samples]),
        "anchor_id": np.array([a.anchor_id for s in samples for a in s.anchors]),
        "rotation": np.concatenate([s.rotation for s in samples]),
        "translation": np.concatenate([s.translation for s in samples]),
        "residual": np.concatenate([s.residual for s in samples]),
        "source": np.array([x for s in samples for x in s.sources]),
    }
    np.savez_compressed(path, **arrays)
    return path


def load_samples(path: Path) -> list[HeadSample]:
    """Inverse of :func:`save_samples` (``allow_pickle=False``)."""
    d = np.load(path, allow_pickle=False)
    samples, start = [], 0
    for i, n in enumerate(d["count"]):
        sl = slice(start, start + int(n))
        anchors = [Anchor(anchor_id=str(aid), track_id="t", crop=np.zeros((2, 2, 3), np.uint8), pose_cam=pose,
                          virtual_from_cam=R, source=AnchorSource.CALIBRATED, quality=1.0, created_at=0.0)
                   for aid, pose, R in zip(d["anchor_id"][sl], d["anchor_pose_cam"][sl], d["anchor_virtual_from_cam"][sl])]
        samples.append(HeadSample(str(d["domain"][i]), str(d["group"][i]), float(d["face_px"][i]), d["R_vq"][i], anchors,
                                  d["rotation"][sl], d["translation"][sl], d["residual"][sl],
                                  tuple(str(x) for x in d["source"][sl]), d["truth_cam"][i]))
        start += int(n)
    return samples


def _pipeline(estimator, detector, hfov_deg: float, tracker: TrackerConfig) -> HeadPosePipeline:
    config = PipelineConfig(default_hfov_deg=hfov_deg, bootstrap="none", tracker=tracker,
                            policy=AnchorPolicy(max_chain_depth=0, anchors_per_estimate=1))
    return HeadPosePipeline(estimator, detector, config)


def _largest(heads):
    return max(heads, key=lambda h: (h.box_xyxy[2] - h.box_xyxy[0]) * (h.box_xyxy[3] - h.box_xyxy[1]))


def _sample(pipeline: HeadPosePipeline, head, domain: str, group: str, truth_cam: np.ndarray) -> Optional[HeadSample]:
    if head.pose_cam is None or head.relative is None or head.fused is None:
        return None
    rel = head.relative
    by_id = {a.anchor_id: a for a in pipeline.pool.anchors(pipeline.person_of(head.track_id))}
    anchors = [by_id[i] for i in head.fused.estimate_anchor_ids]
    sources = rel.sources if rel.sources is not None else (pipeline.estimator.estimator_kind,) * len(rel)
    residual = rel.residual if rel.residual is not None else np.full(len(rel), np.nan)
    return HeadSample(domain, group, face_size_px(head.box_xyxy), head.fused.query_virtual_from_cam.copy(), anchors,
                      rel.rotation.copy(), rel.translation.copy(), np.asarray(residual, dtype=np.float64).copy(),
                      tuple(sources), np.asarray(truth_cam, dtype=np.float64))


def _scaled(image: np.ndarray, K: np.ndarray, s: float, jpeg_quality: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """The same camera at ``s`` times the resolution (exact: intrinsics scaled), optionally
    JPEG-compressed."""
    if s != 1.0:
        h, w = image.shape[:2]
        image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        S = np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])
        K = S @ K
    if jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if ok:
            image = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image), K


def _photo_queries(image: np.ndarray, K: np.ndarray, rolls: Sequence[float], mirrors: Sequence[bool]):
    """``(query image, its K, true rotation as a function of the anchor's)`` for every
    augmentation except the identity."""
    for mirror in mirrors:
        for a in rolls:
            for s in SCALES:
                if not mirror and a == 0.0 and s == 1.0:
                    continue
                img = np.ascontiguousarray(image[:, ::-1]) if mirror else image
                if a != 0.0:
                    M = cv2.getRotationMatrix2D((float(K[0, 2]), float(K[1, 2])), float(a), 1.0)
                    img = cv2.warpAffine(img, M, (img.shape[1], img.shape[0]))
                img, Kq = _scaled(img, K, s, 60 if s != 1.0 else None)
                yield img, Kq, (lambda R0, m=mirror, ang=a: rz(-ang) @ (MIRROR @ R0 @ MIRROR if m else R0))


def collect_photo(pipeline_of: Callable[[float], HeadPosePipeline], image: np.ndarray, hfov_deg: float,
                  label_R: Optional[np.ndarray], group: str, rolls: Sequence[float], mirrors: Sequence[bool]) -> list[HeadSample]:
    """Samples of one photo: anchor = the photo (at ``label_R``, or facing the camera when
    unlabelled), queries = its rolls, mirrors and rescales."""
    h, w = image.shape[:2]
    K = resolve_intrinsics(None, w, h, hfov_deg)
    samples = []
    for img, Kq, truth_of in _photo_queries(image, K, rolls, mirrors):
        pipeline = pipeline_of(hfov_deg)
        first = pipeline.process(image, 0.0, K)
        if not first.heads:
            return samples
        head = _largest(first.heads)
        anchor_pose = frontal_pose_from_box(head.box_xyxy, K)
        if label_R is not None:
            anchor_pose[:3, :3] = label_R
        pipeline.capture_anchor(head.track_id, anchor_pose)
        result = pipeline.process(img, 1.0, Kq)
        heads = [x for x in result.heads if x.pose_cam is not None]
        if not heads:
            continue
        sample = _sample(pipeline, _largest(heads), "real", group, truth_of(anchor_pose[:3, :3]))
        if sample is not None:
            samples.append(sample)
    return samples


def collect_synthetic(estimator, detector, sequences: int, frames: int, progress: Callable[[str], None]) -> list[HeadSample]:
    """Samples of rendered ``scan`` sequences of held-out identities (module docstring)."""
    from hpe_training.synth.sequence import SequenceConfig, render_sequence

    samples = []
    for i in range(sequences):
        distance = 0.7 + 0.8 * (i % 5) / 4.0
        seq = render_sequence(SequenceConfig(kind="scan", n_frames=frames, identity=200000 + i, seed=1000 + i,
                                             distance_m=distance, msaa=0))
        pipeline = _pipeline(estimator, detector, 60.0, TrackerConfig(min_hits=1))
        anchor_frame = None
        for j, (frame, stamp) in enumerate(zip(seq.frames, seq.stamps_s)):
            result = pipeline.process(frame, float(stamp), seq.K)
            if anchor_frame is None:
                if result.heads:
                    pipeline.capture_anchor(result.heads[0].track_id, seq.poses_cam[j, 0])
                    anchor_frame = frame
                continue
            if np.array_equal(frame, anchor_frame):
                continue  # the scan returns to its first pose: the anchor's own image is no query
            heads = [x for x in result.heads if x.pose_cam is not None]
            if heads:
                s = _sample(pipeline, heads[0], "synthetic", f"synth-{200000 + i}", seq.poses_cam[j, 0, :3, :3])
                if s is not None:
                    samples.append(s)
        progress(f"synthetic identity {200000 + i} ({distance:.2f} m): {len(samples)} heads so far")
    return samples


# ---------------------------------------------------------------------- fitting
def estimate_table(samples: Sequence[HeadSample]) -> dict[str, dict[str, np.ndarray]]:
    """Per estimator kind: every estimate's features and error (for the hop models).

    The gap and yaw are the estimate's own (its composed rotation against its anchor, in the
    query's virtual camera), as the fusion measures them for one estimate.
    """
    rows: dict[str, dict[str, list]] = {}
    for s in samples:
        R_cam = s.estimate_rotations_cam()
        for i, src in enumerate(s.sources):
            R_virt = s.R_vq @ R_cam[i]
            gap = float(geodesic_angle_deg(s.anchors[i].pose_virtual[:3, :3], R_virt))
            yaw = float(yaw_pitch_roll_deg_from_matrix(R_virt)[0])
            err = float(geodesic_angle_deg(R_cam[i], s.truth_cam))
            r = rows.setdefault(src, {k: [] for k in ("gap", "face", "yaw", "residual", "error")})
            for k, v in zip(("gap", "face", "yaw", "residual", "error"), (gap, s.face_px, yaw, s.residual[i], err)):
                r[k].append(v)
    return {src: {k: np.asarray(v, dtype=np.float64) for k, v in r.items()} for src, r in rows.items()}


def fit_hops(samples: Sequence[HeadSample]) -> dict[str, HopErrorModel]:
    hops = {}
    for src, t in estimate_table(samples).items():
        residual = t["residual"] if np.any(np.isfinite(t["residual"])) else None
        hops[src] = HopErrorModel.fit(src, t["gap"], t["face"], t["yaw"], residual, t["error"])
    return hops


def fused_head(sample: HeadSample, setting: str, hops: dict[str, HopErrorModel],
               calibration: Optional[HeadCalibration]) -> Optional[tuple[float, float, float]]:
    """``(raw expected, stated expected, measured error)`` of the setting's fusion of the
    sample's estimates, or ``None`` when it has none of that setting's."""
    idx = sample.subset(setting)
    if len(idx) == 0 or any(sample.sources[i] not in hops for i in idx):
        return None
    sources = tuple(sample.sources[i] for i in idx)
    errors = EstimateErrors(tuple(hops[s] for s in sources), sources, sample.face_px, sample.residual[idx], calibration)
    fused = fuse_relative_estimates([sample.anchors[i] for i in idx], sample.rotation[idx], sample.translation[idx],
                                    sample.R_vq, ConsensusParams(), errors)
    measured = float(geodesic_angle_deg(fused.rotation_cam, sample.truth_cam))
    return fused.raw_expected_error_deg, fused.expected_error_deg, measured


def fit_models(samples: Sequence[HeadSample]) -> ErrorModels:
    """Hop models, then each setting's head calibration, on ``samples``."""
    hops = fit_hops(samples)
    heads = {}
    for setting in SETTINGS:
        rows = [r for r in (fused_head(s, setting, hops, None) for s in samples) if r is not None]
        if len(rows) >= 10:
            raw = np.array([r[0] for r in rows])
            heads[setting] = HeadCalibration.fit(raw, np.array([r[2] for r in rows]))
    return ErrorModels(hops, heads)


def cross_validated(samples: Sequence[HeadSample], progress: Callable[[str], None]) -> list[dict]:
    """Leave one identity out: every head's stated error from models fitted without it."""
    groups = sorted({s.group for s in samples})
    rows = []
    for g in groups:
        train = [s for s in samples if s.group != g]
        test = [s for s in samples if s.group == g]
        models = fit_models(train)
        for s in test:
            for setting in SETTINGS:
                r = fused_head(s, setting, models.hops, models.heads.get(setting))
                if r is not None:
                    rows.append({"domain": s.domain, "group": g, "setting": setting, "stated_deg": r[1],
                                 "measured_deg": r[2]})
    progress(f"cross-validated over {len(groups)} identities: {len(rows)} head estimates")
    return rows


def reliability(rows: Sequence[dict]) -> dict:
    """Per domain and setting: bins of stated error with mean stated and measured, and whether
    every bin with >= :data:`MIN_BIN_SAMPLES` heads is within :data:`CALIBRATION_TOLERANCE`."""
    out: dict = {}
    for domain in ("real", "synthetic"):
        for setting in SETTINGS:
            sel = [r for r in rows if r["domain"] == domain and r["setting"] == setting]
            if not sel:
                continue
            stated = np.array([r["stated_deg"] for r in sel])
            measured = np.array([r["measured_deg"] for r in sel])
            bins = []
            for lo, hi in zip(BIN_EDGES_DEG[:-1], BIN_EDGES_DEG[1:]):
                m = (stated >= lo) & (stated < hi)
                n = int(m.sum())
                if n == 0:
                    continue
                ms, mm = float(stated[m].mean()), float(measured[m].mean())
                bins.append({"lo_deg": lo, "hi_deg": hi, "n": n, "mean_stated_deg": ms, "mean_measured_deg": mm,
                             "relative_gap": (ms - mm) / mm if mm > 0 else float("inf"),
                             "counted": n >= MIN_BIN_SAMPLES})
            counted = [b for b in bins if b["counted"]]
            out[f"{domain}/{setting}"] = {
                "heads": len(sel), "mean_stated_deg": float(stated.mean()), "mean_measured_deg": float(measured.mean()),
                "median_measured_deg": float(np.median(measured)), "bins": bins,
                "counted_bins": len(counted),
                "within_tolerance": bool(counted) and all(abs(b["relative_gap"]) <= CALIBRATION_TOLERANCE for b in counted),
            }
    return out


def plot_reliability(table: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    colours = {"facemesh": "tab:blue", "vggt": "tab:orange", "fused": "tab:green"}
    for ax, domain in zip(axes, ("real", "synthetic")):
        top = 1.0
        for setting in SETTINGS:
            entry = table.get(f"{domain}/{setting}")
            if not entry:
                continue
            b = entry["bins"]
            xs = [x["mean_stated_deg"] for x in b]
            ys = [x["mean_measured_deg"] for x in b]
            ax.plot(xs, ys, "-", color=colours[setting], alpha=0.5)
            for x in b:
                ax.plot(x["mean_stated_deg"], x["mean_measured_deg"], "o" if x["counted"] else "x",
                        color=colours[setting], ms=4 + 6 * min(x["n"], 100) / 100)
            ax.plot([], [], "o-", color=colours[setting],
                    label=f"{setting}: {entry['heads']} heads, bins {'all' if entry['within_tolerance'] else 'NOT all'} within 25 %")
            top = max(top, max(xs + ys))
        grid = np.linspace(0, top * 1.05, 50)
        ax.plot(grid, grid, "k--", lw=1, label=f"stated = measured (o: bin of >= {MIN_BIN_SAMPLES} heads, x: fewer)")
        # |stated - measured| <= 25 % of measured: measured in [stated / 1.25, stated / 0.75]
        ax.fill_between(grid, grid / (1 + CALIBRATION_TOLERANCE), grid / (1 - CALIBRATION_TOLERANCE),
                        color="grey", alpha=0.15, label="within 25 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("stated expected error (deg), bin mean")
        ax.set_ylabel("measured error (deg), bin mean")
        ax.set_title(f"{domain} faces, held-out identities")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_hops(models: ErrorModels, path: Path) -> Path:
    """The fitted hop models: expected error against the gap for two face sizes (yaw 0, the
    face mesh at its median residual)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gaps = np.linspace(0, 90, 91)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, model in sorted(models.hops.items()):
        for face, style in ((200.0, "-"), (60.0, "--")):
            residual = models.provenance.get("median_residual", {}).get(kind)
            ax.plot(gaps, model.expected_error_deg(gaps, face, 0.0, residual), style, label=f"{kind}, face {face:.0f} px")
    ax.set_xlabel("anchor-query gap (deg)")
    ax.set_ylabel("expected error of one estimate (deg)")
    ax.set_title("fitted hop error models")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def collect(photos: Sequence[LabelledPhoto], astronaut: Optional[np.ndarray], sequences: int, frames: int,
            progress: Callable[[str], None]) -> list[HeadSample]:
    """Every sample of the module docstring, through the node's pipeline with ``estimator: fused``."""
    t0 = time.time()
    base = build_pipeline(PipelineSettings(estimator="fused", backend="onnxruntime"))
    estimator, detector = base.estimator, base.scheduler.detector

    def pipeline_of(hfov: float) -> HeadPosePipeline:
        return _pipeline(estimator, detector, hfov, PHOTO_TRACKER)

    samples: list[HeadSample] = []
    try:
        for photo in photos:
            R = matrix_from_yaw_pitch_roll_deg(*photo.yaw_pitch_roll_deg)
            samples += collect_photo(pipeline_of, photo.image_rgb, 20.0, R, f"photo-{photo.name}", REAL_ROLLS_DEG,
                                     (False, True))
            progress(f"real photo {photo.name}: {len(samples)} heads so far ({time.time() - t0:.0f} s)")
        if astronaut is not None:
            samples += collect_photo(pipeline_of, sweep_frame(astronaut), 60.0, None, "astronaut", ASTRONAUT_ROLLS_DEG,
                                     (False,))
            progress(f"astronaut: {len(samples)} heads so far")
        samples += collect_synthetic(estimator, detector, sequences, frames, progress)
    finally:
        close = getattr(estimator, "close", None)
        if close is not None:
            close()
    progress(f"collected {len(samples)} heads in {time.time() - t0:.0f} s")
    return samples


def run_errors(out: Path, photos: Sequence[LabelledPhoto], astronaut: Optional[np.ndarray], sequences: int,
               frames: int, write: bool, progress: Callable[[str], None] = print,
               model_dir: Path = DEFAULT_MODEL_DIR, facemesh_dir: Path = FACEMESH_ERROR_MODEL_DIR,
               reuse_samples: bool = False) -> dict:
    """Collect (or, ``reuse_samples``, load ``out/samples.npz``), fit, cross-validate, plot, and
    (``write``) store the models; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cache = out / "samples.npz"
    if reuse_samples and cache.is_file():
        samples = load_samples(cache)
        progress(f"loaded {len(samples)} heads from {cache}")
    else:
        samples = collect(photos, astronaut, sequences, frames, progress)
        save_samples(samples, cache)

    rows = cross_validated(samples, progress)
    table = reliability(rows)
    models = fit_models(samples)
    med = {src: float(np.nanmedian(t["residual"])) for src, t in estimate_table(samples).items()
           if np.any(np.isfinite(t["residual"]))}
    models.provenance = {"tool": "hpe-eval errors", "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "heads": {d: sum(1 for s in samples if s.domain == d) for d in ("real", "synthetic")},
                         "identities": len({s.group for s in samples}), "median_residual": med}
    plots = [plot_reliability(table, out / "reliability.png"), plot_hops(models, out / "hop_models.png")]
    summary = {"reliability": table, "models": models.to_dict(), "plots": [p.name for p in plots],
               "seconds": time.time() - t0}
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    with open(out / "heads.csv", "w") as f:
        f.write("domain,group,setting,stated_deg,measured_deg\n")
        for r in rows:
            f.write(f"{r['domain']},{r['group']},{r['setting']},{r['stated_deg']:.4f},{r['measured_deg']:.4f}\n")
    if write:
        facemesh = ErrorModels({"facemesh": models.hops["facemesh"]},
                               {"facemesh": models.heads["facemesh"]} if "facemesh" in models.heads else {},
                               models.provenance)
        vggt = ErrorModels({"vggt": models.hops["vggt"]},
                           {k: v for k, v in models.heads.items() if k in ("vggt", "fused")}, models.provenance)
        summary["written"] = [str(facemesh.save(facemesh_dir / ERROR_MODEL_FILE)),
                              str(vggt.save(model_dir / ERROR_MODEL_FILE))]
    return summary


def format_summary(summary: dict) -> str:
    lines = ["| domain / setting | heads | mean stated | mean measured | bins >= 20 | all within 25 % |",
             "|---|---:|---:|---:|---:|---|"]
    for key, e in summary["reliability"].items():
        lines.append(f"| {key} | {e['heads']} | {e['mean_stated_deg']:.2f} | {e['mean_measured_deg']:.2f} | "
                     f"{e['counted_bins']} | {'yes' if e['within_tolerance'] else 'no'} |")
    lines.append("")
    lines.append("| domain / setting | bin (deg) | heads | mean stated | mean measured | gap |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for key, e in summary["reliability"].items():
        for b in e["bins"]:
            lines.append(f"| {key} | {b['lo_deg']:g}-{b['hi_deg']:g} | {b['n']} | {b['mean_stated_deg']:.2f} | "
                         f"{b['mean_measured_deg']:.2f} | {100 * b['relative_gap']:+.0f} %{'' if b['counted'] else ' (few)'} |")
    return "\n".join(lines)
