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

NODE_OVERRIDES = ('checkpoint', 'device', 'precision', 'input_transport')
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
        ('input_transport', '', 'raw or compressed (CompressedImage on <topic>/compressed)'),
        ('params_file', str(default_params_file()), 'node parameters file'),
        ('checkpoint', '', 'checkpoint path; empty = params file (embedded model by default)'),
        ('device', '', 'auto, cpu, cuda or cuda:N; empty = params file'),
        ('precision', '', 'fp32, fp16 or bf16; empty = params file'),
        ('namespace', '', 'namespace of the node'),
        ('use_sim_time', 'false', 'use /clock (bag replay with simulated time)'),
        ('autostart', 'true', 'configure and activate at start (false: wait for a manager)'),
        ('rviz', 'false', 'open RViz with input, overlay, heatmap and open-set images '
                          '(skipped with a warning when rviz2 is not installed)'),
        ('log_level', 'info', 'node log level'),
    ]


def flag(value: str) -> bool:
    """Read a launch boolean (true/1/yes/on, any case)."""
    return value.strip().lower() in ('true', '1', 'yes', 'on')


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
    """Parameter overrides from the launch arguments (empty arguments keep the params file)."""
    overrides: Dict[str, Any] = {name: args[name] for name in NODE_OVERRIDES if args.get(name)}
    if args.get('input_topics', '').strip():
        overrides['input_topics'] = input_topics(args['input_topics'])
    overrides['use_sim_time'] = flag(args.get('use_sim_time', 'false'))
    return overrides


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
