"""densehybrid-eval merge: shard outputs into one result, as if evaluated in one run.

Each shard folder holds metrics.json (counts, component size filters) and state.npz (the metric
state); the states merge exactly (``metrics.evaluation.Evaluation.merge``), frames.csv files
are concatenated in frame order, and the merged folder is finished like a run's (calibration
on all shards together included).
"""

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List

from .calibrate import add_threshold_rule
from .destinations import check_outputs
from .report import write_results
from .sources import EvalError
from .table import merge_tables
from ...core.staging import staged_folder
from ...metrics.evaluation import Evaluation

SAME_IN_EVERY_SHARD = ('input', 'checkpoint', 'num_classes')
COPIED_FROM_FIRST = ('input', 'source', 'topics', 'checkpoint', 'num_classes', 'threshold')


def build_merge_parser() -> argparse.ArgumentParser:
    """Command-line interface of densehybrid-eval merge."""
    p = argparse.ArgumentParser(
        prog='densehybrid-eval merge', description='Merge the outputs of densehybrid-eval '
        '--shard runs into one result, as if evaluated in one run.',
        epilog='example:\n  densehybrid-eval merge out/s0 out/s1 --output out/all',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('shards', nargs='+', help='output folders of the shard runs')
    p.add_argument('--output', default='out/eval', help='results folder (default out/eval)')
    p.add_argument('--json', help='also write metrics.json here')
    add_threshold_rule(p, 'calibrate on all shards together and write a checkpoint copy')
    p.add_argument('--calibrated-checkpoint', help='where to write that copy')
    p.add_argument('--checkpoint', help='the checkpoint to copy, if its path on this machine '
                                        'differs from the one in the shards')
    return p


def read_shard(folder: Path) -> Dict[str, Any]:
    """metrics.json of one shard folder (EvalError if it is not a densehybrid-eval output)."""
    meta_path, state_path = folder / 'metrics.json', folder / 'state.npz'
    if not meta_path.is_file() or not state_path.is_file():
        raise EvalError(f'{folder} is not a densehybrid-eval output (needs metrics.json '
                        f'and state.npz)')
    return json.loads(meta_path.read_text())


def check_shards(summaries: List[Dict[str, Any]]) -> List[str]:
    """Refuse shards of different runs or the same shard twice; returns the shard names."""
    first = summaries[0]
    for s in summaries[1:]:            # paths may differ between machines: compare names
        for key in SAME_IN_EVERY_SHARD:
            a, b = first.get(key), s.get(key)
            if key != 'num_classes':
                a, b = (Path(v).name if v else v for v in (a, b))
            if a != b:
                raise EvalError(f'shards differ in {key}: {a!r} vs {b!r}')
    shards = sorted(s.get('shard', '0/1') for s in summaries)
    if len(set(shards)) != len(shards):
        raise EvalError(f'the same shard appears twice: {shards}')
    return shards


def merge(args: argparse.Namespace) -> Dict[str, Any]:
    """Merge shard folders into one result."""
    check_outputs(args.shards, {'--output': args.output, '--json': args.json,
                                '--calibrated-checkpoint': args.calibrated_checkpoint})
    folders = [Path(folder) for folder in args.shards]
    summaries = [read_shard(folder) for folder in folders]
    shards = check_shards(summaries)
    runs = [Evaluation.load(folder / 'state.npz', summary)
            for folder, summary in zip(folders, summaries)]
    total = runs[0]
    for other in runs[1:]:
        total.merge(other)
    first = summaries[0]
    names = list((first.get('open_set') or {}).get('per_class_iou', {}).keys())
    summary = {**{k: first.get(k) for k in COPIED_FROM_FIRST},
               'shard': 'merged ' + ', '.join(shards),
               'interrupted': any(s.get('interrupted') for s in summaries),
               **total.summary(names or [str(i) for i in range(total.num_classes)]),
               'unmatched_messages': sum(s.get('unmatched_messages', 0) for s in summaries),
               'frames_without_labels': sum(s.get('frames_without_labels', 0)
                                            for s in summaries)}
    if args.checkpoint:
        summary['checkpoint'] = args.checkpoint
    with staged_folder(args.output) as output:
        merge_tables([folder / 'frames.csv' for folder in folders], output / 'frames.csv')
        write_results(args, total, summary, output)
    return summary
