r"""Demo: replay the sample bag into the densehybrid node and watch it in RViz.

  densehybrid-make-bag --output out/sample_bag       # once (done here if the bag is missing)
  ros2 launch densehybrid_ros demo.launch.py bag:=out/sample_bag
  ros2 launch densehybrid_ros demo.launch.py backend:=openvino precision:=int8 \
      artifacts:=out/export/ov_int8                   # made by densehybrid-export

Plays the bag's camera topic (/camera/image) in a loop with densehybrid-replay, starts the node
on it (embedded model unless checkpoint:=...) and opens RViz with input, overlay, heatmap and
open-set images; the model arguments (checkpoint, device, precision, backend, artifacts) go on
to densehybrid.launch.py. The tools are found like ExecutableInPackage does
(lib/densehybrid_ros/ of a colcon install), falling back to PATH for a pip install
(launch_args.executable).
"""

import os
from typing import Any, List

from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription,
                            OpaqueFunction, RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from densehybrid_ros.ros.launch_args import demo_arguments, DEMO_FORWARDED, executable
from densehybrid_ros.core.paths import package_share
from densehybrid_ros.core.transport import child_env


def _setup(context: LaunchContext) -> List[Any]:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    env = child_env()
    bag = arg('bag')
    replay = ExecuteProcess(cmd=[executable('densehybrid-replay'), bag, '--loop', '--quiet'],
                            output='screen', additional_env=env)
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(package_share() / 'launch' / 'densehybrid.launch.py')),
        launch_arguments=[(name, arg(name)) for name in DEMO_FORWARDED])
    if os.path.exists(bag):
        return [node, replay]
    make = ExecuteProcess(cmd=[executable('densehybrid-make-bag'), '--output', bag],
                          output='screen', additional_env=env)
    return [node, make, RegisterEventHandler(OnProcessExit(target_action=make,
                                                           on_exit=[replay]))]


def generate_launch_description() -> LaunchDescription:
    """Launch description: sample bag replay, the node, RViz."""
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, default, text in demo_arguments()),
        OpaqueFunction(function=_setup),
    ])
