"""A camera in its own process: play a sequence bag's image, camera_info and depth, then exit.

  python play_sequence.py BAG RATE_HZ [--no-depth]

Publishes the recorded CDR bytes (no conversion) of ``<ns>/image``, ``<ns>/camera_info`` and
``<ns>/depth`` frame by frame (camera_info and depth first, so they are there when the node
pairs them with the image), as a camera driver does: images best effort, camera_info reliable.
Waits (up to 120 s) for a subscriber on the image topic first, then prints one JSON line with
the stamps it published.
"""

import json
from pathlib import Path
import sys
import time
from typing import Dict, List, Tuple

import rclpy
from rclpy.qos import qos_profile_sensor_data
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import CameraInfo, Image

from densehybrid_ros.core.transport import use_large_data
from densehybrid_ros.ros.middleware import close_middleware
from densehybrid_ros.data.bags import cdr_stamp

ROLES = {'image': Image, 'camera_info': CameraInfo, 'depth': Image}


def main() -> int:
    """Play the bag; exit 1 when no subscriber showed up."""
    bag, rate = sys.argv[1], float(sys.argv[2])
    roles = [r for r in ROLES if not (r == 'depth' and '--no-depth' in sys.argv)]
    frames: Dict[int, List[Tuple[str, bytes]]] = {}
    with AnyReader([Path(bag)]) as reader:
        wanted = [c for c in reader.connections if c.topic.rpartition('/')[2] in roles]
        for conn, _, raw in reader.messages(connections=wanted):
            frames.setdefault(cdr_stamp(raw), []).append((conn.topic, bytes(raw)))
    topics = sorted({topic for items in frames.values() for topic, _ in items})
    use_large_data()
    rclpy.init()
    node = rclpy.create_node('sequence_camera')
    pubs = {t: node.create_publisher(ROLES[t.rpartition('/')[2]], t,
                                     qos_profile_sensor_data if t.endswith('/image') else 10)
            for t in topics}
    image_pub = next(p for t, p in pubs.items() if t.endswith('/image'))
    deadline = time.monotonic() + 120
    while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if image_pub.get_subscription_count() == 0:
        print(json.dumps({'published': 0, 'error': 'no subscriber'}), flush=True)
        return 1
    time.sleep(1.0)                          # let the match settle on both sides
    stamps = []
    for stamp in sorted(frames):
        # image last: its camera_info and depth are already there when the node takes it
        for topic, raw in sorted(frames[stamp], key=lambda item: item[0].endswith('/image')):
            pubs[topic].publish(raw)
        stamps.append(stamp)
        time.sleep(1.0 / rate)
    print(json.dumps({'published': len(stamps), 'stamps': stamps, 'topics': topics}), flush=True)
    close_middleware(node)          # bounded: Fast DDS can hang destroying a participant
    return 0


if __name__ == '__main__':
    sys.exit(main())
