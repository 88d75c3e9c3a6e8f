"""A camera in its own process: publish N best-effort rgb8 frames of W x H at a rate, then exit.

  python publish_frames.py TOPIC N RATE_HZ WIDTH HEIGHT

Waits (up to 120 s) for a subscriber first, so every frame has somewhere to go. Then listens to
/diagnostics for a few seconds and prints one JSON line: frames published, and the largest
``frames_received`` a densehybrid node reported for TOPIC (seen from this process, so the test
also works where the test process cannot discover the node, e.g. localhost-only discovery).
Uses the package's transport set-up (transport.use_large_data).
"""

import json
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from densehybrid_ros.core.transport import use_large_data
from densehybrid_ros.ros.middleware import close_middleware


def main() -> int:
    """Publish the frames; exit 1 when no subscriber showed up."""
    topic, count, rate, width, height = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    use_large_data()
    rclpy.init()
    node = rclpy.create_node('frame_publisher')
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    received = [-1]

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(f'camera {topic}'):
                values = {kv.key: kv.value for kv in status.values}
                received[0] = max(received[0], int(values.get('frames_received', -1)))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    deadline = time.monotonic() + 120
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if pub.get_subscription_count() == 0:
        print(json.dumps({'published': 0, 'error': 'no subscriber'}), flush=True)
        return 1
    time.sleep(1.0)                          # let the match settle on both sides
    data = np.random.default_rng(0).integers(0, 256, height * width * 3, np.uint8).tobytes()
    for index in range(count):
        msg = Image(height=height, width=width, encoding='rgb8', step=width * 3, data=data)
        msg.header.frame_id = f'frame{index}'
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(1.0 / rate)
    deadline = time.monotonic() + 6.0          # diagnostics come at 1 Hz
    while time.monotonic() < deadline and received[0] < count:
        rclpy.spin_once(node, timeout_sec=0.2)
    print(json.dumps({'published': count, 'node_received': received[0]}), flush=True)
    close_middleware(node)          # bounded: Fast DDS can hang destroying a participant
    return 0


if __name__ == '__main__':
    sys.exit(main())
