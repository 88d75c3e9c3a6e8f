"""densehybrid-eval-families: generalisation of a checkpoint to held-out anomaly families.

Generates ``--scenes`` road scenes per family (held-out families only: never pasted in training
or calibration), segments each at every ``--size H W`` (repeat the option for several sizes) and
prints, per family and size: mIoU, AP of the hybrid / generative / discriminative scores, hybrid
FPR95, and the calibrated threshold's TPR and FPR; the objects as SegmentMeIfYouCan scores them
(mean F1, sIoU and PPV of the connected components of the thresholded anomaly mask and of the
anomaly instances, with the anomaly track's size filters scaled to the scene); then, pooled over
the families, AP and FPR95 of each score by anomaly size and by distance to the anomaly's edge.

``--sequences N`` adds the objects over time: N synthetic drives per family towards its
obstacles, segmented frame by frame and run through the node's obstacle pipeline (instances ->
confirmed tracks -> placement), scored against their ground truth: objects confirmed before half
the range at which they first appear (also by occlusion level: visible, partly or largely
occluded), frames to confirm, flicker, phantom tracks per 100 frames, id switches, and the
placements' range and lateral errors (ground plane and depth image, also by true range).
``--scenes 0`` runs only those. ``--json`` writes everything.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ...models.checkpoint import CheckpointError
from ...data.synthetic import EVAL_SEED_START, HELD_OUT_FAMILIES
from .families_harness import evaluate_families, KINDS
from .families_sequences import evaluate_family_sequences, format_sequence_tables, \
    segmenter_predict
from ...deploy.segmenter import Segmenter
from .report import write_json

EXAMPLE = '''example:
  densehybrid-eval-families --scenes 40 --json out/families.json
  densehybrid-eval-families --families solids glyph --size 288 512 --size 512 1024 \\
      --scenes 5 --device cuda
  densehybrid-eval-families --scenes 0 --sequences 10        # objects over time only
'''
SIZES = [(288, 512), (512, 1024)]       # default inference sizes, H W
SCENE_SIZE = (512, 1024)
SEQUENCE_SIZE = (288, 512)
MIN_SIDE = 32


def checked_size(option: str, size: Sequence[int]) -> Tuple[int, int]:
    """(h, w) of an ``--size H W`` pair, or ValueError when a side is under ``MIN_SIDE``."""
    h, w = size
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f'{option} must be at least {MIN_SIDE} {MIN_SIDE}, got {h} {w}')
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-eval-families."""
    p = argparse.ArgumentParser(prog='densehybrid-eval-families', description=__doc__,
                                epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', help='model checkpoint (default: the embedded model)')
    p.add_argument('--families', nargs='+', default=list(HELD_OUT_FAMILIES),
                   choices=sorted(HELD_OUT_FAMILIES), help='held-out families (default: all)')
    p.add_argument('--size', nargs=2, type=int, action='append', metavar=('H', 'W'),
                   help='an inference size; repeat for several (default: --size 288 512 '
                        '--size 512 1024)')
    p.add_argument('--scene-size', nargs=2, type=int, default=SCENE_SIZE, metavar=('H', 'W'),
                   help='size the scenes are generated and scored at (default: 512 1024)')
    p.add_argument('--scenes', type=int, default=40,
                   help='scenes per family (default: 40; 0: none, with --sequences)')
    p.add_argument('--sequences', type=int, default=0,
                   help='synthetic drives per family scored over time (default: 0, none)')
    p.add_argument('--sequence-size', nargs=2, type=int, default=SEQUENCE_SIZE,
                   metavar=('H', 'W'), help='frame size of the drives (default: %d %d)'
                   % SEQUENCE_SIZE)
    p.add_argument('--sequence-frames', type=int, default=60,
                   help='frames per drive (default: 60)')
    p.add_argument('--sequence-speed', type=float, default=1.2,
                   help='units the camera moves per frame (default: 1.2; the camera is 1 unit '
                        'above the ground, the obstacles start 30-60 units ahead)')
    p.add_argument('--sequence-seed', type=int, default=EVAL_SEED_START, metavar='SEED',
                   help='street seed of the first drive, the next drives the seeds after it '
                        f'(default: {EVAL_SEED_START}, the evaluation streets; the embedded '
                        "model's rules were chosen on streets 1000-1029, its training drives "
                        'are streets 0-399)')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--json', help='write the full results here')
    return p


def _pct(value: float) -> str:
    return f'{100 * value:5.1f}'


def component_rows(result: Dict[str, Any]) -> List[str]:
    """Object figures per family and size, then pooled: mask and instances (none: no rows)."""
    rows = [(family, size, r) for family, per_size in result['families'].items()
            for size, r in per_size.items()]
    rows += [('pooled', size, r) for size, r in result['pooled'].items()]
    rows = [(family, size, r['components']) for family, size, r in rows if 'components' in r]
    if not rows:
        return []
    figures = '   F1  sIoU   PPV'
    lines = [f'\nobjects at the threshold: SegmentMeIfYouCan components, {rows[0][2]["track"]} '
             'track size filters (%)',
             f'{"":20s}{"mask":^17s}  {"instances":^17s}'.rstrip(),
             f'family    size      {figures}  {figures}  objects']
    for family, size, c in rows:
        cells = [' '.join(_pct(c[name][k]) for k in ('f1_mean', 'siou', 'ppv'))
                 if name in c else f'{"-":>5s} {"-":>5s} {"-":>5s}'
                 for name in ('mask', 'instances')]
        objects = max(c[name]['gt_components'] for name in ('mask', 'instances') if name in c)
        lines.append(f'{family:9s} {size:9s} {cells[0]}  {cells[1]}  {objects:7d}')
    return lines


def format_tables(result: Dict[str, Any]) -> str:
    """Plain-text tables: per family and size, objects, then pooled AP/FPR95 by bin."""
    lines = ['family    size      mIoU  AP hyb  AP gen  AP dis  FPR95h  TPR@t  FPR@t  (%)']
    for family, per_size in result['families'].items():
        for size, r in per_size.items():
            t = r.get('threshold', {'tpr': float('nan'), 'fpr': float('nan')})
            lines.append(f'{family:9s} {size:9s} {_pct(r["miou"])}  '
                         + '  '.join(f'{_pct(r[k]["ap"])} ' for k in KINDS)
                         + f' {_pct(r["hybrid"]["fpr95"])}  {_pct(t["tpr"])}  {_pct(t["fpr"])}')
    lines += component_rows(result)
    for size, r in result['pooled'].items():
        for axis in ('size', 'distance'):
            lines.append(f'\npooled, {size}, by anomaly {axis}: AP hyb/gen/dis  FPR95 '
                         'hyb/gen/dis  anomaly px')
            for name, b in r[f'by_{axis}'].items():
                lines.append(f'  {name:11s} ' + ' '.join(_pct(b[k]['ap']) for k in KINDS)
                             + '   ' + ' '.join(_pct(b[k]['fpr95']) for k in KINDS)
                             + f'   {b["anomaly_pixels"]}')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        if args.scenes < 0 or args.sequences < 0 or not (args.scenes or args.sequences):
            raise ValueError(f'need --scenes or --sequences of at least 1, got --scenes '
                             f'{args.scenes} --sequences {args.sequences}')
        if args.sequence_seed < 0:
            raise ValueError(f'--sequence-seed must be at least 0, got {args.sequence_seed}')
        if args.sequence_frames < 1 or not args.sequence_speed > 0:
            raise ValueError(f'--sequence-frames must be at least 1 and --sequence-speed over '
                             f'0, got {args.sequence_frames} and {args.sequence_speed}')
        sizes = list(dict.fromkeys(checked_size('--size', size)      # once each, in order
                                   for size in args.size or SIZES))
        scene_size = checked_size('--scene-size', args.scene_size)
        sequence_size = checked_size('--sequence-size', args.sequence_size)
        seg = Segmenter(args.checkpoint, device=args.device)
    except (ValueError, CheckpointError) as exc:
        print(f'densehybrid-eval-families: error: {exc}', file=sys.stderr)
        return 2

    def progress(what: str, total: int) -> Any:
        def report(family: str, done: int) -> None:
            if done == total or done % 10 == 0:
                print(f'{family}: {done}/{total} {what}', file=sys.stderr)
        return report

    result: Dict[str, Any] = {}
    if args.scenes:
        result = evaluate_families(seg, args.families, sizes, args.scenes, scene_size,
                                   progress=progress('scenes', args.scenes))
        print(format_tables(result))
    if args.sequences:
        result['sequences'] = evaluate_family_sequences(
            segmenter_predict(seg), seg.threshold, args.families, args.sequences,
            sequence_size, args.sequence_frames, args.sequence_speed, args.sequence_seed,
            progress=progress('sequences', args.sequences))
        print(format_sequence_tables(result['sequences']))
    result['checkpoint'] = args.checkpoint or 'embedded'
    if args.json:
        write_json(Path(args.json), result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
