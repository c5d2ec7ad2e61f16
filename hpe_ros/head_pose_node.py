"""The hpe head pose node (ROS 2 lifecycle node): images in, head poses out.

Lifecycle:
  configure   loads the model and detector, creates publishers, subscriptions and services,
              starts the worker thread (optionally loads the saved anchor pool);
  activate    frames are processed and outputs published;
  deactivate  frames are ignored; the worker idles;
  cleanup     stops the worker and frees the model, publishers, subscriptions and services.

Threads: subscription callbacks only put the message into a latest-wins queue (they never run
the model); one worker thread converts, runs the :class:`~hpe_core.pipeline.HeadPosePipeline`
and publishes. A slow model drops frames instead of piling them up. Services run in their own
callback group, served by the (single-threaded) executor while the worker processes frames.

Bad input never stops the worker: a frame that cannot be converted, is out of order, too old
or stamped ahead of the node's clock (:mod:`hpe_core.frame_order`, judged only after the frame
was converted, so a refused frame's stamp is never remembered) or makes the backend fail is
logged (per cause, throttled: :mod:`hpe_core.log_throttle`), counted and shown in /diagnostics,
and the next frame is processed as usual. Service callbacks never let an exception escape: a
request is validated before anything changes, a failure is answered with ``success: false``
and the reason, and services and lifecycle transitions take turns (a save or load that runs
while the node is cleaned up finishes first). An image whose ``frame_id`` is not a valid TF
frame (empty, for instance) still gets its ``/head_pose``; only TF is skipped, with a warning.

Topics (relative names; remap them in the launch file):
  in   image (sensor_msgs/Image) or image/compressed, camera_info
  out  head_pose (hpe_ros/HeadPoseArray), /tf (tf2_msgs/TFMessage: face_<id>, gaze_<id> as
       children of the image's frame_id, stamped with the image's stamp; <id> the REP 155 face
       id, e.g. f00001), /diagnostics, REP 155 /humans/faces/tracked and
       /humans/faces/<id>/{roi,cropped,aligned} (hri.enabled, :mod:`hpe_ros.rep155`),
       debug_image (optional), markers (optional)
Services: ~/capture_anchor, ~/clear_anchors, ~/save_anchors, ~/load_anchors, ~/enable.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from dataclasses import replace
from typing import Any, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import SetBool
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from hpe_core.anchors import persistence as pool_files
from hpe_core.anchors.policy import AnchorPolicy
from hpe_core.frame_order import FrameOrderGate
from hpe_core.latest_queue import LatestQueue
from hpe_core.log_throttle import CauseThrottle
from hpe_core.pipeline import BackendError, FrameResult, HeadPosePipeline, PipelineConfig, PipelineError
from hpe_core.pipeline_factory import PipelineSettings, build_estimator, build_pipeline, mtcnn_last_threshold
from hpe_ros.anchor_files import AnchorPathError, resolve_anchor_path
from hpe_ros.camera_info_conversion import CameraInfoError, intrinsics_from_camera_info
from hpe_ros.diagnostics_conversion import diagnostic_array_from_stats
from hpe_ros.head_pose_conversion import head_pose_msg
from hpe_ros.image_conversion import ImageConversionError, compressed_msg_to_rgb, image_msg_to_rgb
from hpe_ros.msg import HeadPoseArray
from hpe_ros.node_stats import NodeStats
from hpe_ros.parameters import PARAMETERS, SPECS, descriptor, frame_id_problem, validate_together
from hpe_ros.rep155 import Rep155Publisher, face_id_of
from hpe_ros.pose_conversion import head_tf_transforms, pose_matrix_from_request, seconds_from_time_msg, tf_message
from hpe_ros.srv import CaptureAnchor, ClearAnchors, LoadAnchors, SaveAnchors

#: QoS that tf2_ros uses for /tf: depth 100, reliable, volatile.
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE,
                    history=HistoryPolicy.KEEP_LAST)
RELIABLE_IMAGE_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

# Parameters that shape the pipeline; a change rebuilds its config before the next frame.
_PIPELINE_PARAMETERS = {name for name in SPECS if name.split(".")[0] in ("detection", "crop", "anchors", "facing", "camera")}
class HeadPoseNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, node_name: str = "head_pose_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._pipeline: Optional[HeadPosePipeline] = None
        self._queue: LatestQueue = LatestQueue(1)
        self._worker: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._active = False
        self._enabled = True
        self._config_dirty = False
        self._intrinsics: Optional[tuple[np.ndarray, int, int]] = None
        self._camera_info_problem = ""
        self._gate = FrameOrderGate()
        self._backend_in_use = ""
        self._stats = NodeStats()
        self._entities: list[Any] = []
        self._service_group = MutuallyExclusiveCallbackGroup()
        # Services and lifecycle transitions take turns (a transition waits for a running request).
        self._service_lock = threading.RLock()
        self._log_throttle = CauseThrottle(period_s=10.0)
        self._tf_skipped = 0
        self._detector_settings: Optional[tuple[int, float]] = None

    # ------------------------------------------------------------------ parameters
    def p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        """All of a request's values are checked together with the current ones (a change the
        next configure would refuse is refused now); accepted changes apply before the next frame."""
        values = {name: self.get_parameter(name).value for name in SPECS if self.has_parameter(name)}
        values.update({param.name: param.value for param in params})
        reason = validate_together(values)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        if any(param.name in _PIPELINE_PARAMETERS for param in params):
            self._config_dirty = True
        return SetParametersResult(successful=True)

    def settings(self) -> PipelineSettings:
        """Pipeline settings from the current parameter values."""
        policy = AnchorPolicy(
            max_anchors_per_track=self.p("anchors.max_per_track"),
            anchors_per_estimate=self.p("anchors.per_estimate"),
            keyframe_min_gap_deg=self.p("anchors.keyframe_min_gap_deg"),
            keyframe_min_confidence=self.p("anchors.keyframe_min_confidence"),
            max_chain_depth=self.p("anchors.max_chain_depth"),
            max_accumulated_uncertainty_deg=self.p("anchors.max_accumulated_uncertainty_deg"),
            prefer_calibrated_within_deg=self.p("anchors.prefer_calibrated_within_deg"),
        )
        pipeline = PipelineConfig(
            crop_margin=self.p("crop.margin"),
            default_hfov_deg=self.p("camera.default_hfov_deg"),
            bootstrap=self.p("anchors.bootstrap"),
            facing_cone_deg=self.p("facing.cone_deg"),
            max_people=self.p("anchors.max_people"),
            policy=policy,
        )
        return PipelineSettings(
            estimator=self.p("estimator"), backend=self.p("backend"), model_path=self.p("model_path"), device=self.p("device"),
            precision=self.p("precision"), engine_cache_dir=self.p("engine_cache_dir"),
            detector_min_face_px=self.p("detection.min_face_px"), detector_threshold=self.p("detection.threshold"),
            detection_every_n_frames=self.p("detection.every_n_frames"),
            detection_max_rate_hz=self.p("detection.max_rate_hz"), facemesh_workers=self.p("facemesh.workers"),
            pipeline=pipeline,
        )

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        with self._service_lock:
            return self._configure()

    def _configure(self) -> TransitionCallbackReturn:
        try:
            settings = self.settings()
            self._pipeline = build_pipeline(settings)
            self._backend_in_use = f"{settings.backend}/{settings.device}/{settings.precision}"
            self._detector_settings = (settings.detector_min_face_px, settings.detector_threshold)
        except Exception as exc:  # noqa: BLE001 - any load failure refuses the transition
            self.get_logger().error(f"configure failed: {exc}")
            self._pipeline = None
            return TransitionCallbackReturn.FAILURE
        if self.p("anchors.autoload"):
            self._load_pool(self.p("anchors.file"), quiet_missing=True)
        image_qos = qos_profile_sensor_data if self.p("image_qos") == "sensor_data" else RELIABLE_IMAGE_QOS
        pub = self.create_lifecycle_publisher
        self._pub_heads = pub(HeadPoseArray, "head_pose", 10)
        self._pub_tf = pub(TFMessage, "/tf", TF_QOS)
        self._pub_diag = pub(DiagnosticArray, "/diagnostics", 10)
        self._pub_debug = pub(Image, "debug_image", qos_profile_sensor_data)
        self._pub_markers = pub(MarkerArray, "markers", 10)
        self._rep155 = None
        if self.p("hri.enabled"):
            try:
                self._rep155 = Rep155Publisher(self, self.p("hri.grace_s"))
            except ImportError as exc:  # hri_msgs absent (tools/setup.sh builds it)
                self.get_logger().warning(f"REP 155 face topics off: {exc}")
        if self.p("use_compressed"):
            sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos)
        else:
            sub = self.create_subscription(Image, "image", self._on_image, image_qos)
        self._entities = [sub]
        if self.p("use_camera_info"):
            self._entities.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos))
        grp = self._service_group
        self._entities += [
            self.create_service(CaptureAnchor, "~/capture_anchor", self._guarded("capture_anchor", self._srv_capture), callback_group=grp),
            self.create_service(ClearAnchors, "~/clear_anchors", self._guarded("clear_anchors", self._srv_clear), callback_group=grp),
            self.create_service(SaveAnchors, "~/save_anchors", self._guarded("save_anchors", self._srv_save), callback_group=grp),
            self.create_service(LoadAnchors, "~/load_anchors", self._guarded("load_anchors", self._srv_load), callback_group=grp),
            self.create_service(SetBool, "~/enable", self._guarded("enable", self._srv_enable), callback_group=grp),
            self.create_timer(self.p("diagnostics_period_s"), self._publish_diagnostics),
        ]
        self._queue = LatestQueue(self.p("queue_size"))
        self._gate.reset()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="hpe_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"configured: backend {self._backend_in_use}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        self._queue.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        with self._service_lock:
            self._release_locked()

    def _release_locked(self) -> None:
        self._active = False
        self._stop.set()
        self._queue.close()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        for entity in self._entities:
            if hasattr(entity, "cancel"):
                entity.cancel()
                self.destroy_timer(entity)
            elif hasattr(entity, "srv_type"):
                self.destroy_service(entity)
            else:
                self.destroy_subscription(entity)
        self._entities = []
        if getattr(self, "_rep155", None) is not None:
            self._rep155.close()
            self._rep155 = None
        for name in ("_pub_heads", "_pub_tf", "_pub_diag", "_pub_debug", "_pub_markers"):
            pub = getattr(self, name, None)
            if pub is not None:
                self.destroy_publisher(pub)
                setattr(self, name, None)
        self._pipeline = None
        self._intrinsics = None

    @property
    def pipeline(self) -> Optional[HeadPosePipeline]:
        return self._pipeline

    # ------------------------------------------------------------------ input
    def _on_image(self, msg) -> None:
        if self._active and self._enabled:
            self._queue.put(msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            info = intrinsics_from_camera_info(msg)
        except Exception as exc:  # noqa: BLE001 - CameraInfoError, or anything a hostile message causes
            # Not a frame error: an uncalibrated camera publishes this at its frame rate. Log
            # (throttled) and show it in diagnostics; the default field of view is used.
            text = str(exc) if isinstance(exc, CameraInfoError) else f"{type(exc).__name__}: {exc}"
            if self._camera_info_problem != text:
                self._log("warning", "camera_info", f"camera_info ignored (default field of view used): {text}")
            self._camera_info_problem = text[:500]
            self._intrinsics = None
            return
        self._camera_info_problem = ""
        self._intrinsics = (info.K, info.width, info.height)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            msg = self._queue.get(timeout_s=0.2)
            if msg is None or not self._active or not self._enabled or self._pipeline is None:
                continue
            try:
                self._handle(msg)
            except Exception as exc:  # noqa: BLE001 - the node must survive any frame
                self._stats.frame_failed(f"{type(exc).__name__}: {exc}")
                decision = self._log_throttle.check(f"frame failed: {type(exc).__name__}: {exc}")
                if decision.log:
                    trace = f"\n{traceback.format_exc(limit=3)}" if decision.first else ""
                    self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}{decision.suffix()}{trace}")

    def _log(self, level: str, kind: str, text: str) -> None:
        """Log ``text`` throttled per ``kind`` of problem (:class:`CauseThrottle`)."""
        decision = self._log_throttle.check(kind)
        if not decision.log:
            return
        # one call site per severity: rclpy refuses a call site whose severity changes
        if level == "error":
            self.get_logger().error(text + decision.suffix())
        else:
            self.get_logger().warning(text + decision.suffix())

    def _handle(self, msg) -> None:
        stamp = seconds_from_time_msg(msg.header.stamp)
        try:
            max_pixels = self.p("max_image_pixels")
            if isinstance(msg, CompressedImage):
                rgb = compressed_msg_to_rgb(msg, max_pixels=max_pixels)
            else:
                rgb = image_msg_to_rgb(msg, max_pixels=max_pixels)
        except ImageConversionError as exc:
            self._stats.frame_skipped(f"image: {exc}")
            self._log("warning", f"image: {str(exc)[:60]}", f"frame skipped: {exc}")
            return
        # stamps are judged only now, on a valid frame (a refused frame's stamp is never remembered)
        self._gate.max_age_s = self.p("max_frame_age_s")
        self._gate.max_ahead_s = self.p("max_stamp_ahead_s")
        now_s = self.get_clock().now().nanoseconds * 1e-9
        verdict = self._gate.admit(stamp, now_s)
        if not verdict.admitted:  # out of order, too old or ahead: see hpe_core.frame_order
            self._stats.frame_skipped(verdict.reason)
            self._log("warning", f"stamp: {verdict.kind}", verdict.reason)
            return
        K = None
        if self._intrinsics is not None:
            K_info, width, height = self._intrinsics
            if (width, height) == (rgb.shape[1], rgb.shape[0]):
                K = K_info
        if self._config_dirty:
            self._apply_config()
        result = self._run_pipeline(rgb, stamp, K)
        if result is None:
            return
        self._gate.processed(stamp)
        self._stats.frame_done(result.timings_ms,
                               [h.expected_error_deg for h in result.heads if h.pose_cam is not None])
        self._publish(msg.header, rgb, result)

    def _run_pipeline(self, rgb: np.ndarray, stamp: float, K) -> Optional[FrameResult]:
        assert self._pipeline is not None
        try:
            return self._pipeline.process(rgb, stamp, K)
        except BackendError as exc:  # the estimator failed: report, maybe fall back, go on
            self._stats.frame_failed(f"backend {self._backend_in_use}: {exc}")
            self.get_logger().error(f"backend failed: {exc}", throttle_duration_sec=2.0)
            if self.p("fallback_to_cpu") and self._backend_in_use != "onnxruntime/cpu/fp32":
                self._fall_back_to_cpu()
            return None
        except ValueError as exc:  # bad input to the pipeline (stamps, sizes): skip the frame
            self._stats.frame_skipped(str(exc))
            self._log("warning", f"pipeline input: {str(exc)[:60]}", f"frame skipped: {exc}")
            return None

    def _fall_back_to_cpu(self) -> None:
        assert self._pipeline is not None
        settings = replace(self.settings(), backend="onnxruntime", device="cpu", precision="fp32")
        try:
            self._pipeline.estimator = build_estimator(settings)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"fallback to the CPU backend failed: {exc}")
            return
        self._backend_in_use = "onnxruntime/cpu/fp32"
        self.get_logger().warning("switched to the onnxruntime CPU backend after a backend failure")

    def _apply_config(self) -> None:
        assert self._pipeline is not None
        self._config_dirty = False
        settings = self.settings()
        self._pipeline.update_config(settings.pipeline_config())
        wanted = (settings.detector_min_face_px, settings.detector_threshold)
        detector = self._pipeline.scheduler.detector
        if wanted != self._detector_settings and hasattr(detector, "reconfigure"):
            detector.reconfigure(wanted[0], mtcnn_last_threshold(wanted[1]))
            self._detector_settings = wanted

    # ------------------------------------------------------------------ output
    def _publish(self, header, rgb: np.ndarray, result: FrameResult) -> None:
        parent = self.p("frames.camera_frame") or header.frame_id
        frame_problem = frame_id_problem(parent)
        if frame_problem is not None:  # /head_pose still goes out; TF cannot name the parent
            self._tf_skipped += 1
            self._log("warning", "frame_id", f"image frame_id {parent[:60]!r} {frame_problem}: no TF published "
                      "(set the camera driver's frame_id or the parameter frames.camera_frame)")
        face_prefix, gaze_prefix = self.p("frames.face_prefix"), self.p("frames.gaze_prefix")
        out = HeadPoseArray()
        out.header.stamp = header.stamp
        out.header.frame_id = parent
        transforms = []
        for head in result.heads:
            if head.pose_cam is None:
                continue
            face_id = face_id_of(head.track_id)
            out.heads.append(head_pose_msg(head, out.header, face_id))
            if frame_problem is not None:
                continue
            tfs = head_tf_transforms(header.stamp, parent, face_id, head.pose_cam)
            tfs[0].child_frame_id = f"{face_prefix}{face_id}"
            tfs[1].child_frame_id = f"{gaze_prefix}{face_id}"
            transforms += tfs
        self._pub_heads.publish(out)
        if self._rep155 is not None and self._pipeline is not None:
            self._rep155.grace_s = self.p("hri.grace_s")
            self._rep155.publish(header, rgb, result.heads, result.intrinsics, self._pipeline.landmarks5_of,
                                 seconds_from_time_msg(header.stamp), self._pipeline.mesh_landmarks_of)
        if transforms:  # none when the parent frame is invalid
            self._pub_tf.publish(tf_message(transforms))
        posed = [h for h in result.heads if h.pose_cam is not None]
        if self.p("debug.publish_markers") and posed and frame_problem is None:
            from hpe_ros.markers import head_markers

            self._pub_markers.publish(head_markers(header.stamp, parent, [face_id_of(h.track_id) for h in posed],
                                                   np.stack([h.pose_cam for h in posed])))
        if self.p("debug.publish_image"):
            from hpe_core.visualization import DebugFace, draw_debug_image
            from hpe_ros.image_conversion import rgb_to_image_msg

            faces = [DebugFace(h.box_xyxy, h.track_id, h.pose_cam) for h in result.heads]
            img = rgb_to_image_msg(draw_debug_image(rgb, result.intrinsics, faces))
            img.header = header
            self._pub_debug.publish(img)

    def _publish_diagnostics(self) -> None:
        try:
            self._publish_diagnostics_now()
        except Exception as exc:  # noqa: BLE001 - a timer callback must not end the executor
            self._log("error", f"diagnostics: {type(exc).__name__}", f"diagnostics not published: {type(exc).__name__}: {exc}")

    def _publish_diagnostics_now(self) -> None:
        if getattr(self, "_pub_diag", None) is None:
            return
        stats = self._stats.snapshot()
        stats["enabled"] = bool(self._enabled and self._active)
        stats["backend"] = self._backend_in_use
        stats["dropped_frames"] = self._queue.dropped
        stats["queue_capacity"] = self._queue.capacity
        stats["queue_high_water"] = self._queue.high_water
        stats["frames_out_of_order"] = self._gate.out_of_order
        stats["frames_too_old"] = self._gate.too_old
        stats["frames_stamp_ahead"] = self._gate.ahead
        stats["tf_skipped_bad_frame_id"] = self._tf_skipped
        stats["camera_info"] = self._camera_info_problem or ("ok" if self._intrinsics is not None else "none received")
        pipeline = self._pipeline
        if pipeline is not None:
            stats["anchors_per_track"] = {person: c.total for person, c in pipeline.pool.counts().items()}
        self._pub_diag.publish(diagnostic_array_from_stats(stats, stamp=self.get_clock().now().to_msg(),
                                                           hardware_id=self.get_name()))

    @property
    def stats(self) -> NodeStats:
        return self._stats

    # ------------------------------------------------------------------ services
    def _guarded(self, name: str, handler):
        """A service callback that never raises: requests take turns with lifecycle transitions
        (:attr:`_service_lock`), and any exception becomes ``success: false`` with the reason."""
        def callback(request, response):
            try:
                with self._service_lock:
                    return handler(request, response)
            except Exception as exc:  # noqa: BLE001 - a request must never take the node down
                try:
                    self._log("error", f"service {name}: {type(exc).__name__}", f"{name} failed: {type(exc).__name__}: {exc}")
                except Exception:  # noqa: BLE001 - not even logging may raise here
                    pass
                response.success = False
                response.message = f"{name} failed: {type(exc).__name__}: {exc}"[:2000]
                return response
        return callback

    def _srv_capture(self, request, response):
        response.track_id = request.track_id
        pipeline = self._pipeline
        if pipeline is None:
            response.success, response.message = False, "node is not configured"
            return response
        try:
            pose = pose_matrix_from_request(request.pose) if request.use_given_pose else None
            track = request.track_id if request.track_id >= 0 else None
            captured_track, anchor = pipeline.capture_anchor_of_track(track, pose)
        except (PipelineError, ValueError) as exc:
            response.success, response.message = False, f"capture refused, anchors unchanged: {exc}"
            return response
        response.success = True
        response.track_id = int(captured_track)  # the track captured, also for track_id -1
        response.anchor_id = anchor.anchor_id
        response.message = f"anchor {anchor.anchor_id} captured"
        return response

    def _srv_clear(self, request, response):
        pipeline = self._pipeline
        if pipeline is None:
            response.success, response.message = False, "node is not configured"
            return response
        try:
            response.removed = pipeline.clear_anchors(request.track_id if request.track_id >= 0 else None)
        except PipelineError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success, response.message = True, f"removed {response.removed} anchors"
        return response

    def _srv_save(self, request, response):
        pipeline = self._pipeline
        if pipeline is None:
            response.success, response.message = False, "node is not configured"
            return response
        try:
            path = resolve_anchor_path(self.p("anchors.dir"), request.path, self.p("anchors.file"))
            path.parent.mkdir(parents=True, exist_ok=True)
            pool_files.save(pipeline.pool, path)
        except (AnchorPathError, OSError, ValueError) as exc:
            response.success, response.message = False, f"save failed: {exc}"
            return response
        response.success, response.path, response.message = True, str(path), f"saved {len(pipeline.pool)} anchors"
        return response

    def _srv_load(self, request, response):
        ok, message, path, count = self._load_pool(request.path)
        response.success, response.message, response.path, response.anchors = ok, message, path, count
        return response

    def _load_pool(self, requested: str, quiet_missing: bool = False) -> tuple[bool, str, str, int]:
        """Load a pool file and swap it in only when it is valid and fits the running model and
        policy (crop size, anchors per person, people); otherwise the running pool is kept."""
        pipeline = self._pipeline
        if pipeline is None:
            return False, "node is not configured", "", 0
        try:
            path = resolve_anchor_path(self.p("anchors.dir"), requested, self.p("anchors.file"))
            if quiet_missing and not path.exists():
                return False, f"no saved pool at {path}", str(path), 0
            pool = load_pool_for(pipeline, path)
        except (AnchorPathError, OSError, pool_files.AnchorPoolFileError) as exc:
            self.get_logger().warning(f"anchor pool not loaded (running pool kept): {exc}")
            return False, f"load failed, running pool kept: {exc}", "", len(pipeline.pool)
        pipeline.replace_pool(pool)
        return True, f"loaded {len(pool)} anchors", str(path), len(pool)

    def _srv_enable(self, request, response):
        self._enabled = bool(request.data)
        if not self._enabled:
            self._queue.clear()
        response.success = True
        response.message = "enabled" if self._enabled else "disabled"
        return response


def load_pool_for(pipeline: HeadPosePipeline, path) -> Any:
    """:func:`hpe_core.anchors.persistence.load` checked against a running pipeline: the reader
    checks every crop against the estimator's crop size and the anchors per person against the
    policy; the people are checked against ``max_people`` here.

    Raises:
        AnchorPoolFileError: unreadable, invalid, or not fitting (nothing is replaced).
    """
    size = int(pipeline.estimator.input_size[0])
    pool = pool_files.load(path, pipeline.pool.policy, expected_crop_shape=(size, size, 3))
    people = pool.tracks()
    if len(people) > pipeline.config.max_people:
        raise pool_files.AnchorPoolFileError(f"{path}: {len(people)} people, more than anchors.max_people = "
                                             f"{pipeline.config.max_people}")
    return pool


def main(argv: Optional[list[str]] = None) -> int:
    """Run the node. ``--autostart`` configures and activates it (for machines without
    ``ros2 launch``); ROS arguments (``--ros-args --params-file config/head_pose.yaml``) pass through.
    """
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(description="hpe head pose node")
    parser.add_argument("--autostart", action="store_true", help="configure and activate at start-up")
    ros_args = rclpy.utilities.remove_ros_args(argv)
    options = parser.parse_args(ros_args[1:])
    # Ctrl-C and SIGTERM (what `ros2 launch` sends) end spin() here, in the main thread, so the
    # worker is stopped before the context is shut down (rclpy's own handler would shut the
    # context first and the worker's next publish would fail with a traceback).
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    node = HeadPoseNode()
    # One executor thread: callbacks only queue frames and answer services, and the model runs
    # in the node's own worker thread. rclpy's MultiThreadedExecutor (3 threads) cost the worker
    # most of a core in Python executor work under a 30 Hz stream: the node answered 4.3 Hz
    # with the face mesh, against 10.1 Hz with this one (hpe-soak, 2-core CPU, 2026-12-03).
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if options.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("configure failed; the node stays unconfigured")
            else:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        node._release()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
