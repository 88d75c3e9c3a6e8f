"""launch_args: the launch files' argument handling, without launch or rclpy installed."""

import os
from pathlib import Path

import pytest
import yaml

from densehybrid_ros.ros import launch_args
from densehybrid_ros.core.paths import PACKAGE

RVIZ = Path(__file__).resolve().parents[2] / 'config' / 'densehybrid.rviz'
DEFAULTS = {name: default for name, default, _ in launch_args.launch_arguments()}


def test_every_argument_has_help_and_a_params_file_default():
    names = [name for name, _, _ in launch_args.launch_arguments()]
    assert len(names) == len(set(names))
    assert {'image', 'input_topics', 'input_transport', 'params_file', 'checkpoint', 'device',
            'precision', 'namespace', 'use_sim_time', 'autostart', 'rviz'} <= set(names)
    assert all(len(text) > 10 for _, _, text in launch_args.launch_arguments())
    assert DEFAULTS['params_file'].endswith('config/densehybrid.yaml')


@pytest.mark.parametrize('value,expected', [
    ('[/front/image_raw, /left/image_raw]', ['/front/image_raw', '/left/image_raw']),
    ('/front/image_raw', ['/front/image_raw']),
    ('[a, "", b]', ['a', 'b']),
    ('[]', []),
])
def test_input_topics(value, expected):
    assert launch_args.input_topics(value) == expected


def test_input_topics_that_are_not_yaml_say_so():
    with pytest.raises(ValueError, match='input_topics is not a YAML list'):
        launch_args.input_topics('[/a, /b')


def test_every_parameter_a_user_sets_at_launch_is_an_argument():
    """Issue 24 (6): input_reliability was no launch argument."""
    pytest.importorskip('rclpy')
    from densehybrid_ros.ros.params import CONFIGURE, DEFAULTS as PARAMS, SPECS
    # The model and its runtime (read at configure), the inputs, the sensors, remote outputs.
    launch_time = {spec.name for spec in SPECS
                   if spec.stage == CONFIGURE or spec.name.startswith('input_')}
    launch_time |= {'depth_topic', 'compressed_outputs'}
    assert launch_time <= set(PARAMS) and 'input_reliability' in launch_time
    assert launch_time <= set(DEFAULTS)
    for name, (kind, _) in launch_args.NODE_ARGUMENTS.items():
        assert type(PARAMS[name]) is kind, name          # the value reaches the node typed
        assert DEFAULTS[name] == ''                       # empty: the params file's value


def test_arguments_become_typed_parameters_the_node_accepts():
    pytest.importorskip('rclpy')
    from densehybrid_ros.ros.params import validate
    given = {'input_reliability': 'reliable', 'inference_width': ' 640', 'torch_threads': '3',
             'compressed_outputs': 'True', 'strict_params': 'off', 'backend': 'openvino',
             'precision': 'int8', 'artifacts': 'out/export/a,out/export/b',
             'depth_topic': 'depth/image_raw', 'checkpoint': ''}
    overrides = launch_args.node_parameters({**DEFAULTS, **given})
    assert overrides == {'input_reliability': 'reliable', 'inference_width': 640,
                         'torch_threads': 3, 'compressed_outputs': True, 'strict_params': False,
                         'backend': 'openvino', 'precision': 'int8',
                         'artifacts': 'out/export/a,out/export/b',
                         'depth_topic': 'depth/image_raw', 'use_sim_time': False}
    assert all(validate(name, value) is None for name, value in overrides.items())


@pytest.mark.parametrize('name, value, message', [
    ('inference_width', '640px',
     "launch argument inference_width must be an integer, got '640px'"),
    ('torch_threads', '2.5', "launch argument torch_threads must be an integer, got '2.5'"),
    ('compressed_outputs', 'maybe',
     "launch argument compressed_outputs must be true or false, got 'maybe'"),
])
def test_an_argument_of_the_wrong_type_is_one_line(name, value, message):
    with pytest.raises(ValueError) as exc:
        launch_args.node_parameters({**DEFAULTS, name: value})
    assert str(exc.value) == message


def test_the_demo_passes_its_model_arguments_on():
    demo = [name for name, _, _ in launch_args.demo_arguments()]
    assert len(demo) == len(set(demo)) and set(demo) == {'bag', *launch_args.DEMO_FORWARDED}
    assert {'precision', 'backend', 'artifacts'} <= set(launch_args.DEMO_FORWARDED)
    assert set(launch_args.DEMO_FORWARDED) <= set(DEFAULTS)


def test_flags_overrides_and_remappings():
    assert launch_args.flag(' True') and launch_args.flag('1') and not launch_args.flag('false')
    overrides = launch_args.node_parameters({**DEFAULTS, 'device': 'cuda',
                                             'input_topics': '[/a/image]'})
    assert overrides == {'device': 'cuda', 'input_topics': ['/a/image'], 'use_sim_time': False}
    assert launch_args.remappings('image') == []
    assert launch_args.remappings('/camera/image_raw') == [('image', '/camera/image_raw')]


@pytest.mark.parametrize('args,shown,output_ns', [
    ({}, '/image', '/densehybrid'),                 # the default topic: used to crash
    ({'namespace': 'car'}, '/car/image', '/car/densehybrid'),
    ({'image': '/camera/image_raw'}, '/camera/image_raw', '/camera/densehybrid'),
    ({'input_topics': '[/front/image, /left/image]', 'input_transport': 'compressed'},
     '/front/image/compressed', '/front/densehybrid'),
    ({'input_topics': '[/cam/left, /cam/right]'}, '/cam/left', '/cam/densehybrid/left'),
])
def test_rviz_topics_are_absolute(args, shown, output_ns):
    assert launch_args.rviz_topics({**DEFAULTS, **args}) == (shown, output_ns)


def test_rviz_config_rewrites_the_images_grid_points_and_markers():
    text = launch_args.rviz_config(RVIZ.read_text(), '/front/image', '/front/densehybrid')
    displays = yaml.safe_load(text)['Visualization Manager']['Displays']
    topics = {d['Name']: d['Topic']['Value'] for d in displays if 'Topic' in d}
    assert topics == {'Input': '/front/image', 'Overlay': '/front/densehybrid/overlay',
                      'Anomaly heatmap': '/front/densehybrid/anomaly_heatmap',
                      'Open set': '/front/densehybrid/open_set',
                      'Anomaly grid': '/front/densehybrid/anomaly_grid',
                      'Anomaly points': '/front/densehybrid/anomaly_points',
                      'Anomaly markers': '/front/densehybrid/anomaly_markers'}


def test_rviz_availability_checks_path(monkeypatch):
    monkeypatch.setattr(launch_args, 'package_prefix', lambda package: None)   # no ament index
    assert launch_args.rviz_available(which=lambda name: None) is False
    assert launch_args.rviz_available(which=lambda name: '/usr/bin/rviz2') is True


def test_executable_prefers_the_colcon_lib_folder(monkeypatch, tmp_path):
    script = tmp_path / 'lib' / PACKAGE / 'densehybrid-replay'
    script.parent.mkdir(parents=True)
    script.write_text('#!/bin/sh\n')
    os.chmod(script, 0o755)
    monkeypatch.setattr(launch_args, 'package_prefix', lambda package: tmp_path)
    assert launch_args.executable('densehybrid-replay', which=lambda n: None) == str(script)
    monkeypatch.setattr(launch_args, 'package_prefix', lambda package: None)
    assert launch_args.executable('x', which=lambda n: '/venv/bin/x') == '/venv/bin/x'
    with pytest.raises(FileNotFoundError, match='densehybrid-nothing not found'):
        launch_args.executable('densehybrid-nothing', which=lambda n: None)
