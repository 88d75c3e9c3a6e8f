"""The node on a deployment backend (issue 10), in its own process: `backend:=openvino`.

The node exports the checkpoint to an OpenVINO graph at configure (warm-up size) and on the
first frame of a new size, then publishes the same outputs as on torch: the anomaly_score of a
frame must match a direct torch Segmenter call on the same image.
"""

import signal
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('openvino')
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from densehybrid_ros.images import decode_map  # noqa: E402
from densehybrid_ros.ros.conversions import numpy_to_image  # noqa: E402

CAMERA = '/ov_cam/image'
SCORE = '/ov_cam/densehybrid/anomaly_score'
H, W, WIDTH = 72, 128, 96


def test_openvino_node_publishes_the_torch_score(probe, tiny_checkpoint, tmp_path):
    from densehybrid_ros.inference import Segmenter
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    expected = Segmenter(tiny_checkpoint, device='cpu', inference_size=WIDTH)(
        [image], outputs=('score',))[0].score
    node = NodeProcess(['--autostart', '--ros-args', '-r', '__ns:=/ov',
                        '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu',
                        '-p', 'backend:=openvino', '-p', f'inference_width:={WIDTH}',
                        '-p', f'input_topics:=[{CAMERA}]'], tmp_path / 'node.log')
    pub = probe.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
    scores = probe.subscribe(Image, SCORE, QoSProfile(depth=5,
                                                      reliability=ReliabilityPolicy.RELIABLE))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S + 60
        while not scores.recent and time.monotonic() < deadline:
            assert node.proc.poll() is None, node.output()
            msg = numpy_to_image(image, 'rgb8', Header(frame_id='ov_cam'))
            pub.publish(msg)
            time.sleep(0.5)
        assert scores.recent, f'no anomaly_score from the openvino node:\n{node.output()}'
        got = list(scores.recent)[-1]
        score = decode_map(got.encoding, got.height, got.width, got.step, bytes(got.data))
        assert score.shape == (H, W)
        assert np.abs(score - expected).max() <= 1e-3
        assert 'openvino' in node.output()
    finally:
        probe.node.destroy_publisher(pub)
        assert node.stop(signal.SIGINT) == 0
