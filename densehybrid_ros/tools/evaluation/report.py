"""The evaluation report: metrics.json (JSON without NaN), PR / ROC / histogram PNGs, the summary.

:func:`write_results` finishes a results folder (one run's or merged shards'); the printed
one-line summary is :func:`print_summary`.
"""

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from .calibrate import calibrate
from ...metrics.anomaly import AnomalyMetrics, ScoreHistogram
from ...metrics.evaluation import Evaluation

COMPONENT_PREDICTIONS = ('mask', 'instances')     # printed in this order


def jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN and infinities become null (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON (whole or not at all: written aside, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + '\n')
    os.replace(tmp, path)


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)               # Agg canvas: no display, no global pyplot state
    return fig


def plot_curves(metrics: AnomalyMetrics, output: Path, title: str = '') -> list:
    """Write pr_curve.png and roc_curve.png; returns the paths (none without both classes)."""
    try:
        curves = metrics.curves()
    except ValueError:
        return []
    figures = metrics.compute()
    paths = []
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(curves['recall'], curves['precision'], lw=1.5,
            label=f'AP = {100 * figures["ap"]:.2f} %')
    prevalence = figures['anomaly_pixels'] / max(figures['pixels'], 1)
    ax.axhline(prevalence, color='grey', ls=':', lw=1, label=f'chance = {100 * prevalence:.2f} %')
    ax.set(xlabel='recall', ylabel='precision', xlim=(0, 1), ylim=(0, 1.02),
           title=f'Precision-recall {title}'.strip())
    ax.legend(loc='lower left')
    ax.grid(alpha=0.3)
    paths.append(output / 'pr_curve.png')
    fig.savefig(paths[-1], bbox_inches='tight')

    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(curves['fpr'], curves['tpr'], lw=1.5, label=f'AUROC = {100 * figures["auroc"]:.2f} %')
    ax.plot([0, 1], [0, 1], color='grey', ls=':', lw=1)
    if not math.isnan(figures['fpr95']):
        ax.plot([figures['fpr95']], [0.95], 'o', color='C3',
                label=f'FPR95 = {100 * figures["fpr95"]:.2f} %')
    ax.set(xlabel='false positive rate', ylabel='true positive rate', xlim=(0, 1),
           ylim=(0, 1.02), title=f'ROC {title}'.strip())
    ax.legend(loc='lower right')
    ax.grid(alpha=0.3)
    paths.append(output / 'roc_curve.png')
    fig.savefig(paths[-1], bbox_inches='tight')
    return paths


def clipped_notes(edges: np.ndarray, below: int, above: int, total: int) -> List[str]:
    """Labels of the two end bars of a clipped histogram ('' where nothing was clipped)."""
    def note(count: int, where: str) -> str:
        return f'bar includes {100 * count / max(total, 1):.2g} % of pixels {where}' \
            if count else ''

    return [note(below, f'< {edges[0]:.3g}'), note(above, f'> {edges[-1]:.3g}')]


def plot_histogram(output: Path, metrics: Optional[AnomalyMetrics] = None,
                   scores: Optional[ScoreHistogram] = None,
                   threshold: float = math.nan) -> Optional[Path]:
    """Write score_histogram.png: inliers vs anomalies (labelled) or all scores (unlabelled)."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    source = metrics if metrics is not None and metrics.pixels else scores
    if metrics is not None and metrics.pixels:
        edges, inl, ano = metrics.histogram(120)
        width = np.diff(edges)
        for counts, name, color in ((inl, 'inlier pixels', 'C0'), (ano, 'anomaly pixels', 'C3')):
            if counts.sum():
                ax.stairs(counts / counts.sum() / width, edges, fill=True, alpha=0.45,
                          color=color, label=name)
        ax.set_ylabel('density (per class)')
    elif scores is not None and scores.pixels:
        edges, counts = scores.histogram(120)
        ax.stairs(counts / counts.sum() / np.diff(edges), edges, fill=True, alpha=0.6,
                  color='C0', label='all pixels (no labels)')
        ax.set_ylabel('density')
    else:
        return None
    if math.isfinite(threshold):
        span = edges[-1] - edges[0]
        if edges[0] - 0.25 * span <= threshold <= edges[-1] + 0.25 * span:
            ax.axvline(threshold, color='k', ls='--', lw=1, label=f'threshold {threshold:.3g}')
        else:            # keep the data readable; say where the threshold is
            ax.plot([], [], color='k', ls='--', lw=1,
                    label=f'threshold {threshold:.3g} (off scale)')
    below, above = (int(n) for n in source.outside(edges[0], edges[-1]).sum(0))
    for note, x, side in zip(clipped_notes(edges, below, above, source.pixels),
                             (edges[0], edges[-1]), ('left', 'right')):
        if note:                       # the end bar also holds every score beyond it
            ax.annotate(note, (x, 0), xytext=(0, 30), textcoords='offset points', ha=side,
                        fontsize=7, arrowprops={'arrowstyle': '->', 'lw': 0.8})
    ax.set(xlabel='anomaly score (higher = more anomalous)', title='Score histogram')
    ax.legend()
    ax.grid(alpha=0.3)
    path = output / 'score_histogram.png'
    fig.savefig(path, bbox_inches='tight')
    return path


def write_results(args: argparse.Namespace, run: Evaluation, summary: Dict[str, Any],
                  output: Path) -> None:
    """Complete ``summary`` (rates at the threshold, calibration) and write the folder's files.

    Writes state.npz, pr_curve.png, roc_curve.png, score_histogram.png and metrics.json into
    ``output``, and metrics.json to ``--json`` too.
    """
    current = (summary.get('threshold') or {}).get('value')
    anomaly = summary.get('anomaly') or {}
    if current is not None and math.isfinite(current) and anomaly.get('anomaly_pixels') \
            and anomaly.get('inlier_pixels'):
        anomaly['at_threshold'] = run.anomaly.rates_at(current)
    calibrate(args, run, summary, output)
    run.save(output / 'state.npz')
    plot_curves(run.anomaly, output)
    in_effect = summary['threshold']                # a recording: the node's, when known
    threshold = summary.get('calibration', {}).get(
        'threshold', in_effect.get('node', in_effect['value']))
    plot_histogram(output, run.anomaly if run.anomaly_frames else None, run.scores,
                   threshold if threshold is not None else math.nan)
    write_json(output / 'metrics.json', summary)
    if args.json:
        write_json(Path(args.json), summary)


def print_summary(summary: Dict[str, Any], output: str) -> None:
    """Print the one-line figures of an evaluation and where its results are."""
    def pct(value: Optional[float]) -> str:
        return 'n/a' if value is None or not math.isfinite(value) else f'{100 * value:.2f}'

    parts = [f'{summary["frames"]} frames']
    anomaly = summary.get('anomaly')
    if anomaly:
        parts.append(f'AP {pct(anomaly["ap"])}  AUROC {pct(anomaly["auroc"])}  '
                     f'FPR95 {pct(anomaly["fpr95"])}')
        if anomaly.get('undefined'):
            parts.append(anomaly['undefined'])
        bound = max(anomaly.get(f'{k}_error_bound') or 0.0 for k in ('ap', 'auroc', 'fpr95'))
        if bound > 0.002:
            parts.append(f'histogram resolution: figures within +-{100 * bound:.2f} '
                         f'(see metrics.json)')
    at = (anomaly or {}).get('at_threshold')
    mask = summary.get('unknown_mask')
    if at:
        parts.append(f'at threshold {at["threshold"]:.4g}: TPR {pct(at["tpr"])} '
                     f'FPR {pct(at["fpr"])}')
    elif mask:
        parts.append(f'unknown mask: TPR {pct(mask["tpr"])} FPR {pct(mask["fpr"])}')
    components = summary.get('components') or {}
    for name in COMPONENT_PREDICTIONS:
        block = components.get(name)
        if block:
            parts.append(f'objects ({name}): F1 {pct(block["f1_mean"])}  sIoU '
                         f'{pct(block["siou"])}  PPV {pct(block["ppv"])}')
    open_set = summary.get('open_set')
    if open_set:
        parts.append(f'open-mIoU {pct(open_set["open_miou"])}  '
                     f'mIoU {pct(open_set["closed_miou"])}')
    if not anomaly and not open_set:
        stats = summary['score_stats']
        parts.append(f'no labels: score mean {stats["mean"]:.3g}, p01 {stats["p01"]:.3g}, '
                     f'p99 {stats["p99"]:.3g}')
    if summary.get('calibrated_checkpoint'):
        cal = summary['calibration']
        rates = f'flags {pct(cal["fpr"])} % of the pixels (no labels)' if cal['tpr'] is None \
            else f'at TPR {pct(cal["tpr"])} (FPR {pct(cal["fpr"])})'
        parts.append(f'threshold {cal["threshold"]:.4g} {rates} -> '
                     f'{summary["calibrated_checkpoint"]}')
    print(' | '.join(parts))
    sequence = summary.get('sequence')
    if sequence:
        print(sequence_line(sequence))
    print(f'results in {output}/')


def figure(value: Optional[float], scale: float = 1.0, digits: int = 2) -> str:
    """Format ``scale * value`` with ``digits`` decimals; 'n/a' for None, NaN or infinity."""
    return 'n/a' if value is None or not math.isfinite(value) else f'{scale * value:.{digits}f}'


# TrackingMetrics.compute's graded groups of early confirmation, in the order reports print them.
EARLY_LEVEL_GROUPS = ('confirmed_early_by_occlusion', 'confirmed_early_by_size')


def levels_note(tracking: Dict[str, Any]) -> str:
    """' (visible 98 % of 170, ...; large 97 % of 160, ...)': early by occlusion and size level.

    '' when no object was graded; a group whose levels hold no object is left out.
    """
    groups = []
    for key in EARLY_LEVEL_GROUPS:
        levels = tracking.get(key) or {}
        cells = [f'{level.replace("_", " ")} {figure(b["confirmed_early"], 100, 0)} % of '
                 f'{b["objects_decided"]}' for level, b in levels.items() if b['objects_decided']]
        if cells:
            groups.append(', '.join(cells))
    return f' ({"; ".join(groups)})' if groups else ''


def late_note(tracking: Dict[str, Any]) -> str:
    """', late 2 (no instance 1, merged 1)': the late objects by cause, '' if none was late."""
    causes = {c: n for c, n in (tracking.get('late_causes') or {}).items() if n}
    if not causes:
        return ''
    cells = ', '.join(f'{c.replace("_", " ")} {n}' for c, n in causes.items())
    return f', late {sum(causes.values())} ({cells})'


def sequence_line(sequence: Dict[str, Any]) -> str:
    """One line of a sequence's object figures: tracks against objects, placement errors."""
    tracking = sequence['tracking']
    parts = [f'sequence: {tracking["objects"]} objects, confirmed early '
             f'{figure(tracking["confirmed_early"], 100, 0)} %{levels_note(tracking)}'
             f'{late_note(tracking)}, '
             f'frames to confirm (median) '
             f'{figure(tracking["frames_to_confirm"]["median"], 1, 1)}, flicker '
             f'{figure(tracking["flicker"], 100, 1)} %, phantom tracks '
             f'{figure(tracking["phantom_tracks_per_100_frames"], 1, 1)} per 100 frames, id '
             f'switches {figure(tracking["id_switches_per_object"])} per object (extra track '
             f'ids {figure(tracking["extra_track_ids_per_object"])})']
    for mode in ('ground', 'depth'):
        placed = sequence.get(f'placement_{mode}') or {}
        if placed.get('count'):
            errors = placed['range_error']
            parts.append(f'{mode}: range error median {figure(errors["median"], 100, 1)} % p90 '
                         f'{figure(errors["p90"], 100, 1)} %, lateral median '
                         f'{figure(placed["lateral_error"]["median"])}')
    return ' | '.join(parts)
