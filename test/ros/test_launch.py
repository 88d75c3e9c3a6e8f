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
ARGS = {'image', 'input_topics', 'input_transport', 'input_reliability', 'params_file',
        'checkpoint', 'device', 'precision', 'backend', 'artifacts', 'inference_width',
        'torch_threads', 'namespace', 'use_sim_time', 'autostart', 'rviz'}


def strings(path: Path) -> set:
    """Every string constant in a Python file."""
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_launch_file_names_every_argument_and_sets_large_data():
    from densehybrid_ros.ros.launch_args import launch_arguments
    assert ARGS <= {name for name, _, _ in launch_arguments()}
    assert 'launch_args.launch_arguments()' in LAUNCH.read_text()
    assert {'densehybrid-node', '--autostart', 'rviz2'} <= strings(LAUNCH)
    assert {'densehybrid-replay', 'densehybrid.launch.py'} <= strings(DEMO)
    assert 'demo_arguments()' in DEMO.read_text() and 'DEMO_FORWARDED' in DEMO.read_text()
    for path in (LAUNCH, DEMO):        # both give their processes the package's transports
        assert 'from densehybrid_ros.core.transport import child_env' in path.read_text()


RVIZ_IMAGES = {'Input', 'Overlay', 'Anomaly heatmap', 'Open set'}
RVIZ_SCENE = {'Anomaly grid': ('rviz_default_plugins/Map', 'anomaly_grid'),
              'Anomaly points': ('rviz_default_plugins/PointCloud2', 'anomaly_points'),
              'Anomaly markers': ('rviz_default_plugins/MarkerArray', 'anomaly_markers')}


def test_rviz_layout_shows_the_images_and_the_grid_points_and_markers():
    pytest.importorskip('rclpy')
    from densehybrid_ros.core.outputs import OUTPUTS
    from densehybrid_ros.core.projection import POINT_FIELDS
    from densehybrid_ros.ros.params import DEFAULTS
    manager = yaml.safe_load(RVIZ.read_text())['Visualization Manager']
    displays = {d['Name']: d for d in manager['Displays']}
    assert set(displays) == RVIZ_IMAGES | set(RVIZ_SCENE)
    topics = {name: d['Topic']['Value'] for name, d in displays.items()}
    assert topics['Input'] == '/image'
    for name in ('Overlay', 'Anomaly heatmap', 'Open set'):
        output = topics[name].rsplit('/', 1)[1]
        assert topics[name] == f'/densehybrid/{output}' and output in OUTPUTS
    assert all(displays[name]['Class'] == 'rviz_default_plugins/Image' for name in RVIZ_IMAGES)
    # 3-D: seen from the node's default base_frame, subscribed as the node publishes.
    assert manager['Global Options']['Fixed Frame'] == DEFAULTS['base_frame']
    for name, (kind, output) in RVIZ_SCENE.items():
        display = displays[name]
        assert display['Class'] == kind and topics[name] == f'/densehybrid/{output}'
        assert display['Topic']['Reliability Policy'] == 'Reliable'
        assert display['Topic']['Durability Policy'] == 'Volatile'   # a grid is not latched
    points = displays['Anomaly points']
    assert points['Color Transformer'] == 'Intensity' and points['Channel Name'] == 'score'
    assert points['Channel Name'] in POINT_FIELDS


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
    from densehybrid_ros.ros.launch_args import rviz_available
    assert [type(a) for a in actions][:2] == [Node, Node] if rviz_available() \
        else [type(a) for a in actions][0] is Node      # no rviz2: the node and a warning
    demo = load(DEMO).generate_launch_description()
    assert {'bag', 'image', 'rviz', 'backend', 'artifacts'} <= \
        {a.name for a in demo.get_launch_arguments()}
