"""Bad start values (issue 15 item 3): configure fails with one line naming them; node stays up.

In-process for every case (args as the command line gives them, parsed by rcl as node arguments),
and once as the console script in its own process with ``--autostart``.
"""

import signal

import pytest

pytest.importorskip('rclpy')
from lifecycle_msgs.msg import State  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import close_node, NodeProcess, START_TIMEOUT_S  # noqa: E402

from densehybrid_ros.ros.node import DenseHybridNode  # noqa: E402
from densehybrid_ros.ros.params import check_unknown_parameters, unknown_parameters  # noqa: E402

BAD_START = [
    ('overlay_alpha:=5.0', 'overlay_alpha', '5.0'),
    ('inference_width:=-3', 'inference_width', '-3'),
    ('torch_threads:=-1', 'torch_threads', '-1'),
    ('camera_timeout:=-1.0', 'camera_timeout', '-1.0'),
    ('input_topics:=[]', 'input_topics', 'empty'),
    ('overlay_alpha:=abc', 'overlay_alpha', "'abc'"),
    ('inference_width:=640.5', 'inference_width', '640.5'),
    ('max_input_pixels:=-5', 'max_input_pixels', '-5'),
]


def start(context, args):
    """An unconfigured node built from ``--ros-args -p <args>`` (parsed by rcl as node args)."""
    return DenseHybridNode('densehybrid_start_test', context=context,
                           cli_args=['--ros-args'] + [a for arg in args for a in ('-p', arg)])


@pytest.mark.parametrize('arg,name,value', BAD_START)
def test_bad_start_value_fails_configure_naming_it(ros_context, arg, name, value):
    node = start(ros_context, [arg, 'device:=cpu'])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == 'unconfigured'
        assert name in node._error and value in node._error, node._error
        assert node.get_parameter('device').value == 'cpu'       # the good values are kept
    finally:
        close_node(node)


def test_fixing_the_value_clears_the_start_error(ros_context):
    node = start(ros_context, ['overlay_alpha:=5.0'])
    try:
        assert 'overlay_alpha' in node._error
        assert node.set_parameters([Parameter('overlay_alpha', value=0.3)])[0].successful
        assert node._error == '' and node._start_errors == {}
    finally:
        close_node(node)


def test_integer_for_a_float_parameter_is_taken_as_float(ros_context):
    node = start(ros_context, ['camera_timeout:=3'])
    try:
        assert node.get_parameter('camera_timeout').value == 3.0 and not node._start_errors
    finally:
        close_node(node)


def test_console_script_with_a_bad_value_stays_up_with_one_error_line(probe, tmp_path):
    node = NodeProcess(['--autostart', '--ros-args', '-r', '__ns:=/badstart',
                        '-p', 'overlay_alpha:=5.0', '-p', 'device:=cpu'], tmp_path / 'node.log')
    try:
        response = probe.call(GetState, '/badstart/densehybrid/get_state', GetState.Request(),
                              timeout=START_TIMEOUT_S)
        assert response.current_state.id == State.PRIMARY_STATE_UNCONFIGURED
        probe.wait_for(lambda: 'configure failed' in node.output(), 30, 'the ERROR line')
        errors = [line for line in node.output().splitlines() if 'ERROR' in line]
        assert len(errors) == 1 and 'overlay_alpha' in errors[0] and '5.0' in errors[0], errors
        assert node.proc.poll() is None                      # up and inspectable
    finally:
        assert node.stop(signal.SIGINT) == 0
    assert 'Traceback' not in node.output()


TYPOS = [
    ('anomaly_treshold:=1.5', 'anomaly_threshold'),
    ('max_input_pixel:=100', 'max_input_pixels'),
    ('overlay_alfa:=0.3', 'overlay_alpha'),
]
QOS_OVERRIDE = 'qos_overrides./x.publisher.depth:=3'      # declared by rclpy with a publisher


def test_typos_in_start_parameters_name_the_closest_parameter(ros_context):
    """Issue 23 failure 8: typos were ignored and the node went active on defaults."""
    node = start(ros_context, [arg for arg, _ in TYPOS] + ['device:=cpu', QOS_OVERRIDE])
    try:
        messages = unknown_parameters(node)
        assert len(messages) == 3, messages
        for (arg, closest), message in zip(TYPOS, messages):
            assert message == (f"unknown parameter '{arg.split(':=')[0]}' (params file or -p): "
                               f"did you mean '{closest}'?")
        with pytest.raises(ValueError, match="did you mean 'overlay_alpha'.*strict_params"):
            check_unknown_parameters(node, strict=True)
        assert check_unknown_parameters(node, strict=False) == messages
    finally:
        close_node(node)


def test_typos_in_a_params_file_and_names_with_no_close_match(ros_context, tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    overlay_alfa: 0.3\n    zzz_qq: 1\n'
                      '    overlay_alpha: 0.4\n')
    node = DenseHybridNode('densehybrid_start_test', context=ros_context,
                           cli_args=['--ros-args', '--params-file', str(params)])
    try:
        assert unknown_parameters(node) == [
            "unknown parameter 'overlay_alfa' (params file or -p): did you mean "
            "'overlay_alpha'?",
            "unknown parameter 'zzz_qq' (params file or -p): see config/densehybrid.yaml"]
        assert node.get_parameter('overlay_alpha').value == 0.4
    finally:
        close_node(node)


def test_strict_params_makes_a_typo_fail_configure_in_one_line(ros_context, tiny_checkpoint):
    node = start(ros_context, ['overlay_alfa:=0.3', 'strict_params:=true', 'device:=cpu',
                               'backend:=torch', f'checkpoint:={tiny_checkpoint}'])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == 'unconfigured'
        assert "unknown parameter 'overlay_alfa'" in node._error
        assert "did you mean 'overlay_alpha'" in node._error and '\n' not in node._error
        assert node.set_parameters([Parameter('strict_params', value=False)])[0].successful
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS    # now a warning
    finally:
        close_node(node)
