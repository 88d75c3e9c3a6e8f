"""Lifecycle node ``densehybrid``: camera images in; semantic, anomaly and open-set images out.

Threads: the executor runs subscription callbacks, which only keep the newest message per camera
(an overwritten one is counted as dropped), plus services, parameters and the diagnostics timer.
One inference thread takes the newest frame of every camera, runs them as one batch and publishes.
So latency never grows with load: at most one frame per camera waits. Under overload, a waiting
frame older than a third of its camera's period is skipped for the next one (``pacing``).
"""

import argparse
from dataclasses import dataclass
import gc
import logging
import math
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .conversions import check_message, msg_to_rgb, numpy_to_image
from .diagnostics import camera_status, CameraStats, diagnostic_array, ERROR, OK, status
from .pacing import FramePeriod, fresh_wait
from .qos import input_qos, OUTPUT_QOS
from .params import check_change, declare_parameters, read_parameters, validate_all
from ..images import ImageError
from ..outputs import needs, OUTPUTS, output_namespaces, Renderer
from ..transport import use_large_data

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
WARN_PERIOD_S = 5.0
_WITH_MESSAGE_INFO = hasattr(getattr(Subscription, 'CallbackType', None), 'WithMessageInfo')
ImageMsg = Union[Image, CompressedImage]


def one_line(exc: BaseException) -> str:
    """Format an exception as one log line: type and message, whitespace collapsed."""
    return f'{type(exc).__name__}: ' + ' '.join(str(exc).split())


class Camera:
    """One input: its subscription, output publishers, newest pending frame and counters."""

    def __init__(self, topic: str, out_ns: str) -> None:
        self.topic, self.out_ns = topic, out_ns
        self.stats = CameraStats()
        self.pending: Optional[ImageMsg] = None     # newest frame not yet taken
        self.arrival = 0.0                           # monotonic arrival time of ``pending``
        self.period = FramePeriod()
        self.publishers: Dict[str, Any] = {}
        self.subscription: Any = None

    def wanted(self, publish_all: bool) -> List[str]:
        """List the outputs to compute now: subscribed ones, or all with ``publish_all``."""
        return [name for name, pub in self.publishers.items()
                if publish_all or pub.get_subscription_count() > 0]


@dataclass
class _Job:
    camera: Camera
    header: Header
    rgb: np.ndarray
    outputs: List[str]


class DenseHybridNode(LifecycleNode):
    """The ``densehybrid`` lifecycle node (see the package README for its interface)."""

    def __init__(self, node_name: str = 'densehybrid', **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        declare_parameters(self)
        values = read_parameters(self)
        self._state = 'unconfigured'
        self._error = ''
        self._segmenter: Any = None     # densehybrid_ros.inference.Segmenter once configured
        self._calibrated_threshold = math.nan
        self._renderer: Optional[Renderer] = None      # drawing of the outputs, once configured
        self._alpha = float(values['overlay_alpha'])
        self._publish_all = bool(values['publish_all'])
        self._timeout = float(values['camera_timeout'])
        self._skip_stale = bool(values['skip_stale_frames'])
        self._cameras: List[Camera] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._last_warn: Dict[Tuple[str, str], Tuple[float, int]] = {}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Wall-clock timer: diagnostics keep coming with use_sim_time and no /clock.
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ----------------------------------------------------------------- lifecycle transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate parameters, load the checkpoint on the device and warm it up."""
        values = read_parameters(self)
        try:
            reason = validate_all(values)
            if reason:
                raise ValueError(reason)
            width = int(values['inference_width'])
            if values['torch_threads'] > 0:
                import torch
                torch.set_num_threads(int(values['torch_threads']))
            from ..inference import Segmenter   # torch: imported here so the node starts fast
            segmenter = Segmenter(values['checkpoint'] or None, device=values['device'],
                                  precision=values['precision'], inference_size=width or None,
                                  backend=values['backend'])
            warm_w = width or 640
            segmenter.warmup((max(1, round(warm_w * 9 / 16)), warm_w))
        except Exception as exc:  # any load failure: one line, stay unconfigured, inspectable
            self._error = f'configure failed: {one_line(exc)}'
            if self.context.ok():  # not while a signal is shutting the process down
                self.get_logger().error(self._error)
            return FAILURE
        self._segmenter, self._error = segmenter, ''
        self._calibrated_threshold = segmenter.threshold
        self._apply_threshold(values['anomaly_threshold'])
        self._renderer = Renderer(segmenter.palette, segmenter.calibration, self._alpha)
        self._state = 'inactive'
        self.get_logger().info(
            f'configured: {segmenter.arch} from {segmenter.meta.get("path")} on '
            f'{segmenter.device} ({segmenter.precision}), inference width '
            f'{width or "native"}, threshold {segmenter.threshold:g}')
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the cameras, advertise the outputs and start the inference thread."""
        values = read_parameters(self)
        try:
            reason = validate_all(values)
            if reason:
                raise ValueError(reason)
            self._make_cameras(values)
        except Exception as exc:
            self._teardown_cameras()
            self.get_logger().error(f'activate failed: {one_line(exc)}')
            return FAILURE
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name='densehybrid-inference',
                                        daemon=True)
        self._worker.start()
        self._state = 'active'
        self.get_logger().info('active: ' + '; '.join(
            f'{cam.topic} -> {cam.out_ns}/*' for cam in self._cameras))
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the inference thread, drop subscriptions and publishers, free cached memory."""
        self._teardown_cameras()
        _free_device_cache()
        self._state = 'inactive'
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the model."""
        self._segmenter = None
        _free_device_cache()
        self._state = 'unconfigured'
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything from any state."""
        self.close()
        self._state = 'finalized'
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after a failed transition."""
        self.close()
        self._state = 'unconfigured'
        return SUCCESS

    def autostart(self) -> bool:
        """Configure and activate (the ``--autostart`` flag); False if a step failed."""
        return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS

    def close(self) -> None:
        """Stop the worker and drop cameras and model (idempotent)."""
        self._teardown_cameras()
        self._segmenter = None
        _free_device_cache()

    # ----------------------------------------------------------------- set-up helpers
    def _make_cameras(self, values: Dict[str, Any]) -> None:
        """Fill ``self._cameras`` (as it goes, so a failure half-way can be torn down)."""
        compressed = values['input_transport'] == 'compressed'
        msg_type = CompressedImage if compressed else Image
        bases = []
        for topic in values['input_topics']:
            if topic.endswith('/compressed'):
                topic = topic[:-len('/compressed')]
            bases.append(self._resolve(topic))
        qos = input_qos(values['input_reliability'])
        for base, out_ns in zip(bases, output_namespaces(bases)):
            cam = Camera(base + '/compressed' if compressed else base, out_ns)
            self._cameras.append(cam)
            for name in OUTPUTS:
                cam.publishers[name] = self.create_publisher(Image, f'{out_ns}/{name}',
                                                             OUTPUT_QOS)
            if _WITH_MESSAGE_INFO:     # Iron and later: sequence numbers reveal lost frames
                def callback(msg: ImageMsg, info: Dict[str, Any], cam: Camera = cam) -> None:
                    cam.stats.sequence(info.get('publication_sequence_number'))
                    self._on_frame(cam, msg)
            else:
                def callback(msg: ImageMsg, cam: Camera = cam) -> None:
                    self._on_frame(cam, msg)
            cam.subscription = self.create_subscription(msg_type, cam.topic, callback, qos)

    def _resolve(self, topic: str) -> str:
        resolve = getattr(self, 'resolve_topic_name', None)   # remapping applied (Humble+)
        if resolve is not None:
            return resolve(topic)
        from rclpy.expand_topic_name import expand_topic_name
        return expand_topic_name(topic, self.get_name(), self.get_namespace())

    def _teardown_cameras(self) -> None:
        self._stop.set()
        self._wake.set()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=30.0)
        for cam in self._cameras:
            try:
                if cam.subscription is not None:
                    self.destroy_subscription(cam.subscription)
                for pub in cam.publishers.values():
                    self.destroy_publisher(pub)
            except Exception:  # context already shut down: nothing left to release
                pass
        self._cameras = []

    # ----------------------------------------------------------------- data path
    def _on_frame(self, cam: Camera, msg: ImageMsg) -> None:
        """Subscription callback: keep only the newest frame of this camera."""
        cam.stats.frame_received()
        now = time.monotonic()
        try:
            check_message(msg)         # O(1) header checks; decoding happens in the worker
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
            if not outputs:
                continue                  # nobody listens to this camera: compute nothing
            try:
                jobs.append(_Job(cam, msg.header, msg_to_rgb(msg), outputs))
            except ImageError as exc:
                self._bad_message(cam, exc)
        if not jobs:
            return
        renderer = self._renderer
        results = segmenter([job.rgb for job in jobs],
                            outputs=needs(name for job in jobs for name in job.outputs))
        for job, result in zip(jobs, results):
            for name in job.outputs:
                image = renderer.render(name, job.rgb, result)
                job.camera.publishers[name].publish(
                    numpy_to_image(image, OUTPUTS[name].encoding, job.header))
            job.camera.stats.frame_processed(self._latency(job.header))

    def _latency(self, header: Header) -> Optional[float]:
        stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        if stamp == 0:
            return None
        return (self.get_clock().now().nanoseconds - stamp) * 1e-9

    def _bad_message(self, cam: Camera, exc: ImageError) -> None:
        cam.stats.bad_message(exc.cause)
        self._warn_throttled(cam.topic, exc.cause, f'dropped a bad message on {cam.topic}: '
                                                   f'{exc.cause}: {exc}')

    def _warn_throttled(self, key: str, cause: str, text: str) -> None:
        """Log at most once per WARN_PERIOD_S per (key, cause), with the count suppressed."""
        now = time.monotonic()
        last, suppressed = self._last_warn.get((key, cause), (-math.inf, 0))
        if now - last < WARN_PERIOD_S:
            self._last_warn[(key, cause)] = (last, suppressed + 1)
            return
        self._last_warn[(key, cause)] = (now, 0)
        more = f' (+{suppressed} more since the last warning)' if suppressed else ''
        self.get_logger().warning(text + more)

    # ----------------------------------------------------------------- parameters, diagnostics
    def _on_set_parameters(self, parameters: List[Any]) -> SetParametersResult:
        """Validate every change; apply the run-time ones."""
        for param in parameters:
            reason = check_change(param.name, param.value, self._state)
            if reason:
                self.get_logger().warning(f'rejected {param.name}={param.value!r}: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        for param in parameters:
            if param.name == 'anomaly_threshold':
                self._apply_threshold(param.value)
            elif param.name == 'overlay_alpha':
                self._alpha = float(param.value)
                if self._renderer is not None:
                    self._renderer.alpha = self._alpha
            elif param.name == 'publish_all':
                self._publish_all = bool(param.value)
            elif param.name == 'camera_timeout':
                self._timeout = float(param.value)
            elif param.name == 'skip_stale_frames':
                self._skip_stale = bool(param.value)
        return SetParametersResult(successful=True)

    def _apply_threshold(self, value: float) -> None:
        if self._segmenter is not None:
            value = float(value)
            self._segmenter.threshold = self._calibrated_threshold if math.isnan(value) \
                else value

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        seg = self._segmenter
        if seg is not None:
            node_status = status(f'{name}: model', OK, self._state, {
                'state': self._state, 'model': seg.arch,
                'checkpoint': str(seg.meta.get('path', '')), 'device': str(seg.device),
                'precision': seg.precision, 'inference_width': str(seg.inference_size or 0),
                'anomaly_threshold': f'{seg.threshold:g}',
                'classes': str(len(seg.meta.get('class_names') or []))}, str(seg.device))
        else:
            node_status = status(f'{name}: model', ERROR if self._error else OK,
                                 self._error or self._state, {'state': self._state})
        statuses = [node_status] + [
            camera_status(name, cam.topic, cam.stats.report(), self._timeout,
                          cam.wanted(self._publish_all))
            for cam in self._cameras]
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diag_pub.publish(diagnostic_array(header, statuses))


def _free_device_cache() -> None:
    torch = sys.modules.get('torch')     # never import torch just to free nothing
    gc.collect()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _RosLogHandler(logging.Handler):
    """Forward the core's Python logging (densehybrid_ros.*) to the node's ROS logger."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        else:
            self._logger.info(text)


def main(argv: Optional[List[str]] = None) -> int:
    """Console script ``densehybrid-node [--autostart] [--ros-args ...]``."""
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog='densehybrid-node', formatter_class=argparse.RawDescriptionHelpFormatter,
        description='DenseHybrid lifecycle node: camera images in; semantic, anomaly-score and '
                    'open-set images out.',
        epilog='examples:\n'
               '  densehybrid-node --autostart --ros-args -r image:=/camera/image_raw\n'
               '  densehybrid-node --autostart --ros-args --params-file config/densehybrid.yaml '
               '\\\n      -p input_topics:=[/front/image_raw,/left/image_raw] -p device:=cuda\n'
               'without --autostart, drive it with lifecycle transitions '
               '(ros2 lifecycle set /densehybrid configure).')
    parser.add_argument('--autostart', action='store_true',
                        help='configure and activate at start (no lifecycle manager needed)')
    opts = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    use_large_data()      # large best-effort images need Fast DDS's LARGE_DATA transports
    rclpy.init(args=argv)
    node = None
    handler = None
    try:
        node = DenseHybridNode()
        handler = _RosLogHandler(node.get_logger())
        core_log = logging.getLogger('densehybrid_ros')
        core_log.addHandler(handler)
        core_log.setLevel(logging.INFO)
        core_log.propagate = False
        if opts.autostart:
            node.autostart()       # on failure the node stays up, unconfigured, inspectable
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # e.g. a parameter override outside its range
        if rclpy.ok():         # otherwise a signal shut the context down mid-transition
            print(f'densehybrid-node: {one_line(exc)}', file=sys.stderr)
            return 1
    finally:
        if handler is not None:
            logging.getLogger('densehybrid_ros').removeHandler(handler)
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
