"""Launch files and the RViz layout.

Where launch_ros is importable (a ROS install), the launch files are imported and expanded;
elsewhere those tests skip and the static checks below still run.
"""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / 'launch' / 'densehybrid.launch.py'
DEMO = REPO / 'launch' / 'demo.launch.py'
RVIZ = REPO / 'config' / 'densehybrid.rviz'
ARGS = {'image', 'input_topics', 'input_transport', 'params_file', 'checkpoint', 'device',
        'precision', 'namespace', 'use_sim_time', 'autostart', 'rviz'}


def strings(path: Path) -> set:
    """Every string constant in a Python file."""
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_launch_file_names_every_argument_and_sets_large_data():
    from densehybrid_ros.launch_args import launch_arguments
    assert ARGS <= {name for name, _, _ in launch_arguments()}
    assert 'launch_args.launch_arguments()' in LAUNCH.read_text()
    assert {'densehybrid-node', '--autostart', 'rviz2'} <= strings(LAUNCH)
    assert {'densehybrid-replay', 'densehybrid.launch.py'} <= strings(DEMO)
    for path in (LAUNCH, DEMO):        # both give their processes the package's transports
        assert 'from densehybrid_ros.transport import child_env' in path.read_text()


def test_rviz_layout_shows_input_overlay_heatmap_and_open_set():
    pytest.importorskip('rclpy')
    from densehybrid_ros.outputs import OUTPUTS
    config = yaml.safe_load(RVIZ.read_text())
    displays = {d['Name']: d for d in config['Visualization Manager']['Displays']}
    assert set(displays) == {'Input', 'Overlay', 'Anomaly heatmap', 'Open set'}
    topics = {name: d['Topic']['Value'] for name, d in displays.items()}
    assert topics['Input'] == '/image'
    for name in ('Overlay', 'Anomaly heatmap', 'Open set'):
        output = topics[name].rsplit('/', 1)[1]
        assert topics[name] == f'/densehybrid/{output}' and output in OUTPUTS
    assert all(d['Class'] == 'rviz_default_plugins/Image' for d in displays.values())


def load(path: Path):
    """Import a launch file as a module."""
    spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_files_import_and_expand(tmp_path):
    pytest.importorskip('launch_ros', reason='launch_ros not installed (no ROS install here)')
    from launch import LaunchContext
    from launch_ros.actions import Node

    module = load(LAUNCH)
    description = module.generate_launch_description()
    declared = {arg.name: arg for arg in description.get_launch_arguments()}
    assert ARGS <= set(declared)
    context = LaunchContext()
    context.launch_configurations.update(
        {name: arg.default_value[0].perform(context) if arg.default_value else ''
         for name, arg in declared.items()})
    context.launch_configurations.update({'rviz': 'true', 'namespace': 'car',
                                          'input_topics': '[/front/image, /left/image]'})
    actions = module._setup(context)
    from densehybrid_ros.launch_args import rviz_available
    assert [type(a) for a in actions][:2] == [Node, Node] if rviz_available() \
        else [type(a) for a in actions][0] is Node      # no rviz2: the node and a warning
    demo = load(DEMO).generate_launch_description()
    assert {'bag', 'image', 'rviz'} <= {a.name for a in demo.get_launch_arguments()}
