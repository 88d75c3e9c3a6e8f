"""Where densehybrid-eval's frames come from: a bag or a benchmark folder, maybe one shard.

A bag holds a camera (the model runs) or the node's recorded outputs (--recorded), with label
topics joined by header stamp; a benchmark folder is one of ``datasets.LAYOUTS``.
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

from .datasets import detect_layout, frames as benchmark_frames, LAYOUTS, pairs, smiyc_track
from ...data.bags import ANOMALY_NAMES, BagError, BagReader, Frame, LABEL_NAMES
from ...core.outputs import camera_base

RECORDED_PICTURES = ('overlay', 'anomaly_heatmap', 'semantic_color')   # node topics reused


class EvalError(ValueError):
    """Input that cannot be evaluated as asked; the message says why."""


@dataclass
class Source:
    """Frames to evaluate and what they hold."""

    kind: str
    frames: Iterator[Frame]
    total: Optional[int]
    topics: Dict[str, str] = field(default_factory=dict)
    namespace: str = ''
    close: Callable[[], None] = lambda: None
    track: str = 'anomaly'          # SMIYC track whose size filters score its components


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    if not text:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        raise EvalError(f'--shard must look like i/n (e.g. 0/4), got {text!r}') from None
    if not 0 <= i < n:
        raise EvalError(f'--shard {text}: need 0 <= i < n')
    return i, n


def _is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in ('.mcap', '.db3')
    return path.is_dir() and ((path / 'metadata.yaml').is_file()
                              or any(path.glob('*.mcap')) or any(path.glob('*.db3')))


def open_source(args: argparse.Namespace, stats: Dict[str, int]) -> Source:
    """Open the positional input as a bag or a benchmark folder."""
    path = Path(args.input)
    if not path.exists():
        raise EvalError(f'input not found: {path}')
    shard_i, shard_n = parse_shard(args.shard)

    def select(index: int) -> bool:
        return index % shard_n == shard_i

    if args.dataset == 'bag' or (args.dataset == 'auto' and _is_bag(path)):
        return _bag_source(args, path, select, stats, shard_n)
    if args.dataset == 'auto':
        found = detect_layout(path)
        if found is None:
            raise EvalError(
                f'cannot tell what {path} is: expected a rosbag2 (metadata.yaml, .mcap or '
                f'.db3) or a benchmark folder ({", ".join(LAYOUTS)}: see --help)')
        layout, root = found
    else:
        layout, root = args.dataset, path
    frames = benchmark_frames(layout, root, select, stats=stats)
    total = sum(1 for _, label in pairs(layout, root) if label is not None)
    return Source(layout, frames, -(-total // shard_n), namespace='/camera',
                  track=smiyc_track(layout, root))


def _bag_source(args: argparse.Namespace, path: Path, select: Callable[[int], bool],
                stats: Dict[str, int], shard_n: int) -> Source:
    bag = BagReader(path)
    try:
        roles: Dict[str, str] = {}
        recorded = args.recorded
        cams = bag.camera_topics()
        if not recorded and not args.image_topic and not cams and bag.find(['anomaly_score']):
            recorded = True            # only result topics: a recording of the live node
        if recorded:
            score = bag.topic(args.score_topic or 'densehybrid/anomaly_score', role='score')
            roles['score'] = score
            ns = score.rsplit('/densehybrid/', 1)[0]
            wanted = ('open_set', 'semantic') + (RECORDED_PICTURES if args.pictures else ())
            for role in wanted:
                name = f'{ns}/densehybrid/{role}'
                if name in bag.topics:
                    roles[role] = name
        else:
            if args.image_topic:
                roles['image'] = bag.topic(args.image_topic, role='image')
            else:
                if len(cams) != 1:
                    raise BagError(f'{path}: found {len(cams)} camera image topics, pass '
                                   f'--image-topic; topics: {bag.describe() or "none"}')
                roles['image'] = cams[0]
            ns = camera_base(roles['image']).rpartition('/')[0]
        if not args.no_labels:
            label = bag.topic(args.label_topic, role='label') if args.label_topic \
                else bag.label_topic(ns, LABEL_NAMES)
            anomaly = bag.topic(args.anomaly_topic, role='anomaly label') \
                if args.anomaly_topic else bag.label_topic(ns, ANOMALY_NAMES)
            if label:
                roles['label'] = label
            if anomaly:
                roles['anomaly'] = anomaly
            # a sequence bag: instance ids, depth and per-frame ground truth (sequences.py)
            roles.update({role: topic for role, topic in bag.sequence_roles(ns).items()
                          if role in ('instances', 'depth', 'truth')})
        key = 'score' if recorded else 'image'
        count = bag.topics[roles[key]][1]
        copied = (['image'] if args.copy_images else []) + ['label', 'anomaly']
        keep_raw = [r for r in copied if r in roles] if args.output_bag else []
        frames = bag.frames(roles, key=key, select=select, stats=stats, keep_raw=keep_raw)
        return Source('recorded bag' if recorded else 'bag', frames, -(-count // shard_n),
                      roles, ns, bag.close)
    except BaseException:
        bag.close()
        raise
