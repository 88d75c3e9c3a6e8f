"""Calibrating the threshold from an evaluation: the two rules, and the calibrated checkpoint copy.

``--threshold-from-tpr`` / ``--threshold-from-fpr`` (``metrics.calibration``'s one rule, on the
run's binned scores) give a threshold that is written into a copy of the checkpoint evaluated;
the original is never touched.
"""

import argparse
from pathlib import Path
from typing import Any, Dict

from .sources import EvalError
from ...metrics.evaluation import Evaluation


def add_threshold_rule(group: Any, what: str) -> None:
    """Add the two calibration rules as exclusive options (``calibration.calibrate_counts``)."""
    rule = group.add_mutually_exclusive_group()
    rule.add_argument('--threshold-from-tpr', type=float, metavar='TPR',
                      help=f'{what}: the threshold flagging this fraction of anomaly pixels '
                           '(e.g. 0.95)')
    rule.add_argument('--threshold-from-fpr', type=float, metavar='FPR',
                      help=f'{what}: the threshold flagging the most anomaly pixels while '
                           'flagging at most this fraction of inlier pixels (e.g. 0.01)')


def threshold_rule(args: argparse.Namespace) -> Dict[str, float]:
    """Keyword arguments of ``threshold_at_tpr`` for the rule asked for; empty for none."""
    if args.threshold_from_fpr is not None:
        return {'target_fpr': args.threshold_from_fpr}
    return {'target_tpr': args.threshold_from_tpr} if args.threshold_from_tpr else {}


def check_threshold_rule(args: argparse.Namespace) -> None:
    """Refuse a target rate outside its range (EvalError)."""
    tpr, fpr = args.threshold_from_tpr, args.threshold_from_fpr
    if tpr is not None and not 0 < tpr <= 1:
        raise EvalError(f'--threshold-from-tpr must be in (0, 1], got {tpr}')
    if fpr is not None and not 0 <= fpr < 1:
        raise EvalError(f'--threshold-from-fpr must be in [0, 1), got {fpr}')


def calibrate(args: argparse.Namespace, run: Evaluation, summary: Dict[str, Any],
              output: Path) -> None:
    """Add ``calibration`` to ``summary`` and write the calibrated copy (if a rule was given).

    The copy goes to ``--calibrated-checkpoint``, else to ``output`` (the staging folder) as
    ``<name>_calibrated.pt``, reported where it will be once the run is moved to ``--output``.
    """
    rule = threshold_rule(args)
    if not rule:
        return
    summary['calibration'] = calibration = run.anomaly.threshold_at_tpr(**rule)
    calibration['measured_on'] = f'densehybrid-eval {summary["input"]}, ' \
        f'{run.anomaly_frames} frames'
    if run.semantic_frames:
        summary['open_set']['note'] = (
            'open-set figures use the threshold in effect during this run; evaluate with '
            'the calibrated checkpoint for open-mIoU at the new threshold')
    name = Path(summary['checkpoint']).stem + '_calibrated.pt'
    if args.calibrated_checkpoint:
        target = write_calibrated(summary['checkpoint'], Path(args.calibrated_checkpoint),
                                  calibration)
    else:
        write_calibrated(summary['checkpoint'], output / name, calibration)
        target = Path(args.output) / name
    summary['calibrated_checkpoint'] = str(target)


def write_calibrated(checkpoint: str, target: Path, calibration: Dict[str, Any]) -> Path:
    """Copy ``checkpoint`` to ``target`` with a new calibration block."""
    from ...models.checkpoint import load_checkpoint, save_checkpoint   # torch: loaded late
    model, meta = load_checkpoint(checkpoint)
    old = meta.get('calibration') or {}
    meta['calibration'] = {**calibration, 'previous_threshold': old.get('threshold')}
    meta['train'] = meta.get('train') or {}
    return save_checkpoint(target, model, meta)
