"""A silent camera in a real node process: /diagnostics says what the node's graph shows.

The node subscribes reliably (``input_reliability:=reliable``). With no publisher of its input
the camera's status says none was found; then a publisher with a camera driver's sensor-data
QoS (best effort) appears, which that subscription cannot match: the status names the policy
and the parameter, and the log says it once. The log says the silence once too, with the cause
the node saw when the timeout passed, and says when frames come (from a publisher the
subscription matches).
"""

import signal
import time

import pytest

pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from densehybrid_ros.ros.diagnostics import values_of  # noqa: E402

TOPIC = '/qos_cam/image_raw'
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def test_a_silent_camera_says_no_publisher_then_the_incompatible_qos_then_frames_again(
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

    publisher = camera_pub = None
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
        # a publisher the subscription matches: frames arrive, and the log says so once
        camera_pub = probe.node.create_publisher(Image, TOPIC, RELIABLE)
        frame = Image(height=8, width=8, encoding='rgb8', step=24, data=bytes(8 * 8 * 3))
        deadline = time.monotonic() + 60.0
        while (f'receiving frames on {TOPIC}' not in node.output()
               and time.monotonic() < deadline):
            camera_pub.publish(frame)
            time.sleep(0.2)
    finally:
        node.stop(signal.SIGINT)
        for pub in (publisher, camera_pub):
            if pub is not None:
                probe.node.destroy_publisher(pub)
    log = node.log_path.read_text()
    lines = log.splitlines()
    silence = [i for i, line in enumerate(lines) if f'no frame on {TOPIC} for' in line]
    back = [i for i, line in enumerate(lines) if f'receiving frames on {TOPIC}' in line]
    assert silence and back and silence[0] < back[0], log   # the first silence, logged once
    assert len([i for i in silence if i < back[0]]) == 1 and len(back) == 1, log
    assert lines[silence[0]].endswith(': no publisher of this topic found (camera running? '
                                      'topic name? ROS_DOMAIN_ID?)'), lines[silence[0]]
    assert 'WARN' in lines[silence[0]] and 'INFO' in lines[back[0]]
    assert log.count('offers QoS incompatible with the input subscription (RELIABILITY): no '
                     'frame of it will arrive; set input_reliability to best_effort') == 1, log
