"""Numpy samples to the tensors a model and its losses take (the one conversion in the tree)."""

from typing import Any, Dict

import numpy as np
import torch


def to_tensors(sample: Dict[str, Any]) -> Dict[str, Any]:
    """Image HxWx3 uint8 -> 3xHxW float in [0, 1]; label -> int64; outlier/anomaly -> uint8.

    ``outlier`` is all zeros when the sample has none (the training losses always read it);
    other keys (``seed``) pass through unchanged.
    """
    out = dict(sample)
    h, w = sample['image'].shape[:2]
    out['image'] = torch.from_numpy(np.ascontiguousarray(
        sample['image'].transpose(2, 0, 1))).float().div_(255.0)
    out['label'] = torch.from_numpy(np.ascontiguousarray(sample['label'])).long()
    out['outlier'] = torch.from_numpy(np.ascontiguousarray(
        sample.get('outlier', np.zeros((h, w), np.uint8))))
    if 'anomaly' in sample:
        out['anomaly'] = torch.from_numpy(np.ascontiguousarray(sample['anomaly']))
    return out
