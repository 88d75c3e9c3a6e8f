"""Generalisation across held-out anomaly families: per family, per input size, per pixel bin.

For each family, ``scenes`` synthetic road scenes (the same street seeds for every family, so
families differ only in their anomalies) are segmented at each inference size exactly as the
node does (the Segmenter's own resize), and scores and labels are resized back to the scene's
size. Per family and size: closed-set mIoU over the classes present, AP / AUROC / FPR95 of the
hybrid, generative and discriminative scores, and the TPR / FPR of the checkpoint's calibrated
threshold (``score > threshold`` on the hybrid score); at that threshold also the
SegmentMeIfYouCan component figures (mean F1, sIoU, PPV; the anomaly track's size filters
scaled to the scene) of the thresholded mask and of the anomaly instances
(``results.predictions_at``).

Where a score fails is measured by restricting the positives to one bin of anomaly pixels while
keeping every inlier pixel as a negative: AP and FPR95 "if only these anomaly pixels existed".
Bins: the size of the anomaly's connected component (side of the equal-area square, in scene
pixels) and the distance of the pixel to the nearest non-anomaly pixel (edge vs interior).
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ...data.synthetic import EVAL_SEED_START, make_scene
from ...deploy.preprocess import to_batch
from ...deploy.segmenter import Segmenter
from .results import predictions_at
from ...core.scoring import compute_score
from ...metrics.anomaly import AnomalyMetrics, OpenSetConfusion
from ...metrics.evaluation import ComponentScores

KINDS = ('hybrid', 'generative', 'discriminative')
SIZE_EDGES = (20, 50, 100, 200)            # sqrt(component area), scene pixels
DISTANCE_EDGES = (2, 6)                    # px to the nearest non-anomaly pixel
Size = Tuple[int, int]


def _bin_names(edges: Sequence[int], unit: str) -> List[str]:
    names = [f'<={edges[0]}{unit}']
    names += [f'{a}-{b}{unit}' for a, b in zip(edges[:-1], edges[1:])]
    return names + [f'>{edges[-1]}{unit}']


SIZE_BINS = _bin_names(SIZE_EDGES, 'px')
DISTANCE_BINS = _bin_names(DISTANCE_EDGES, 'px')


def anomaly_bins(anomaly: np.ndarray) -> Dict[str, np.ndarray]:
    """Per anomaly pixel (``anomaly == 1``) its size bin and distance bin; -1 elsewhere (H x W)."""
    inside = (anomaly == 1).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    side = np.sqrt(stats[:, cv2.CC_STAT_AREA].astype(np.float64))
    size_of_comp = np.searchsorted(SIZE_EDGES, side, side='left')
    size = np.where(inside > 0, size_of_comp[comp], -1)
    dist = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    distance = np.where(inside > 0, np.searchsorted(DISTANCE_EDGES, dist, side='left'), -1)
    return {'size': size, 'distance': distance}


class FamilyScores:
    """Accumulates one (family, inference size): mIoU, three scores' metrics and binned AP.

    With a finite ``threshold`` also the component figures of the hybrid score's mask and
    instances at that threshold.
    """

    def __init__(self, num_classes: int, threshold: float = math.nan) -> None:
        self.num_classes = num_classes
        self.threshold = float(threshold)
        self.components = ComponentScores('anomaly')
        self.confusion = OpenSetConfusion(num_classes)
        self.present = np.zeros(num_classes, bool)
        self.anomaly_as = np.zeros(num_classes, np.int64)      # closed-set class of anomaly px
        self.scores = {k: AnomalyMetrics() for k in KINDS}
        self.binned = {axis: [{k: AnomalyMetrics() for k in KINDS} for _ in names]
                       for axis, names in (('size', SIZE_BINS), ('distance', DISTANCE_BINS))}

    def update(self, pred: np.ndarray, scores: Dict[str, np.ndarray], label: np.ndarray,
               anomaly: np.ndarray) -> None:
        """Add one scene: closed-set prediction and scores at the label's size (H x W)."""
        self.confusion.update(pred, label, anomaly=anomaly, semantic=pred)
        ids = np.unique(label[anomaly == 0])
        self.present[ids[ids < self.num_classes]] = True
        self.anomaly_as += np.bincount(pred[anomaly == 1].ravel(), minlength=self.num_classes)[
            :self.num_classes]
        for k in KINDS:
            self.scores[k].update(scores[k], anomaly)
        self.components.add(anomaly, predictions_at(scores['hybrid'], pred, self.threshold))
        bins = anomaly_bins(anomaly)
        inlier = anomaly == 0
        for axis, metrics in self.binned.items():
            for b, per_kind in enumerate(metrics):
                keep = inlier | (bins[axis] == b)
                if not (bins[axis] == b).any():
                    continue
                gt = np.where(bins[axis] == b, 1, 0).astype(np.uint8)[keep]
                for k in KINDS:
                    per_kind[k].update(scores[k][keep], gt)

    def merge(self, other: 'FamilyScores') -> 'FamilyScores':
        """Add another accumulator's counts (pooling families); returns self."""
        self.confusion.merge(other.confusion)
        self.present |= other.present
        self.anomaly_as += other.anomaly_as
        for k in KINDS:
            self.scores[k].merge(other.scores[k])
        self.components.merge(other.components)
        for axis, metrics in self.binned.items():
            for mine, theirs in zip(metrics, other.binned[axis]):
                for k in KINDS:
                    mine[k].merge(theirs[k])
        return self

    def compute(self, threshold: Optional[float] = None) -> Dict[str, Any]:
        """Return mIoU, per-score AP/AUROC/FPR95, the threshold's TPR/FPR and binned AP/FPR95.

        ``threshold`` defaults to the one given at construction; ``components`` holds the
        component figures where there are any.
        """
        threshold = self.threshold if threshold is None else threshold
        per_class = np.asarray(self.confusion.compute()['closed_per_class_iou'], np.float64)
        out: Dict[str, Any] = {'miou': float(np.nanmean(per_class[self.present]))
                               if self.present.any() else float('nan')}
        for k in KINDS:
            m = self.scores[k].compute()
            stats = self.scores[k].score_stats()
            out[k] = {'ap': m['ap'], 'auroc': m['auroc'], 'fpr95': m['fpr95'],
                      **{f'{part}_{q}': stats[part][q] for part in ('inlier', 'anomaly')
                         for q in ('p01', 'p50', 'p99')}}
        total = max(int(self.anomaly_as.sum()), 1)
        out['anomaly_predicted_as'] = {int(c): round(float(n / total), 4) for c, n in
                                       enumerate(self.anomaly_as) if n / total >= 0.01}
        out['anomaly_pixels'] = int(self.scores['hybrid'].compute()['anomaly_pixels'])
        if np.isfinite(threshold) and out['anomaly_pixels']:
            rates = self.scores['hybrid'].rates_at(threshold)
            out['threshold'] = {'value': threshold, 'tpr': rates['tpr'], 'fpr': rates['fpr']}
        if self.components.metrics:
            out['components'] = self.components.summary()
        for axis, names in (('size', SIZE_BINS), ('distance', DISTANCE_BINS)):
            out[f'by_{axis}'] = {}
            for name, per_kind in zip(names, self.binned[axis]):
                ms = {k: per_kind[k].compute() for k in KINDS}
                if ms['hybrid']['anomaly_pixels']:
                    out[f'by_{axis}'][name] = {
                        'anomaly_pixels': int(ms['hybrid']['anomaly_pixels']),
                        **{k: {'ap': ms[k]['ap'], 'auroc': ms[k]['auroc'], 'fpr95': ms[k]['fpr95']}
                           for k in KINDS}}
        return out


@torch.inference_mode()
def predict(segmenter: Segmenter, image: np.ndarray, size: Size
            ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Closed-set labels and the three scores of one H x W x 3 image, back at H x W."""
    # the node's resize path (OpenCV on the CPU); one forward pass gives all three scores
    x = to_batch([image], size, segmenter.device, segmenter.memory_format)
    logits, ood = segmenter.model(x)
    logits, ood = logits.float(), ood.float()
    h, w = image.shape[:2]
    pred = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)
    scores = {k: cv2.resize(compute_score(k, logits, ood)[0].cpu().numpy(), (w, h),
                            interpolation=cv2.INTER_LINEAR) for k in KINDS}
    return pred, scores


def evaluate_families(segmenter: Segmenter, families: Sequence[str], sizes: Sequence[Size],
                      scenes: int, scene_size: Size = (512, 1024),
                      seed_start: int = EVAL_SEED_START, progress: Any = None
                      ) -> Dict[str, Any]:
    """Evaluate every family at every inference size; ``pooled`` adds all families together."""
    num_classes = int(segmenter.meta.get('num_classes', 19))
    threshold = segmenter.threshold
    runs = {(f, s): FamilyScores(num_classes, threshold) for f in families for s in sizes}
    for family in families:
        for i in range(scenes):
            scene = make_scene(seed_start + i, scene_size, family)
            for size in sizes:
                pred, scores = predict(segmenter, scene['image'], size)
                runs[family, size].update(pred, scores, scene['label'], scene['anomaly'])
            if progress is not None:
                progress(family, i + 1)
    result: Dict[str, Any] = {'threshold': threshold, 'scenes': scenes,
                              'scene_size': list(scene_size), 'families': {}, 'pooled': {}}
    for family in families:
        result['families'][family] = {f'{h}x{w}': runs[family, (h, w)].compute()
                                      for h, w in sizes}
    for h, w in sizes:
        pooled = FamilyScores(num_classes, threshold)
        for family in families:
            pooled.merge(runs[family, (h, w)])
        result['pooled'][f'{h}x{w}'] = pooled.compute()
    return result
