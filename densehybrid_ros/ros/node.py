"""Lifecycle node ``densehybrid``: camera images in; semantic, anomaly and open-set images out.

Threads: the executor runs subscription callbacks, which only keep the newest message per camera
(an overwritten one is counted as dropped), plus services, parameters, the diagnostics timer and
the input subscriptions' QoS events.
One inference thread takes the newest frame of every camera, runs them as one batch and publishes.
So latency never grows with load: at most one frame per camera waits. Under overload, a waiting
frame older than a third of its camera's period is skipped for the next one (``pacing``).

The lifecycle transitions, the frame path and the parameter callbacks share the node's state;
one camera's subscriptions and publishers (``camera``), its object and 3-D outputs
(``obstacle_outputs``: tracks, detections, markers, points, grid), parameters (``params``), QoS
(``qos``), diagnostics, pacing, frame-size probing, decoding (``images``), rendering and topic
naming (``outputs``) live in their own modules.
"""

from dataclasses import dataclass
import gc
import math
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSPolicyKind
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

try:                                # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:                 # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

from .camera import Camera, ImageMsg
from .conversions import check_message, msg_to_rgb
from .diagnostics import diagnostic_array, DIAGNOSTICS_PERIOD_S, ERROR, OK, status
from .frame_size import check_frame_pixels
from .obstacle_outputs import obstacle_settings, ObstacleOutputs, tf_mount_lookup
from .pacing import fresh_wait
from .qos import input_qos, OUTPUT_QOS
from .params import (check_change, check_unknown_parameters, declare_parameters, DEFAULTS,
                     read_parameters, split_list, validate_all)
from ..core.domain import (flagged_fraction, flagged_warning, model_domain,
                           synthetic_model_warning, UNKNOWN)
from ..core.images import ImageError
from ..core.outputs import camera_base, needs, OUTPUTS, output_namespaces, Renderer

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
TOO_LARGE = 'too_large'           # drop cause: more pixels than max_input_pixels
COMPRESSIBLE = ('mono8', 'rgb8')  # outputs with a <topic>/compressed twin (not 32FC1 scores)
WARN_PERIOD_S = 5.0
DOMAIN_WARN_PERIOD_S = 60.0       # "the model may not fit this camera": once a minute per camera
_WITH_MESSAGE_INFO = hasattr(getattr(Subscription, 'CallbackType', None), 'WithMessageInfo')


def one_line(exc: BaseException) -> str:
    """Format an exception as one log line: type and message, whitespace collapsed."""
    return f'{type(exc).__name__}: ' + ' '.join(str(exc).split())


@dataclass
class _Job:
    camera: Camera
    header: Header
    rgb: np.ndarray
    outputs: List[str]
    objects: List[str]          # object / 3-D outputs with subscribers


class DenseHybridNode(LifecycleNode):
    """The ``densehybrid`` lifecycle node (see the package README for its interface)."""

    def __init__(self, node_name: str = 'densehybrid', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        # Refused start values (e.g. overlay_alpha:=5.0): configure fails with them, node up.
        self._start_errors = declare_parameters(self)
        self._error = '; '.join(self._start_errors.values())
        self._segmenter: Any = None     # deploy.segmenter.Segmenter once configured
        self._calibrated_threshold = math.nan
        self._renderer: Optional[Renderer] = None      # drawing of the outputs, once configured
        self._alpha = self._publish_all = self._timeout = self._skip_stale = None
        self._max_pixels = 0
        self._domain, self._domain_limit = UNKNOWN, 0.0   # model_domain of the checkpoint
        for name, value in DEFAULTS.items():   # the run-time values; configure reads them again
            self._apply_runtime(name, value)
        self._cameras: List[Camera] = []
        self._packed = False                       # cameras made with compressed twins
        self._mount_lookup: Any = None             # TF mount lookup (tf2_ros installed)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._last_warn: Dict[Tuple[str, str], Tuple[float, int]] = {}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Wall-clock timer: diagnostics keep coming with use_sim_time and no /clock.
        self._diag_timer = self.create_timer(
            DIAGNOSTICS_PERIOD_S, self._publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME))

    @property
    def lifecycle_state(self) -> str:
        """Label of the current lifecycle state: unconfigured, inactive, active or a transition."""
        return self._state_machine.current_state[1]

    def _valid_parameters(self) -> Dict[str, Any]:
        """Read every parameter and validate them together (configure and activate)."""
        if self._start_errors:
            raise ValueError('refused start value: ' + '; '.join(self._start_errors.values()))
        values = read_parameters(self)
        reason = validate_all(values)
        if reason:
            raise ValueError(reason)
        return values

    # ----------------------------------------------------------------- lifecycle transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, load the checkpoint on the device and warm it up."""
        try:
            values = self._valid_parameters()
            check_unknown_parameters(self, bool(values['strict_params']))   # typos: WARN
            width = int(values['inference_width'])
            if values['torch_threads'] > 0:
                import torch
                torch.set_num_threads(int(values['torch_threads']))
            # torch: imported here so the node starts fast
            from ..deploy.segmenter import Segmenter
            segmenter = Segmenter(values['checkpoint'] or None, device=values['device'],
                                  precision=values['precision'], inference_size=width or None,
                                  backend=values['backend'],
                                  artifacts=split_list(values['artifacts']))
            warm_w = width or 640
            for size in segmenter.backend.sizes or [(max(1, round(warm_w * 9 / 16)), warm_w)]:
                segmenter.warmup(size)      # given artifacts: their own sizes, nothing else
        except Exception as exc:  # any load failure: one line, stay unconfigured, inspectable
            self._error = f'configure failed: {one_line(exc)}'
            if self.context.ok():  # not while a signal is shutting the process down
                self.get_logger().error(self._error)
            return FAILURE
        self._segmenter, self._error = segmenter, ''
        self._domain = model_domain(segmenter.meta)
        self._calibrated_threshold = segmenter.threshold
        self._renderer = Renderer(segmenter.palette, segmenter.calibration, self._alpha)
        for name, value in values.items():
            self._apply_runtime(name, value)
        self.get_logger().info(
            f'configured: {segmenter.arch} from {segmenter.meta.get("path")} on '
            f'{segmenter.device} ({segmenter.backend_name} {segmenter.precision}), inference '
            f'width {width or "native"}, threshold {segmenter.threshold:g}')
        warning = synthetic_model_warning(self._domain)
        if warning:
            self.get_logger().warning(f'model domain: {warning}')
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the cameras, activate the output publishers, start inference."""
        try:
            values = self._valid_parameters()
            self._open_cameras(values)
        except Exception as exc:
            self._stop_cameras()
            self.get_logger().error(f'activate failed: {one_line(exc)}')
            return FAILURE
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name='densehybrid-inference',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info('active: ' + '; '.join(
            f'{cam.topic} -> {cam.out_ns}/*' for cam in self._cameras))
        done = super().on_activate(state)          # activates the lifecycle publishers
        header = Header(stamp=self.get_clock().now().to_msg())
        for cam in self._cameras:
            cam.obstacles.publish_labels(header)
        return done

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop inference and the subscriptions (outputs stay advertised), free cached memory."""
        self._stop_cameras()
        _free_device_cache()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the output publishers and the model."""
        self._close_cameras()
        self._segmenter = None
        _free_device_cache()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything from any state."""
        self.close()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after a failed transition."""
        self.close()
        return SUCCESS

    def autostart(self) -> bool:
        """Configure and activate (the ``--autostart`` flag); False if a step failed."""
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def close(self) -> None:
        """Stop the worker and drop cameras and model (idempotent)."""
        self._close_cameras()
        self._segmenter = None
        _free_device_cache()

    # ----------------------------------------------------------------- set-up helpers
    def _open_cameras(self, values: Dict[str, Any]) -> None:
        """Subscribe to every camera; make cameras and lifecycle publishers if topics changed.

        Publishers live from the first activate to cleanup (deactivated in between, so
        subscribers stay matched); they are remade only when ``input_topics`` changed.
        """
        compressed = values['input_transport'] == 'compressed'
        msg_type = CompressedImage if compressed else Image
        bases = []
        for topic in values['input_topics']:
            bases.append(self.resolve_topic_name(camera_base(topic)))
        topics = [base + '/compressed' if compressed else base for base in bases]
        packed = bool(values['compressed_outputs'])
        if [cam.topic for cam in self._cameras] != topics or self._packed != packed:
            self._close_cameras()
            self._packed = packed
            for topic, out_ns in zip(topics, output_namespaces(bases)):
                cam = Camera(topic, out_ns)
                self._cameras.append(cam)        # as it goes: a failure half-way is closed
                for name, spec in OUTPUTS.items():
                    cam.publishers[name] = self.create_lifecycle_publisher(
                        Image, f'{out_ns}/{name}', OUTPUT_QOS)
                    if packed and spec.encoding in COMPRESSIBLE:
                        cam.compressed[name] = self.create_lifecycle_publisher(
                            CompressedImage, f'{out_ns}/{name}/compressed', OUTPUT_QOS)
                cam.obstacles = ObstacleOutputs(self, out_ns)
        if self._mount_lookup is None and values['camera_height'] <= 0:
            self._mount_lookup = tf_mount_lookup(self)
        settings = obstacle_settings(values, list(self._segmenter.class_names),
                                     self._mount_lookup, self.get_logger().warning)
        qos = input_qos(values['input_reliability'])
        for cam, base in zip(self._cameras, bases):
            namespace = base.rpartition('/')[0]
            info = self.resolve_topic_name(f'{namespace}/{values["camera_info_topic"]}')
            depth = values['depth_topic'] and self.resolve_topic_name(
                f'{namespace}/{values["depth_topic"]}')
            cam.obstacles.start(settings, info, depth, 'rect' in base.rpartition('/')[2])
            if _WITH_MESSAGE_INFO:     # Iron and later: sequence numbers reveal lost frames
                def callback(msg: ImageMsg, info: Dict[str, Any], cam: Camera = cam) -> None:
                    cam.stats.sequence(info.get('publication_sequence_number'))
                    self._on_frame(cam, msg)
            else:
                def callback(msg: ImageMsg, cam: Camera = cam) -> None:
                    self._on_frame(cam, msg)
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda event, cam=cam: self._on_incompatible_qos(cam, event))
            cam.subscription = self.create_subscription(msg_type, cam.topic, callback, qos,
                                                        event_callbacks=events)

    def _stop_cameras(self) -> None:
        """Stop the inference thread and drop the subscriptions and any waiting frame."""
        self._stop.set()
        self._wake.set()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=30.0)
        for cam in self._cameras:
            if cam.obstacles is not None:
                cam.obstacles.unsubscribe()
            subscription, cam.subscription, cam.pending = cam.subscription, None, None
            try:
                if subscription is not None:
                    self.destroy_subscription(subscription)
            except Exception:  # context already shut down: nothing left to release
                pass

    def _close_cameras(self) -> None:
        """Stop the cameras and destroy their output publishers."""
        self._stop_cameras()
        for cam in self._cameras:
            if cam.obstacles is not None:
                cam.obstacles.close()
            for pub in list(cam.publishers.values()) + list(cam.compressed.values()):
                try:
                    self.destroy_lifecycle_publisher(pub)
                except Exception:  # context already shut down
                    pass
        self._cameras = []

    # ----------------------------------------------------------------- data path
    def _on_frame(self, cam: Camera, msg: ImageMsg) -> None:
        """Subscription callback: keep only the newest frame of this camera."""
        cam.stats.frame_received()
        now = time.monotonic()
        try:
            check_message(msg)         # O(1) header checks; decoding happens in the worker
            check_frame_pixels(msg, self._max_pixels)            # before any decoding
        except ImageError as exc:
            self._bad_message(cam, exc)
            return
        with self._lock:
            if cam.pending is not None:
                cam.stats.frame_dropped()
            cam.pending, cam.arrival = msg, now
            cam.period.arrived(now)
        self._wake.set()

    def _run(self) -> None:
        """Inference thread: newest frames of all cameras -> one batch -> publish."""
        while not self._stop.is_set():
            if not self._wake.wait(0.25):
                continue
            self._wake.clear()
            if self._skip_stale:
                self._wait_for_fresh_frames()
            with self._lock:
                batch = [(cam, cam.pending) for cam in self._cameras if cam.pending]
                for cam in self._cameras:
                    cam.pending = None
            if not batch or self._stop.is_set():
                continue
            try:
                self._process(batch)
            except Exception as exc:  # keep serving; a shut-down context ends the loop
                if self._stop.is_set() or not self.context.ok():
                    return
                self._warn_throttled('inference', 'error', f'frame skipped: {one_line(exc)}')

    def _wait_for_fresh_frames(self) -> None:
        """Wait (at most 1.25 periods) for the next frame of cameras whose waiting one is stale."""
        now = time.monotonic()
        with self._lock:
            stale = [(cam, cam.pending, now + wait) for cam in self._cameras if cam.pending
                     for wait in [fresh_wait(now - cam.arrival, cam.period.period)] if wait > 0]
        while stale and not self._stop.is_set():
            now = time.monotonic()
            with self._lock:      # still the same old frame and its successor not yet overdue
                stale = [(cam, msg, end) for cam, msg, end in stale
                         if cam.pending is msg and end > now]
            if stale:
                self._wake.wait(min(end for _, _, end in stale) - now)
                self._wake.clear()

    def _process(self, batch: List[Tuple[Camera, ImageMsg]]) -> None:
        segmenter = self._segmenter
        if segmenter is None:
            return
        jobs: List[_Job] = []
        for cam, msg in batch:
            outputs = cam.wanted(self._publish_all)
            objects = cam.wanted_objects(self._publish_all)
            if not outputs and not objects:
                continue                  # nobody listens to this camera: compute nothing
            try:
                jobs.append(_Job(cam, msg.header, msg_to_rgb(msg, self._max_pixels),
                                 outputs, objects))
            except ImageError as exc:
                self._bad_message(cam, exc)
        if not jobs:
            return
        renderer = self._renderer
        wanted = needs(name for job in jobs for name in job.outputs)
        if any(job.objects for job in jobs):
            wanted |= {'score', 'semantic'}
        results = segmenter([job.rgb for job in jobs], outputs=wanted)
        for job, result in zip(jobs, results):
            for name in job.outputs:
                image = renderer.render(name, job.rgb, result)
                job.camera.publish(name, image, OUTPUTS[name].encoding, job.header,
                                   self._publish_all)
            if job.objects:
                job.camera.obstacles.process(result, job.header, segmenter.threshold,
                                             renderer.heatmap_range(result.score), job.objects)
            job.camera.stats.frame_processed(self._latency(job.header))
            self._check_domain(job.camera.topic, result, segmenter.threshold)

    def _check_domain(self, topic: str, result: Any, threshold: float) -> None:
        """Warn (throttled) when more than domain_warn_fraction of a frame is flagged."""
        if self._domain_limit <= 0:
            return
        fraction = flagged_fraction(result, threshold)
        text = None if fraction is None else flagged_warning(
            fraction, self._domain_limit, self._domain, f'a frame of {topic}')
        if text:
            self._warn_throttled(topic, 'domain', text, DOMAIN_WARN_PERIOD_S)

    def _latency(self, header: Header) -> Optional[float]:
        stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        if stamp == 0:
            return None
        return (self.get_clock().now().nanoseconds - stamp) * 1e-9

    def _on_incompatible_qos(self, cam: Camera, event: Any) -> None:
        """Count and log a camera publisher whose QoS the input subscription cannot match."""
        try:
            policy = QoSPolicyKind(event.last_policy_kind).name
        except ValueError:                  # a kind this rclpy does not name: never fatal
            policy = f'POLICY_{event.last_policy_kind}'
        cam.stats.incompatible_qos(policy, max(1, event.total_count_change))
        # A best-effort subscription matches any reliability: so this one is reliable and the
        # publisher best effort, as camera drivers publish (sensor-data QoS).
        fix = '; set input_reliability to best_effort' if policy == 'RELIABILITY' else ''
        self._warn_throttled(cam.topic, f'qos_{policy}', f'a publisher of {cam.topic} offers '
                             f'QoS incompatible with the input subscription ({policy}): no '
                             f'frame of it will arrive{fix}')

    def _bad_message(self, cam: Camera, exc: ImageError) -> None:
        # A frame over the budget is refused here or, if it was taken before the budget fell,
        # in the worker's decode: one cause, one throttled warning that names the parameter.
        cam.stats.bad_message(exc.cause)
        hint = ' (parameter max_input_pixels)' if exc.cause == TOO_LARGE else ''
        self._warn_throttled(cam.topic, exc.cause, f'dropped a bad message on {cam.topic}: '
                                                   f'{exc.cause}: {exc}{hint}')

    def _warn_throttled(self, key: str, cause: str, text: str,
                        period: float = WARN_PERIOD_S) -> None:
        """Log at most once per ``period`` s per (key, cause), with the count suppressed."""
        now = time.monotonic()
        last, suppressed = self._last_warn.get((key, cause), (-math.inf, 0))
        if now - last < period:
            self._last_warn[(key, cause)] = (last, suppressed + 1)
            return
        self._last_warn[(key, cause)] = (now, 0)
        more = f' (+{suppressed} more since the last warning)' if suppressed else ''
        self.get_logger().warning(text + more)

    # ----------------------------------------------------------------- parameters, diagnostics
    def _on_set_parameters(self, parameters: List[Any]) -> SetParametersResult:
        """Validate every change; apply the run-time ones."""
        for param in parameters:
            reason = check_change(param.name, param.value, self.lifecycle_state)
            if reason:
                self.get_logger().warning(f'rejected {param.name}={param.value!r}: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        for param in parameters:
            if self._start_errors.pop(param.name, None) is not None:   # fixed after start
                self._error = '; '.join(self._start_errors.values())
            self._apply_runtime(param.name, param.value)
        return SetParametersResult(successful=True)

    def _apply_runtime(self, name: str, value: Any) -> None:
        """Apply a validated value of a run-time parameter (others are read at transitions)."""
        if name == 'anomaly_threshold':
            self._apply_threshold(value)
        elif name == 'overlay_alpha':
            self._alpha = float(value)
            if self._renderer is not None:
                self._renderer.alpha = self._alpha
        elif name == 'publish_all':
            self._publish_all = bool(value)
        elif name == 'camera_timeout':
            self._timeout = float(value)
        elif name == 'skip_stale_frames':
            self._skip_stale = bool(value)
        elif name == 'max_input_pixels':
            self._max_pixels = int(value)
        elif name == 'domain_warn_fraction':
            self._domain_limit = float(value)

    def _apply_threshold(self, value: float) -> None:
        if self._segmenter is not None:
            value = float(value)
            self._segmenter.threshold = self._calibrated_threshold if math.isnan(value) \
                else value

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        seg = self._segmenter
        state = self.lifecycle_state
        if seg is not None:
            node_status = status(f'{name}: model', OK, state, {
                'state': state, 'model': seg.arch,
                'checkpoint': str(seg.meta.get('path', '')), 'device': str(seg.device),
                'precision': seg.precision, 'inference_width': str(seg.inference_size or 0),
                'anomaly_threshold': f'{seg.threshold:g}', 'model_domain': self._domain,
                'classes': str(len(seg.meta.get('class_names') or []))}, str(seg.device))
        else:
            node_status = status(f'{name}: model', ERROR if self._error else OK,
                                 self._error or state, {'state': state})
        statuses = [node_status] + [
            cam.diagnose(name, self._timeout, self._publish_all,
                         self.count_publishers(cam.topic), state == 'active', self.get_logger())
            for cam in self._cameras]
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diag_pub.publish(diagnostic_array(header, statuses))


def _free_device_cache() -> None:
    torch = sys.modules.get('torch')     # never import torch just to free nothing
    gc.collect()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
