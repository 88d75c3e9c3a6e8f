"""What a finished training run measures and records, through the node's own code path.

Calibration and validation run the model through ``Segmenter.from_model`` (the code path of the
node and the tools, uint8 images as a camera gives them); the stage record lists every
``densehybrid-train`` command that led to a checkpoint (``train.stages``, oldest first).
"""

import logging
from typing import Any, Dict, Iterator, List, Optional, TYPE_CHECKING

import numpy as np
import torch

from ..models.checkpoint import CheckpointError, read_checkpoint
from ..core.classes import default_class_names
from ..deploy.segmenter import Segmenter
from ..models import DenseHybridModel

if TYPE_CHECKING:
    from .data import EvalSet


def _sample_batches(dataset: 'EvalSet', batch: int = 4) -> Iterator[List[Dict[str, Any]]]:
    """Numpy samples of an evaluation set (uint8 images, as a camera gives them), in batches."""
    for first in range(0, len(dataset), batch):
        yield [dataset.sample(i) for i in range(first, min(first + batch, len(dataset)))]


def training_segmenter(model: DenseHybridModel, device: torch.device,
                       score: str = 'hybrid') -> Segmenter:
    """``Segmenter.from_model`` for the model being trained, which has no threshold yet.

    The Segmenter warns about a missing calibration, meant for users loading a checkpoint;
    here the calibration is what is being measured, so the warning is held back.
    """
    log = logging.getLogger(Segmenter.__module__)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return Segmenter.from_model(model, device=str(device), score=score)
    finally:
        log.setLevel(level)


def calibrate_model(segmenter: Segmenter, dataset: 'EvalSet', measured_on: str,
                    target_tpr: float = 0.95, target_fpr: Optional[float] = None
                    ) -> Dict[str, Any]:
    """Threshold (at ``target_tpr``, or ``target_fpr``) and heatmap range on ``dataset``."""
    from ..metrics.calibration import calibrate
    scores, labels = [], []
    for samples in _sample_batches(dataset):
        results = segmenter([s['image'] for s in samples], outputs=('score',))
        scores += [r.score.ravel() for r in results]
        labels += [s['anomaly'].ravel() for s in samples]
    return calibrate(np.concatenate(scores), np.concatenate(labels), target_tpr,
                     measured_on=measured_on, target_fpr=target_fpr)


def evaluate(model: DenseHybridModel, dataset: 'EvalSet', device: torch.device,
             num_classes: int, threshold: Optional[float] = None) -> Dict[str, Any]:
    """Closed-set mIoU (classes present), AP/AUROC/FPR95 of the three scores, open-set IoU.

    Everything goes through ``Segmenter.from_model``, the code path of the node and the tools.
    Two forward passes per batch, not three: the hybrid score is the sum of the generative and
    the discriminative one (also after the linear resize), so the discriminative score is the
    hybrid minus the generative (float32 rounding, about 1e-5).
    """
    from ..metrics.anomaly import AnomalyMetrics, OpenSetConfusion
    kinds = ('hybrid', 'generative', 'discriminative')
    segmenters = {k: training_segmenter(model, device, k) for k in kinds[:2]}
    if threshold is not None:
        segmenters['hybrid'].threshold = threshold
    anomaly = {k: AnomalyMetrics() for k in kinds}
    confusion = OpenSetConfusion(num_classes)
    present = np.zeros(num_classes, bool)
    for samples in _sample_batches(dataset):
        images = [s['image'] for s in samples]
        hybrids = segmenters['hybrid'](images, outputs=('semantic', 'score', 'open_set'))
        generatives = segmenters['generative'](images, outputs=('score',))
        for sample, hybrid, generative in zip(samples, hybrids, generatives):
            label, gt = sample['label'], sample['anomaly']
            anomaly['hybrid'].update(hybrid.score, gt)
            anomaly['generative'].update(generative.score, gt)
            anomaly['discriminative'].update(hybrid.score - generative.score, gt)
            confusion.update(hybrid.open_set, label, anomaly=gt, semantic=hybrid.semantic)
            ids = np.unique(label[gt == 0])
            present[ids[ids < num_classes]] = True
    c = confusion.compute()
    per_class = np.asarray(c['closed_per_class_iou'], dtype=np.float64)
    miou = float(np.nanmean(per_class[present])) if present.any() else float('nan')
    result: Dict[str, Any] = {
        'miou': miou,
        'per_class_iou': {n: round(float(v), 4) for n, v, p in zip(
            default_class_names(num_classes), per_class, present) if p},
        'images': len(dataset),
    }
    for k in kinds:
        m = anomaly[k].compute()
        result[k] = {'ap': float(m['ap']), 'auroc': float(m['auroc']),
                     'fpr95': float(m['fpr95'])}
    result.update({'ap': result['hybrid']['ap'], 'auroc': result['hybrid']['auroc'],
                   'fpr95': result['hybrid']['fpr95']})
    if threshold is not None:
        result['open_miou'] = float(c['open_miou'])
        result['anomaly_iou'] = float(c['anomaly_iou'])
    return result


def format_metrics(metrics: Dict[str, Any], calibration: Dict[str, Any]) -> str:
    """Human-readable summary of :func:`evaluate` and the calibration."""
    lines: List[str] = [f'closed-set mIoU (classes present): {metrics["miou"]:.4f}']
    for k in ('hybrid', 'generative', 'discriminative'):
        m = metrics[k]
        lines.append(f'{k:>14}: AP {m["ap"]:.4f}  AUROC {m["auroc"]:.4f}  '
                     f'FPR95 {m["fpr95"]:.4f}')
    if 'open_miou' in metrics:
        lines.append(f'open-set mIoU {metrics["open_miou"]:.4f} at threshold '
                     f'{calibration["threshold"]:.4f} (TPR {calibration["tpr"]:.3f}, FPR '
                     f'{calibration["fpr"]:.3f} on the calibration set)')
    return '\n'.join(lines)


def stage_record(train: Dict[str, Any]) -> Dict[str, Any]:
    """One entry of ``train.stages`` from a checkpoint's ``train`` record: command and figures."""
    metrics = train.get('metrics') or {}
    return {'command': train['command'], 'init': train.get('init'),
            'iterations': train.get('iterations'), 'hours': train.get('hours'),
            **{k: round(float(metrics[k]), 4) for k in ('miou', 'ap') if k in metrics}}


def earlier_stages(init: Optional[str], depth: int = 0) -> List[Dict[str, Any]]:
    """Every training stage behind an ``--init`` checkpoint, oldest first (its ``stages``).

    A checkpoint written before stage lists existed has only its own command; the chain then
    goes on through that record's ``init`` path while the file is still there.
    """
    if not init or depth > 64:
        return []
    try:
        train = read_checkpoint(init).get('train') or {}
    except CheckpointError:
        return []
    if 'stages' in train:
        return list(train['stages'])
    if not train.get('command'):
        return []
    return [*earlier_stages(train.get('init'), depth + 1), stage_record(train)]
