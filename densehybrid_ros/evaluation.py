"""One evaluation run's streaming state: anomaly metrics, score statistics, open-set confusion.

:class:`Evaluation` is what densehybrid-eval accumulates frame by frame (and what shards merge):
AP/AUROC/FPR95 from :class:`~densehybrid_ros.metrics.AnomalyMetrics`, score statistics of every
pixel, the open-set confusion, and the counts of pixels the model rejected as unknown
(:func:`rejection_counts`, the one place that counts them; frames.csv rows use it too).
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .classes import UNKNOWN_ID
from .metrics import AnomalyMetrics, load_state, OpenSetConfusion, save_state, ScoreHistogram


def rejection_counts(open_set: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
    """[anomalies rejected, anomalies, inliers rejected, inliers] of one frame (int64).

    ``open_set`` holds UNKNOWN_ID where the model rejected a pixel (exactly the node's mask at
    its threshold); ``anomaly`` is 1 for anomaly, 0 for inlier, anything else void.
    """
    rejected = open_set == UNKNOWN_ID
    ano, inl = anomaly == 1, anomaly == 0
    return np.array([np.count_nonzero(rejected & ano), np.count_nonzero(ano),
                     np.count_nonzero(rejected & inl), np.count_nonzero(inl)], np.int64)


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

    def __post_init__(self) -> None:
        if self.confusion is None:
            self.confusion = OpenSetConfusion(self.num_classes)

    def add(self, score: np.ndarray, anomaly: Optional[np.ndarray] = None,
            label: Optional[np.ndarray] = None, open_set: Optional[np.ndarray] = None,
            semantic: Optional[np.ndarray] = None) -> None:
        """Add one frame's score map and whatever ground truth and predictions it has."""
        self.frames += 1
        self.scores.update(score)
        if anomaly is not None:
            self.anomaly.update(score, anomaly)
            self.anomaly_frames += 1
            if open_set is not None:
                self.mask_counts += rejection_counts(open_set, anomaly)
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
        return self

    def save(self, path: Path) -> None:
        """Write the metric state (state.npz)."""
        save_state(str(path), anomaly=self.anomaly, scores=self.scores,
                   confusion=self.confusion)

    @classmethod
    def load(cls, path: Path, counts: Dict[str, Any]) -> 'Evaluation':
        """Read a state.npz written by :meth:`save` (frame counts from metrics.json)."""
        state = load_state(str(path))
        confusion = state['confusion']
        return cls(confusion.num_classes, state['anomaly'], state['scores'], confusion,
                   int(counts.get('frames', 0)), int(counts.get('anomaly_frames', 0)),
                   int(counts.get('semantic_frames', 0)),
                   np.asarray(counts.get('unknown_mask_counts', [0] * 4), np.int64))

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
        if self.semantic_frames:
            figures = self.confusion.compute()
            names = list(class_names)[:self.num_classes]
            names += [str(i) for i in range(len(names), self.num_classes)]
            figures['per_class_iou'] = dict(zip(names, figures['per_class_iou']))
            figures['closed_per_class_iou'] = dict(zip(names, figures['closed_per_class_iou']))
            out['open_set'] = figures
        return out
