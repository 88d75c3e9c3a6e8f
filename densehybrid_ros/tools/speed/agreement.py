"""The one agreement check of the speed tools: how far two runs of a model disagree.

A faster runtime, a lower precision or another implementation is only worth its speed if it
computes the same thing. Each is compared with a reference run (torch fp32, or this project's
model against the authors') on the same input: ``label_agreement``, the fraction of pixels
given the same label, and ``score_max_abs_diff``, the largest absolute difference of the
anomaly score (or of any other output, ``max_abs_diff``).

Inputs are numpy arrays or torch tensors on any device; half and bfloat16 tensors are widened
to float32 first (numpy has no bfloat16), so a difference is computed in float32 as before.
"""

from typing import Any, Dict

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` (array, or torch tensor on any device and dtype) as a numpy array."""
    if hasattr(x, 'detach'):                                            # a torch tensor
        x = x.detach()
        if x.is_floating_point() and x.element_size() < 4:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def _pair(a: Any, b: Any) -> Any:
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f'cannot compare outputs of shapes {a.shape} and {b.shape}')
    return a, b


def label_agreement(labels: Any, ref_labels: Any) -> float:
    """Fraction of pixels where ``labels`` equals ``ref_labels`` (same shapes)."""
    a, b = _pair(labels, ref_labels)
    return float(np.mean(a == b))


def max_abs_diff(values: Any, ref_values: Any) -> float:
    """Largest absolute difference between two outputs of the same shape."""
    a, b = _pair(values, ref_values)
    return float(np.abs(a - b).max())


def mean_abs_diff(values: Any, ref_values: Any) -> float:
    """Mean absolute difference between two outputs of the same shape."""
    a, b = _pair(values, ref_values)
    return float(np.mean(np.abs(a - b), dtype=np.float64))


def agreement(labels: Any, score: Any, ref_labels: Any, ref_score: Any) -> Dict[str, float]:
    """``label_agreement`` and ``score_max_abs_diff`` of a run against the reference run."""
    return {'label_agreement': label_agreement(labels, ref_labels),
            'score_max_abs_diff': max_abs_diff(score, ref_score)}
