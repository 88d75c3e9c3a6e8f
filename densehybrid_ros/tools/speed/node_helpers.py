"""The two helper processes of the live bench (``node.py``): publisher and subscriber.

Each is steered through JSON lines: commands on stdin, results on stdout.

* publisher: publishes pre-serialized rgb8 frames (only the header stamp is patched, so it
  costs almost no CPU), one on request (lock-step) or a burst at a fixed rate;
* subscriber: takes the node's outputs as serialized bytes (no Python deserialisation) and
  prints one line per frame once every subscribed output with that header stamp arrived.
"""

import argparse
import json
import queue
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .node import INPUT_TOPIC
from ...data.bags import cdr_stamp, set_cdr_stamp
from ...ros.middleware import close_middleware


def _emit(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def _stdin_commands(inbox: 'queue.Queue[Dict[str, Any]]') -> None:
    for line in sys.stdin:
        line = line.strip()
        if line:
            inbox.put(json.loads(line))
    inbox.put({'cmd': 'quit'})


def _serialized_frames(frames: np.ndarray) -> List[bytearray]:
    """Serialize each H x W x 3 frame once as an rgb8 Image (the stamp is patched per send)."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    out = []
    for frame in frames:
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='rgb8',
                    is_bigendian=0, step=frame.shape[1] * 3)
        msg.header.frame_id = 'bench_camera'
        msg.data = frame.tobytes()
        msg.header.stamp.sec = 1              # non-zero placeholder, patched before each send
        out.append(bytearray(serialize_message(msg)))
    return out


def _publisher_main(args: argparse.Namespace) -> int:
    import rclpy
    from sensor_msgs.msg import Image

    from ...ros.qos import keep_last

    rclpy.init()
    node = rclpy.create_node('densehybrid_bench_publisher')
    qos = keep_last(1)                     # reliable (INPUT_RELIABILITY), newest frame only
    pub = node.create_publisher(Image, args.topic, qos)
    raw = _serialized_frames(np.load(args.frames_file))
    inbox: 'queue.Queue[Dict[str, Any]]' = queue.Queue()
    threading.Thread(target=_stdin_commands, args=(inbox,), daemon=True).start()
    index = 0

    def send() -> int:
        nonlocal index
        stamp = time.time_ns()
        pub.publish(set_cdr_stamp(raw[index % len(raw)], stamp))
        index += 1
        return stamp

    try:
        while rclpy.ok():
            cmd = inbox.get()
            if cmd['cmd'] == 'quit':
                break
            if cmd['cmd'] == 'wait_subscribers':
                deadline = time.monotonic() + float(cmd['timeout'])
                while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                _emit({'subscribers': pub.get_subscription_count()})
            elif cmd['cmd'] == 'pub':
                if 'index' in cmd:
                    index = int(cmd['index'])
                _emit({'stamp': send()})
            elif cmd['cmd'] == 'rate':
                period, stamps = 1.0 / float(cmd['hz']), []
                start = time.monotonic()
                for i in range(int(cmd['count'])):
                    delay = start + i * period - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    stamps.append(send())
                _emit({'stamps': stamps})
    except KeyboardInterrupt:
        pass
    finally:
        close_middleware(node)
    return 0


def _subscriber_main(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    from ...ros.qos import RESULT_QOS

    rclpy.init()
    node = rclpy.create_node('densehybrid_bench_subscriber')
    qos = RESULT_QOS
    topics = list(args.topics)

    pending: Dict[int, Dict[str, Tuple[int, int]]] = {}

    def on_output(topic: str, raw: bytes, info: Any) -> None:
        now = time.time_ns()
        stamp = cdr_stamp(raw)
        sent = int(info.get('source_timestamp', 0)) if isinstance(info, dict) else 0
        seen = pending.setdefault(stamp, {})
        seen[topic] = (now, sent or now)
        if len(seen) == len(topics):
            del pending[stamp]
            _emit({'stamp': stamp,
                   'latency': (max(r for r, _ in seen.values()) - stamp) * 1e-9,
                   'published': (max(p for _, p in seen.values()) - stamp) * 1e-9})
        for old in [s for s in pending if s < stamp - 60_000_000_000]:
            del pending[old]

    for topic in topics:
        node.create_subscription(Image, topic,
                                 lambda raw, info, t=topic: on_output(t, raw, info), qos,
                                 raw=True)
    try:
        from diagnostic_msgs.msg import DiagnosticArray

        def on_diag(msg: Any) -> None:
            for st in msg.status:
                values = {kv.key: kv.value for kv in st.values}
                if 'latency_ms_mean' in values and float(values['latency_ms_mean']) > 0:
                    _emit({'diag': values})

        node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    except ImportError:
        pass
    announced = False
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.05)
            if not announced and all(node.count_publishers(t) > 0 for t in topics):
                announced = True
                _emit({'ready': True})
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close_middleware(node)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run a helper process of the live bench: ``publisher`` or ``subscriber``."""
    parser = argparse.ArgumentParser(prog='python -m densehybrid_ros.tools.speed.node_helpers',
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='role', required=True)
    p = sub.add_parser('publisher', help='publish frames on request')
    p.add_argument('--frames-file', required=True, help='N x H x W x 3 uint8 .npy')
    p.add_argument('--topic', default=INPUT_TOPIC)
    s = sub.add_parser('subscriber', help='report per-frame latency of the outputs')
    s.add_argument('--topics', nargs='+', required=True)
    args = parser.parse_args(argv)
    if args.role == 'publisher':
        return _publisher_main(args)
    return _subscriber_main(args)


if __name__ == '__main__':
    sys.exit(main())
