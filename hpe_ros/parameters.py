"""Every parameter of the head pose node, declared once: name, default, range, description.

The table is plain data (no rclpy import at module level) so that tests, the launch-file check
and the YAML check read the same source as the node. :func:`validate` is what the node's
set-parameters callback runs; :func:`descriptor` builds the rclpy descriptor. The estimator
names are :data:`hpe_core.estimator_names.ESTIMATORS` (a light module: no torch import).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from hpe_core.estimator_names import ESTIMATORS

Value = Union[bool, int, float, str]


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter.

    Attributes:
        name: dotted parameter name.
        default: default value; its Python type is the parameter type.
        description: what it does, with units.
        min_value / max_value: inclusive numeric range (ints and floats).
        choices: allowed string values.
        read_only: set at start-up only (paths, backend, topics): changing it at run time is
            refused; reconfigure the node (cleanup, configure) with new start-up values.
    """

    name: str
    default: Value
    description: str
    min_value: Optional[float] = None
    max_value: Optional[float] = None
    choices: Optional[Sequence[str]] = None
    read_only: bool = False

    @property
    def type_name(self) -> str:
        return type(self.default).__name__


PARAMETERS: tuple[ParameterSpec, ...] = (
    # -- model and backend (start-up only)
    ParameterSpec("estimator", "facemesh", "head-pose estimator: facemesh (MediaPipe face mesh, real-face pretrained; the default by the real-face benchmark), vggt (our VGGT model on `backend`) or fused (VGGT and the face mesh on every face, their estimates fused by their fitted error models)", choices=tuple(sorted(ESTIMATORS)), read_only=True),
    ParameterSpec("backend", "onnxruntime", "inference backend: onnxruntime, torch, tensorrt, or one registered by a plugin (HPE_BACKEND_PLUGINS)", read_only=True),
    ParameterSpec("model_path", "", "model directory (ONNX export or torch checkpoint); empty = the shipped default model", read_only=True),
    ParameterSpec("device", "cpu", "cpu, cuda or cuda:N", read_only=True),
    ParameterSpec("precision", "fp32", "fp32, fp16 or bf16 (fp16/bf16 need CUDA)", choices=("fp32", "fp16", "bf16"), read_only=True),
    ParameterSpec("engine_cache_dir", "", "where TensorRT engines are cached; empty = ~/.cache/hpe/engines", read_only=True),
    ParameterSpec("facemesh.workers", 1, "face-mesh runtimes a frame's faces are shared across, side by side on the CPU's cores (estimator facemesh; 1 = one network run after another; more did not pay on a 2-core CPU, docs/benchmarks.md)", min_value=1, max_value=16, read_only=True),
    ParameterSpec("fallback_to_cpu", True, "if the backend fails, switch to the onnxruntime CPU backend and go on"),
    # -- input
    ParameterSpec("image_qos", "sensor_data", "QoS of the image subscriptions", choices=("sensor_data", "reliable"), read_only=True),
    ParameterSpec("use_compressed", False, "subscribe image/compressed instead of image", read_only=True),
    ParameterSpec("use_camera_info", True, "take intrinsics from camera_info (else camera.default_hfov_deg)", read_only=True),
    ParameterSpec("queue_size", 1, "frames waiting for the worker; older ones are dropped", min_value=1, max_value=10, read_only=True),
    ParameterSpec("max_image_pixels", 4096 * 4096, "larger images are refused (pixels)", min_value=1, max_value=1 << 28),
    ParameterSpec("max_stamp_ahead_s", 10.0, "frames stamped more than this ahead of the node's clock are dropped (and not remembered by the order check), seconds; 0 = off", min_value=0.0, max_value=86400.0),
    ParameterSpec("max_frame_age_s", 1.0, "frames older than this (vs the newest stamp seen) are skipped, seconds; 0 = off", min_value=0.0, max_value=60.0),
    ParameterSpec("camera.default_hfov_deg", 60.0, "horizontal field of view used when no camera_info is available, degrees", min_value=10.0, max_value=170.0),
    # -- detection and crops
    ParameterSpec("detection.every_n_frames", 3, "run the face detector on every N-th frame; boxes are predicted in between", min_value=1, max_value=100),
    ParameterSpec("detection.max_rate_hz", 0.0, "at most this many detections per second; 0 = no cap", min_value=0.0, max_value=240.0),
    ParameterSpec("detection.min_face_px", 40, "smallest face the detector looks for, pixels", min_value=12, max_value=2000),
    ParameterSpec("detection.threshold", 0.9, "face probability threshold of the detector's last stage", min_value=0.0, max_value=1.0),
    ParameterSpec("crop.margin", 0.4, "margin around the face box of the square crop (VGGT-HPE: 0.4)", min_value=0.0, max_value=2.0),
    # -- anchors
    ParameterSpec("anchors.per_estimate", 3, "anchors fused per frame (one batched forward pass)", min_value=1, max_value=8),
    ParameterSpec("anchors.max_per_track", 12, "anchors kept per person; coverage decides what is evicted", min_value=1, max_value=64),
    ParameterSpec("anchors.keyframe_min_gap_deg", 15.0, "add a keyframe anchor when the estimate is this far from every anchor, degrees", min_value=1.0, max_value=90.0),
    ParameterSpec("anchors.keyframe_min_confidence", 0.7, "only estimates at least this confident become keyframes", min_value=0.0, max_value=1.0),
    ParameterSpec("anchors.max_chain_depth", 3, "keyframes at most this many steps from a calibrated anchor", min_value=0, max_value=10),
    ParameterSpec("anchors.max_accumulated_uncertainty_deg", 10.0, "keyframes with more accumulated uncertainty are not added, degrees", min_value=0.1, max_value=90.0),
    ParameterSpec("anchors.prefer_calibrated_within_deg", 10.0, "a calibrated anchor this close is preferred to nearer keyframes, degrees", min_value=0.0, max_value=180.0),
    ParameterSpec("anchors.bootstrap", "absolute", "first anchor of a new person without calibration: 'absolute' (first sight at the estimator's absolute estimate, marked bootstrapped; 'frontal' for estimators without one), 'frontal' (first sight taken as facing the camera, marked bootstrapped) or 'none' (wait for capture_anchor)", choices=("absolute", "frontal", "none")),
    ParameterSpec("anchors.max_people", 32, "people whose anchors are kept; beyond it the least recently seen person without a calibrated anchor is forgotten", min_value=1, max_value=1000),
    ParameterSpec("anchors.dir", "~/.ros/hpe_anchors", "directory that anchor pool files are saved to and loaded from", read_only=True),
    ParameterSpec("anchors.file", "anchors.hpepool", "default anchor pool file name inside anchors.dir"),
    ParameterSpec("anchors.autoload", False, "load anchors.file at configure if it exists", read_only=True),
    # -- outputs
    ParameterSpec("facing.cone_deg", 20.0, "a person faces the camera when the head's forward axis is within this angle of the camera, degrees", min_value=1.0, max_value=90.0),
    ParameterSpec("frames.camera_frame", "", "parent frame of the head frames; empty = the image's frame_id"),
    ParameterSpec("frames.face_prefix", "face_", "TF frame of a head: <face_prefix><id> (REP 155)"),
    ParameterSpec("frames.gaze_prefix", "gaze_", "TF gaze frame: <gaze_prefix><id> (REP 155)"),
    ParameterSpec("hri.enabled", True, "publish the REP 155 (ROS4HRI) face topics: /humans/faces/tracked and /humans/faces/<id>/roi, cropped, aligned", read_only=True),
    ParameterSpec("hri.grace_s", 1.0, "a face's REP 155 topics are destroyed this long (image time) after it was last in view, seconds", min_value=0.0, max_value=60.0),
    ParameterSpec("debug.publish_image", False, "publish debug_image with boxes and head axes"),
    ParameterSpec("debug.publish_markers", False, "publish RViz markers on markers"),
    ParameterSpec("diagnostics_period_s", 1.0, "period of /diagnostics, seconds", min_value=0.1, max_value=60.0, read_only=True),
)

SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}

#: Longest accepted string parameter (paths, names), characters.
MAX_STRING_CHARS = 4096
#: Longest accepted TF frame name (and prefix), characters.
MAX_FRAME_ID_CHARS = 256
_FRAME_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def frame_id_problem(frame_id: str, allow_slash: bool = True) -> Optional[str]:
    """Why ``frame_id`` is not a valid TF frame name, or ``None``.

    Rules: 1 to :data:`MAX_FRAME_ID_CHARS` characters; ``/``-separated segments (``/`` only where
    ``allow_slash``; no leading, trailing or double ``/``, as tf2 expects), each starting with a
    letter, digit or ``_`` and holding only letters, digits, ``_``, ``.`` and ``-``; no control
    characters or spaces; no ``.``/``..`` segment.
    """
    if not frame_id:
        return "is empty"
    if len(frame_id) > MAX_FRAME_ID_CHARS:
        return f"has {len(frame_id)} characters (at most {MAX_FRAME_ID_CHARS})"
    segments = frame_id.split("/")
    if len(segments) > 1 and not allow_slash:
        return "must not contain '/'"
    for segment in segments:
        if not _FRAME_SEGMENT.fullmatch(segment):
            return (f"has an invalid segment {segment[:40]!r} (letters, digits, '_', '.', '-'; "
                    "starting with a letter, digit or '_'; no empty segment)")
    return None


def validate(name: str, value: Any) -> Optional[str]:
    """Why ``value`` is not acceptable for parameter ``name``, or ``None`` when it is."""
    spec = SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        return f"{name} must be {expected.__name__}, got {type(value).__name__} {value!r}"
    if expected is float and not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if expected is str and (len(value) > MAX_STRING_CHARS or any(ord(c) < 32 for c in value)):
        return f"{name} must be at most {MAX_STRING_CHARS} characters without control characters, got {value[:60]!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {list(spec.choices)}, got {value!r}"
    if spec.min_value is not None and value < spec.min_value:
        return f"{name} must be >= {spec.min_value}, got {value!r}"
    if spec.max_value is not None and value > spec.max_value:
        return f"{name} must be <= {spec.max_value}, got {value!r}"
    if name == "backend":
        from hpe_core.estimator.registry import backend_names  # imports torch: only when asked

        if value not in backend_names():
            return f"backend must be one of {list(backend_names())}, got {value!r}"
    if name == "device" and not (value == "cpu" or value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit())):
        return f"device must be cpu, cuda or cuda:N, got {value!r}"
    if name in ("frames.face_prefix", "frames.gaze_prefix"):
        problem = frame_id_problem(value + "0", allow_slash=False)  # a prefix is followed by an id
        if problem is not None or len(value) > MAX_FRAME_ID_CHARS - 32:
            return f"{name} must be a frame name prefix (letters, digits, '_', '.', '-'; no '/'), got {value[:60]!r}: {problem or 'too long'}"
    if name == "frames.camera_frame" and value:
        problem = frame_id_problem(value)
        if problem is not None:
            return f"frames.camera_frame {value[:60]!r} {problem}"
    if name == "anchors.file" and (not value or "/" in value or value in (".", "..")):
        return f"anchors.file must be a plain file name inside anchors.dir, got {value!r}"
    return None


def validate_together(values: dict[str, Any]) -> Optional[str]:
    """Why a complete set of parameter values (name -> value, e.g. the current ones with a
    request's new ones laid over) cannot be applied together, or ``None``.

    Each value must pass :func:`validate`; then the values that constrain each other must make a
    valid anchor policy (``anchors.per_estimate <= anchors.max_per_track`` among others), so a
    change that the next configure would refuse is refused when it is requested.
    """
    for name, value in values.items():
        reason = validate(name, value)
        if reason is not None:
            return reason
    from hpe_core.anchors.policy import AnchorPolicy  # numpy only

    try:
        AnchorPolicy(**{field: values[param] for field, param in POLICY_PARAMETERS.items()})
    except (ValueError, TypeError) as exc:
        return f"anchor parameters do not fit together: {exc}"
    return None


#: AnchorPolicy field -> the node parameter that sets it.
POLICY_PARAMETERS: dict[str, str] = {
    "max_anchors_per_track": "anchors.max_per_track",
    "anchors_per_estimate": "anchors.per_estimate",
    "keyframe_min_gap_deg": "anchors.keyframe_min_gap_deg",
    "keyframe_min_confidence": "anchors.keyframe_min_confidence",
    "max_chain_depth": "anchors.max_chain_depth",
    "max_accumulated_uncertainty_deg": "anchors.max_accumulated_uncertainty_deg",
    "prefer_calibrated_within_deg": "anchors.prefer_calibrated_within_deg",
}


def descriptor(spec: ParameterSpec):  # -> rcl_interfaces.msg.ParameterDescriptor
    """The rclpy ParameterDescriptor of ``spec`` (description, range, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = spec.description
    if spec.choices:
        text += f" (one of: {', '.join(spec.choices)})"
    desc = ParameterDescriptor(description=text, read_only=spec.read_only)
    if isinstance(spec.default, float) and spec.min_value is not None and spec.max_value is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0)]
    elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.min_value is not None and spec.max_value is not None:
        desc.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)]
    return desc
