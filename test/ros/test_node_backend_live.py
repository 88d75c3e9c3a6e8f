"""The node on a deployment backend (issue 10), in its own process: `backend:=openvino`.

fp32: the node exports the checkpoint to an OpenVINO graph at configure (warm-up size) and on
the first frame of a new size, and publishes the score a direct torch Segmenter call gives.
int8: with `artifacts:=DIR` the node runs exactly that quantised graph.
"""

import signal
import time

import cv2
import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('openvino')
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, silence_evidence, stamp_ns, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from densehybrid_ros.core.images import decode_map  # noqa: E402
from densehybrid_ros.ros.conversions import numpy_to_image  # noqa: E402

CAMERA = '/ov_cam/image'
SCORE = '/ov_cam/densehybrid/anomaly_score'
H, W, WIDTH = 72, 128, 96


def _first_score(probe, node, image):
    """Publish ``image`` on CAMERA until the node's anomaly_score comes back; return it."""
    pub = probe.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
    scores = probe.subscribe(Image, SCORE, QoSProfile(depth=5,
                                                      reliability=ReliabilityPolicy.RELIABLE))
    sent = set()                # the probe's collector is per session: match our stamps
    try:
        deadline = time.monotonic() + START_TIMEOUT_S + 60
        while not sent & scores.recent_stamps() and time.monotonic() < deadline:
            assert node.proc.poll() is None, node.output()
            header = Header(frame_id='ov_cam', stamp=probe.node.get_clock().now().to_msg())
            sent.add(stamp_ns(header))
            pub.publish(numpy_to_image(image, 'rgb8', header))
            time.sleep(0.5)
    finally:
        probe.node.destroy_publisher(pub)
    ours = sorted(sent & scores.recent_stamps())
    if not ours:            # evidence: a deaf probe or a node that received nothing (seen once)
        pytest.fail(f'no anomaly_score from the node for {len(sent)} frames; '
                    + silence_evidence(probe, node))
    got = scores.with_stamp(ours[-1])
    return decode_map(got.encoding, got.height, got.width, got.step, bytes(got.data))


def _node(checkpoint, log, *params):
    return NodeProcess(['--autostart', '--ros-args', '-r', '__ns:=/ov',
                        '-p', f'checkpoint:={checkpoint}', '-p', 'device:=cpu',
                        '-p', 'backend:=openvino', '-p', f'inference_width:={WIDTH}',
                        '-p', f'input_topics:=[{CAMERA}]', *params], log)


def test_openvino_node_publishes_the_torch_score(probe, tiny_checkpoint, tmp_path):
    from densehybrid_ros.deploy.segmenter import Segmenter
    image = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    expected = Segmenter(tiny_checkpoint, device='cpu', inference_size=WIDTH)(
        [image], outputs=('score',))[0].score
    node = _node(tiny_checkpoint, tmp_path / 'node.log')
    try:
        score = _first_score(probe, node, image)
        assert score.shape == (H, W)
        assert np.abs(score - expected).max() <= 1e-3
        assert 'openvino' in node.output()
    finally:
        assert node.stop(signal.SIGINT) == 0


def test_int8_node_runs_the_given_artifact(probe, tiny_checkpoint, tmp_path):
    """precision:=int8 with artifacts:=DIR: the node runs that graph, at its size only."""
    from densehybrid_ros.deploy.artifacts import export_checkpoint
    from densehybrid_ros.deploy.segmenter import Segmenter
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(3)]
    size = (round(H * WIDTH / W), WIDTH)                    # what inference_width gives: 54x96
    folder, art = tmp_path / 'frames', tmp_path / 'int8'
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f'{i}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    export_checkpoint(tiny_checkpoint, 'openvino', size, art, precision='int8',
                      calibration=folder)
    expected = Segmenter(tiny_checkpoint, device='cpu', inference_size=WIDTH,
                         backend='openvino', precision='int8', artifacts=[art])(
        [frames[0]], outputs=('score',))[0].score
    node = _node(tiny_checkpoint, tmp_path / 'node.log', '-p', 'precision:=int8',
                 '-p', f'artifacts:={art}')
    try:
        score = _first_score(probe, node, frames[0])
        assert np.abs(score - expected).max() <= 1e-4, "not the int8 artifact's score"
        assert 'int8' in node.output()
    finally:
        assert node.stop(signal.SIGINT) == 0
