"""densehybrid-segment: run the model on image files and write the result pictures as PNGs.

Images are read as the node reads them: PNG or JPEG, the size read from the header and checked
against ``--max-pixels`` before anything is decoded. The pictures are written next to ``--output``
and moved in only when every image has been segmented, so a failed run leaves an earlier
``--output`` as it was and no empty folder behind.
"""

import argparse
import json
import math
from pathlib import Path
import sys
from typing import Any, List, Optional

import numpy as np

from .options import add_model_options, segmenter_from_args
from ...core.domain import flagged_warning, model_domain, WARN_FRACTION
from ...core.images import decode_compressed, ImageError, MAX_PIXELS
from ...core.outputs import Renderer
from ...core.pictures import PICTURES, unique_stems, write_pictures
from ...core.staging import staged_folder
from ...models.checkpoint import CheckpointError

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
    parser.add_argument('images', nargs='*', help='image files (PNG or JPEG)')
    parser.add_argument('--synthetic', type=int, default=0, metavar='N',
                        help='also segment N generated road scenes with unseen anomalies')
    parser.add_argument('--size', type=int, nargs=2, default=(512, 1024), metavar=('H', 'W'),
                        help='size of generated scenes (default: 512 1024)')
    parser.add_argument('--seed', type=int, default=1000, help='first scene seed')
    parser.add_argument('--frames', type=int, default=0,
                        help='segment at most N images, files first (0: all)')
    parser.add_argument('--max-pixels', type=int, default=MAX_PIXELS, metavar='N',
                        help='refuse an image of more pixels (width x height, read from its '
                        f'header before decoding; 0: no limit; default {MAX_PIXELS}, the '
                        "node's max_input_pixels)")
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
        items.append((stem, read_image(name, args.max_pixels)))
    if args.synthetic:
        from ...data.synthetic import make_scene
        for i in range(min(args.synthetic, limit - len(items))):
            scene = make_scene(args.seed + i, tuple(args.size), anomaly_family='eval')
            items.append((f'scene_{args.seed + i}', scene['image']))
    if not items:
        raise ValueError('nothing to segment: give image files or --synthetic N')
    return items


def read_image(name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a PNG or JPEG file as H x W x 3 uint8 RGB, refused from its header if over budget."""
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise ValueError(f'cannot read image {name!r}: {exc.strerror or exc}') from None
    try:
        return decode_compressed(data, Path(name).suffix.lstrip('.').lower(), max_pixels)
    except ImageError as exc:
        raise ValueError(f'image {name!r} refused ({exc.cause}): {exc}') from None


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        if args.max_pixels < 0:
            raise ValueError(f'--max-pixels must be >= 0, got {args.max_pixels}')
        items = _inputs(args)
        seg = segmenter_from_args(args)
        out = Path(args.output)
        renderer = Renderer(seg.palette, seg.calibration, args.alpha)
        if renderer.score_range is None:
            print('note: the checkpoint has no calibrated heatmap range; using the first '
                  "image's 1st-99th percentiles for every image", file=sys.stderr)
        with staged_folder(out) as staging:          # moved into --output on success only
            stats, pictures = _segment(items, seg, renderer, staging)
        threshold = None if math.isnan(seg.threshold) else seg.threshold
        if args.json:
            summary = {'output': str(out), 'threshold': threshold, 'images': stats}
            Path(args.json).write_text(json.dumps(summary, indent=2))
    except (ValueError, CheckpointError, OSError) as exc:
        # ValueError covers ImageError and the backends' errors (no artifact for a size).
        print(f'densehybrid-segment: error: {" ".join(str(exc).split())}', file=sys.stderr)
        return 2
    print(f'wrote {pictures} PNGs for {len(items)} images to {out}/')
    warning = domain_warning(stats, model_domain(seg.meta))
    if warning:
        print(f'warning: {warning}', file=sys.stderr)
    return 0


def domain_warning(stats: List[dict], domain: str, limit: float = WARN_FRACTION
                   ) -> Optional[str]:
    """One line for the run when images had more than ``limit`` of their pixels flagged."""
    worst = max(stats, key=lambda s: s['anomalous_fraction'])
    text = flagged_warning(worst['anomalous_fraction'], limit, domain, worst['image'])
    over = sum(s['anomalous_fraction'] > limit for s in stats)
    if text is None or len(stats) == 1:
        return text
    return f'{text} ({over} of {len(stats)} images above {100 * limit:.0f} %)'


def _segment(items: List[tuple], seg: Any, renderer: Renderer, folder: Path) -> tuple:
    """Segment every image and write its pictures into ``folder``; (stats, pictures written)."""
    stats, written = [], 0
    for name, image in items:
        r = seg([image])[0]
        pictures = renderer.render_all([p for p in PICTURES if p != 'image'], image, r)
        written += len(write_pictures(folder, name, {**pictures, 'image': image}))
        stats.append({'image': name, 'height': image.shape[0], 'width': image.shape[1],
                      'anomalous_fraction': float(r.anomaly_mask.mean()),
                      'score_min': float(r.score.min()), 'score_max': float(r.score.max())})
    return stats, written


if __name__ == '__main__':
    sys.exit(main())
