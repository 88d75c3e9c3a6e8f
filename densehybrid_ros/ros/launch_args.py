"""Launch-argument handling of launch/*.launch.py as pure functions (no launch, no rclpy).

The launch files only turn these results into actions, so everything that can go wrong with an
argument (a relative default topic, a YAML list, a missing rviz2 or console script) is decided
and unit tested here, also where ROS launch is not installed.
"""

import os
from pathlib import Path
import shutil
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import yaml

from ..core.outputs import COMPRESSED_SUFFIX, output_namespaces
from ..core.paths import default_params_file, PACKAGE

# Node parameters a user chooses per launch, each a launch argument of its name: the model and
# its runtime (every parameter read at configure) and how the node meets the cameras (input_*,
# depth_topic, compressed_outputs for subscribers on other machines). Tuning (thresholds,
# obstacles, tracks, grid) and the camera mount stay in the params file (params_file:=...).
# name -> (type of the parameter, help); an empty argument keeps the params file's value.
NODE_ARGUMENTS: Dict[str, Tuple[type, str]] = {
    'checkpoint': (str, 'checkpoint path; empty = params file (embedded model by default)'),
    'device': (str, 'auto, cpu, cuda or cuda:N; empty = params file'),
    'precision': (str, 'fp32, fp16 (CUDA), bf16, or int8 with backend:=openvino and '
                       'artifacts:=...; empty = params file'),
    'backend': (str, 'auto (openvino fp32 on x86 where installed, torch on CUDA), torch, '
                     'onnxruntime or openvino (a graph exported at configure and cached, or '
                     'given by artifacts); empty = params file'),
    'artifacts': (str, 'comma-separated folders made by densehybrid-export (needed for int8); '
                       'empty = params file'),
    'inference_width': (int, 'width the model sees, aspect kept (0: camera resolution, at most '
                             "the checkpoint's max_inference_width); empty = params file"),
    'torch_threads': (int, 'CPU inference threads (0: torch default, all cores); '
                           'empty = params file'),
    'strict_params': (bool, 'true: an unknown parameter name in the params file fails '
                            'configure (else a warning); empty = params file'),
    'input_transport': (str, 'raw or compressed (CompressedImage on <topic>/compressed); '
                             'empty = params file'),
    'input_reliability': (str, 'best_effort (sensor-data QoS, as camera drivers publish) or '
                               'reliable; empty = params file'),
    'depth_topic': (str, "registered depth image relative to each camera's namespace; "
                         'empty = params file (none: obstacles on the ground plane)'),
    'compressed_outputs': (bool, 'true: also publish <output>/compressed for subscribers on '
                                 'other machines; empty = params file'),
}
# demo.launch.py's own: the model options, passed on with the camera topic and rviz.
DEMO_MODEL = ('checkpoint', 'device', 'precision', 'backend', 'artifacts')
DEMO_FORWARDED = ('image', *DEMO_MODEL, 'rviz')
TRUE, FALSE = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')
# RViz displays: display name -> output (None = the camera input itself).
RVIZ_IMAGES = {'Input': None, 'Overlay': 'overlay', 'Anomaly heatmap': 'anomaly_heatmap',
               'Open set': 'open_set', 'Anomaly grid': 'anomaly_grid',
               'Anomaly points': 'anomaly_points', 'Anomaly markers': 'anomaly_markers'}


def launch_arguments() -> List[Tuple[str, str, str]]:
    """(name, default, help) of every argument of densehybrid.launch.py."""
    return [
        ('image', 'image', 'camera topic the single default input `image` is remapped to'),
        ('input_topics', '', 'YAML list of camera topics for several cameras, e.g. '
                             '"[/front/image_raw, /left/image_raw]"; replaces `image`'),
        ('params_file', str(default_params_file()), 'node parameters file'),
        *((name, '', text) for name, (_, text) in NODE_ARGUMENTS.items()),
        ('namespace', '', 'namespace of the node'),
        ('use_sim_time', 'false', 'use /clock (bag replay with simulated time)'),
        ('autostart', 'true', 'configure and activate at start (false: wait for a manager)'),
        ('rviz', 'false', 'open RViz with input, overlay, heatmap and open-set images '
                          '(skipped with a warning when rviz2 is not installed)'),
        ('log_level', 'info', 'node log level'),
    ]


def demo_arguments() -> List[Tuple[str, str, str]]:
    """(name, default, help) of every argument of demo.launch.py.

    All but ``bag`` go on to densehybrid.launch.py (:data:`DEMO_FORWARDED`).
    """
    return [
        ('bag', 'out/sample_bag', 'rosbag2 to replay (written first if missing)'),
        ('image', '/camera/image', 'camera topic in the bag'),
        *((name, '', NODE_ARGUMENTS[name][1]) for name in DEMO_MODEL),
        ('rviz', 'true', 'open RViz'),
    ]


def flag(value: str) -> bool:
    """Read a launch boolean (true/1/yes/on, any case)."""
    return value.strip().lower() in TRUE


def input_topics(value: str) -> List[str]:
    """Parse ``input_topics:='[/a/image, /b/image]'`` (or one bare topic) into names."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValueError(f'input_topics is not a YAML list: {value!r} ({exc})') from None
    items = parsed if isinstance(parsed, list) else [parsed]
    return [str(item).strip() for item in items if item is not None and str(item).strip()]


def absolute(topic: str, namespace: str) -> str:
    """Resolve ``topic`` the way the node will: relative names go under ``namespace``."""
    if topic.startswith('/'):
        return topic
    return '/' + '/'.join(p for p in (namespace.strip('/'), topic.strip('/')) if p)


def node_parameters(args: Mapping[str, str]) -> Dict[str, Any]:
    """Parameter overrides from the launch arguments (empty arguments keep the params file).

    Values get the parameter's type here (``inference_width:=640`` an int), so a value that is
    none is refused at launch with one line naming the argument (ValueError).
    """
    overrides: Dict[str, Any] = {}
    for name, (kind, _) in NODE_ARGUMENTS.items():
        value = args.get(name, '').strip()
        if value:
            overrides[name] = typed(name, value, kind)
    if args.get('input_topics', '').strip():
        overrides['input_topics'] = input_topics(args['input_topics'])
    overrides['use_sim_time'] = flag(args.get('use_sim_time', 'false'))
    return overrides


def typed(name: str, value: str, kind: type) -> Any:
    """Read launch argument ``name`` as a ``kind`` parameter value (str, int or bool)."""
    if kind is bool:
        if value.lower() not in TRUE + FALSE:
            raise ValueError(f'launch argument {name} must be true or false, got {value!r}')
        return flag(value)
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f'launch argument {name} must be an integer, got {value!r}') \
                from None
    return value


def remappings(image: str) -> List[Tuple[str, str]]:
    """Remap the default input ``image`` unless the argument leaves it as it is."""
    return [] if image in ('', 'image') else [('image', image)]


def rviz_topics(args: Mapping[str, str]) -> Tuple[str, str]:
    """(input topic RViz shows, output namespace) for the first camera, both absolute."""
    namespace = args.get('namespace', '').strip('/')
    topics = (input_topics(args['input_topics']) if args.get('input_topics', '').strip()
              else [args.get('image') or 'image'])
    cameras = [absolute(t[:-len(COMPRESSED_SUFFIX)] if t.endswith(COMPRESSED_SUFFIX) else t,
                        namespace) for t in topics]
    # RViz picks the image transport from the topic's last token (/compressed).
    shown = cameras[0] + (COMPRESSED_SUFFIX if args.get('input_transport') == 'compressed'
                          else '')
    return shown, output_namespaces(cameras)[0]


def rviz_config(template: str, camera: str, output_ns: str) -> str:
    """Rewrite the RViz layout ``template`` (YAML text) for this camera and output namespace."""
    config = yaml.safe_load(template)
    for display in config['Visualization Manager']['Displays']:
        if display.get('Name') in RVIZ_IMAGES:
            output = RVIZ_IMAGES[display['Name']]
            display['Topic']['Value'] = camera if output is None else f'{output_ns}/{output}'
    return yaml.safe_dump(config, sort_keys=False)


def package_prefix(package: str) -> Optional[Path]:
    """Install prefix of ``package`` from the ament index, or None (pip install, no ROS)."""
    try:
        from ament_index_python.packages import get_package_prefix
        return Path(get_package_prefix(package))
    except Exception:  # not in the index, or ament_index_python absent
        return None


def rviz_available(which: Callable[[str], Optional[str]] = shutil.which) -> bool:
    """Tell whether rviz2 can be started (in the ament index, or on PATH)."""
    return package_prefix('rviz2') is not None or which('rviz2') is not None


def executable(name: str, which: Callable[[str], Optional[str]] = shutil.which) -> str:
    """Find one of our console scripts: ``lib/densehybrid_ros/`` (colcon), else PATH (pip).

    Raises FileNotFoundError naming both places, instead of launch's bare 'No such file'.
    """
    prefix = package_prefix(PACKAGE)
    if prefix is not None:
        candidate = prefix / 'lib' / PACKAGE / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = which(name)
    if found:
        return found
    where = f'{prefix}/lib/{PACKAGE}' if prefix else f'the ament index (no {PACKAGE})'
    raise FileNotFoundError(f'{name} not found in {where} nor on PATH: install the package')
