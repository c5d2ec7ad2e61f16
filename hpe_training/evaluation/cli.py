"""``hpe-eval``: the VGGT-HPE evaluation protocols on BIWI or on our synthetic benchmark.

Examples::

    hpe-eval biwi --root /data/biwi --out results/biwi                  # shipped default model
    hpe-eval biwi --root /data/biwi --model runs/lora/model --absolute-model runs/abs/model
    hpe-eval synthetic --out docs/evaluation/synthetic                # renders the set once
    hpe-eval synthetic --out results/syn --estimators vggt facemesh   # any estimators, by name

``biwi`` reads the BIWI Kinect Head Pose layout (:mod:`.biwi`), moves poses to the RGB camera,
finds faces with MTCNN and runs every protocol (:mod:`.protocols`) for the relative method(s)
and, with ``--absolute-model``, for the absolute baseline and the relative method(s) with
predicted anchor poses. ``synthetic`` does the same on a BIWI-layout set rendered from held-out
identities of our generator (:mod:`.biwi_fixture`), with the shipped default model and the
shipped same-budget absolute baseline. Both write ``results.json``, ``results.csv`` and two plots
(:mod:`.report`) and print the summary table.

Methods: by default the VGGT checkpoint ``--model`` on the torch backend (method ``relative``,
paper crops) and the absolute baseline (method ``absolute``), as before ``--estimators``
existed. ``--estimators`` names the relative methods instead, each one of
:data:`hpe_core.pipeline_factory.ESTIMATORS` built as the node builds it
(:func:`~hpe_core.pipeline_factory.build_estimator`; ``vggt`` and ``fused`` on ``--backend``
with ``--model``) and given the crops it asks for; the method names are then the estimator names
(``vggt`` there is what ``relative`` is by default), and the baseline stays ``absolute``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ABSOLUTE_MODEL = REPO / "hpe_training" / "models" / "absolute_small"
SYNTHETIC_CACHE = REPO / ".hpe" / "eval" / "synthetic_biwi"


def _vggt(model: Optional[Path], backend: str = "torch"):
    """A VGGT checkpoint (``model`` or its ``torch/`` subfolder; None: the shipped default) on
    ``backend``, built as the node builds it."""
    from hpe_core.pipeline_factory import PipelineSettings, build_estimator

    return build_estimator(PipelineSettings(estimator="vggt", backend=backend,
                                            model_path=str(model) if model is not None else ""))


def _relative_methods(args) -> dict:
    """``{method name: estimator}`` of the run (module docstring)."""
    import torch

    from hpe_core.pipeline_factory import PipelineSettings, build_estimator

    torch.set_num_threads(args.threads)
    if args.no_relative:
        return {}
    if not args.estimators:
        return {"relative": _vggt(args.model)}
    model_path = str(args.model) if args.model is not None else ""
    methods = {}
    for name in dict.fromkeys(args.estimators):
        estimator = build_estimator(PipelineSettings(estimator=name, backend=args.backend, model_path=model_path))
        if estimator.estimator_kind != name:  # never report one estimator's figures under another's name
            raise ValueError(f"estimator {name!r} was built as a {estimator.estimator_kind!r} estimator")
        methods[name] = estimator
    return methods


def _detector():
    from hpe_core.detection.mtcnn import MtcnnConfig, MtcnnFaceDetector

    return MtcnnFaceDetector(MtcnnConfig(min_face_size=40))


def _run(subjects, args, title: str, extra: dict) -> int:
    from hpe_training.evaluation.benchmark import BenchmarkConfig, run_benchmark
    from hpe_training.evaluation.report import summary_table, write_report

    relative = _relative_methods(args)
    absolute = _vggt(args.absolute_model) if args.absolute_model else None
    result = run_benchmark(subjects, _detector(), relative, absolute,
                           BenchmarkConfig(gap_pairs_per_subject=args.gap_pairs, seed=args.seed),
                           progress=not args.quiet)
    result["run"] = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
                     "machine": f"{platform.machine()}, {platform.system()}",
                     "relative_model": None if args.no_relative else str(args.model or "shipped default"),
                     "absolute_model": str(args.absolute_model) if args.absolute_model else None,
                     "estimators": list(relative), "backend": args.backend if args.estimators else "torch",
                     **extra}
    paths = write_report(result, args.out, title)
    print(summary_table(result))
    print(f"frames {result['frames']}, without an MTCNN face {result['frames_without_face']}, "
          f"skipped {result['frames_skipped']}")
    no_face = {m: sum(r["pairs_without_face"].values()) for m, r in result["methods"].items()}
    if any(no_face.values()):
        print(f"pairs left out because the estimator saw no face: {no_face}")
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from hpe_core.pipeline_factory import ESTIMATORS

    p = argparse.ArgumentParser(prog="hpe-eval", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="dataset", required=True)

    def common(sp: argparse.ArgumentParser, default_absolute: Optional[Path]) -> None:
        sp.add_argument("--out", type=Path, required=True, help="output directory")
        sp.add_argument("--model", type=Path, help="relative model checkpoint dir (default: shipped model)")
        sp.add_argument("--absolute-model", type=Path, default=default_absolute,
                        help="absolute-mode checkpoint dir (baseline and predicted-anchor protocol)")
        sp.add_argument("--no-relative", action="store_true", help="evaluate the absolute model only")
        sp.add_argument("--estimators", nargs="+", choices=sorted(ESTIMATORS), metavar="NAME",
                        help=f"relative methods by estimator name, {sorted(ESTIMATORS)} (default: the VGGT "
                             "--model on torch as method 'relative'); each gets the crops it asks for")
        sp.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"],
                        help="VGGT backend of --estimators vggt / fused (--model: its checkpoint or export)")
        sp.add_argument("--gap-pairs", type=int, default=200, help="sampled pairs per subject for error vs gap")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    biwi = sub.add_parser("biwi", help="the BIWI Kinect Head Pose database")
    biwi.add_argument("--root", type=Path, required=True, help="BIWI root (subject folders 01 .. 24)")
    biwi.add_argument("--subjects", nargs="*", help="only these subject folders")
    common(biwi, None)
    syn = sub.add_parser("synthetic", help="our held-out synthetic identities in the BIWI layout")
    syn.add_argument("--subjects", type=int, default=12)
    syn.add_argument("--frames", type=int, default=60)
    syn.add_argument("--data", type=Path, default=SYNTHETIC_CACHE, help="where the rendered set is kept")
    common(syn, DEFAULT_ABSOLUTE_MODEL if (DEFAULT_ABSOLUTE_MODEL / "config.json").is_file() else None)
    real = sub.add_parser("real", help="real faces with exact truth: roll sweep, mirror pairs, videos (hpe_training/evaluation/real.py)")
    real.add_argument("--out", type=Path, required=True, help="output directory")
    real.add_argument("--estimators", nargs="+", default=["facemesh", "vggt"], choices=sorted(ESTIMATORS))
    real.add_argument("--sweep-image", default="astronaut",
                      help="image for the roll sweep: 'astronaut' (scikit-image, public domain) or a path; 'none' to skip")
    real.add_argument("--labelled", type=Path, help="folder of labelled photos (AFLW2000 .jpg+.mat, or labels.csv)")
    real.add_argument("--videos", type=Path, nargs="*", default=[], help="unlabelled clips (GIF or video)")
    real.add_argument("--photo-hfov", type=float, default=20.0, help="field of view assumed for the labelled photos, deg")
    real.add_argument("--vggt-model", default="", help="VGGT model directory (default: the shipped model)")
    real.add_argument("--vggt-backend", default="onnxruntime", choices=["onnxruntime", "torch"],
                      help="VGGT backend; a torch model directory (a training run's model) needs torch")
    real.add_argument("--crop-mode", default="auto", choices=["auto", "paper", "aligned"],
                      help="crop given to VGGT: the estimator's own (auto), the paper's box crop, or landmark-aligned")
    errors = sub.add_parser("errors", help="fit the estimators' error models and check their calibration "
                                           "(hpe_training/evaluation/error_fit.py)")
    errors.add_argument("--out", type=Path, required=True, help="output directory (results, CSV, plots)")
    errors.add_argument("--labelled", type=Path, help="folder of labelled real photos (AFLW2000 .jpg+.mat, or labels.csv)")
    errors.add_argument("--no-astronaut", action="store_true", help="leave out scikit-image's astronaut")
    errors.add_argument("--sequences", type=int, default=8, help="rendered held-out identities")
    errors.add_argument("--frames", type=int, default=30, help="frames per rendered sequence")
    errors.add_argument("--write", action="store_true",
                        help="store the models fitted on everything beside the face mesh and the default VGGT model")
    errors.add_argument("--reuse-samples", action="store_true", help="refit on OUT/samples.npz instead of collecting again")
    return p


def _main_errors(args) -> int:
    from hpe_training.evaluation.error_fit import format_summary, run_errors
    from hpe_training.evaluation.real import read_labelled

    photos = read_labelled(args.labelled) if args.labelled else []
    astronaut = None
    if not args.no_astronaut:
        from skimage import data

        astronaut = data.astronaut()
    summary = run_errors(args.out, photos, astronaut, args.sequences, args.frames, args.write,
                         progress=lambda m: print(f"[hpe-eval errors] {m}", flush=True),
                         reuse_samples=args.reuse_samples)
    print(format_summary(summary))
    for path in summary.get("written", []):
        print(f"hpe-eval errors: wrote {path}")
    print(f"hpe-eval errors: results in {args.out}")
    return 0


def _main_real(args) -> int:
    import cv2

    from hpe_training.evaluation.real import ModelChoice, run_real, summary

    image = None
    if args.sweep_image == "astronaut":
        from skimage import data

        image = data.astronaut()
    elif args.sweep_image != "none":
        bgr = cv2.imread(args.sweep_image, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"hpe-eval: cannot read {args.sweep_image}", file=sys.stderr)
            return 2
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    choice = ModelChoice(model_path=args.vggt_model, backend=args.vggt_backend, crop_mode=args.crop_mode)
    results = run_real(args.out, args.estimators, image, args.labelled, args.videos, args.photo_hfov, choice=choice)
    print(summary(results))
    print(f"hpe-eval real: results in {args.out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dataset == "real":
        return _main_real(args)
    if args.dataset == "errors":
        return _main_errors(args)
    if args.no_relative and not args.absolute_model:
        print("hpe-eval: --no-relative needs --absolute-model", file=sys.stderr)
        return 2
    if args.no_relative and args.estimators:
        print("hpe-eval: --no-relative evaluates the absolute model only; drop --estimators", file=sys.stderr)
        return 2
    from hpe_training.evaluation.benchmark import biwi_subjects

    try:
        if args.dataset == "biwi":
            return _run(biwi_subjects(args.root, args.subjects), args, "BIWI", {"dataset": str(args.root)})
        from hpe_training.evaluation.biwi_fixture import FixtureConfig, write_fixture

        config = FixtureConfig(subjects=args.subjects, frames=args.frames)
        truth = args.data / "fixture_truth.json"
        if not truth.is_file() or json.loads(truth.read_text())["config"] != config.__dict__:
            write_fixture(args.data, config, progress=not args.quiet)
        boxes = json.loads(truth.read_text())["boxes"]
        return _run(biwi_subjects(args.data, known_boxes=boxes), args, "synthetic held-out identities",
                    {"dataset": f"hpe synthetic BIWI-layout set {config.__dict__}",
                     "face_boxes": "MTCNN; the generator's face box where MTCNN finds none"})
    except (FileNotFoundError, ValueError) as exc:
        print(f"hpe-eval: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
