"""Calibrating the threshold from an evaluation: the two rules, and the calibrated checkpoint copy.

``--threshold-from-tpr`` / ``--threshold-from-fpr`` (``metrics.calibration``'s one rule, on the
run's binned scores) give a threshold that is written into a copy of the checkpoint evaluated;
the original is never touched. Without anomaly labels (``--no-labels``, or a bag that has none:
normal driving) every pixel counts as an inlier and ``--threshold-from-fpr F`` sets the
threshold that flags at most the fraction F of the pixels (``calibration.calibrate_inliers``,
on the histogram of every pixel's score), with the heatmap range of those pixels.
"""

import argparse
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .destinations import partial_path
from .sources import EvalError
from ...metrics.anomaly import AnomalyMetrics, ScoreHistogram
from ...metrics.evaluation import Evaluation

UNLABELLED = 'no labels: every pixel an inlier'


def add_threshold_rule(group: Any, what: str) -> None:
    """Add the two calibration rules as exclusive options (``calibration.calibrate_counts``)."""
    rule = group.add_mutually_exclusive_group()
    rule.add_argument('--threshold-from-tpr', type=float, metavar='TPR',
                      help=f'{what}: the threshold flagging this fraction of anomaly pixels '
                           '(e.g. 0.95)')
    rule.add_argument('--threshold-from-fpr', type=float, metavar='FPR',
                      help=f'{what}: the threshold flagging the most anomaly pixels while '
                           'flagging at most this fraction of inlier pixels (e.g. 0.01); '
                           'without anomaly labels (--no-labels) every pixel is an inlier: '
                           'at most this fraction of all pixels is flagged')


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
    if tpr is not None and getattr(args, 'no_labels', False):
        raise EvalError('--threshold-from-tpr needs anomaly labels; with --no-labels use '
                        '--threshold-from-fpr (every pixel an inlier)')


def calibrate(args: argparse.Namespace, run: Evaluation, summary: Dict[str, Any],
              output: Path) -> None:
    """Add ``calibration`` to ``summary`` and write the calibrated copy (if a rule was given).

    The copy goes to ``--calibrated-checkpoint``, else to ``output`` (the staging folder) as
    ``<name>_calibrated.pt``, reported where it will be once the run is moved to ``--output``
    (or to ``<output>.partial``, with the rest of a run cut short by broken input). A run
    without anomaly labels calibrates its inlier budget on every pixel.
    """
    rule = threshold_rule(args)
    if not rule:
        return
    if run.anomaly_frames:
        calibration = run.anomaly.threshold_at_tpr(**rule)
        where = f'{run.anomaly_frames} frames'
    elif 'target_fpr' in rule:
        calibration = every_pixel_an_inlier(run.scores).threshold_at_tpr(**rule)
        where = f'{run.frames} frames, {UNLABELLED}'
    else:
        raise EvalError(f'--threshold-from-tpr needs anomaly labels and {summary["input"]} has '
                        f'none; use --threshold-from-fpr (every pixel an inlier)')
    summary['calibration'] = calibration
    calibration['measured_on'] = f'densehybrid-eval {summary["input"]}, {where}'
    if run.semantic_frames:
        summary['open_set']['note'] = (
            'open-set figures use the threshold in effect during this run; evaluate with '
            'the calibrated checkpoint for open-mIoU at the new threshold')
    name = Path(summary['checkpoint']).stem + '_calibrated.pt'
    broken = bool(summary.get('error'))      # cut short: the copy stays with the partial run
    if args.calibrated_checkpoint and not broken:
        target = write_calibrated(summary['checkpoint'], Path(args.calibrated_checkpoint),
                                  calibration)
    else:
        write_calibrated(summary['checkpoint'], output / name, calibration)
        target = (partial_path(args.output) if broken else Path(args.output)) / name
    summary['calibrated_checkpoint'] = str(target)


def every_pixel_an_inlier(scores: ScoreHistogram) -> AnomalyMetrics:
    """Return every pixel's score histogram as anomaly metrics in which every pixel is an inlier.

    Same bins and counts (channel 0 holds the inliers), so ``threshold_at_tpr(target_fpr=F)``
    applies the one rule (``calibrate_inliers`` when there are no anomalies) exactly as on a
    labelled run, with the heatmap range (``score_p01`` / ``score_p99``) of those pixels.
    """
    state = scores.state_dict()
    counts = np.asarray(state['counts'])
    state.update(kind=np.array(AnomalyMetrics.__name__),
                 counts=np.concatenate([counts, np.zeros_like(counts)]),
                 sums=np.append(state['sums'], 0.0), sumsq=np.append(state['sumsq'], 0.0))
    metrics = AnomalyMetrics(scores.bins)
    metrics.load_state_dict(state)
    return metrics


def write_calibrated(checkpoint: str, target: Path, calibration: Dict[str, Any]) -> Path:
    """Copy ``checkpoint`` to ``target`` with a new calibration block."""
    from ...models.checkpoint import load_checkpoint, save_checkpoint   # torch: loaded late
    model, meta = load_checkpoint(checkpoint)
    old = meta.get('calibration') or {}
    meta['calibration'] = {**calibration, 'previous_threshold': old.get('threshold')}
    meta['train'] = meta.get('train') or {}
    return save_checkpoint(target, model, meta)
