"""densehybrid-import: turn an authors' raw DenseHybrid state_dict into a project checkpoint.

Tensors are read onto the CPU (map_location), so files saved from CUDA import on any machine.
"""

import argparse
import json
from pathlib import Path
import sys
from typing import List, Optional

from ...models.checkpoint import CheckpointError, save_checkpoint
from ...models.official import import_official
from ...models import ARCHS

EXAMPLE = '''example:
  densehybrid-import ldn121_smiyc.pt --arch ldn121 --output models/ldn121_smiyc.pt
  densehybrid-import wrn38_smiyc.pth --output models/dlv3plus_wrn38_smiyc.pt   # arch guessed
  densehybrid-import weights.pt --arch ldn121 --threshold -3.2 --score-range -12 2 \\
      --output ldn121_calibrated.pt
'''


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-import."""
    parser = argparse.ArgumentParser(
        prog='densehybrid-import', description=__doc__, epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('state_dict', help="the authors' .pt/.pth state_dict file")
    parser.add_argument('--arch', choices=sorted(ARCHS),
                        help='architecture of the weights (default: told from the keys)')
    parser.add_argument('--num-classes', type=int,
                        help='closed-set classes (default: 19, Cityscapes names and palette; '
                             "a project checkpoint's own)")
    parser.add_argument('--class-names', nargs='+', help='class names, if not Cityscapes')
    parser.add_argument('--threshold', type=float,
                        help='anomaly threshold to store (else calibrate with densehybrid-eval '
                             '--threshold-from-tpr)')
    parser.add_argument('--score-range', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                        help='fixed heatmap range of the hybrid score')
    parser.add_argument('--output', required=True, help='where to write the checkpoint')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --output')
    parser.add_argument('--new-ood-head', action='store_true',
                        help='the file is a plain segmentation model without logits_ood.* '
                             '(e.g. Cityscapes weights to fine-tune from): start that head fresh')
    parser.add_argument('--json', help='also write a summary JSON here')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    problem = (f'{args.output} is a directory; give the checkpoint file name'
               if Path(args.output).is_dir() else
               f'{args.output} exists; give --force to overwrite it'
               if Path(args.output).exists() and not args.force else None)
    if problem:
        print(f'densehybrid-import: error: {problem}', file=sys.stderr)
        return 2
    calibration = {}
    if args.threshold is not None:
        calibration['threshold'] = args.threshold
    if args.score_range:
        calibration['score_p01'], calibration['score_p99'] = args.score_range
    if calibration:
        calibration['measured_on'] = 'given on the densehybrid-import command line'
    try:
        model, meta = import_official(args.state_dict, args.arch, args.num_classes,
                                      args.class_names, calibration or None,
                                      new_ood_head=args.new_ood_head)
    except CheckpointError as exc:
        print(f'densehybrid-import: error: {exc}', file=sys.stderr)
        return 2
    meta['train'] = {**meta['train'], 'command': ' '.join(['densehybrid-import'] + (
        argv if argv is not None else sys.argv[1:]))}
    path = save_checkpoint(args.output, model, meta)
    summary = {'output': str(path), 'arch': meta['arch'], 'num_classes': meta['num_classes'],
               'parameters': sum(p.numel() for p in model.parameters()),
               'calibrated': (meta['calibration'] or {}).get('threshold') is not None}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
