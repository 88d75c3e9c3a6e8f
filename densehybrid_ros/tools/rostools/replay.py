"""densehybrid-replay: play a rosbag2's image topics into the live ROS graph (no `ros2 bag`).

Messages are published as recorded (serialized CDR, no conversion) at the recorded rate, a
multiple of it (--rate), as fast as possible (--fast), or in lock-step with the node (--wait-for:
each frame waits until the node published its result with the same header stamp, so a slow
machine drops nothing). --record writes the node's result topics, and the bag's label topics,
to a new bag that densehybrid-eval --recorded evaluates.
"""

import argparse
from collections import deque
import json
import os
from pathlib import Path
import sys
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Sequence, Set, Tuple

from tqdm import tqdm

from ...data.bag_writer import BagWriter
from ...data.bags import BagError, BagReader, cdr_stamp, IMAGE_TYPES, STRING_TYPE
from ...core.outputs import output_topics
from ...core.transport import use_large_data
from ...ros.discovery import look_up
from ...ros.middleware import close_middleware, leave, set_aside, SET_ASIDE

EXAMPLE = '''examples:
  densehybrid-replay out/sample_bag                                   # recorded rate
  densehybrid-replay drive.mcap --topics /front/image_raw --rate 0.5 --loop
  densehybrid-replay out/sample_bag --wait-for /camera/densehybrid/anomaly_score \\
      --record out/live_bag                  # lock-step with the node, record its outputs
  densehybrid-eval out/live_bag --recorded --output out/live          # then evaluate them
'''
RESEND_S = 2.0
DEDUP_WINDOW = 10_000            # (topic, stamp) pairs remembered to drop re-sent duplicates


class ReplayError(RuntimeError):
    """Playback that cannot go on because the node never answers (exit status 1)."""


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-replay."""
    p = argparse.ArgumentParser(prog='densehybrid-replay', description=__doc__, epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('input', help='rosbag2 (folder, .mcap or .db3)')
    p.add_argument('--topics', nargs='+', help='image topics to play (default: every camera '
                                               'image topic, not labels or results)')
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1)')
    p.add_argument('--fast', action='store_true', help='publish as fast as possible')
    p.add_argument('--wait-for', metavar='TOPIC',
                   help='after each frame, wait for a message with its header stamp on TOPIC')
    p.add_argument('--wait-timeout', type=float, default=30.0,
                   help='seconds to wait per frame with --wait-for (default 30)')
    p.add_argument('--wait-subscribers', type=float, default=30.0, metavar='S',
                   help='wait up to S seconds for a subscriber before playing (default 30)')
    p.add_argument('--reliable', action='store_true',
                   help='publish reliable (default best effort, like camera drivers)')
    p.add_argument('--loop', action='store_true', help='play again and again until Ctrl-C')
    p.add_argument('--frames', type=int, default=0, help='stop after N messages per topic')
    p.add_argument('--record', metavar='BAG', help='record the node result topics (and the '
                                                   'bag label topics) into this new bag')
    p.add_argument('--record-topics', nargs='+', help='topics to record (default: the 7 result '
                                                      'topics of each played topic)')
    p.add_argument('--drain', type=float, default=3.0,
                   help='seconds to keep recording after the last frame (default 3)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --record bag')
    p.add_argument('--seed', type=int, default=0, help='unused: playback is deterministic')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--json', help='write the playback statistics here')
    return p


def schedule(log_times: Sequence[int], rate: float, fast: bool) -> List[float]:
    """Seconds after start at which each message is due (all zero with ``fast``)."""
    if fast or not log_times:
        return [0.0] * len(log_times)
    first = log_times[0]
    return [(t - first) / 1e9 / rate for t in log_times]


class Recorder:
    """Writes raw messages from subscription callbacks and the main thread into one bag."""

    def __init__(self, path: str, overwrite: bool) -> None:
        self.bag = BagWriter(path, overwrite=overwrite)
        self.lock = threading.Lock()
        self.counts: Dict[str, int] = {}
        self.written: Set[Tuple[str, int]] = set()
        self.order: Deque[Tuple[str, int]] = deque()

    def write(self, topic: str, msgtype: str, raw: bytes, log_time: int) -> None:
        """Write one message per topic and stamp (thread-safe); log time = header stamp."""
        with self.lock:
            if (topic, log_time) in self.written:
                return
            self.written.add((topic, log_time))
            self.order.append((topic, log_time))
            if len(self.order) > DEDUP_WINDOW:
                self.written.discard(self.order.popleft())
            if self.bag is not None:
                self.bag.write_raw(topic, msgtype, raw, log_time)
                self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        """Finish the bag."""
        with self.lock:
            if self.bag is not None:
                self.bag.close()
                self.bag = None


def _plan(reader: BagReader, args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    if args.topics:
        topics = [reader.topic(t, role='replay') for t in args.topics]
    else:
        topics = reader.camera_topics()
        if not topics:
            raise BagError(f'{reader.path} has no camera image topics to play; topics: '
                           f'{reader.describe() or "none"}')
    labels = [t for t in reader.label_topics() if t not in topics]
    # a sequence bag's ground truth (JSON per frame) and depth image go into the recording with
    # the labels, so densehybrid-eval --recorded scores the node's objects over time and places
    # them with depth too
    labels += [topic for ns in sorted({t.rpartition('/')[0] for t in topics})
               for role, topic in reader.sequence_roles(ns).items()
               if role in ('truth', 'depth')]
    return topics, labels


def replay(args: argparse.Namespace) -> Dict[str, Any]:
    """Play the bag; returns counts of published and recorded messages."""
    use_large_data()
    import rclpy                                   # imported here: eval works without ROS
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import CompressedImage, Image

    from ...ros.qos import camera_qos, RESULT_QOS

    msg_classes = {'sensor_msgs/msg/Image': Image,
                   'sensor_msgs/msg/CompressedImage': CompressedImage}
    if args.rate <= 0:
        raise ValueError(f'--rate must be > 0, got {args.rate}')
    reader = BagReader(args.input)
    recorder: Optional[Recorder] = None
    stats: Dict[str, Any] = {'published': 0, 'late': 0, 'wait_timeouts': 0, 'participants': 0}
    seen: Dict[int, float] = {}
    cond = threading.Condition()
    # The participant and what lives on it; replaced when it discovers nothing (ros.discovery).
    live: Dict[str, Any] = {}

    def on_result(raw: bytes) -> None:
        with cond:
            seen[cdr_stamp(raw)] = time.monotonic()
            cond.notify_all()

    def connect(topics: List[str]) -> None:
        """Start a participant: the node, its publishers and subscriptions, a spinning thread."""
        rclpy.init(args=None)
        node = rclpy.create_node('densehybrid_replay')
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        live.update(node=node, executor=executor)
        stats['participants'] += 1
        pub_qos = camera_qos(args.reliable)
        live['publishers'] = {t: node.create_publisher(msg_classes[reader.topics[t][0]], t,
                                                       pub_qos)
                              for t in topics}
        if recorder is not None:
            record = args.record_topics or [out for per in output_topics(topics).values()
                                            for out in per.values()]
            for topic in record:
                def callback(raw: bytes, topic: str = topic) -> None:
                    recorder.write(topic, 'sensor_msgs/msg/Image', raw, cdr_stamp(raw))
                node.create_subscription(Image, topic, callback, RESULT_QOS, raw=True)
        live['waiting'] = (node.create_subscription(Image, args.wait_for, on_result, RESULT_QOS,
                                                    raw=True) if args.wait_for else None)

        def spin() -> None:
            """Spin until shut down: Ctrl-C shuts the context down under this thread first."""
            # Without this, on a loaded machine the thread's ExternalShutdownException won the
            # race against executor.shutdown below and its traceback reached stderr (CI,
            # 2026-12-06).
            try:
                executor.spin()
            except ExternalShutdownException:
                pass

        live['spinner'] = threading.Thread(target=spin, daemon=True)
        live['spinner'].start()

    def disconnect(close: bool) -> None:
        """Stop the spinning thread, then close the participant or set it aside (unclosed)."""
        # Stop and join the spinning thread before tearing down, or the process can abort
        # at exit (a C++ thread still waiting inside rcl).
        live['executor'].shutdown(timeout_sec=2.0)
        spinner = live.pop('spinner', None)        # None: connect failed before it started
        if spinner is not None and spinner.is_alive():
            spinner.join(timeout=5.0)
        node = live.pop('node')
        if close:
            close_middleware(node)
        else:
            set_aside(node)

    try:
        topics, labels = _plan(reader, args)
        if args.record:
            recorder = Recorder(args.record, args.overwrite)
        connect(topics)

        def renew() -> None:
            print('densehybrid-replay: no subscriber yet; trying again on a new participant '
                  '(see ros/discovery.py)', file=sys.stderr, flush=True)
            disconnect(close=False)
            connect(topics)

        look_up(lambda seconds: _wait_for_graph(live['publishers'], live['waiting'], seconds),
                renew, args.wait_subscribers)
        publishers = live['publishers']
        stats['subscribers'] = {t: p.get_subscription_count() for t, p in publishers.items()}
        for topic in (t for t, n in stats['subscribers'].items() if not n):
            print(f'densehybrid-replay: warning: nothing subscribes to {topic} (waited '
                  f'{args.wait_subscribers:g} s); check the input topic of the node and '
                  'ROS_DOMAIN_ID', file=sys.stderr)
        started = time.monotonic()
        per_loop = sum(min(reader.topics[t][1], args.frames or reader.topics[t][1])
                       for t in topics)
        stats['bar'] = tqdm(total=None if args.loop else per_loop, desc='replay', unit='msg',
                            disable=args.quiet)
        while True:
            _play_once(reader, args, topics, labels, publishers, recorder, seen, cond, stats)
            if not args.loop:
                break
        stats['seconds'] = time.monotonic() - started
        stats.pop('bar').close()
        if recorder is not None:
            time.sleep(args.drain)
    except KeyboardInterrupt:
        stats['interrupted'] = True
    finally:
        if stats.get('bar') is not None:
            stats.pop('bar').close()
        if 'node' in live:          # after a renewal nothing is closed (ros/middleware.py)
            disconnect(close=not SET_ASIDE)
        reader.close()
        if recorder is not None:
            recorder.close()
            stats['recorded'] = dict(recorder.counts)
    return stats


def _wait_for_graph(publishers: Dict[str, Any], waiting: Any, timeout: float) -> bool:
    """Wait until every publisher has a subscriber (and the result topic a publisher)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() for p in publishers.values()) and (
                waiting is None or waiting.get_publisher_count()):
            time.sleep(0.5)         # matched on our side; give the other side time to match
            return True
        time.sleep(0.05)
    return False


def _play_once(reader: BagReader, args: argparse.Namespace, topics: List[str],
               labels: List[str], publishers: Dict[str, Any], recorder: Optional[Recorder],
               seen: Dict[int, float], cond: threading.Condition,
               stats: Dict[str, Any]) -> None:
    played: Dict[str, int] = {t: 0 for t in topics}
    start: Optional[float] = None
    first_log: Optional[int] = None
    for topic, msgtype, log_time, raw in reader.messages(topics + labels):
        if topic in labels:
            if recorder is not None:          # a String has no header: its log time
                recorder.write(topic, msgtype, raw,
                               log_time if msgtype == STRING_TYPE else cdr_stamp(raw))
            continue
        if args.frames and played[topic] >= args.frames:
            if all(n >= args.frames for n in played.values()):
                return
            continue
        if msgtype not in IMAGE_TYPES:
            continue
        now = time.monotonic()
        if start is None:
            start, first_log = now, log_time
        if not args.fast and not args.wait_for:
            due = start + (log_time - first_log) / 1e9 / args.rate
            if due > now:
                time.sleep(due - now)
            elif now - due > 0.1:
                stats['late'] += 1
        publishers[topic].publish(bytes(raw))
        played[topic] += 1
        stats['published'] += 1
        if args.wait_for:
            _await_result(publishers[topic], bytes(raw), args.wait_timeout, seen, cond, stats)
        if stats.get('bar') is not None:
            stats['bar'].update(1)


def _await_result(publisher: Any, raw: bytes, timeout: float, seen: Dict[int, float],
                  cond: threading.Condition, stats: Dict[str, Any]) -> None:
    """Wait for the result of one frame; until a first result ever came, re-send the frame.

    Best-effort messages sent right after discovery can be lost; re-sending is safe because
    the recorder keeps one message per topic and stamp.
    """
    stamp = cdr_stamp(raw)
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            first = not seen and not stats.get('results')
            wait = min(RESEND_S, deadline - time.monotonic()) if first \
                else deadline - time.monotonic()
            if cond.wait_for(lambda: stamp in seen, timeout=max(wait, 0.0)):
                seen.pop(stamp, None)
                stats['results'] = stats.get('results', 0) + 1
                return
            if first and time.monotonic() >= deadline:
                raise ReplayError(
                    f'the first frame got no result: no message with its stamp on the '
                    f'--wait-for topic in {timeout:g} s: is the node running and active, and '
                    f'does it use the same '
                    f'ROS_DOMAIN_ID and FASTDDS_BUILTIN_TRANSPORTS '
                    f'({os.environ.get("FASTDDS_BUILTIN_TRANSPORTS")})?')
            if time.monotonic() >= deadline or not first:
                stats['wait_timeouts'] += 1
                return
            publisher.publish(raw)
            stats['resent'] = stats.get('resent', 0) + 1


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; after a renewal (ros/discovery.py) it ends the process instead of returning."""
    args = build_parser().parse_args(argv)
    return leave(play_and_report(args))


def play_and_report(args: argparse.Namespace) -> int:
    """Replay, print the summary line (and write ``--json``); return the exit code."""
    try:
        stats = replay(args)
    except ReplayError as exc:          # waited-for results never came: exit 1 (README)
        print(f'densehybrid-replay: error: {exc}', file=sys.stderr)
        return 1
    except (BagError, ValueError, OSError) as exc:
        print(f'densehybrid-replay: error: {exc}', file=sys.stderr)
        return 2
    line = f'published {stats["published"]} messages'
    if 'seconds' in stats:
        line += f' in {stats["seconds"]:.2f} s'
    if stats.get('wait_timeouts'):
        line += f', {stats["wait_timeouts"]} frames got no result within --wait-timeout'
    if stats.get('late'):
        line += f', {stats["late"]} published late (> 0.1 s)'
    if stats.get('interrupted'):
        line += ' (interrupted)'
    if 'recorded' in stats:
        line += f'; recorded {sum(stats["recorded"].values())} messages to {args.record}'
    print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(stats, indent=2) + '\n')
    if stats.get('wait_timeouts'):      # waited-for frames that never came: not a success
        print(f'densehybrid-replay: error: {stats["wait_timeouts"]} of {stats["published"]} '
              'frames got no result from the node (lost frames? see the README on Fast DDS)',
              file=sys.stderr)
        return 1
    return 0            # also after Ctrl-C (--loop under launch): a requested stop, not a crash


if __name__ == '__main__':
    sys.exit(main())
