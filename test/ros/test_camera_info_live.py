"""camera_info in a real node process: the sibling topic, a remap, and frames without info.

A camera in this process publishes ``/front/image_raw`` and its info on a topic the node only
finds through a remap (``/front/camera_info:=/front/calib``). Checked: the node republishes the
info with each processed frame's header, the 3-D outputs are on (``three_d: on``), and a frame
whose stamp has no info is still processed for the image outputs and counted.
"""

import signal
import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_helpers import NodeProcess, START_TIMEOUT_S  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from densehybrid_ros.ros.conversions import numpy_to_image  # noqa: E402
from densehybrid_ros.ros.diagnostics import values_of  # noqa: E402

H, W = 96, 160
RELIABLE = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)


def info_for(header: Header) -> CameraInfo:
    """A pinhole camera_info of the test camera with ``header``."""
    f, cx, cy = 120.0, (W - 1) / 2, (H - 1) / 2
    return CameraInfo(header=header, width=W, height=H, distortion_model='plumb_bob',
                      d=[0.0] * 5, k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])


def test_camera_info_is_paired_republished_and_missing_info_is_counted(
        probe, tiny_checkpoint, tmp_path):
    node = NodeProcess(['--autostart', '--ros-args', '-r', 'image:=/front/image_raw',
                        '-r', '/front/camera_info:=/front/calib',
                        '-p', f'checkpoint:={tiny_checkpoint}', '-p', 'device:=cpu',
                        '-p', 'backend:=torch',
                        '-p', 'inference_width:=64', '-p', 'camera_height:=1.2',
                        '-p', 'camera_pitch:=0.1'], tmp_path / 'node.log')
    image_pub = probe.node.create_publisher(Image, '/front/image_raw', qos_profile_sensor_data)
    info_pub = probe.node.create_publisher(CameraInfo, '/front/calib', 10)
    infos = probe.subscribe(CameraInfo, '/front/densehybrid/camera_info', RELIABLE, keep=20)
    masks = probe.subscribe(Image, '/front/densehybrid/anomaly_mask', RELIABLE, keep=20)
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', keep=20)
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), np.uint8)
    stamp = [int(time.time()) * 1_000_000_000]

    def send(with_info: bool) -> int:
        stamp[0] += 50_000_000
        header = Header(frame_id='front_optical')
        header.stamp.sec, header.stamp.nanosec = divmod(stamp[0], 1_000_000_000)
        if with_info:
            info_pub.publish(info_for(header))
            time.sleep(0.05)
        image_pub.publish(numpy_to_image(rgb, 'rgb8', header))
        return stamp[0]

    def camera_values():
        for msg in reversed(list(diagnostics.recent)):
            for status in msg.status:
                if status.name.endswith('camera /front/image_raw'):
                    return values_of(status)
        return None

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        paired = None
        while time.monotonic() < deadline and paired is None:
            sent = send(with_info=True)
            paired = probe.wait(lambda: infos.with_stamp(sent), 1.0)
        assert paired is not None, node.output()[-3000:]
        assert paired.header.frame_id == 'front_optical' and list(paired.k)[0] == 120.0
        # a frame whose stamp has no camera_info (sync_tolerance 0.1 s: 1 s later)
        stamp[0] += 1_000_000_000
        lone = send(with_info=False)
        assert probe.wait(lambda: masks.with_stamp(lone), 30.0), 'image outputs not processed'
        assert infos.with_stamp(lone) is None
        values = probe.wait(lambda: (v := camera_values()) and int(
            v.get('frames_without_camera_info', 0)) >= 1 and v, 10.0)
        assert values, camera_values()
        assert values['three_d'] == 'on'
    finally:
        node.stop(signal.SIGINT)
        probe.node.destroy_publisher(image_pub)
        probe.node.destroy_publisher(info_pub)
