r"""Start the densehybrid node on one or more cameras, optionally with RViz.

Examples:
  ros2 launch densehybrid_ros densehybrid.launch.py image:=/camera/image_raw rviz:=true
  ros2 launch densehybrid_ros densehybrid.launch.py \
      input_topics:='[/front/image_raw, /left/image_raw]' device:=cuda precision:=fp16
  ros2 launch densehybrid_ros densehybrid.launch.py image:=/camera/image_raw \
      input_transport:=compressed checkpoint:=/data/models/ldn121.pt autostart:=false

Empty arguments keep the value from the params file. The node gets
FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (with 16 MB buffers, densehybrid_ros/transport.py) unless
that variable is already set: large images over best-effort UDP otherwise arrive as lost
fragments.
"""

import os
import tempfile
from typing import Any, Dict, List

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
import yaml

from densehybrid_ros.paths import package_share
from densehybrid_ros.transport import child_env

PACKAGE = 'densehybrid_ros'
NODE_OVERRIDES = ('checkpoint', 'device', 'precision', 'input_transport')
# RViz panels: display name -> output (None = the camera input itself).
RVIZ_IMAGES = {'Input': None, 'Overlay': 'overlay', 'Anomaly heatmap': 'anomaly_heatmap',
               'Open set': 'open_set'}


def arguments() -> List[DeclareLaunchArgument]:
    """Declare every launch argument with its default and help text."""
    config = package_share() / 'config'
    spec = [
        ('image', 'image', 'camera topic the single default input `image` is remapped to'),
        ('input_topics', '', 'YAML list of camera topics for several cameras, e.g. '
                             '"[/front/image_raw, /left/image_raw]"; replaces `image`'),
        ('input_transport', '', 'raw or compressed (CompressedImage on <topic>/compressed)'),
        ('params_file', str(config / 'densehybrid.yaml'), 'node parameters file'),
        ('checkpoint', '', 'checkpoint path; empty = params file (embedded model by default)'),
        ('device', '', 'auto, cpu, cuda or cuda:N; empty = params file'),
        ('precision', '', 'fp32, fp16 or bf16; empty = params file'),
        ('namespace', '', 'namespace of the node'),
        ('use_sim_time', 'false', 'use /clock (bag replay with simulated time)'),
        ('autostart', 'true', 'configure and activate at start (false: wait for a manager)'),
        ('rviz', 'false', 'open RViz with input, overlay, heatmap and open-set images'),
        ('log_level', 'info', 'node log level'),
    ]
    return [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in spec]


def _flag(value: str) -> bool:
    return value.strip().lower() in ('true', '1', 'yes', 'on')


def _input_topics(value: str) -> List[str]:
    parsed = yaml.safe_load(value)
    items = parsed if isinstance(parsed, list) else [parsed]
    return [str(item) for item in items if str(item).strip()]


def _absolute(topic: str, namespace: str) -> str:
    if topic.startswith('/'):
        return topic
    return '/'.join(p for p in ('', namespace.strip('/'), topic) if p)


def rviz_config(camera: str, output_ns: str, directory: str) -> str:
    """Write config/densehybrid.rviz with this camera's topics; returns the file's path."""
    config = yaml.safe_load((package_share() / 'config' / 'densehybrid.rviz').read_text())
    for display in config['Visualization Manager']['Displays']:
        if display.get('Name') in RVIZ_IMAGES:
            output = RVIZ_IMAGES[display['Name']]
            display['Topic']['Value'] = camera if output is None else f'{output_ns}/{output}'
    path = os.path.join(directory, 'densehybrid.rviz')
    with open(path, 'w') as stream:
        yaml.safe_dump(config, stream, sort_keys=False)
    return path


def _setup(context: LaunchContext) -> List[Any]:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    overrides: Dict[str, Any] = {name: arg(name) for name in NODE_OVERRIDES if arg(name)}
    if arg('input_topics').strip():
        overrides['input_topics'] = _input_topics(arg('input_topics'))
    overrides['use_sim_time'] = _flag(arg('use_sim_time'))
    env = child_env()
    namespace = arg('namespace').strip('/')
    remappings = [] if arg('image') == 'image' else [('image', arg('image'))]
    node = Node(package=PACKAGE, executable='densehybrid-node', name='densehybrid',
                namespace=namespace or None, output='screen', emulate_tty=True,
                parameters=[arg('params_file'), overrides], remappings=remappings,
                arguments=['--autostart'] if _flag(arg('autostart')) else [],
                ros_arguments=['--log-level', arg('log_level')], additional_env=env)
    actions: List[Any] = [node]
    if _flag(arg('rviz')):
        from densehybrid_ros.outputs import camera_base, output_namespaces
        topics = overrides.get('input_topics') or [arg('image')]
        cameras = [_absolute(camera_base(t), namespace) for t in topics]
        # RViz picks the image transport from the topic's last token (/compressed).
        shown = cameras[0] + ('/compressed' if arg('input_transport') == 'compressed' else '')
        config = rviz_config(shown, output_namespaces(cameras)[0],
                             tempfile.mkdtemp(prefix='densehybrid_rviz_'))
        actions.append(Node(package='rviz2', executable='rviz2', name='densehybrid_rviz',
                            arguments=['-d', config], output='screen', additional_env=env,
                            parameters=[{'use_sim_time': overrides['use_sim_time']}]))
    return actions


def generate_launch_description() -> LaunchDescription:
    """Launch description: arguments, the node and optionally RViz."""
    return LaunchDescription(arguments() + [OpaqueFunction(function=_setup)])
