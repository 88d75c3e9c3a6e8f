r"""Start the densehybrid node on one or more cameras, optionally with RViz.

Examples:
  ros2 launch densehybrid_ros densehybrid.launch.py image:=/camera/image_raw rviz:=true
  ros2 launch densehybrid_ros densehybrid.launch.py \
      input_topics:='[/front/image_raw, /left/image_raw]' device:=cuda precision:=fp16
  ros2 launch densehybrid_ros densehybrid.launch.py image:=/camera/image_raw \
      input_transport:=compressed checkpoint:=/data/models/ldn121.pt autostart:=false
  ros2 launch densehybrid_ros densehybrid.launch.py image:=/camera/image_raw \
      backend:=openvino precision:=int8 artifacts:=out/export/ov_int8 input_reliability:=reliable

Empty arguments keep the value from the params file (``ros2 launch densehybrid_ros
densehybrid.launch.py --show-args`` lists them). Every process gets the package's Fast DDS
profile (densehybrid_ros/core/transport.py) unless you configured Fast DDS yourself. The argument
handling lives in densehybrid_ros/ros/launch_args.py (unit tested without launch installed).
"""

import shutil
import tempfile
from typing import Any, List

from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, LogInfo, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from densehybrid_ros.ros import launch_args
from densehybrid_ros.core.paths import package_share, PACKAGE
from densehybrid_ros.core.transport import child_env


def arguments() -> List[DeclareLaunchArgument]:
    """Declare every launch argument with its default and help text."""
    return [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, default, text in launch_args.launch_arguments()]


def _rviz(args: dict, env: dict, use_sim_time: bool) -> List[Any]:
    """Start RViz on the first camera (layout in a folder removed at shutdown), or warn."""
    if not launch_args.rviz_available():
        return [LogInfo(msg='WARNING: rviz:=true but rviz2 is not installed: starting the '
                            'node without RViz')]
    shown, output_ns = launch_args.rviz_topics(args)
    folder = tempfile.mkdtemp(prefix='densehybrid_rviz_')
    path = f'{folder}/densehybrid.rviz'
    template = (package_share() / 'config' / 'densehybrid.rviz').read_text()
    with open(path, 'w') as stream:
        stream.write(launch_args.rviz_config(template, shown, output_ns))
    cleanup = OpaqueFunction(function=lambda _: shutil.rmtree(folder, ignore_errors=True))
    return [Node(package='rviz2', executable='rviz2', name='densehybrid_rviz',
                 arguments=['-d', path], output='screen', additional_env=env,
                 parameters=[{'use_sim_time': use_sim_time}]),
            RegisterEventHandler(OnShutdown(on_shutdown=[cleanup]))]


def _setup(context: LaunchContext) -> List[Any]:
    args = {name: LaunchConfiguration(name).perform(context)
            for name, _, _ in launch_args.launch_arguments()}
    overrides = launch_args.node_parameters(args)
    env = child_env()
    namespace = args['namespace'].strip('/')
    node = Node(package=PACKAGE, executable='densehybrid-node', name='densehybrid',
                namespace=namespace or None, output='screen', emulate_tty=True,
                parameters=[args['params_file'], overrides],
                remappings=launch_args.remappings(args['image']),
                arguments=['--autostart'] if launch_args.flag(args['autostart']) else [],
                ros_arguments=['--log-level', args['log_level']], additional_env=env)
    actions: List[Any] = [node]
    if launch_args.flag(args['rviz']):
        actions += _rviz(args, env, overrides['use_sim_time'])
    return actions


def generate_launch_description() -> LaunchDescription:
    """Launch description: arguments, the node and optionally RViz."""
    return LaunchDescription(arguments() + [OpaqueFunction(function=_setup)])
