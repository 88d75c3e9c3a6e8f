"""Component-level anomaly metrics (sIoU, PPV, F1 over sIoU thresholds) as SegmentMeIfYouCan.

Written after the released code of the benchmark (github SegmentMeIfYouCan/road-anomaly-benchmark,
``road_anomaly_benchmark/metrics/instance_segmentation.py``: ``default_instancer``,
``segment_metrics`` and ``MetricSegment.aggregate`` at commit 1c7804e0), whose numbers this
module reproduces (checked on fixtures to 1e-12, ``test/metrics/test_components.py``).

One frame, in the benchmark's order of operations:

1. Ground-truth components: 8-connected components of ``gt == anomaly_id``. Predicted
   components: 8-connected components of the predicted mask after its void pixels
   (``gt == void_id``) were cleared, so void can split one blob into two components.
2. Predicted components with fewer than ``min_pred_size`` pixels are dropped (the size counts
   every non-void pixel, including pixels on ground-truth components voided next).
   Ground-truth components with fewer than ``min_gt_size`` pixels become void. A component of
   exactly the minimum size stays. Quirk kept from the reference: its loop also visits the
   background (label 0), so when fewer than ``min_gt_size`` pixels of the whole image are
   non-anomaly, all of them become void.
3. Only non-void pixels count from here on: a predicted component lying wholly on voided pixels
   is gone; one lying partly on them keeps its identity and loses those pixels.
4. For ground-truth component ``K`` and the predicted components ``P`` touching it, the adjusted
   union leaves out the pixels of ``P`` on *other* ground-truth components (the paper's set A):
   ``sIoU(K) = |K & P| / (|K| + |P outside every ground-truth component|)``. The same with the
   roles swapped gives ``siou_pred``; the ``ppv`` of a predicted component is the share of its
   pixels on any ground-truth component.
5. For each tau in ``numpy.linspace(0.25, 0.75, 11)`` (those exact floats: the 0.6 there is
   0.6000000000000001, so an sIoU of exactly 3/5 misses it, as in the reference):
   TP = ground-truth components with ``sIoU >= tau``, FN = those with ``sIoU < tau``, and
   FP = predicted components with ``ppv < tau``. The paper defines a false positive through the
   predicted component's sIoU; the released code counts precision below tau (its sIoU line is
   commented out). This module follows the released code.

Over a data set (:class:`ComponentMetrics`), as ``MetricSegment.aggregate``: TP, FN and FP are
summed over frames per tau, F1 = 2 TP / (2 TP + FN + FP) is taken from the sums, and mean F1 is
the mean over the 11 taus; mean sIoU, mean prediction sIoU and mean PPV pool all components of
the data set (not means of per-frame means). Where the reference divides by zero (no component
at all) the figures here are NaN.

Instance-id predictions (an integer image, 0 = none) are this project's extension: each id is
one predicted component as given, never split or merged by connectivity; its void pixels are
cleared first and the size filter counts its non-void pixels; the rest is as above. That is the
reference's ``segment_metrics`` fed with those ids in place of its own labelling. The reference
itself takes only binary masks: it would relabel an instance image by connectivity, merging
touching instances and splitting disconnected ones. An id image whose ids are the 8-connected
components of the (void-free) mask gives the same numbers as the mask. A bool array is a mask,
any integer array an id image: pass a 0/1 uint8 mask as ``mask.astype(bool)``.

Components are numbered as the reference numbers them, so per-component arrays come in its
order: ground truth and mask components by the raster position of their first pixel (as
``scipy.ndimage.label``; OpenCV's own numbering is not that order), instance ids ascending.
Work after the labelling runs on the anomaly and prediction pixels only: 7 ms per
1024 x 2048 frame with a handful of components on an idle 2-core CPU, 16 ms on a busy one.
"""

import math
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np

__all__ = ['ComponentMetrics', 'SMIYC_MIN_SIZES', 'TAUS', 'component_metrics',
           'scaled_min_sizes']

# The sIoU thresholds: the same float64 values as the reference's np.linspace(0.25, 0.75, 11).
TAUS = np.linspace(0.25, 0.75, 11, endpoint=True)

# Per track, (min_pred_size, min_gt_size) of the reference configs SegEval-AnomalyTrack and
# SegEval-ObstacleTrack, and the frame size (H, W) of the track's images they apply to
# (AnomalyTrack: mostly 1024 x 2048; ObstacleTrack: 1080 x 1920), for scaled_min_sizes.
SMIYC_MIN_SIZES = {'anomaly': ((500, 100), (1024, 2048)),
                   'obstacle': ((50, 10), (1080, 1920))}


def scaled_min_sizes(height: int, width: int, track: str = 'anomaly') -> Tuple[int, int]:
    """Return a SMIYC track's (min_pred_size, min_gt_size) scaled by pixel area to H x W."""
    (pred_size, gt_size), (ref_h, ref_w) = SMIYC_MIN_SIZES[track]
    ratio = height * width / (ref_h * ref_w)
    return max(1, round(pred_size * ratio)), max(1, round(gt_size * ratio))


def _components(mask: np.ndarray, pixels: np.ndarray) -> Tuple[np.ndarray, int]:
    """Label 8-connected components of a bool H x W mask; return labels at ``pixels``, count.

    ``pixels`` are ascending flat indices holding every pixel of the mask, so the first
    appearance of a label among them is its component's first pixel in raster order; labels
    come back renumbered 1..n in that order (0 = not in the mask).
    """
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8,
                                            ltype=cv2.CV_32S)
    values = labels.ravel()[pixels]
    found, first = np.unique(values, return_index=True)
    found, first = found[found > 0], first[found > 0]
    lut = np.zeros(count, dtype=np.int64)
    lut[found[np.argsort(first)]] = np.arange(1, found.size + 1)
    return lut[values], int(found.size)


def _instances(pred: np.ndarray, keep: np.ndarray, pixels: np.ndarray) -> Tuple[np.ndarray, int]:
    """Return instance ids at ``pixels`` renumbered 1..n in ascending id order, and n."""
    if np.issubdtype(pred.dtype, np.signedinteger) and pred.min(initial=0) < 0:
        raise ValueError('instance ids must be >= 0 (0 = no prediction)')
    ids = np.where(keep.ravel()[pixels], pred.ravel()[pixels], 0)
    found, labels = np.unique(ids, return_inverse=True)
    if found.size and found[0] != 0:  # no zero among the pixels: ids start at label 1
        labels = labels + 1
    return labels.astype(np.int64), int(np.count_nonzero(found))


def _per_tau(siou_gt: np.ndarray, ppv: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return TP, FN, FP per tau (int64, 11 each) by the released code's rules."""
    tp = np.count_nonzero(siou_gt[None, :] >= TAUS[:, None], axis=1).astype(np.int64)
    fn = np.count_nonzero(siou_gt[None, :] < TAUS[:, None], axis=1).astype(np.int64)
    fp = np.count_nonzero(ppv[None, :] < TAUS[:, None], axis=1).astype(np.int64)
    return tp, fn, fp


def _f1(tp: np.ndarray, fn: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Return F1 per tau; NaN where nothing was to be found and nothing was found."""
    denominator = 2 * tp + fn + fp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), math.nan)


def _mean(values: np.ndarray) -> float:
    """Return the mean summed left to right, the reference's ``+=`` loop over taus."""
    total = 0.0
    for value in values:
        total += float(value)
    return total / len(values)


def component_metrics(pred: np.ndarray, gt: np.ndarray, min_pred_size: int, min_gt_size: int,
                      void_id: int = 255, anomaly_id: int = 1) -> Dict[str, Any]:
    """Score one frame's predicted components against the ground truth, as SegmentMeIfYouCan.

    ``pred``: bool H x W mask (components by 8-connectivity) or integer H x W instance ids
    (0 = none, each id one component). ``gt``: H x W labels, ``anomaly_id`` anomaly, ``void_id``
    void, any other value inlier. Returns numpy arrays ``siou_gt`` and ``size_gt`` (one per
    ground-truth component), ``ppv``, ``siou_pred`` and ``size_pred`` (one per predicted
    component; non-void pixels), ``taus``, ``tp``, ``fn``, ``fp`` and ``f1`` (one per tau), and
    ``f1_mean`` (NaN without any component), ``gt_components``, ``pred_components``.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if gt.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f'pred {pred.shape} and gt {gt.shape} must be the same H x W')
    void = gt == void_id
    anomaly = gt == anomaly_id
    if pred.dtype == np.bool_:
        keep = pred & ~void
        pixels = np.flatnonzero(keep | anomaly)  # (k,) every pixel that can count
        p, n_pred = _components(keep, pixels)
    elif np.issubdtype(pred.dtype, np.integer):
        keep = (pred != 0) & ~void
        pixels = np.flatnonzero(keep | anomaly)
        p, n_pred = _instances(pred, keep, pixels)
    else:
        raise TypeError(f'pred must be a bool mask or integer instance ids, not {pred.dtype}')
    g, n_gt = _components(anomaly, pixels)

    # Size filters, both on sizes before anything is voided by a small ground truth.
    pred_size = np.bincount(p, minlength=n_pred + 1)
    pred_kept = pred_size >= min_pred_size
    pred_kept[0] = False
    p = np.where(pred_kept[p], p, 0)
    gt_size = np.bincount(g, minlength=n_gt + 1)
    gt_kept = gt_size >= min_gt_size
    gt_kept[0] = True
    roi = gt_kept[g] & ~void.ravel()[pixels]
    if gt.size - int(gt_size[1:].sum()) < min_gt_size:  # the reference voids label 0 too
        roi &= g > 0
    g, p = g[roi], p[roi]

    # Counts on the remaining pixels; (gt, pred) pairs that touch, as one key per pair.
    size_p = np.bincount(p, minlength=n_pred + 1)
    outside_p = np.bincount(p[g == 0], minlength=n_pred + 1)  # pred pixels off any gt
    both = (g > 0) & (p > 0)
    hit_g = np.bincount(g[both], minlength=n_gt + 1)  # gt pixels under any prediction
    hit_p = np.bincount(p[both], minlength=n_pred + 1)  # pred pixels on any gt
    pairs = np.unique(g[both] * (n_pred + 1) + p[both])
    pair_g, pair_p = pairs // (n_pred + 1), pairs % (n_pred + 1)
    # |K| + |P outside gt| is the reference's |P| + |K| - |K & P| - |A & P|, the same integer.
    union_g = gt_size + np.bincount(pair_g, outside_p[pair_p], n_gt + 1).astype(np.int64)
    missed_g = gt_size - hit_g
    union_p = size_p + np.bincount(pair_p, missed_g[pair_g], n_pred + 1).astype(np.int64)

    gt_ids = np.flatnonzero(gt_kept[1:]) + 1
    pred_ids = np.flatnonzero(size_p[1:]) + 1
    siou_gt = hit_g[gt_ids] / union_g[gt_ids]
    ppv = hit_p[pred_ids] / size_p[pred_ids]
    tp, fn, fp = _per_tau(siou_gt, ppv)
    f1 = _f1(tp, fn, fp)
    return {'siou_gt': siou_gt, 'size_gt': gt_size[gt_ids], 'ppv': ppv,
            'siou_pred': hit_p[pred_ids] / union_p[pred_ids], 'size_pred': size_p[pred_ids],
            'taus': TAUS.copy(), 'tp': tp, 'fn': fn, 'fp': fp, 'f1': f1,
            'f1_mean': _mean(f1), 'gt_components': int(gt_ids.size),
            'pred_components': int(pred_ids.size)}


class ComponentMetrics:
    """Component metrics over a data set, aggregated as the benchmark does; mergeable, savable."""

    _POOLED = ('siou_gt', 'siou_pred', 'ppv')

    def __init__(self, min_pred_size: int, min_gt_size: int, void_id: int = 255,
                 anomaly_id: int = 1) -> None:
        self.min_pred_size = int(min_pred_size)
        self.min_gt_size = int(min_gt_size)
        self.void_id = int(void_id)
        self.anomaly_id = int(anomaly_id)
        self.frames = 0
        self.counts = np.zeros((3, TAUS.size), dtype=np.int64)  # TP, FN, FP per tau
        # Per pooled value (_POOLED): sum over components, added frame by frame as the
        # reference's sum(np.sum(r.x) for r in frames), and the number of components.
        self.sums = np.zeros(3, dtype=np.float64)
        self.components = np.zeros(3, dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> Dict[str, Any]:
        """Score one frame (see :func:`component_metrics`), add it and return its result."""
        result = component_metrics(pred, gt, self.min_pred_size, self.min_gt_size,
                                   self.void_id, self.anomaly_id)
        self.add(result)
        return result

    def add(self, result: Dict[str, Any]) -> None:
        """Add one frame's :func:`component_metrics` result (computed here or elsewhere)."""
        self.frames += 1
        self.counts += np.stack([result['tp'], result['fn'], result['fp']])
        for k, key in enumerate(self._POOLED):
            self.sums[k] += np.sum(result[key])
            self.components[k] += len(result[key])

    def merge(self, other: 'ComponentMetrics') -> 'ComponentMetrics':
        """Add another accumulator's frames (same filters) to this one; returns self."""
        if ((other.min_pred_size, other.min_gt_size, other.void_id, other.anomaly_id)
                != (self.min_pred_size, self.min_gt_size, self.void_id, self.anomaly_id)):
            raise ValueError('cannot merge component metrics with different settings')
        self.frames += other.frames
        self.counts += other.counts
        self.sums += other.sums
        self.components += other.components
        return self

    def compute(self) -> Dict[str, Any]:
        """Return the data-set summary (plain floats, ints and lists; JSON-ready)."""
        tp, fn, fp = self.counts
        f1 = _f1(tp, fn, fp)
        with np.errstate(invalid='ignore', divide='ignore'):
            means = np.where(self.components > 0, self.sums / np.maximum(self.components, 1),
                             math.nan)
        per_tau: Dict[str, List[Any]] = {
            'taus': [float(t) for t in TAUS], 'f1': [float(v) for v in f1],
            'tp': [int(v) for v in tp], 'fn': [int(v) for v in fn], 'fp': [int(v) for v in fp]}
        return {'f1_mean': _mean(f1), 'siou': float(means[0]), 'siou_pred': float(means[1]),
                'ppv': float(means[2]), **per_tau, 'tp_mean': _mean(tp),
                'fn_mean': _mean(fn), 'fp_mean': _mean(fp), 'frames': self.frames,
                'gt_components': int(self.components[0]),
                'pred_components': int(self.components[2]),
                'min_pred_size': self.min_pred_size, 'min_gt_size': self.min_gt_size}

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Return the state for saving shards (``kind`` plus arrays, like the other metrics)."""
        settings = [self.min_pred_size, self.min_gt_size, self.void_id, self.anomaly_id]
        return {'kind': np.array(type(self).__name__),
                'settings': np.array(settings, dtype=np.int64),
                'frames': np.array(self.frames, dtype=np.int64), 'counts': self.counts.copy(),
                'sums': self.sums.copy(), 'components': self.components.copy()}

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Restore a state from :meth:`state_dict`."""
        if str(state['kind']) != type(self).__name__:
            raise ValueError(f'state is a {state["kind"]}, not a ComponentMetrics')
        settings = [int(v) for v in np.asarray(state['settings'])]
        self.min_pred_size, self.min_gt_size, self.void_id, self.anomaly_id = settings
        self.frames = int(state['frames'])
        self.counts = np.array(state['counts'], dtype=np.int64)
        self.sums = np.array(state['sums'], dtype=np.float64)
        self.components = np.array(state['components'], dtype=np.int64)

    @classmethod
    def from_state_dict(cls, state: Dict[str, np.ndarray]) -> 'ComponentMetrics':
        """Build an accumulator from :meth:`state_dict` (what ``load_state`` needs)."""
        metrics = cls(0, 0)
        metrics.load_state_dict(state)
        return metrics
