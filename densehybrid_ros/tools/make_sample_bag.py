"""densehybrid-make-bag: write a rosbag2 of synthetic road scenes with anomalies and labels.

Topics (all with the same header stamp and frame_id per frame):
  <ns>/image            sensor_msgs/Image rgb8 (or <ns>/image/compressed, CompressedImage,
                        with --image-format jpeg|png)
  <ns>/semantic_label   sensor_msgs/Image mono8, Cityscapes train ids, 255 = ignore
  <ns>/anomaly_label    sensor_msgs/Image mono8, 0 inlier, 1 anomaly, 255 void
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Dict, List, Optional

from tqdm import tqdm

from ..bags import array_to_compressed, BagError, BagWriter, STORAGES

EXAMPLE = '''example:
  densehybrid-make-bag --output out/sample_bag                     # 20 frames, mcap
  densehybrid-make-bag --output out/sample.db3 --storage sqlite3 --frames 100 \\
      --size 512 1024 --rate 5 --seed 2000000 --image-format jpeg
  densehybrid-eval out/sample_bag --output out/eval                 # then evaluate it
'''
START_S = 1_700_000_000          # first header stamp (seconds), fixed so bags are reproducible
LABEL_TOPIC, ANOMALY_TOPIC, IMAGE_TOPIC = 'semantic_label', 'anomaly_label', 'image'
SCENE_SIZE = (512, 1024)         # H, W: the scale the embedded model was trained at (the demo's)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-make-bag."""
    parser = argparse.ArgumentParser(prog='densehybrid-make-bag', description=__doc__,
                                     epilog=EXAMPLE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default='out/sample_bag',
                        help='bag to write (a folder; default: out/sample_bag)')
    parser.add_argument('--storage', default='mcap', choices=STORAGES,
                        help='rosbag2 storage plugin (default: mcap)')
    parser.add_argument('--frames', type=int, default=20, help='number of frames (default 20)')
    parser.add_argument('--size', type=int, nargs=2, default=SCENE_SIZE, metavar=('H', 'W'),
                        help='image size (default: %d %d, the scale of the embedded model)'
                        % SCENE_SIZE)
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second (default 10)')
    parser.add_argument('--seed', type=int, default=None,
                        help='first scene seed (default: the evaluation split start, so the '
                             'scenes are never training scenes)')
    parser.add_argument('--namespace', default='/camera', help='topic namespace (default /camera)')
    parser.add_argument('--frame-id', default='camera', help='header frame_id (default camera)')
    parser.add_argument('--anomaly-family', default='eval', choices=['eval', 'train', 'none'],
                        help='anomaly family pasted into scenes (default: eval, unseen in '
                             'training)')
    parser.add_argument('--image-format', default='raw', choices=['raw', 'jpeg', 'png'],
                        help='camera topic as raw Image or CompressedImage (default raw)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing bag')
    parser.add_argument('--json', help='write a summary JSON here')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def write_sample_bag(output: str, frames: int = 20, size=SCENE_SIZE, rate: float = 10.0,
                     seed: Optional[int] = None, namespace: str = '/camera',
                     frame_id: str = 'camera', storage: str = 'mcap',
                     anomaly_family: Optional[str] = 'eval', image_format: str = 'raw',
                     overwrite: bool = False, progress: bool = False) -> Dict:
    """Write the sample bag; returns a summary (topics, frames, stamps, pixels)."""
    from ..data.synthetic import EVAL_SEED_START, make_scene
    if frames < 1:
        raise ValueError(f'--frames must be >= 1, got {frames}')
    if not rate > 0:
        raise ValueError(f'--rate must be > 0, got {rate}')
    seed = EVAL_SEED_START if seed is None else seed
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    topics = {k: f'{ns}/{k}' for k in (IMAGE_TOPIC, LABEL_TOPIC, ANOMALY_TOPIC)}
    if image_format != 'raw':                 # image_transport naming for compressed images
        topics[IMAGE_TOPIC] += '/compressed'
    period = int(round(1e9 / rate))
    anomaly_pixels = 0
    with BagWriter(output, storage=storage, overwrite=overwrite) as bag:
        for i in tqdm(range(frames), desc='scenes', unit='frame', disable=not progress):
            scene = make_scene(seed + i, tuple(size), anomaly_family=anomaly_family)
            stamp = START_S * 1_000_000_000 + i * period
            if image_format == 'raw':
                bag.write_image(topics[IMAGE_TOPIC], scene['image'], 'rgb8', stamp, frame_id)
            else:
                bag.write(topics[IMAGE_TOPIC],
                          array_to_compressed(scene['image'], image_format, stamp, frame_id))
            bag.write_image(topics[LABEL_TOPIC], scene['label'], 'mono8', stamp, frame_id)
            bag.write_image(topics[ANOMALY_TOPIC], scene['anomaly'], 'mono8', stamp, frame_id)
            anomaly_pixels += int((scene['anomaly'] == 1).sum())
    return {'output': str(Path(output)), 'storage': storage, 'frames': frames,
            'size': list(size), 'rate': rate, 'first_seed': seed, 'topics': topics,
            'first_stamp_ns': START_S * 1_000_000_000, 'anomaly_pixels': anomaly_pixels}


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        summary = write_sample_bag(
            args.output, args.frames, tuple(args.size), args.rate, args.seed, args.namespace,
            args.frame_id, args.storage, None if args.anomaly_family == 'none'
            else args.anomaly_family, args.image_format, args.overwrite,
            progress=not args.quiet)
    except (BagError, ValueError) as exc:
        print(f'densehybrid-make-bag: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:        # the writer closed the bag on the way out: it is readable
        print(f'\ndensehybrid-make-bag: interrupted; {args.output} holds the frames written '
              f'so far', file=sys.stderr)
        return 130
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + '\n')
    print(f'wrote {summary["frames"]} frames to {summary["output"]} ({args.storage}): '
          + ', '.join(summary['topics'].values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
