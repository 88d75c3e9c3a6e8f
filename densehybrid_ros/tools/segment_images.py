"""densehybrid-segment: run the model on image files and write the result pictures as PNGs."""

import argparse
import json
import math
from pathlib import Path
import sys
from typing import List, Optional

import cv2

from .model_options import add_model_options, segmenter_from_args
from ..checkpoint import CheckpointError
from ..outputs import Renderer
from ..pictures import PICTURES, unique_stems, write_pictures
EXAMPLE = '''example:
  densehybrid-segment frame.png --output out/
  densehybrid-segment --synthetic 3 --output out/          # generated road scenes
  densehybrid-segment a.jpg b.jpg --checkpoint ldn121.pt --device cuda --inference-width 1024
'''


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-segment."""
    parser = argparse.ArgumentParser(prog='densehybrid-segment', description=__doc__,
                                     epilog=EXAMPLE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='*', help='image files (PNG, JPEG, ...)')
    parser.add_argument('--synthetic', type=int, default=0, metavar='N',
                        help='also segment N generated road scenes with unseen anomalies')
    parser.add_argument('--size', type=int, nargs=2, default=(512, 1024), metavar=('H', 'W'),
                        help='size of generated scenes (default: 512 1024)')
    parser.add_argument('--seed', type=int, default=1000, help='first scene seed')
    parser.add_argument('--frames', type=int, default=0,
                        help='segment at most N images, files first (0: all)')
    add_model_options(parser)
    parser.add_argument('--alpha', type=float, default=0.5, help='overlay opacity')
    parser.add_argument('--output', default='out/segment', help='folder for the PNGs')
    parser.add_argument('--json', help='write per-image statistics here')
    return parser


def _inputs(args: argparse.Namespace) -> List[tuple]:
    limit = args.frames if args.frames > 0 else len(args.images) + args.synthetic
    files = args.images[:limit]
    items = []
    for name, stem in zip(files, unique_stems(files)):   # a/x.png, b/x.png: a_x, b_x
        bgr = cv2.imread(name, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'cannot read image {name!r} (missing or not an image)')
        items.append((stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    if args.synthetic:
        from ..data.synthetic import make_scene
        for i in range(min(args.synthetic, limit - len(items))):
            scene = make_scene(args.seed + i, tuple(args.size), anomaly_family='eval')
            items.append((f'scene_{args.seed + i}', scene['image']))
    if not items:
        raise ValueError('nothing to segment: give image files or --synthetic N')
    return items


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        items = _inputs(args)
        seg = segmenter_from_args(args)
    except (ValueError, CheckpointError) as exc:
        print(f'densehybrid-segment: error: {exc}', file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(seg.palette, seg.calibration, args.alpha)
    if renderer.score_range is None:
        print('note: the checkpoint has no calibrated heatmap range; using the first '
              "image's 1st-99th percentiles for every image", file=sys.stderr)
    stats = []
    for name, image in items:
        r = seg([image])[0]
        pictures = renderer.render_all([p for p in PICTURES if p != 'image'], image, r)
        written = write_pictures(out, name, {**pictures, 'image': image})
        stats.append({'image': name, 'height': image.shape[0], 'width': image.shape[1],
                      'anomalous_fraction': float(r.anomaly_mask.mean()),
                      'score_min': float(r.score.min()), 'score_max': float(r.score.max())})
    threshold = None if math.isnan(seg.threshold) else seg.threshold
    summary = {'output': str(out), 'threshold': threshold, 'images': stats}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f'wrote {len(items) * len(written)} PNGs for {len(items)} images to {out}/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
