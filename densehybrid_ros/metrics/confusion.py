"""Open-set confusion of K known classes plus the unknown class, and the authors' open-set IoU.

:class:`OpenSetConfusion` accumulates a (K+1) x (K+1) confusion matrix in which row/column K is
the anomaly (unknown) class, and derives the open-set IoU of the DenseHybrid authors from it.
Mergeable across shards; saved and loaded with ``metrics.save_state`` / ``load_state``.
"""

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..core.classes import IGNORE_ID, UNKNOWN_ID
from .score_bins import ArrayLike, as_numpy


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
        pred, label = as_numpy(pred), as_numpy(label)
        shapes = {'pred': pred.shape, 'label': label.shape}
        if anomaly is not None:
            anomaly = as_numpy(anomaly)
            shapes['anomaly'] = anomaly.shape
        if semantic is not None:
            semantic = as_numpy(semantic)
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
