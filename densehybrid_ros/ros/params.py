"""The node's parameters: one table of specs, declared once each, and their validation.

``SPECS`` is the single source of truth: names, defaults (``DEFAULTS``), descriptions, ranges,
and when a change takes effect. config/densehybrid.yaml mirrors ``DEFAULTS`` (a test checks it).
"""

from dataclasses import dataclass
import difflib
import math
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)

from ..core.instances import InstanceConfig
from ..core.tracking import TrackerConfig
from ..deploy.runtimes import AUTO, BACKEND_CHOICES, PRECISIONS

# When a new value takes effect: at any time, at the next activate, or at the next configure.
RUNTIME, ACTIVATE, CONFIGURE = 'runtime', 'activate', 'configure'
TRANSPORTS = ('raw', 'compressed')
RELIABILITIES = ('best_effort', 'reliable')
_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default, description, constraints and when it takes effect."""

    name: str
    default: Any
    description: str
    stage: str = CONFIGURE
    choices: Tuple[str, ...] = ()
    int_range: Optional[Tuple[int, int]] = None
    float_range: Optional[Tuple[float, float]] = None

    def descriptor(self) -> ParameterDescriptor:
        """ROS descriptor with description, constraints text and numeric range."""
        notes = []
        if self.choices:
            notes.append('one of: ' + ', '.join(self.choices))
        notes.append({RUNTIME: 'changeable at run time',
                      ACTIVATE: 'read at activate; change it while inactive',
                      CONFIGURE: 'read at configure; change it while unconfigured'}[self.stage])
        desc = ParameterDescriptor(description=self.description,
                                   additional_constraints='; '.join(notes))
        if self.int_range is not None:
            desc.integer_range = [IntegerRange(from_value=self.int_range[0],
                                               to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            desc.floating_point_range = [FloatingPointRange(
                from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)]
        return desc


SPECS: Tuple[ParamSpec, ...] = (
    ParamSpec('checkpoint', '',
              'Path of a densehybrid_ros checkpoint; empty = the embedded default model.'),
    ParamSpec('device', 'auto', 'Torch device: auto (CUDA when available), cpu, cuda or cuda:N.'),
    ParamSpec('precision', 'fp32',
              'Inference precision (fp16 needs CUDA; int8 needs backend openvino and artifacts).',
              choices=PRECISIONS),
    ParamSpec('backend', AUTO,
              'Inference runtime: auto (the fastest with the same scores as torch fp32: '
              'openvino fp32 on an x86 CPU where it is installed and faster than torch there '
              '(timed once per inference size, recorded next to the cached graphs), torch on '
              'CUDA; else torch, with a warning), torch (eager), onnxruntime (fp32) or '
              'openvino (fp32, bf16); '
              'graphs are exported at configure and on the first frame of each new inference '
              'size (seconds, logged), and cached.',
              choices=BACKEND_CHOICES),
    ParamSpec('artifacts', '',
              'Comma-separated folders made by densehybrid-export for the onnxruntime / '
              'openvino backend (needed for int8); empty = export on the first frame of each '
              'inference size and cache. Given artifacts are the only sizes the node runs.'),
    ParamSpec('inference_width', 0,
              'Width the model sees (height keeps the aspect ratio); 0 = camera resolution, '
              "at most the checkpoint's max_inference_width (embedded model: 1024, measured). "
              'Outputs are always at the camera resolution.', int_range=(0, 16384)),
    ParamSpec('torch_threads', 0,
              'CPU threads for inference (torch intra-op); 0 = torch default (all cores). One '
              'fewer than the cores leaves room for DDS and the callbacks.',
              int_range=(0, 1024)),
    ParamSpec('strict_params', False,
              'A start value (params file or -p) whose name is no parameter of this node, such '
              'as the typo overlay_alfa, fails configure; false = a warning naming the closest '
              'parameter.'),
    ParamSpec('anomaly_threshold', math.nan,
              'Hybrid score above which a pixel is anomalous (open_set 255, anomaly_mask 255); '
              'NaN = the calibrated threshold from the checkpoint.', stage=RUNTIME),
    ParamSpec('overlay_alpha', 0.5, 'Weight of the open-set colours in the overlay image.',
              stage=RUNTIME, float_range=(0.0, 1.0)),
    ParamSpec('publish_all', False,
              'Compute and publish every output even without subscribers.', stage=RUNTIME),
    ParamSpec('skip_stale_frames', True,
              'Under overload, skip a waiting frame older than a third of its camera period '
              'and process the next one: lower latency, slightly lower output rate.',
              stage=RUNTIME),
    ParamSpec('input_topics', ['image'],
              'Camera image topics (base names; /compressed is appended for compressed '
              'transport). Outputs of <ns>/<name> go to <ns>/densehybrid/.', stage=ACTIVATE),
    ParamSpec('input_transport', 'raw',
              'raw = sensor_msgs/Image, compressed = sensor_msgs/CompressedImage (JPEG/PNG).',
              stage=ACTIVATE, choices=TRANSPORTS),
    ParamSpec('input_reliability', 'best_effort',
              'Reliability of the input subscriptions (depth 1); best_effort = sensor-data QoS.',
              stage=ACTIVATE, choices=RELIABILITIES),
    ParamSpec('compressed_outputs', False,
              'Also publish <output>/compressed (sensor_msgs/CompressedImage, image_transport '
              'naming) for subscribers on other machines: PNG for the mono8 ids and masks, JPEG '
              'for the colour pictures; anomaly_score (32FC1) has none. Encoded only while '
              'subscribed.', stage=ACTIVATE),
    ParamSpec('max_input_pixels', 16_777_216,
              'Frames with more pixels (width x height, read from the header before decoding) '
              'are dropped and counted as too_large; 0 = no limit. Default 16 MP (4096 x 4096).',
              stage=RUNTIME, int_range=(0, 2 ** 31 - 1)),
    ParamSpec('camera_timeout', 2.0,
              'Seconds without a frame after which a camera is reported as an ERROR in '
              '/diagnostics.', stage=RUNTIME, float_range=(0.1, 3600.0)),
    ParamSpec('domain_warn_fraction', 0.2,
              'Warn (once a minute per camera) when more than this fraction of a frame is '
              'flagged anomalous: the model may not fit the camera (e.g. the synthetic '
              'default model on real images); 0 = never.', stage=RUNTIME,
              float_range=(0.0, 1.0)),
    # Obstacles: instances and tracks (read at activate; trackers restart then).
    ParamSpec('drivable_classes', 'road',
              'Comma-separated closed-set classes an anomaly must stand on or touch to be an '
              "obstacle (the model's class names, e.g. 'road, sidewalk'); empty = every "
              'anomaly.', stage=ACTIVATE),
    ParamSpec('scenery_classes', 'vegetation',
              'Comma-separated closed-set classes that make an anomaly scenery, not an '
              'obstacle, when the head labels most of its pixels with them (a far tree line '
              'at the end of the road); empty = none.', stage=ACTIVATE),
    ParamSpec('obstacle_min_area', InstanceConfig.min_area_fraction,
              'Smallest obstacle, as a fraction of the image pixels (resolution independent; '
              "the default is SegmentMeIfYouCan's 500 px at 2048 x 1024).",
              stage=ACTIVATE, float_range=(0.0, 1.0)),
    ParamSpec('obstacle_small_area', InstanceConfig.small_area_fraction,
              'Smaller obstacles, down to this fraction of the image pixels, are kept when '
              'they peak above threshold + obstacle_small_peak_offset (far obstacles) ...',
              stage=ACTIVATE, float_range=(0.0, 1.0)),
    ParamSpec('obstacle_small_peak_offset', InstanceConfig.small_peak_offset,
              '... (score units; measured for the embedded model; 1000 = off).',
              stage=ACTIVATE, float_range=(-1000.0, 1000.0)),
    ParamSpec('obstacle_seed_offset', InstanceConfig.seed_offset,
              'Hysteresis: an obstacle is seeded by pixels scoring above threshold + this '
              '(score units; measured for the embedded model) ...', stage=ACTIVATE,
              float_range=(-1000.0, 1000.0)),
    ParamSpec('obstacle_grow_offset', InstanceConfig.grow_offset,
              '... and grows over connected pixels scoring above threshold + this.',
              stage=ACTIVATE, float_range=(-1000.0, 1000.0)),
    ParamSpec('track_confirm_hits', TrackerConfig.confirm_hits,
              'A track is confirmed (published) once seen in this many of the last '
              'track_confirm_window frames.', stage=ACTIVATE, int_range=(1, 100)),
    ParamSpec('track_confirm_window', TrackerConfig.confirm_window,
              'Window of the confirmation rule, frames.', stage=ACTIVATE, int_range=(1, 100)),
    ParamSpec('track_max_misses', TrackerConfig.max_misses,
              'Frames in a row a confirmed track is kept (coasting) without being seen.',
              stage=ACTIVATE, int_range=(0, 1000)),
    # Geometry: camera_info, the mount, the 3-D outputs (read at activate).
    ParamSpec('camera_info_topic', 'camera_info',
              "CameraInfo topic, relative to each camera's namespace (image_transport naming: "
              '<ns>/camera_info for <ns>/image_raw); remappable. Without camera_info the 3-D '
              'outputs are off and /diagnostics says why.', stage=ACTIVATE),
    ParamSpec('depth_topic', '',
              "Registered depth image relative to each camera's namespace (16UC1 mm or 32FC1 "
              'm); empty = place obstacles on the ground plane.', stage=ACTIVATE),
    ParamSpec('sync_tolerance', 0.1,
              'Largest stamp difference (s) at which camera_info and depth pair with a frame.',
              stage=ACTIVATE, float_range=(0.0, 10.0)),
    ParamSpec('base_frame', 'base_link',
              'Frame of the 3-D outputs (REP-103: x forward, y left, z up, z = 0 the ground).',
              stage=ACTIVATE),
    ParamSpec('camera_height', 0.0,
              'Camera height above the ground in base_frame (m); 0 = not set: the mount comes '
              'from TF (where tf2_ros is installed) or the 3-D outputs are off.',
              stage=ACTIVATE, float_range=(0.0, 100.0)),
    ParamSpec('camera_x', 0.0, 'Camera position along base_frame x (m).', stage=ACTIVATE,
              float_range=(-100.0, 100.0)),
    ParamSpec('camera_y', 0.0, 'Camera position along base_frame y (m).', stage=ACTIVATE,
              float_range=(-100.0, 100.0)),
    ParamSpec('camera_roll', 0.0, 'Camera roll (rad, REP-103; positive lowers the right side).',
              stage=ACTIVATE, float_range=(-math.pi, math.pi)),
    ParamSpec('camera_pitch', 0.0, 'Camera pitch (rad, REP-103; positive looks down).',
              stage=ACTIVATE, float_range=(-math.pi, math.pi)),
    ParamSpec('camera_yaw', 0.0, 'Camera yaw (rad, REP-103; positive turns left).',
              stage=ACTIVATE, float_range=(-math.pi, math.pi)),
    ParamSpec('grid_resolution', 0.1, 'anomaly_grid cell size (m).', stage=ACTIVATE,
              float_range=(0.01, 10.0)),
    ParamSpec('grid_length', 20.0, 'anomaly_grid extent forward of base_frame (m).',
              stage=ACTIVATE, float_range=(0.1, 1000.0)),
    ParamSpec('grid_width', 10.0, 'anomaly_grid extent across, centred on base_frame (m).',
              stage=ACTIVATE, float_range=(0.1, 1000.0)),
    ParamSpec('cloud_stride', 2,
              'anomaly_points keeps every n-th pixel row and column (2: 720p under 5 ms).',
              stage=ACTIVATE, int_range=(1, 64)),
)

SPEC_BY_NAME: Dict[str, ParamSpec] = {spec.name: spec for spec in SPECS}
DEFAULTS: Dict[str, Any] = {spec.name: spec.default for spec in SPECS}


def declare_parameters(node: Any) -> Dict[str, str]:
    """Declare every parameter of ``SPECS`` on ``node``; return why start values were refused.

    A start value (``-p`` or params file) that rclpy refuses (out of range, wrong type, empty)
    would end the process in ``declare_parameter``; instead the default is declared and the
    reason, naming the parameter and the value, is returned so configure can fail with it and
    the node stays up and inspectable.
    """
    overrides = getattr(node, '_parameter_overrides', {})     # rclpy's parsed start values
    refused: Dict[str, str] = {}
    for spec in SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
            node.get_parameter(spec.name)       # an empty start value (input_topics:=[]) raises
        except (InvalidParameterTypeException, InvalidParameterValueException,
                ParameterUninitializedException):
            if node.has_parameter(spec.name):
                node.undeclare_parameter(spec.name)
            value = _plain(getattr(overrides.get(spec.name), 'value', None))
            reason = validate(spec.name, value) if value is not None else \
                f'{spec.name} must not be empty, got an empty value'
            if reason is None and isinstance(spec.default, float):      # -p timeout:=3
                node.declare_parameter(spec.name, float(value), spec.descriptor(),
                                       ignore_override=True)
                continue
            refused[spec.name] = reason or f'{spec.name}: start value {value!r} refused'
            node.declare_parameter(spec.name, spec.default, spec.descriptor(),
                                   ignore_override=True)
    return refused


def unknown_parameters(node: Any) -> List[str]:
    """One message per start value (params file, ``-p``) that names no parameter of ``node``.

    Each names the closest declared parameter (``overlay_alfa`` -> ``overlay_alpha``).
    rclpy's ``qos_overrides.*`` are left out: they are declared with their publishers.
    """
    overrides = getattr(node, '_parameter_overrides', {})     # rclpy's parsed start values
    declared = sorted(DEFAULTS)
    messages = []
    for name in sorted(overrides):
        if node.has_parameter(name) or name.startswith('qos_overrides.'):
            continue
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"did you mean '{close[0]}'?" if close else 'see config/densehybrid.yaml'
        messages.append(f"unknown parameter '{name}' (params file or -p): {hint}")
    return messages


def check_unknown_parameters(node: Any, strict: bool) -> List[str]:
    """Warn once per unknown start parameter; with ``strict`` raise ValueError naming them all.

    Call at configure with the ``strict_params`` value; returns the messages.
    """
    messages = unknown_parameters(node)
    if messages and strict:
        raise ValueError('; '.join(messages) + ' (strict_params is true)')
    for message in messages:
        node.get_logger().warning(message)
    return messages


def split_list(text: str) -> Tuple[str, ...]:
    """Split a comma-separated string parameter into its items ('a, b,,c' -> a, b, c)."""
    return tuple(item.strip() for item in text.split(',') if item.strip())


def read_parameters(node: Any) -> Dict[str, Any]:
    """Return the current values of all parameters as plain Python values."""
    return {name: _plain(node.get_parameter(name).value) for name in DEFAULTS}


def validate(name: str, value: Any) -> Optional[str]:
    """Return why ``value`` is not acceptable for parameter ``name``, or None when it is."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    value = _plain(value)
    wrong_type = _type_error(spec, value)
    if wrong_type:
        return wrong_type
    if spec.choices and value not in spec.choices:
        return f'{name} must be one of {", ".join(spec.choices)}, got {value!r}'
    if name == 'device' and not _DEVICE.match(str(value)):
        return f'device must be auto, cpu, cuda or cuda:N, got {value!r}'
    if name == 'anomaly_threshold' and math.isinf(value):
        return 'anomaly_threshold must be a finite number (or NaN for the calibrated value)'
    if spec.float_range and not spec.float_range[0] <= value <= spec.float_range[1]:
        low, high = spec.float_range
        return f'{name} must be in [{low:g}, {high:g}], got {value!r}'
    if spec.int_range and not spec.int_range[0] <= value <= spec.int_range[1]:
        return f'{name} must be in [{spec.int_range[0]}, {spec.int_range[1]}], got {value!r}'
    if name in ('base_frame', 'camera_info_topic') and not str(value).strip():
        return f'{name} must not be empty'
    if name == 'input_topics':
        if not value or any(not isinstance(t, str) or not t.strip() for t in value):
            return f'input_topics must be a non-empty list of non-empty topic names, got {value}'
        if len(set(value)) != len(value):
            return f'input_topics has duplicates: {value}'
    return None


def validate_all(values: Mapping[str, Any]) -> Optional[str]:
    """First reason any of ``values`` is invalid, or None."""
    for name, value in values.items():
        reason = validate(name, value)
        if reason:
            return reason
    return None


def check_change(name: str, value: Any, lifecycle_state: str) -> Optional[str]:
    """Why a change of ``name`` is refused in ``lifecycle_state``, or None when accepted."""
    reason = validate(name, value)
    if reason or name not in SPEC_BY_NAME:
        return reason
    stage = SPEC_BY_NAME[name].stage
    if stage == CONFIGURE and lifecycle_state in ('inactive', 'active'):
        return f'{name} is read at configure: deactivate and clean up the node first'
    if stage == ACTIVATE and lifecycle_state == 'active':
        return f'{name} is read at activate: deactivate the node first'
    return None


def _type_error(spec: ParamSpec, value: Any) -> Optional[str]:
    """Say why ``value`` has the wrong type for ``spec`` (the default's type), or None."""
    default = spec.default
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), 'true or false'
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), 'an integer'
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), 'a number'
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), 'a string'
    else:
        ok, kind = isinstance(value, list), 'a list of strings'
    return None if ok else f'{spec.name} must be {kind}, got {value!r}'


def _plain(value: Any) -> Any:
    """Turn rclpy's array values into lists so comparisons and messages are simple."""
    if hasattr(value, 'tolist') and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value
