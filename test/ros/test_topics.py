"""Output topic naming and input QoS (pure functions of the node module)."""

import pytest

pytest.importorskip('rclpy')
from rclpy.qos import HistoryPolicy, ReliabilityPolicy  # noqa: E402

from densehybrid_ros.core.outputs import output_namespaces  # noqa: E402
from densehybrid_ros.ros.node import one_line  # noqa: E402
from densehybrid_ros.ros.qos import input_qos  # noqa: E402


@pytest.mark.parametrize('topics,expected', [
    (['/image'], ['/densehybrid']),
    (['/camera/image_raw'], ['/camera/densehybrid']),
    (['/front/image_raw', '/left/image_raw'], ['/front/densehybrid', '/left/densehybrid']),
    # two cameras in one namespace: each gets its own sub-namespace, nothing collides
    (['/cams/front', '/cams/left'], ['/cams/densehybrid/front', '/cams/densehybrid/left']),
    (['/car/cam/image', '/car/cam/image_rect', '/car/other/image'],
     ['/car/cam/densehybrid/image', '/car/cam/densehybrid/image_rect',
      '/car/other/densehybrid']),
])
def test_outputs_go_under_the_camera_namespace(topics, expected):
    assert output_namespaces(topics) == expected


@pytest.mark.parametrize('name,policy', [('best_effort', ReliabilityPolicy.BEST_EFFORT),
                                         ('reliable', ReliabilityPolicy.RELIABLE)])
def test_input_qos_is_depth_one_keep_last(name, policy):
    qos = input_qos(name)
    assert (qos.depth, qos.history, qos.reliability) == (1, HistoryPolicy.KEEP_LAST, policy)


def test_errors_become_one_log_line():
    assert one_line(ValueError('bad\n  checkpoint\tfile')) == 'ValueError: bad checkpoint file'


def test_remapping_and_namespace_apply_to_input_topics(ros_context):
    from ros_helpers import close_node

    from densehybrid_ros.ros.node import DenseHybridNode
    node = DenseHybridNode(context=ros_context, cli_args=[
        '--ros-args', '-r', 'image:=/camera/image_raw', '-r', '__ns:=/car'])
    try:
        assert node.resolve_topic_name('image') == '/camera/image_raw'     # remapped
        assert node.resolve_topic_name('rear/image') == '/car/rear/image'  # node namespace
    finally:
        close_node(node)
