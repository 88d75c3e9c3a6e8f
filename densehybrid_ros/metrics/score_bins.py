"""Score histograms over adaptive bins of an order-preserving code of the float64 score.

The bins are laid over an order-preserving integer code of the float64 score (its IEEE bit
pattern), so a bin covers a *relative* width of the score: roughly 1/4000 of a binade for the
default 2**20 bins even when scores span many orders of magnitude and cross zero (heavy tails),
and single float32 values when the run's scores lie in a very narrow range (the range adapts:
when a new score falls outside, neighbouring bins merge pairwise, which is exact). Magnitudes
below 2**-100 are treated as +-2**-100; when any score is that small the figures say so with
non-zero error bounds (their true order is unknown). Memory is ``channels`` int64 arrays of
``bins`` entries, whatever the number of frames. Two histograms with the same ``bins`` merge
exactly. :mod:`densehybrid_ros.metrics.anomaly` builds its metrics on :class:`BinnedScores`.
"""

import math
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

ArrayLike = Union[np.ndarray, 'torch.Tensor', Sequence]  # noqa: F821 (torch is not imported)

DEFAULT_BINS = 2 ** 20
_FLOOR_BITS = int(np.float64(2.0 ** -100).view(np.int64))
_SMALLEST = float(np.nextafter(0.0, 1.0))        # lowest value of code 1: (0, 2**-100]


def as_numpy(x: ArrayLike) -> np.ndarray:
    """Return a numpy view of an array, list or torch tensor (torch itself is never imported)."""
    # A tensor exists only if its caller imported torch: importing it here would cost ~480 MB
    # of RSS in a process that only computes metrics (509 -> 26 MiB measured).
    torch = sys.modules.get('torch')
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def score_keys(score: ArrayLike) -> np.ndarray:
    """Order-preserving int64 codes of float scores (equal scores give equal codes)."""
    x = np.asarray(as_numpy(score), dtype=np.float64)
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


class BinnedScores:
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

    def _merge(self, other: 'BinnedScores') -> None:
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


def prepare_scores(score: ArrayLike, valid: Optional[ArrayLike], what: str,
                   shape: Optional[Tuple[int, ...]] = None
                   ) -> Tuple[np.ndarray, np.ndarray, bool]:
    """Scores as float64, the mask of pixels to count, and whether they were float32 or less.

    Shapes must match ``shape`` (``what`` names it in the error); NaN in a counted pixel is an
    error, not a silently dropped pixel.
    """
    s = as_numpy(score)
    narrow = s.dtype in (np.float32, np.float16)
    if shape is None:
        shape = s.shape
    if s.shape != shape:
        raise ValueError(f'score shape {s.shape} does not match {what} shape {shape}')
    keep = np.ones(shape, dtype=bool)
    if valid is not None:
        v = as_numpy(valid)
        if v.shape != shape:
            raise ValueError(f'valid shape {v.shape} does not match {what} shape {shape}')
        keep &= v.astype(bool)
    s = s.astype(np.float64, copy=False)
    bad = np.isnan(s) & keep
    if bad.any():
        raise ValueError(f'{int(bad.sum())} valid pixels have a NaN score; mark them invalid '
                         f'(valid=...) or fix the model output')
    return s, keep, narrow
