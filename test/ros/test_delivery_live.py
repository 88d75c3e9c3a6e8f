"""Delivery (issue 12): a viewer process on all 7 outputs of two 720p cameras loses nothing.

Real processes: the node, a viewer process (subscribe_outputs.py, reliable depth 5 like RViz) on
all 14 output topics, and the test's probe as the two cameras (best effort). Frame pairs are sent
at the node's own rate (the next pair once the previous one's anomaly_score came back). For
every frame the node processed (its diagnostics count), all 7 outputs must reach the viewer.
Also checks the optional compressed twins (PNG mask = raw mask, JPEG overlay decodes).
"""

import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('cv_bridge')
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, REPO, ros_env, stamp_ns, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from densehybrid_ros.core.outputs import OUTPUTS, output_topics  # noqa: E402
from densehybrid_ros.ros.conversions import numpy_to_image  # noqa: E402

CAMERAS = ['/dl_a/image', '/dl_b/image']
PAIRS = 20
WIDTH, HEIGHT = 1280, 720
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def percentile(values, q):
    """The q-th percentile of a non-empty list."""
    return float(np.percentile(np.asarray(values), q))


def test_every_output_of_a_processed_frame_reaches_the_viewer(probe, tiny_checkpoint, tmp_path):
    node = NodeProcess(['--autostart', '--ros-args', '-r', '__ns:=/dl',
                        '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu',
                        '-p', 'backend:=torch',
                        '-p', 'inference_width:=64', '-p', 'compressed_outputs:=true',
                        '-p', f'input_topics:=[{",".join(CAMERAS)}]'], tmp_path / 'node.log')
    viewer = subprocess.Popen([sys.executable, str(REPO / 'test' / 'ros' / 'subscribe_outputs.py'),
                               *CAMERAS], env=ros_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    topics = output_topics(CAMERAS)
    pace = probe.subscribe(Image, topics[CAMERAS[1]]['anomaly_score'], RELIABLE, keep=4)
    mask = probe.subscribe(Image, topics[CAMERAS[0]]['anomaly_mask'], RELIABLE, keep=8)
    packed_mask = probe.subscribe(CompressedImage, topics[CAMERAS[0]]['anomaly_mask']
                                  + '/compressed', RELIABLE, keep=8)
    packed_overlay = probe.subscribe(CompressedImage, topics[CAMERAS[0]]['overlay']
                                     + '/compressed', RELIABLE, keep=4)
    pubs = [probe.node.create_publisher(Image, cam, qos_profile_sensor_data) for cam in CAMERAS]
    try:
        assert viewer.stdout.readline().strip() == 'ready'     # the node is active
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(2)]
        answered = 0
        deadline = time.monotonic() + START_TIMEOUT_S + PAIRS * 10
        while answered < PAIRS and time.monotonic() < deadline:
            header = Header(frame_id='cam')
            header.stamp = probe.node.get_clock().now().to_msg()
            for pub, image in zip(pubs, images):
                pub.publish(numpy_to_image(image, 'rgb8', header))
            if probe.wait(lambda: stamp_ns(header) in pace.stamps(), 5.0):
                answered += 1           # best effort: a lost input frame is simply re-sent
        assert answered == PAIRS, node.output()[-2000:]
        viewer.stdin.write('stop\n')
        viewer.stdin.flush()
        report = json.loads(viewer.stdout.readline())
    finally:
        if viewer.poll() is None:
            viewer.kill()
        assert node.stop(signal.SIGINT) == 0
    for cam in CAMERAS:
        per = {name: set(report['stamps'][topic]) for name, topic in topics[cam].items()}
        seen = set.union(*per.values())
        for name in OUTPUTS:
            assert per[name] == seen, f'{cam} {name}: lost {len(seen - per[name])} outputs'
        assert cam in report['processed'], f'no status of {cam} reached the viewer in 20 s'
        assert len(seen) == report['processed'][cam] >= PAIRS, (cam, report['processed'])
    # Receipt latency of the last output of each frame (what a viewer waits for).
    last = {}
    for topic, stamps in report['stamps'].items():
        for stamp, ms in zip(stamps, report['latency_ms'][topic]):
            last[stamp] = max(last.get(stamp, 0.0), ms)
    waits = list(last.values())
    print(f'\ndelivery: {len(last)} frames, last output p50 {percentile(waits, 50):.0f} ms, '
          f'p95 {percentile(waits, 95):.0f} ms')
    # Compressed twins: PNG carries the exact mask, JPEG the overlay at full size.
    common = sorted(packed_mask.recent_stamps() & mask.recent_stamps())
    assert common, 'no compressed anomaly_mask arrived'
    raw, packed = mask.with_stamp(common[-1]), packed_mask.with_stamp(common[-1])
    assert packed.format == 'mono8; png compressed mono8'
    decoded = cv2.imdecode(np.frombuffer(bytes(packed.data), np.uint8), cv2.IMREAD_UNCHANGED)
    expected = np.frombuffer(bytes(raw.data), np.uint8).reshape(HEIGHT, WIDTH)
    assert np.array_equal(decoded, expected)
    overlay = list(packed_overlay.recent)[-1]
    assert overlay.format == 'rgb8; jpeg compressed bgr8'
    assert cv2.imdecode(np.frombuffer(bytes(overlay.data), np.uint8),
                        cv2.IMREAD_COLOR).shape == (HEIGHT, WIDTH, 3)
