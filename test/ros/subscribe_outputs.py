"""A viewer in its own process: subscribe to every output of the given cameras, like RViz.

  python subscribe_outputs.py CAMERA [CAMERA ...]

Reliable depth-5 subscriptions (RViz's image display default) on all 7 outputs of each camera.
Prints ``ready`` once every output topic has a publisher, then records each message's header
stamp and receipt latency (receipt time - stamp) until stdin says ``stop``; prints one JSON line:
stamps per topic, latencies, and the node's frames_processed per camera from /diagnostics.
"""

import json
import sys
import threading
import time
from typing import Dict, List

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from densehybrid_ros.core.outputs import output_topics
from densehybrid_ros.core.transport import use_large_data
from densehybrid_ros.ros.diagnostics import DIAGNOSTICS_PERIOD_S
from densehybrid_ros.ros.middleware import close_middleware

RVIZ_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
READY_TIMEOUT_S = 120.0       # node start (torch import, load, warm-up) on a busy machine
# After 'stop': at least SETTLE_S for the last outputs, and until every camera's status came in a
# diagnostics message received a period after the stop, at most DIAGNOSTICS_WAIT_S. A fixed
# 2.5 s once left a camera out of the report on a loaded machine (a run of 282 s).
SETTLE_S = 2.5
DIAGNOSTICS_WAIT_S = 20.0


def main() -> int:
    """Subscribe, report ready, collect until ``stop``, print the JSON summary."""
    cameras = sys.argv[1:]
    use_large_data()
    rclpy.init()
    node = rclpy.create_node('output_viewer')
    stamps: Dict[str, List[int]] = {}
    latency_ms: Dict[str, List[float]] = {}
    processed: Dict[str, int] = {}
    heard: Dict[str, float] = {}              # camera -> when its last status was received
    topics = {cam: per for cam, per in output_topics(cameras).items()}
    for per in topics.values():
        for topic in per.values():
            stamps[topic], latency_ms[topic] = [], []

            def on_image(msg: Image, topic: str = topic) -> None:
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                stamps[topic].append(stamp)
                latency_ms[topic].append((time.time_ns() - stamp) / 1e6)
            node.create_subscription(Image, topic, on_image, RVIZ_QOS)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            for cam in cameras:
                if status.name.endswith(f'camera {cam}'):
                    values = {kv.key: kv.value for kv in status.values}
                    processed[cam] = int(values['frames_processed'])
                    heard[cam] = time.monotonic()
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    # Ready once the graph shows every output's publisher. The ROS graph cache can miss an
    # update on a loaded machine (seen once: one topic at 0 publishers for 10 minutes while DDS
    # had matched it), and delivery does not depend on it, so the wait is bounded: the test
    # checks what really arrives.
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (any(node.count_publishers(t) == 0 for t in stamps)
           and time.monotonic() < deadline):
        time.sleep(0.1)
    print('ready', flush=True)
    sys.stdin.readline()                      # 'stop'
    stopped = time.monotonic()
    time.sleep(SETTLE_S)
    while (any(heard.get(cam, 0.0) < stopped + DIAGNOSTICS_PERIOD_S for cam in cameras)
           and time.monotonic() < stopped + DIAGNOSTICS_WAIT_S):
        time.sleep(0.1)
    print(json.dumps({'stamps': stamps, 'latency_ms': latency_ms, 'processed': processed}),
          flush=True)
    executor.shutdown(timeout_sec=2.0)
    close_middleware(node)          # bounded: Fast DDS can hang destroying a participant
    return 0


if __name__ == '__main__':
    sys.exit(main())
