"""A silent camera in a real node process: /diagnostics says what the node's graph shows.

The node subscribes reliably (``input_reliability:=reliable``). With no publisher of its input
the camera's status says none was found; then a publisher with a camera driver's sensor-data
QoS (best effort) appears, which that subscription cannot match: the status names the policy
and the parameter, and the log says it once.
"""

import signal

import pytest

pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from ros_helpers import NodeProcess, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from densehybrid_ros.ros.diagnostics import values_of  # noqa: E402

TOPIC = '/qos_cam/image_raw'


def test_a_silent_camera_says_no_publisher_then_the_incompatible_qos(
        probe, tiny_checkpoint, tmp_path):
    node = NodeProcess(['--autostart', '--ros-args', '-r', f'image:={TOPIC}',
                        '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu',
                        '-p', 'backend:=torch', '-p', 'inference_width:=64',
                        '-p', 'input_reliability:=reliable', '-p', 'camera_timeout:=0.5'],
                       tmp_path / 'node.log')
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', keep=20)

    def camera(predicate):
        """The newest status of the test camera, if it satisfies ``predicate``."""
        for msg in reversed(list(diagnostics.recent)):
            for status in msg.status:
                if status.name.endswith(f'camera {TOPIC}'):
                    return status if predicate(status) else None
        return None

    publisher = None
    try:
        alone = probe.wait(lambda: camera(lambda s: 'no publisher' in s.message),
                           START_TIMEOUT_S)
        assert alone is not None, node.output()[-3000:]
        assert alone.message.endswith('no publisher of this topic found (camera running? '
                                      'topic name? ROS_DOMAIN_ID?)')
        assert values_of(alone)['publishers'] == '0'
        publisher = probe.node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
        seen = probe.wait(lambda: camera(lambda s: 'RELIABILITY' in s.message), 60.0)
        assert seen is not None, (camera(lambda s: True), node.output()[-3000:])
        assert 'publishers whose QoS this subscription cannot match: RELIABILITY (see ' \
               'input_reliability)' in seen.message
        values = values_of(seen)
        assert values['incompatible_qos.RELIABILITY'] == '1'
        assert values['publishers'] == '1' and values['frames_received'] == '0'
    finally:
        node.stop(signal.SIGINT)
        if publisher is not None:
            probe.node.destroy_publisher(publisher)
    log = node.log_path.read_text()
    assert log.count('offers QoS incompatible with the input subscription (RELIABILITY): no '
                     'frame of it will arrive; set input_reliability to best_effort') == 1, log
