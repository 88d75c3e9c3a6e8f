"""Streaming anomaly metrics (AP, AUROC, FPR95) and open-set confusion (open-mIoU), mergeable.

Anomaly metrics over a whole run need every pixel's score, which does not fit in memory for long
runs. :class:`AnomalyMetrics` instead keeps a fine histogram of scores per ground-truth class
(:mod:`~densehybrid_ros.metrics.score_bins`: adaptive bins, exact merging, bounded memory) and
computes
AP, AUROC and FPR95 exactly as scikit-learn would on scores rounded to the histogram's bins
(pixels in one bin count as ties; the error bounds say how much that can move a figure).
Evaluating shards and merging gives the same numbers as one run. Thresholds come from the one
rule (:mod:`densehybrid_ros.metrics.calibration`) to the bins.
:class:`~densehybrid_ros.metrics.confusion.OpenSetConfusion` (open-set IoU) is saved and loaded
here too, as are :class:`~densehybrid_ros.metrics.components.ComponentMetrics`, so one
``state.npz`` holds a whole evaluation.
"""

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from ..core.classes import UNKNOWN_ID
from .calibration import calibrate_counts
from .components import ComponentMetrics
from .confusion import OpenSetConfusion
from .score_bins import (ArrayLike, as_numpy, BinnedScores, DEFAULT_BINS, key_values,
                         prepare_scores, score_keys)

__all__ = ['AnomalyMetrics', 'DEFAULT_BINS', 'OpenSetConfusion', 'ScoreHistogram',
           'UNKNOWN_ID', 'fpr_at_tpr', 'key_values',
           'load_state', 'save_state', 'score_keys']


class ScoreHistogram(BinnedScores):
    """Bounded-memory statistics of unlabelled scores (mean, std, quantiles), mergeable."""

    channels = 1

    def update(self, score: ArrayLike, valid: Optional[ArrayLike] = None) -> None:
        """Add the scores of one frame (or batch); ``valid`` masks pixels out."""
        s, keep, narrow = prepare_scores(score, valid, 'valid')
        self.float32_only &= narrow
        self._add([s[keep]])

    def merge(self, other: 'ScoreHistogram') -> 'ScoreHistogram':
        """Add another histogram's counts (same ``bins``) to this one; returns self."""
        self._merge(other)
        return self

    def quantiles(self, qs: Iterable[float]) -> List[float]:
        """Return approximate quantiles of the scores, to bin precision."""
        return self._quantiles(self._bin_values()[1][0], qs)

    def histogram(self, num_bins: int = 100, score_range: Optional[Tuple[float, float]] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
        """Coarse histogram for plotting: (edges, counts); see AnomalyMetrics.histogram."""
        edges, counts = self._histogram(num_bins, score_range)
        return edges, counts[0]

    def compute(self) -> Dict[str, float]:
        """{'pixels', 'mean', 'std', 'min', 'max', 'p01', 'p50', 'p99'}."""
        return self._stats(0)


class AnomalyMetrics(BinnedScores):
    """Streaming AP, AUROC and FPR at 95 % TPR of anomaly scores (higher = more anomalous).

    ``update(score, is_anomaly, valid=None)``: ``is_anomaly`` is boolean or SMIYC-style uint8
    (0 inlier, 1 anomaly, any other value void). ``compute()`` returns ``ap``, ``auroc``,
    ``fpr95`` (FPR at the highest threshold whose TPR reaches 95 %), ``pixels`` and the pixel
    count of each class. Metrics that are undefined for the data (no anomaly pixels, or no
    inliers for AUROC / FPR95) are NaN and ``compute()['undefined']`` says why.

    ``ap_error_bound``, ``auroc_error_bound`` and ``fpr95_error_bound`` bound the difference
    to the exact values over the raw scores (0 when every bin holds a single score value).
    They stay far below 0.002 for continuous scores; a large bound flags the one case the
    bins cannot resolve: a very narrow cluster of scores together with far outliers. The
    bounds are conservative for data with many exactly equal scores, whose order inside a
    bin they count as unknown although the figures themselves are exact for ties.
    """

    channels = 2      # 0: inlier, 1: anomaly
    TPR = 0.95

    def update(self, score: ArrayLike, is_anomaly: ArrayLike,
               valid: Optional[ArrayLike] = None) -> None:
        """Add one frame (or a batch of frames) of scores and anomaly ground truth."""
        gt = as_numpy(is_anomaly)
        s, keep, narrow = prepare_scores(score, valid, 'is_anomaly', gt.shape)
        self.float32_only &= narrow
        if gt.dtype == bool:
            anomaly = gt
        else:
            anomaly = gt == 1
            keep &= (gt == 0) | anomaly
        self._add([s[keep & ~anomaly], s[keep & anomaly]])

    def merge(self, other: 'AnomalyMetrics') -> 'AnomalyMetrics':
        """Add another run's counts (same ``bins``) to this one; returns self."""
        self._merge(other)
        return self

    def _cumulative(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per threshold, from the highest score down: (lower edge score, TP, FP)."""
        edges, counts = self._occupied()
        return edges[::-1], np.cumsum(counts[1, ::-1]), np.cumsum(counts[0, ::-1])

    def compute(self) -> Dict[str, Any]:
        """Return AP, AUROC, FPR95, pixel counts and error bounds (see the class docstring)."""
        _, tp, fp = self._cumulative()
        pos = int(tp[-1]) if tp.size else 0
        neg = int(fp[-1]) if fp.size else 0
        out: Dict[str, Any] = {'ap': math.nan, 'auroc': math.nan, 'fpr95': math.nan,
                               'pixels': pos + neg, 'anomaly_pixels': pos,
                               'inlier_pixels': neg}
        if pos == 0:
            out['undefined'] = ('no anomaly pixels: AP, AUROC and FPR95 are undefined'
                                if neg else 'no valid pixels')
            return out
        exact = self._exact()
        p_bin, n_bin = np.diff(tp, prepend=0), np.diff(fp, prepend=0)
        tp_before, fp_before = tp - p_bin, fp - n_bin
        recall = tp / pos
        precision = tp / (tp + fp)
        out['ap'] = float(np.sum(p_bin / pos * precision))
        # Within a bin the true order is unknown: positives all first / all last bound AP.
        hit = p_bin > 0
        high = float(np.sum(p_bin[hit] / pos * tp[hit] / (tp[hit] + fp_before[hit])))
        low = float(np.sum(p_bin[hit] / pos * (tp_before[hit] + 1)
                           / (tp_before[hit] + 1 + fp[hit])))
        out['ap_error_bound'] = 0.0 if exact else max(high - out['ap'], out['ap'] - low, 0.0)
        if neg == 0:
            out['undefined'] = 'no inlier pixels: AUROC and FPR95 are undefined'
            return out
        fpr = np.concatenate([[0.0], fp / neg])
        tpr = np.concatenate([[0.0], recall])
        out['auroc'] = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        out['auroc_error_bound'] = 0.0 if exact else float(np.sum(p_bin * n_bin) / 2 / pos / neg)
        out['fpr95'] = fpr_at_tpr(fpr, tpr, self.TPR)
        crossing = np.flatnonzero(recall >= self.TPR - 1e-12)
        out['fpr95_error_bound'] = 0.0 if exact or not crossing.size \
            else float(n_bin[crossing[0]] / neg)
        return out

    def curves(self, max_points: int = 2000) -> Dict[str, np.ndarray]:
        """PR and ROC curves for plotting (at most ``max_points`` thresholds, evenly spread)."""
        edges, tp, fp = self._cumulative()
        if not tp.size or tp[-1] == 0 or fp[-1] == 0:
            raise ValueError('curves need both anomaly and inlier pixels')
        keep = np.unique(np.linspace(0, tp.size - 1, min(max_points, tp.size)).astype(int))
        tp, fp, edges = tp[keep], fp[keep], edges[keep]
        return {'threshold': edges, 'precision': tp / (tp + fp), 'recall': tp / tp[-1],
                'fpr': fp / fp[-1], 'tpr': tp / tp[-1]}

    def histogram(self, num_bins: int = 100, score_range: Optional[Tuple[float, float]] = None
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coarse score histograms for plotting: (edges, inlier counts, anomaly counts).

        The default range is the 0.1 %..99.9 % quantiles of all scores; outside values are
        clipped into the end bins.
        """
        edges, counts = self._histogram(num_bins, score_range)
        return edges, counts[0], counts[1]

    def threshold_at_tpr(self, target_tpr: float = 0.95, target_fpr: Optional[float] = None
                         ) -> Dict[str, float]:
        """Threshold flagging at least ``target_tpr`` of anomaly pixels (``score > threshold``).

        With ``target_fpr``: the threshold flagging most anomalies within that inlier FPR.
        Returns ``threshold``, the achieved ``tpr`` and ``fpr`` (exact for the counted pixels up
        to bin precision), and ``score_p01`` / ``score_p99`` over all valid pixels.
        """
        edges, tp, fp = self._cumulative()
        out = calibrate_counts(edges, tp, fp, target_tpr, self.float32_only, target_fpr)
        _, counts = self._bin_values()
        out['score_p01'], out['score_p99'] = self._quantiles(counts.sum(0), (0.01, 0.99))
        return out

    def rates_at(self, threshold: float) -> Dict[str, float]:
        """TPR, FPR and precision of flagging ``score > threshold`` (the node's anomaly mask).

        Pixels in the one bin that holds the threshold count as not flagged; ``error_bound``
        is the largest change of TPR or FPR they could make (0 when bins hold single values).
        """
        if math.isnan(threshold):
            raise ValueError('threshold is NaN (uncalibrated): nothing would be flagged')
        pos, neg = (int(self.counts[c].sum()) if self.counts.shape[1] else 0 for c in (1, 0))
        if pos == 0 or neg == 0:
            raise ValueError(f'rates need both anomaly and inlier pixels (got {pos} anomaly, '
                             f'{neg} inlier)')
        index = (int(score_keys(np.array([threshold]))[0]) >> self.shift) - self.base
        first = min(max(index + 1, 0), self.bins)
        tp, fp = int(self.counts[1, first:].sum()), int(self.counts[0, first:].sum())
        straddle = self.counts[:, index] if 0 <= index < self.bins else np.zeros(2, np.int64)
        exact = self._exact() and (not self.float32_only or self.shift == 0
                                   or np.float32(threshold) == threshold)
        return {'threshold': float(threshold), 'tpr': tp / pos, 'fpr': fp / neg,
                'precision': tp / (tp + fp) if tp + fp else math.nan,
                'error_bound': 0.0 if exact else float(max(straddle[1] / pos,
                                                           straddle[0] / neg))}

    def score_stats(self) -> Dict[str, Dict[str, float]]:
        """Score statistics of inlier and anomaly pixels separately."""
        return {'inlier': self._stats(0), 'anomaly': self._stats(1)}


def fpr_at_tpr(fpr: ArrayLike, tpr: ArrayLike, target: float = 0.95) -> float:
    """FPR at the first ROC point (thresholds descending) whose TPR reaches ``target``."""
    fpr, tpr = np.asarray(fpr), np.asarray(tpr)
    reached = np.flatnonzero(tpr >= target - 1e-12)
    return float(fpr[reached[0]]) if reached.size else math.nan


_KINDS = {cls.__name__: cls for cls in (AnomalyMetrics, ScoreHistogram)}


def save_state(path: str, **metrics: Any) -> None:
    """Save named metric objects to one ``.npz`` file (for shards: merge with ``load_state``)."""
    arrays = {}
    for name, obj in metrics.items():
        if '.' in name:
            raise ValueError(f'metric name {name!r} must not contain a dot')
        for key, value in obj.state_dict().items():
            arrays[f'{name}.{key}'] = value
    with open(path, 'wb') as f:
        np.savez_compressed(f, **arrays)


def load_state(path: str) -> Dict[str, Any]:
    """Load the metric objects saved by :func:`save_state`, by name."""
    with np.load(path, allow_pickle=False) as data:
        grouped: Dict[str, Dict[str, np.ndarray]] = {}
        for key in data.files:
            name, field = key.split('.', 1)
            grouped.setdefault(name, {})[field] = data[key]
    out: Dict[str, Any] = {}
    for name, state in grouped.items():
        kind = str(state['kind'])
        if kind == 'ComponentMetrics':
            obj: Any = ComponentMetrics.from_state_dict(state)
        elif kind == 'OpenSetConfusion':
            obj = OpenSetConfusion(int(np.asarray(state['matrix']).shape[0]) - 1)
            obj.load_state_dict(state)
        elif kind in _KINDS:
            obj = _KINDS[kind](int(state['bins']))
            obj.load_state_dict(state)
        else:
            raise ValueError(f'{path}: unknown metric kind {kind!r} for {name!r}')
        out[name] = obj
    return out
