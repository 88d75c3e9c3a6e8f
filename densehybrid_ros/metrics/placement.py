"""Placement metrics: how far from the ground truth the obstacles are put in the base frame.

:class:`PlacementMetrics` collects, per detected object per frame, the error of an estimated
ground position (``core.projection.Placement.position``: base frame x forward, y left, in the
ground truth's units) against the object's true camera-frame ``range`` (forward) and
``lateral`` offset (right positive), i.e. the base-frame point ``(range, -lateral)`` of a level
camera mounted above the base origin:

- range error, relative: ``|x_est - range| / range`` (the estimate's forward coordinate, the
  quantity a ground-plane projection gets wrong with the contact row);
- lateral error, absolute: ``|y_est + lateral|`` (units; metres on a robot).

``compute`` gives the count, median, p90, mean and max of each, and ``by_range`` the count and
the median and p90 of each within bands of the true range (:data:`RANGE_BANDS`): a ground-plane
placement's relative error grows with range (one pixel of contact row is ``range / (f h)``).
Keep one accumulator per placement mode (``mode``: ground plane, depth) so the figures never
mix. Every error is kept (three float64 per detection, the true range with the two errors), so
the percentiles are exact and ``merge`` is a concatenation.
"""

import math
from typing import Any, Dict, Mapping, Sequence

import numpy as np

__all__ = ['PlacementMetrics', 'RANGE_BANDS']

# Band edges of the true range (units; camera heights in the synthetic sequences).
RANGE_BANDS = (10.0, 20.0)


class PlacementMetrics:
    """Range and lateral errors of placed obstacles in one placement mode (see the module doc)."""

    def __init__(self, mode: str = 'ground') -> None:
        self.mode = str(mode)
        # rows: range error (relative), lateral error (absolute), the true range
        self._rows = [np.zeros((0, 3), np.float64)]

    def update(self, position: Sequence[float], gt_range: float, gt_lateral: float) -> None:
        """Add one placement: ``position`` base-frame (x, y[, z]) vs. the true range / lateral."""
        if not gt_range > 0:
            raise ValueError(f'ground-truth range must be positive, got {gt_range}')
        x, y = float(position[0]), float(position[1])
        row = [abs(x - gt_range) / gt_range, abs(y + gt_lateral), gt_range]
        self._rows.append(np.array([row], np.float64))

    @property
    def errors(self) -> np.ndarray:
        """N x 2 float64: relative range error, absolute lateral error, in update order."""
        return self._all()[:, :2]

    def _all(self) -> np.ndarray:
        if len(self._rows) > 1:
            self._rows = [np.concatenate(self._rows)]
        return self._rows[0]

    def __len__(self) -> int:
        return len(self.errors)

    def compute(self) -> Dict[str, Any]:
        """Return count, median, p90, mean and max of both errors, and the figures by range band.

        JSON-ready; NaN where there is nothing to count.
        """
        rows = self._all()
        out: Dict[str, Any] = {'mode': self.mode, 'count': int(len(rows)), **_summaries(rows)}
        edges = (0.0,) + RANGE_BANDS + (math.inf,)
        out['by_range'] = {}
        for lo, hi in zip(edges[:-1], edges[1:]):
            band = rows[(rows[:, 2] >= lo) & (rows[:, 2] < hi)]
            name = f'>={lo:g}' if hi == math.inf else f'{lo:g}-{hi:g}'
            out['by_range'][name] = {'count': int(len(band)), **_summaries(band)}
        return out

    def merge(self, other: 'PlacementMetrics') -> 'PlacementMetrics':
        """Add another accumulator's errors (same mode); returns self."""
        if other.mode != self.mode:
            raise ValueError(f'cannot merge {other.mode!r} placements into {self.mode!r}')
        self._rows = [self._all(), other._all()]
        return self

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Return the state for saving shards (``kind`` plus arrays, like the other metrics)."""
        return {'kind': np.array(type(self).__name__), 'mode': np.array(self.mode),
                'errors': self._all().copy()}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore a state from :meth:`state_dict`."""
        if str(state['kind']) != type(self).__name__:
            raise ValueError(f'state is a {state["kind"]}, not a {type(self).__name__}')
        self.mode = str(state['mode'])
        rows = np.array(state['errors'], np.float64)
        rows = rows.reshape(-1, rows.shape[1] if rows.ndim == 2 else 3)
        if rows.shape[1] == 2:                       # saved before the true range was kept
            rows = np.concatenate([rows, np.full((len(rows), 1), math.nan)], axis=1)
        self._rows = [rows]

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> 'PlacementMetrics':
        """Build an accumulator from :meth:`state_dict`."""
        metrics = cls()
        metrics.load_state_dict(state)
        return metrics


def _summaries(rows: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Median, p90, mean and max of the range and lateral errors of ``rows`` (NaN if none)."""
    out = {}
    for k, name in enumerate(('range_error', 'lateral_error')):
        values = rows[:, k]
        if values.size:
            out[name] = {'median': float(np.median(values)),
                         'p90': float(np.percentile(values, 90)),
                         'mean': float(values.mean()), 'max': float(values.max())}
        else:
            out[name] = {key: math.nan for key in ('median', 'p90', 'mean', 'max')}
    return out
