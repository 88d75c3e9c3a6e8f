"""Streaming anomaly metrics (AP, AUROC, FPR95) and open-set confusion (open-mIoU), mergeable.

Anomaly metrics over a whole run need every pixel's score, which does not fit in memory for long
runs. :class:`AnomalyMetrics` instead keeps a fine histogram of scores per ground-truth class and
computes AP, AUROC and FPR95 exactly as scikit-learn would on scores rounded to the histogram's
bins (pixels in one bin count as ties).

The bins are laid over an order-preserving integer code of the float64 score (its IEEE bit
pattern), so a bin covers a *relative* width of the score: roughly 1/4000 of a binade for the
default 2**20 bins even when scores span many orders of magnitude and cross zero (heavy tails),
and single float32 values when the run's scores lie in a very narrow range (the range adapts:
when a new score falls outside, neighbouring bins merge pairwise, which is exact). Magnitudes
below 2**-100 are treated as +-2**-100; when any score is that small the figures say so with
non-zero error bounds (their true order is unknown). Memory is two int64 arrays of ``bins``
entries, whatever the number of frames. Two histograms with the same ``bins`` merge exactly:
evaluating shards and merging gives the same numbers as one run. :func:`calibrate_counts` is
the one threshold rule (here on bins, in ``scoring.calibrate`` on exact sorted scores).

:class:`OpenSetConfusion` accumulates a (K+1) x (K+1) confusion matrix in which row/column K is
the anomaly (unknown) class, and derives the open-set IoU of the DenseHybrid authors from it.
"""

import math
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .classes import IGNORE_ID, UNKNOWN_ID

ArrayLike = Union[np.ndarray, 'torch.Tensor', Sequence]  # noqa: F821 (torch is not imported)

DEFAULT_BINS = 2 ** 20
_FLOOR_BITS = int(np.float64(2.0 ** -100).view(np.int64))
_SMALLEST = float(np.nextafter(0.0, 1.0))        # lowest value of code 1: (0, 2**-100]

__all__ = ['AnomalyMetrics', 'DEFAULT_BINS', 'OpenSetConfusion', 'ScoreHistogram',
           'calibrate_counts', 'fpr_at_tpr', 'load_state', 'save_state']


def _numpy(x: ArrayLike) -> np.ndarray:
    # A tensor exists only if its caller imported torch: importing it here would cost ~480 MB
    # of RSS in a process that only computes metrics (509 -> 26 MiB measured).
    torch = sys.modules.get('torch')
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def score_keys(score: ArrayLike) -> np.ndarray:
    """Order-preserving int64 codes of float scores (equal scores give equal codes)."""
    x = np.asarray(_numpy(score), dtype=np.float64)
    mag = np.abs(x).view(np.int64) - (_FLOOR_BITS - 1)
    mag = np.where(x == 0, 0, np.maximum(mag, 1))
    return np.where(x < 0, -mag, mag)


def key_values(keys: ArrayLike) -> np.ndarray:
    """Inverse of :func:`score_keys` (exact except for magnitudes below 2**-100)."""
    k = np.asarray(keys, dtype=np.int64)
    mag = np.abs(k)
    value = np.where(mag == 0, 0, mag + (_FLOOR_BITS - 1)).astype(np.int64).view(np.float64)
    return np.where(k < 0, -value, value)


def _fit_shift(lo: int, hi: int, bins: int, start: int = 0) -> int:
    """Smallest shift >= start at which keys lo..hi fall into fewer than ``bins`` bins."""
    shift = start
    while (hi >> shift) - (lo >> shift) >= bins:
        shift += 1
    return shift


class _BinnedScores:
    """Shared machinery: ``channels`` histograms over common adaptive bins of score codes."""

    channels = 1

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if not 16 <= int(bins) <= 2 ** 26:
            raise ValueError(f'bins must be in [16, 2**26], got {bins}')
        self.bins = int(bins)
        self.shift = 0
        self.base = 0
        self.kmin: Optional[int] = None
        self.kmax: Optional[int] = None
        self.counts = np.zeros((self.channels, 0), dtype=np.int64)   # allocated on first data
        self.sums = np.zeros(self.channels, dtype=np.float64)
        self.sumsq = np.zeros(self.channels, dtype=np.float64)
        self.float32_only = True      # every score so far was float32 (or narrower)
        self.clamped = False          # some score's magnitude was below 2**-100 (one code)

    # -- binning ---------------------------------------------------------------------------
    def _cover(self, lo: int, hi: int, min_shift: int = 0) -> None:
        """Make the bins cover keys lo..hi as well as everything seen so far (exact re-binning)."""
        if self.kmin is not None:
            lo, hi = min(lo, self.kmin), max(hi, self.kmax)
        shift = _fit_shift(lo, hi, self.bins, max(self.shift, min_shift))
        first, last = lo >> shift, hi >> shift
        if self.counts.shape[1] and shift == self.shift and first >= self.base \
                and last < self.base + self.bins:
            self.kmin, self.kmax = lo, hi
            return
        # Centre the occupied range so slow drift does not re-base on every frame.
        base = min(first, max(last - self.bins + 1, (first + last) // 2 - self.bins // 2))
        counts = np.zeros((self.channels, self.bins), dtype=np.int64)
        if self.counts.shape[1]:
            occupied = np.flatnonzero(self.counts.any(0))
            target = ((occupied + self.base) >> (shift - self.shift)) - base
            for c in range(self.channels):
                np.add.at(counts[c], target, self.counts[c, occupied])
        self.counts, self.shift, self.base = counts, shift, base
        self.kmin, self.kmax = lo, hi

    def _add(self, per_channel: Sequence[np.ndarray]) -> None:
        """Add float64 scores, one array per channel."""
        keys = [score_keys(v) for v in per_channel]
        nonempty = [k for k in keys if k.size]
        if not nonempty:
            return
        lo = min(int(k.min()) for k in nonempty)
        hi = max(int(k.max()) for k in nonempty)
        if lo <= 1 and hi >= -1 and not self.clamped:    # codes +-1 hold all tiny magnitudes
            self.clamped = any(bool(np.any(np.abs(k) == 1)) for k in nonempty)
        self._cover(lo, hi)
        for c, (k, v) in enumerate(zip(keys, per_channel)):
            if not k.size:
                continue
            idx = (k >> self.shift) - self.base
            first = int(idx.min())
            hist = np.bincount(idx - first)
            self.counts[c, first:first + hist.size] += hist
            with np.errstate(invalid='ignore'):        # +inf and -inf scores: a NaN mean
                self.sums[c] += float(v.sum())
                self.sumsq[c] += float(np.square(v).sum())

    def _merge(self, other: '_BinnedScores') -> None:
        if type(other) is not type(self) or other.bins != self.bins:
            raise ValueError(f'cannot merge {type(other).__name__}(bins={other.bins}) into '
                             f'{type(self).__name__}(bins={self.bins})')
        if other.kmin is None:
            return
        self._cover(other.kmin, other.kmax, other.shift)
        occupied = np.flatnonzero(other.counts.any(0))
        target = ((occupied + other.base) >> (self.shift - other.shift)) - self.base
        for c in range(self.channels):
            np.add.at(self.counts[c], target, other.counts[c, occupied])
        self.sums += other.sums
        self.sumsq += other.sumsq
        self.float32_only &= other.float32_only
        self.clamped |= other.clamped

    def _exact(self) -> bool:
        """Whether every bin holds one score value (ties only): float32 codes are 2**29 apart."""
        return not self.clamped and (self.shift == 0
                                     or (self.float32_only and self.shift <= 29))

    def _occupied(self) -> Tuple[np.ndarray, np.ndarray]:
        """Occupied bins in ascending score: (lower-edge score per bin, counts C x n)."""
        if not self.counts.shape[1]:
            return np.zeros(0), np.zeros((self.channels, 0), dtype=np.int64)
        occupied = np.flatnonzero(self.counts.any(0))
        # The lowest bin's edge may lie below the lowest code (past -inf): clip to what was seen.
        lower = np.maximum((occupied + self.base) << self.shift, self.kmin)
        edges = np.where(lower == 1, _SMALLEST, key_values(lower))   # code 1 starts above 0
        return edges, self.counts[:, occupied]

    def _bin_values(self) -> Tuple[np.ndarray, np.ndarray]:
        """Occupied bins: a representative score per bin (clipped to the seen range), counts."""
        if not self.counts.shape[1]:
            return np.zeros(0), np.zeros((self.channels, 0), dtype=np.int64)
        occupied = np.flatnonzero(self.counts.any(0))
        lower = (occupied + self.base) << self.shift
        half = (1 << self.shift) >> 1
        mid = np.maximum(lower + np.minimum(half, self.kmax - lower), self.kmin)
        return key_values(mid), self.counts[:, occupied]

    def _quantiles(self, counts: np.ndarray, qs: Iterable[float]) -> List[float]:
        values, _ = self._bin_values()
        total = int(counts.sum())
        if total == 0:
            return [math.nan for _ in qs]
        cum = np.cumsum(counts)
        out = []
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f'quantile must be in [0, 1], got {q}')
            out.append(float(values[min(int(np.searchsorted(cum, q * total)), cum.size - 1)]))
        return out

    def _histogram(self, num_bins: int, score_range: Optional[Tuple[float, float]]
                   ) -> Tuple[np.ndarray, np.ndarray]:
        values, counts = self._bin_values()
        if not values.size:
            raise ValueError('no scores counted')
        if score_range is None:
            lo, hi = self._quantiles(counts.sum(0), (0.001, 0.999))
            score_range = (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)
        edges = np.linspace(score_range[0], score_range[1], num_bins + 1)
        clipped = np.clip(values, edges[0], edges[-1])
        out = np.stack([np.histogram(clipped, edges, weights=c)[0] for c in counts])
        return edges, out.astype(np.int64)

    def outside(self, low: float, high: float) -> np.ndarray:
        """Per channel, scores (to bin precision) below ``low`` and above ``high``: C x 2.

        These are the pixels :meth:`histogram` clips into its first and last bars.
        """
        values, counts = self._bin_values()
        return np.stack([counts[:, values < low].sum(1), counts[:, values > high].sum(1)], 1)

    @property
    def pixels(self) -> int:
        """Number of scores counted."""
        return int(self.counts.sum())

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Compact state (occupied bins only) for saving shards; see :func:`save_state`."""
        occupied = np.flatnonzero(self.counts.any(0)) if self.counts.shape[1] \
            else np.zeros(0, dtype=np.int64)
        seen = self.kmin is not None
        return {
            'kind': np.array(type(self).__name__),
            'bins': np.array(self.bins), 'shift': np.array(self.shift),
            'base': np.array(self.base, dtype=np.int64),
            'range': np.array([self.kmin if seen else 0, self.kmax if seen else 0, int(seen)],
                              dtype=np.int64),
            'index': occupied.astype(np.int64),
            'counts': self.counts[:, occupied] if self.counts.shape[1]
            else np.zeros((self.channels, 0), dtype=np.int64),
            'sums': self.sums.copy(), 'sumsq': self.sumsq.copy(),
            'float32_only': np.array(self.float32_only),
            'clamped': np.array(self.clamped),
        }

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`state_dict` (replaces the current one)."""
        kind = str(state['kind'])
        if kind != type(self).__name__:
            raise ValueError(f'state is a {kind}, not a {type(self).__name__}')
        self.bins, self.shift = int(state['bins']), int(state['shift'])
        self.base = int(state['base'])
        kmin, kmax, seen = (int(v) for v in state['range'])
        self.kmin, self.kmax = (kmin, kmax) if seen else (None, None)
        self.counts = np.zeros((self.channels, self.bins if seen else 0), dtype=np.int64)
        if seen:
            self.counts[:, np.asarray(state['index'])] = np.asarray(state['counts'])
        self.sums = np.asarray(state['sums'], dtype=np.float64).copy()
        self.sumsq = np.asarray(state['sumsq'], dtype=np.float64).copy()
        self.float32_only = bool(state['float32_only']) if 'float32_only' in state else False
        self.clamped = bool(state['clamped']) if 'clamped' in state else False

    def _stats(self, c: int) -> Dict[str, float]:
        n = int(self.counts[c].sum()) if self.counts.shape[1] else 0
        if n == 0:
            return {'pixels': 0, 'mean': math.nan, 'std': math.nan, 'min': math.nan,
                    'max': math.nan, 'p01': math.nan, 'p50': math.nan, 'p99': math.nan}
        values, counts = self._bin_values()
        mean = self.sums[c] / n
        p01, p50, p99 = self._quantiles(counts[c], (0.01, 0.5, 0.99))
        present = values[counts[c] > 0]
        return {'pixels': n, 'mean': float(mean),
                'std': float(math.sqrt(max(self.sumsq[c] / n - mean * mean, 0.0))),
                'min': float(present[0]), 'max': float(present[-1]),
                'p01': p01, 'p50': p50, 'p99': p99}


def _prepare(score: ArrayLike, valid: Optional[ArrayLike], what: str,
             shape: Optional[Tuple[int, ...]] = None) -> Tuple[np.ndarray, np.ndarray, bool]:
    s = _numpy(score)
    narrow = s.dtype in (np.float32, np.float16)
    if shape is None:
        shape = s.shape
    if s.shape != shape:
        raise ValueError(f'score shape {s.shape} does not match {what} shape {shape}')
    keep = np.ones(shape, dtype=bool)
    if valid is not None:
        v = _numpy(valid)
        if v.shape != shape:
            raise ValueError(f'valid shape {v.shape} does not match {what} shape {shape}')
        keep &= v.astype(bool)
    s = s.astype(np.float64, copy=False)
    bad = np.isnan(s) & keep
    if bad.any():
        raise ValueError(f'{int(bad.sum())} valid pixels have a NaN score; mark them invalid '
                         f'(valid=...) or fix the model output')
    return s, keep, narrow


class ScoreHistogram(_BinnedScores):
    """Bounded-memory statistics of unlabelled scores (mean, std, quantiles), mergeable."""

    channels = 1

    def update(self, score: ArrayLike, valid: Optional[ArrayLike] = None) -> None:
        """Add the scores of one frame (or batch); ``valid`` masks pixels out."""
        s, keep, narrow = _prepare(score, valid, 'valid')
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


class AnomalyMetrics(_BinnedScores):
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
        gt = _numpy(is_anomaly)
        s, keep, narrow = _prepare(score, valid, 'is_anomaly', gt.shape)
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

    def threshold_at_tpr(self, target_tpr: float = 0.95) -> Dict[str, float]:
        """Threshold flagging at least ``target_tpr`` of anomaly pixels (``score > threshold``).

        Returns ``threshold``, the achieved ``tpr`` and ``fpr`` (exact for the counted pixels up
        to bin precision), and ``score_p01`` / ``score_p99`` over all valid pixels.
        """
        edges, tp, fp = self._cumulative()
        out = calibrate_counts(edges, tp, fp, target_tpr, self.float32_only)
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


def calibrate_counts(edges: np.ndarray, tp: np.ndarray, fp: np.ndarray, target_tpr: float,
                     float32: bool = False) -> Dict[str, Any]:
    """Pick the threshold flagging (``score > threshold``) at least ``target_tpr`` of anomalies.

    ``edges`` are the lowest scores of groups in descending order (bins or single values),
    ``tp``/``fp`` the cumulative anomaly/inlier counts down to each group. The threshold lies
    just below the first group that reaches the target, so the ``tpr``/``fpr`` returned are
    exactly those of the threshold: in float32 steps for float32 scores (the node compares in
    float32), else in float64 steps. A group at -inf cannot be flagged by ``>``.
    """
    if not 0.0 < target_tpr <= 1.0:
        raise ValueError(f'target_tpr must be in (0, 1], got {target_tpr}')
    pos, neg = (int(c[-1]) if c.size else 0 for c in (tp, fp))
    if pos == 0 or neg == 0:
        raise ValueError(f'calibration needs both anomaly and inlier pixels (got {pos} '
                         f'anomaly, {neg} inlier)')
    i = int(np.argmax(tp / pos >= target_tpr - 1e-12))
    edge = float(edges[i])
    if edge == -math.inf:                   # nothing at -inf is above any threshold
        threshold, i = -math.inf, i - 1
    elif float32:
        up = np.float32(edge)              # smallest float32 >= edge: the group's lowest score
        if float(up) < edge:
            up = np.nextafter(up, np.float32(math.inf))
        threshold = float(np.nextafter(up, np.float32(-math.inf)))
    else:
        threshold = float(np.nextafter(edge, -math.inf))
    flagged_tp, flagged_fp = (int(c[i]) if i >= 0 else 0 for c in (tp, fp))
    return {'threshold': threshold, 'target_tpr': float(target_tpr),
            'tpr': flagged_tp / pos, 'fpr': flagged_fp / neg,
            'anomaly_pixels': pos, 'inlier_pixels': neg}


def fpr_at_tpr(fpr: ArrayLike, tpr: ArrayLike, target: float = 0.95) -> float:
    """FPR at the first ROC point (thresholds descending) whose TPR reaches ``target``."""
    fpr, tpr = np.asarray(fpr), np.asarray(tpr)
    reached = np.flatnonzero(tpr >= target - 1e-12)
    return float(fpr[reached[0]]) if reached.size else math.nan


class OpenSetConfusion:
    """Open-set confusion of K known classes plus the unknown class (index K internally).

    ``update(pred, label, anomaly=None, semantic=None)``:

    * ``pred``: open-set prediction, ids 0..K-1 or 255 = unknown (rejected).
    * ``label``: ground-truth train ids 0..K-1, 255 = ignore. With ``anomaly_label`` set in the
      constructor, that label value marks anomaly pixels (e.g. a dataset's anomaly class).
    * ``anomaly``: optional SMIYC-style map (0 inlier, 1 anomaly, 255 void); anomaly = 1 makes
      the pixel an anomaly whatever ``label`` says there; 255 makes it void.
    * ``semantic``: optional closed-set prediction (ids 0..K-1, before rejection); if given,
      the closed-set mIoU over inlier pixels is accumulated too.

    ``compute()`` follows the DenseHybrid authors: the open IoU of class k is
    TP / (TP + FP + FN), where anomalies predicted as k are false positives of k and inliers of
    k rejected as unknown are false negatives of k; ``open_miou`` is the mean over the known
    classes that occur in the ground truth or the prediction (others are NaN in
    ``per_class_iou``). ``anomaly_iou`` is the IoU of the unknown class.
    """

    def __init__(self, num_classes: int, anomaly_label: Optional[int] = None) -> None:
        if not 1 <= int(num_classes) <= 254:
            raise ValueError(f'num_classes must be in [1, 254], got {num_classes}')
        self.num_classes = int(num_classes)
        if anomaly_label is not None and (anomaly_label < self.num_classes
                                          or anomaly_label == IGNORE_ID):
            raise ValueError(f'anomaly_label {anomaly_label} collides with a class id or the '
                             f'ignore id {IGNORE_ID}')
        self.anomaly_label = anomaly_label
        k = self.num_classes + 1
        self.matrix = np.zeros((k, k), dtype=np.int64)         # rows: truth, cols: prediction
        self.closed = np.zeros((k - 1, k - 1), dtype=np.int64)

    def _ids(self, values: np.ndarray, name: str, allowed_extra: Sequence[int]) -> np.ndarray:
        """Check an id map (values 0..K-1 plus ``allowed_extra``) and return it as uint8."""
        if values.dtype != np.uint8:
            if values.size and (values.min() < 0 or values.max() > 255):
                raise ValueError(f'{name} holds ids outside 0..255 '
                                 f'({values.min()}..{values.max()})')
            values = values.astype(np.uint8)
        present = np.bincount(values.reshape(-1), minlength=256) > 0
        present[:self.num_classes] = False
        present[list(allowed_extra)] = False
        if present.any():
            found = np.flatnonzero(present)[:8].tolist()
            raise ValueError(f'{name} holds ids {found} outside 0..{self.num_classes - 1} '
                             f'and {sorted(set(allowed_extra))}')
        return values

    def update(self, pred: ArrayLike, label: ArrayLike, anomaly: Optional[ArrayLike] = None,
               semantic: Optional[ArrayLike] = None) -> None:
        """Add one frame (or a batch): open-set prediction vs ground truth."""
        pred, label = _numpy(pred), _numpy(label)
        shapes = {'pred': pred.shape, 'label': label.shape}
        if anomaly is not None:
            anomaly = _numpy(anomaly)
            shapes['anomaly'] = anomaly.shape
        if semantic is not None:
            semantic = _numpy(semantic)
            shapes['semantic'] = semantic.shape
        if len(set(shapes.values())) != 1:
            raise ValueError(f'shapes differ: {shapes}')
        k = self.num_classes
        ignore = k + 1                       # an extra truth row, dropped after counting
        pred = self._ids(pred, 'pred', [UNKNOWN_ID])
        extra = [IGNORE_ID] + ([self.anomaly_label] if self.anomaly_label is not None else [])
        label = self._ids(label, 'label', extra)
        # Lookup tables keep everything in uint8/uint16: no int64 copies, no masking.
        truth_lut = np.full(256, ignore, np.uint8)
        truth_lut[:k] = np.arange(k)
        if self.anomaly_label is not None:
            truth_lut[self.anomaly_label] = k
        truth = truth_lut[label]
        if anomaly is not None:
            anomaly_lut = np.full(256, ignore, np.uint8)       # 1 -> anomaly, not 0/1 -> void
            anomaly_lut[0], anomaly_lut[1] = 255, k
            override = anomaly_lut[self._ids_any(anomaly)]
            truth = np.where(override == 255, truth, override)
        pred_lut = np.zeros(256, np.uint16)
        pred_lut[:k] = np.arange(k)
        pred_lut[UNKNOWN_ID] = k
        codes = truth.astype(np.uint16) * (k + 1) + pred_lut[pred]
        counts = np.bincount(codes.reshape(-1), minlength=(k + 2) * (k + 1))
        self.matrix += counts.reshape(k + 2, k + 1)[:k + 1]
        if semantic is not None:
            sem = self._ids(semantic, 'semantic', [])
            codes = truth.astype(np.uint16) * k + sem
            counts = np.bincount(codes.reshape(-1), minlength=(k + 2) * k)
            self.closed += counts.reshape(k + 2, k)[:k]

    @staticmethod
    def _ids_any(values: np.ndarray) -> np.ndarray:
        """Any integer map as uint8 lookup indices (values outside 0..255 become 255: void)."""
        if values.dtype == np.uint8:
            return values
        return np.where((values >= 0) & (values <= 255), values, 255).astype(np.uint8)

    def merge(self, other: 'OpenSetConfusion') -> 'OpenSetConfusion':
        """Add another confusion's counts (same classes) to this one; returns self."""
        if other.num_classes != self.num_classes or other.anomaly_label != self.anomaly_label:
            raise ValueError(f'cannot merge OpenSetConfusion({other.num_classes}) into '
                             f'OpenSetConfusion({self.num_classes})')
        self.matrix += other.matrix
        self.closed += other.closed
        return self

    @staticmethod
    def _iou(matrix: np.ndarray) -> np.ndarray:
        tp = np.diag(matrix).astype(np.float64)
        union = matrix.sum(0) + matrix.sum(1) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def compute(self) -> Dict[str, Any]:
        """Return open/closed mIoU, per-class IoU, anomaly IoU and pixels (NaN where undefined).

        Keys: 'open_miou', 'closed_miou', 'per_class_iou', 'closed_per_class_iou',
        'anomaly_iou', 'pixels'; the closed-set figures need ``semantic`` in :meth:`update`.
        """
        k = self.num_classes
        iou = self._iou(self.matrix)
        closed = self._iou(self.closed) if self.closed.any() else np.full(k, np.nan)
        return {
            'open_miou': _nanmean(iou[:k]),
            'closed_miou': _nanmean(closed),
            'per_class_iou': [float(v) for v in iou[:k]],
            'closed_per_class_iou': [float(v) for v in closed],
            'anomaly_iou': float(iou[k]),
            'pixels': int(self.matrix.sum()),
        }

    def state_dict(self) -> Dict[str, np.ndarray]:
        """State for saving shards; see :func:`save_state`."""
        return {'kind': np.array(type(self).__name__), 'matrix': self.matrix.copy(),
                'closed': self.closed.copy(),
                'anomaly_label': np.array(-1 if self.anomaly_label is None
                                          else self.anomaly_label)}

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`state_dict`."""
        if str(state['kind']) != type(self).__name__:
            raise ValueError(f'state is a {state["kind"]}, not an OpenSetConfusion')
        matrix = np.asarray(state['matrix'], dtype=np.int64)
        self.num_classes = matrix.shape[0] - 1
        self.matrix = matrix.copy()
        self.closed = np.asarray(state['closed'], dtype=np.int64).copy()
        label = int(state['anomaly_label'])
        self.anomaly_label = None if label < 0 else label


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else math.nan


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
        if kind == 'OpenSetConfusion':
            obj: Any = OpenSetConfusion(int(np.asarray(state['matrix']).shape[0]) - 1)
        elif kind in _KINDS:
            obj = _KINDS[kind](int(state['bins']))
        else:
            raise ValueError(f'{path}: unknown metric kind {kind!r} for {name!r}')
        obj.load_state_dict(state)
        out[name] = obj
    return out
