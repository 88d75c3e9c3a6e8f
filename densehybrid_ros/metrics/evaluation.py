"""One evaluation run's streaming state: anomaly metrics, score statistics, open-set confusion.

:class:`Evaluation` is what densehybrid-eval accumulates frame by frame (and what shards merge):
AP/AUROC/FPR95 from :class:`~densehybrid_ros.metrics.anomaly.AnomalyMetrics`, score statistics
of every pixel, the open-set confusion, the counts of pixels the model rejected as unknown
(:func:`rejection_counts`, the one place that counts them; frames.csv rows use it too) and the
SegmentMeIfYouCan component figures of each object-level prediction (:class:`ComponentScores`).
"""

from collections import Counter
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from ..core.classes import UNKNOWN_ID
from .anomaly import AnomalyMetrics, load_state, OpenSetConfusion, save_state, ScoreHistogram
from .components import component_metrics, ComponentMetrics, scaled_min_sizes, SMIYC_MIN_SIZES

COMPONENTS_PREFIX = 'components_'     # state.npz names of the ComponentMetrics, by prediction


def rejection_counts(open_set: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
    """[anomalies rejected, anomalies, inliers rejected, inliers] of one frame (int64).

    ``open_set`` holds UNKNOWN_ID where the model rejected a pixel (exactly the node's mask at
    its threshold); ``anomaly`` is 1 for anomaly, 0 for inlier, anything else void.
    """
    rejected = open_set == UNKNOWN_ID
    ano, inl = anomaly == 1, anomaly == 0
    return np.array([np.count_nonzero(rejected & ano), np.count_nonzero(ano),
                     np.count_nonzero(rejected & inl), np.count_nonzero(inl)], np.int64)


def component_gt(anomaly: np.ndarray) -> np.ndarray:
    """SMIYC ground truth (uint8 0 inlier, 1 anomaly, 255 void) of an eval anomaly map.

    Eval's anomaly maps are bool or uint8 with 0 inlier, 1 anomaly and *any* other value void
    (Fishyscapes uses 2 and 255, as ``AnomalyMetrics`` reads them); ``component_metrics``
    takes only 255 as void, so every other value is mapped to 255 here.
    """
    anomaly = np.asarray(anomaly)
    if anomaly.dtype == np.bool_:
        return anomaly.astype(np.uint8)
    return np.where(anomaly == 1, 1, np.where(anomaly == 0, 0, 255)).astype(np.uint8)


class ComponentScores:
    """SegmentMeIfYouCan component figures of several predictions of the same frames.

    Predictions by name (densehybrid-eval: ``mask``, the thresholded score, and ``instances``,
    the instance-id image). Every frame is scored with the SMIYC ``track``'s size filters
    scaled to its own size (:func:`~densehybrid_ros.metrics.components.scaled_min_sizes`), so
    frames of several sizes and shards of any order add up; the accumulators therefore carry
    the track's reference filters as their settings, and :meth:`summary` reports the filters
    applied per frame size.
    """

    def __init__(self, track: str = 'anomaly') -> None:
        if track not in SMIYC_MIN_SIZES:
            raise ValueError(f'unknown SMIYC track {track!r}; choose from '
                             f'{", ".join(SMIYC_MIN_SIZES)}')
        self.track = track
        self.metrics: Dict[str, ComponentMetrics] = {}
        self.frame_sizes: Counter = Counter()        # 'HxW' -> frames scored at that size

    def add(self, anomaly: np.ndarray, predictions: Mapping[str, Optional[np.ndarray]]
            ) -> Dict[str, Dict[str, Any]]:
        """Score one frame's predictions (None: not available) against its anomaly map.

        Returns the frame's :func:`component_metrics` result per prediction scored.
        """
        given = {name: pred for name, pred in predictions.items() if pred is not None}
        if not given:
            return {}
        gt = component_gt(anomaly)
        height, width = gt.shape
        sizes = scaled_min_sizes(height, width, self.track)
        self.frame_sizes[f'{height}x{width}'] += 1
        reference = SMIYC_MIN_SIZES[self.track][0]
        out = {}
        for name, pred in given.items():
            out[name] = component_metrics(pred, gt, *sizes)
            self.metrics.setdefault(name, ComponentMetrics(*reference)).add(out[name])
        return out

    def merge(self, other: 'ComponentScores') -> 'ComponentScores':
        """Add another run's figures (same track); returns self."""
        if other.track != self.track:
            raise ValueError(f'cannot merge component figures of the {self.track} and '
                             f'{other.track} tracks')
        for name, metrics in other.metrics.items():
            if name in self.metrics:
                self.metrics[name].merge(metrics)
            else:
                self.metrics[name] = ComponentMetrics.from_state_dict(metrics.state_dict())
        self.frame_sizes.update(other.frame_sizes)
        return self

    def summary(self) -> Dict[str, Any]:
        """Track, size filters and one block of ``ComponentMetrics.compute()`` per prediction."""
        (pred_size, gt_size), frame = SMIYC_MIN_SIZES[self.track]
        by_size = {}
        for key in sorted(self.frame_sizes):
            height, width = (int(v) for v in key.split('x'))
            scaled = scaled_min_sizes(height, width, self.track)
            by_size[key] = {'frames': self.frame_sizes[key], 'min_pred_size': scaled[0],
                            'min_gt_size': scaled[1]}
        out: Dict[str, Any] = {'track': self.track, 'size_filters': {
            'reference': {'min_pred_size': pred_size, 'min_gt_size': gt_size,
                          'frame': list(frame)},
            'by_frame_size': by_size}}
        for name, metrics in self.metrics.items():
            figures = metrics.compute()
            for key in ('min_pred_size', 'min_gt_size'):   # the reference: see size_filters
                figures.pop(key)
            out[name] = figures
        return out

    @classmethod
    def restore(cls, metrics: Mapping[str, ComponentMetrics],
                summary: Optional[Mapping[str, Any]]) -> 'ComponentScores':
        """Rebuild from saved accumulators and the ``summary()`` written next to them."""
        summary = summary or {}
        scores = cls(summary.get('track', 'anomaly'))
        scores.metrics = dict(metrics)
        by_size = (summary.get('size_filters') or {}).get('by_frame_size') or {}
        scores.frame_sizes = Counter({k: int(v['frames']) for k, v in by_size.items()})
        return scores


@dataclass
class Evaluation:
    """Streaming state of one evaluation run (mergeable across shards)."""

    num_classes: int
    anomaly: AnomalyMetrics = field(default_factory=AnomalyMetrics)
    scores: ScoreHistogram = field(default_factory=ScoreHistogram)
    confusion: Optional[OpenSetConfusion] = None
    frames: int = 0
    anomaly_frames: int = 0
    semantic_frames: int = 0
    mask_counts: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))  # see above
    components: ComponentScores = field(default_factory=ComponentScores)

    def __post_init__(self) -> None:
        if self.confusion is None:
            self.confusion = OpenSetConfusion(self.num_classes)

    def add(self, score: np.ndarray, anomaly: Optional[np.ndarray] = None,
            label: Optional[np.ndarray] = None, open_set: Optional[np.ndarray] = None,
            semantic: Optional[np.ndarray] = None,
            components: Optional[Mapping[str, Optional[np.ndarray]]] = None) -> None:
        """Add one frame's score map and whatever ground truth and predictions it has.

        ``components``: object-level predictions by name (bool mask or integer instance ids,
        see :class:`ComponentScores`), scored when the frame has an anomaly map.
        """
        self.frames += 1
        self.scores.update(score)
        if anomaly is not None:
            self.anomaly.update(score, anomaly)
            self.anomaly_frames += 1
            if open_set is not None:
                self.mask_counts += rejection_counts(open_set, anomaly)
            if components:
                self.components.add(anomaly, components)
        if label is not None and open_set is not None:
            self.confusion.update(open_set, label, anomaly, semantic=semantic)
            self.semantic_frames += 1

    def merge(self, other: 'Evaluation') -> 'Evaluation':
        """Add another shard's state."""
        self.anomaly.merge(other.anomaly)
        self.scores.merge(other.scores)
        self.confusion.merge(other.confusion)
        self.frames += other.frames
        self.anomaly_frames += other.anomaly_frames
        self.semantic_frames += other.semantic_frames
        self.mask_counts += other.mask_counts
        if other.components.metrics:        # shards without any component figure add nothing
            if not self.components.metrics:
                self.components = ComponentScores(other.components.track)
            self.components.merge(other.components)
        return self

    def save(self, path: Path) -> None:
        """Write the metric state (state.npz)."""
        named = {f'{COMPONENTS_PREFIX}{name}': metrics
                 for name, metrics in self.components.metrics.items()}
        save_state(str(path), anomaly=self.anomaly, scores=self.scores,
                   confusion=self.confusion, **named)

    @classmethod
    def load(cls, path: Path, counts: Dict[str, Any]) -> 'Evaluation':
        """Read a state.npz written by :meth:`save` (counts and filters from metrics.json)."""
        state = load_state(str(path))
        confusion = state['confusion']
        components = {name[len(COMPONENTS_PREFIX):]: obj for name, obj in state.items()
                      if name.startswith(COMPONENTS_PREFIX)}
        return cls(confusion.num_classes, state['anomaly'], state['scores'], confusion,
                   frames=int(counts.get('frames', 0)),
                   anomaly_frames=int(counts.get('anomaly_frames', 0)),
                   semantic_frames=int(counts.get('semantic_frames', 0)),
                   mask_counts=np.asarray(counts.get('unknown_mask_counts', [0] * 4), np.int64),
                   components=ComponentScores.restore(components, counts.get('components')))

    def summary(self, class_names: Sequence[str]) -> Dict[str, Any]:
        """Figures for metrics.json."""
        out: Dict[str, Any] = {'frames': self.frames, 'anomaly_frames': self.anomaly_frames,
                               'semantic_frames': self.semantic_frames,
                               'score_stats': self.scores.compute()}
        if self.anomaly_frames:
            out['anomaly'] = self.anomaly.compute()
            out['score_stats_by_class'] = self.anomaly.score_stats()
        hit_a, ano, hit_i, inl = (int(v) for v in self.mask_counts)
        if ano and inl:
            out['unknown_mask'] = {'tpr': hit_a / ano, 'fpr': hit_i / inl,
                                   'precision': hit_a / (hit_a + hit_i) if hit_a + hit_i
                                   else math.nan}
        out['unknown_mask_counts'] = [hit_a, ano, hit_i, inl]
        if self.components.metrics:
            out['components'] = self.components.summary()
        if self.semantic_frames:
            figures = self.confusion.compute()
            names = list(class_names)[:self.num_classes]
            names += [str(i) for i in range(len(names), self.num_classes)]
            figures['per_class_iou'] = dict(zip(names, figures['per_class_iou']))
            figures['closed_per_class_iou'] = dict(zip(names, figures['closed_per_class_iou']))
            out['open_set'] = figures
        return out
