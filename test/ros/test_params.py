"""Parameters: one table, the YAML mirrors it exactly, descriptors, validation, stage rules."""

import math

import pytest
import yaml

pytest.importorskip('rclpy')
from rclpy.parameter import Parameter  # noqa: E402

from densehybrid_ros.ros import params  # noqa: E402
from densehybrid_ros.ros.node import DenseHybridNode  # noqa: E402

from ros_helpers import isnan, REPO  # noqa: E402

YAML_PATH = REPO / 'config' / 'densehybrid.yaml'
BUILTIN = {'use_sim_time', 'start_type_description_service'}   # declared by rclpy itself


def yaml_parameters() -> dict:
    """The ros__parameters block of config/densehybrid.yaml."""
    doc = yaml.safe_load(YAML_PATH.read_text())
    assert list(doc) == ['/**'], 'the YAML must apply to any node name and namespace'
    return doc['/**']['ros__parameters']


def same(a, b) -> bool:
    """Equality where NaN equals NaN."""
    return (isnan(a) and isnan(b)) or a == b


def test_yaml_lists_every_parameter_with_its_default():
    in_yaml = yaml_parameters()
    assert set(in_yaml) == set(params.DEFAULTS)
    for name, default in params.DEFAULTS.items():
        assert same(in_yaml[name], default), f'{name}: YAML {in_yaml[name]!r} != {default!r}'
        assert type(in_yaml[name]) is type(default), name


def test_every_parameter_is_described_and_numbers_have_ranges():
    for spec in params.SPECS:
        desc = spec.descriptor()
        assert len(desc.description) > 20, spec.name
        assert desc.additional_constraints, spec.name
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            assert desc.integer_range, spec.name
        if isinstance(spec.default, float) and spec.name != 'anomaly_threshold':
            assert desc.floating_point_range, spec.name


@pytest.fixture
def node(ros_context, request):
    """Build an unconfigured in-process node, optionally reading the YAML params file."""
    from ros_helpers import close_node
    args = (['--ros-args', '--params-file', str(YAML_PATH)]
            if getattr(request, 'param', None) == 'yaml' else [])
    n = DenseHybridNode('densehybrid_params_test', context=ros_context, cli_args=args)
    yield n
    close_node(n)


@pytest.mark.parametrize('node', ['defaults', 'yaml'], indirect=True)
def test_declared_parameters_agree_exactly_with_table(node):
    declared = set(node.list_parameters([], 0).names) - BUILTIN
    assert declared == set(params.DEFAULTS)
    for name, default in params.DEFAULTS.items():
        assert same(params.read_parameters(node)[name], default), name
        assert node.describe_parameter(name).description


@pytest.mark.parametrize('name,value,words', [
    ('anomaly_threshold', math.inf, 'finite'),
    ('overlay_alpha', 1.5, 'overlay_alpha'),
    ('precision', 'fp64', 'fp32'),
    ('device', 'gpu0', 'cuda:N'),
    ('input_transport', 'theora', 'compressed'),
    ('input_reliability', 'sometimes', 'best_effort'),
    ('input_topics', [''], 'non-empty'),
    ('camera_timeout', 0.0, 'camera_timeout'),
    ('inference_width', -1, 'inference_width'),
])
def test_bad_values_are_rejected_with_a_reason_and_old_value_kept(node, name, value, words):
    before = node.get_parameter(name).value
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful
    assert words in result.reason
    after = node.get_parameter(name).value
    assert same(after, before) or list(after) == list(before)


def test_good_runtime_values_are_accepted(node):
    for name, value in (('anomaly_threshold', -1.5), ('anomaly_threshold', math.nan),
                        ('overlay_alpha', 0.0), ('publish_all', True),
                        ('camera_timeout', 0.5), ('checkpoint', '/some/model.pt'),
                        ('input_topics', ['/a/image', '/b/image'])):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert result.successful, (name, result.reason)


@pytest.mark.parametrize('name,value,state,refused', [
    ('checkpoint', 'x.pt', 'unconfigured', False),
    ('checkpoint', 'x.pt', 'inactive', True),
    ('device', 'cpu', 'active', True),
    ('input_topics', ['a'], 'inactive', False),
    ('input_topics', ['a'], 'active', True),
    ('anomaly_threshold', 0.5, 'active', False),
    ('overlay_alpha', 0.2, 'active', False),
])
def test_stage_rules(name, value, state, refused):
    reason = params.check_change(name, value, state)
    assert bool(reason) == refused, reason
    if refused:
        assert 'deactivate' in reason
