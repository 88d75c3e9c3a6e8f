"""The embedded synthetic model on a real photograph: the node says so (issue 24, point 1).

A node process runs the default (embedded, synthetic-only) model and is fed a photograph that
ships with matplotlib. It must warn at configure that the model is synthetic, carry
``model_domain: synthetic`` in its /diagnostics model status, and warn once (throttled) that
most of the camera's frame is flagged.
"""

from pathlib import Path
import signal
import time

import cv2
import numpy as np
import pytest

pytest.importorskip('rclpy')
matplotlib = pytest.importorskip('matplotlib')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, silence_evidence, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from densehybrid_ros.ros.diagnostics import values_of  # noqa: E402

PHOTO = Path(matplotlib.get_data_path()) / 'sample_data' / 'grace_hopper.jpg'   # 600 x 512
CAMERA = '/dom/image'
WIDTH = 160          # the embedded model flags 71 % of this photo at width 160, 47 % at 512


def photo() -> np.ndarray:
    """The photograph as RGB."""
    return cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)


def test_synthetic_model_on_a_photo_is_flagged_in_the_log_and_diagnostics(probe, tmp_path):
    image = photo()
    node = NodeProcess(['--autostart', '--ros-args', '-r', '__ns:=/dom', '-p', 'device:=cpu',
                        '-p', 'backend:=torch', '-p', f'inference_width:={WIDTH}',
                        '-p', f'input_topics:=[{CAMERA}]'],
                       tmp_path / 'node.log')
    pub = probe.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
    masks = probe.subscribe(Image, '/dom/densehybrid/anomaly_mask',
                            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', keep=30)
    height, width = image.shape[:2]
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3,
                data=image.tobytes())

    def model_status():
        for array in reversed(list(diagnostics.recent)):
            for status in array.status:
                if status.name.startswith('/dom/densehybrid') and status.name.endswith('model') \
                        and values_of(status).get('model_domain'):
                    return status
        return None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(masks.arrivals) < 3 and node.proc.poll() is None \
                and time.monotonic() < deadline:
            pub.publish(msg)
            time.sleep(0.2)
        assert node.proc.poll() is None, node.output()[-3000:]
        assert len(masks.arrivals) >= 3, silence_evidence(probe, node)
        status = probe.wait_for(model_status, 10, 'the model status with model_domain')
        values = values_of(status)
        assert values['model_domain'] == 'synthetic'
        assert values['checkpoint'].endswith('densehybrid_ladder_resnet18_synthetic.pt')
        mask = np.frombuffer(masks.recent[-1].data, np.uint8)
        assert np.mean(mask == 255) > 0.5                   # the point of the warning
    finally:
        code = node.stop(signal.SIGINT)
    log = node.output()
    assert code == 0, log[-3000:]
    start_warnings = [line for line in log.splitlines() if 'model domain:' in line]
    assert len(start_warnings) == 1 and '[WARN]' in start_warnings[0], log[-3000:]
    assert 'trained only on synthetic road scenes' in start_warnings[0]
    frame_warnings = [line for line in log.splitlines() if 'flagged anomalous' in line]
    assert len(frame_warnings) == 1, log[-3000:]          # throttled: once a minute per camera
    assert '[WARN]' in frame_warnings[0] and f'a frame of {CAMERA}' in frame_warnings[0]
    assert 'may not fit' in frame_warnings[0] and 'synthetic' in frame_warnings[0]
