"""Threshold calibration: one rule, on binned counts (streaming metrics) or exact scores.

:func:`calibrate_counts` is the rule itself; :func:`calibrate` applies it to exact sorted scores
(training, int8 recalibration), :class:`~densehybrid_ros.metrics.anomaly.AnomalyMetrics` to its
bins (evaluation); :func:`calibration_rule` reads the rule back from a stored calibration.
"""

import math
from typing import Any, Dict, Optional

import numpy as np

from .score_bins import ArrayLike, as_numpy


def calibrate_counts(edges: np.ndarray, tp: np.ndarray, fp: np.ndarray, target_tpr: float,
                     float32: bool = False, target_fpr: Optional[float] = None
                     ) -> Dict[str, Any]:
    """Pick the threshold (``score > threshold`` flags) by the one calibration rule.

    By default the threshold flags at least ``target_tpr`` of the anomalies. With
    ``target_fpr`` it instead flags as many anomalies as possible while flagging at most
    ``target_fpr`` of the inliers (a false-alarm budget; ``target_tpr`` is then ignored).
    ``edges`` are the lowest scores of groups in descending order (bins or single values),
    ``tp``/``fp`` the cumulative anomaly/inlier counts down to each group. The threshold lies
    just below the last group flagged, so the ``tpr``/``fpr`` returned are exactly those of
    the threshold: in float32 steps for float32 scores (the node compares in float32), else in
    float64 steps. A group at -inf cannot be flagged by ``>``.
    """
    pos, neg = (int(c[-1]) if c.size else 0 for c in (tp, fp))
    if target_fpr is not None:
        if not 0.0 <= target_fpr < 1.0:
            raise ValueError(f'target_fpr must be in [0, 1), got {target_fpr}')
        rule: Dict[str, Any] = {'target_fpr': float(target_fpr)}
    elif not 0.0 < target_tpr <= 1.0:
        raise ValueError(f'target_tpr must be in (0, 1], got {target_tpr}')
    else:
        rule = {'target_tpr': float(target_tpr)}
    if pos == 0 or neg == 0:
        raise ValueError(f'calibration needs both anomaly and inlier pixels (got {pos} '
                         f'anomaly, {neg} inlier)')
    if target_fpr is None:
        i = int(np.argmax(tp / pos >= target_tpr - 1e-12))
    else:                                   # the last group still within the inlier budget
        i = int(np.searchsorted(fp / neg, target_fpr + 1e-12, side='right')) - 1
    edge = float(edges[i]) if i >= 0 else math.inf
    if edge == math.inf:                    # not even the top group fits: flag nothing
        threshold = math.inf
    elif edge == -math.inf:                 # nothing at -inf is above any threshold
        threshold, i = -math.inf, i - 1
    elif float32:
        up = np.float32(edge)              # smallest float32 >= edge: the group's lowest score
        if float(up) < edge:
            up = np.nextafter(up, np.float32(math.inf))
        threshold = float(np.nextafter(up, np.float32(-math.inf)))
    else:
        threshold = float(np.nextafter(edge, -math.inf))
    flagged_tp, flagged_fp = (int(c[i]) if i >= 0 else 0 for c in (tp, fp))
    return {'threshold': threshold, **rule, 'tpr': flagged_tp / pos, 'fpr': flagged_fp / neg,
            'anomaly_pixels': pos, 'inlier_pixels': neg}


def calibration_rule(calibration: Dict[str, Any]) -> Dict[str, float]:
    """Return the rule a stored calibration used, as keyword arguments of the calibrators."""
    if calibration.get('target_fpr') is not None:
        return {'target_fpr': float(calibration['target_fpr'])}
    return {'target_tpr': float(calibration.get('target_tpr', 0.95))}


def calibrate(scores: ArrayLike, is_anomaly: ArrayLike, target_tpr: float = 0.95,
              valid: Optional[ArrayLike] = None, measured_on: str = '',
              target_fpr: Optional[float] = None) -> Dict[str, object]:
    """Threshold that flags ``target_tpr`` of the anomaly pixels, plus the heatmap range.

    With ``target_fpr`` the threshold instead flags the most anomaly pixels while flagging at
    most that fraction of inlier pixels (the rule of :func:`calibrate_counts`). Returns
    ``threshold`` (a pixel is anomalous when ``score > threshold``), the rule, the achieved
    ``tpr`` and ``fpr``, ``score_p01``/``score_p99`` over all valid pixels (the fixed heatmap
    range), pixel counts and ``measured_on``.
    """
    scores = as_numpy(scores)
    s = scores.astype(np.float64).ravel()
    a = as_numpy(is_anomaly).ravel()
    keep = ~np.isnan(s) & ((a == 0) | (a == 1))        # +-inf scores are pixels too
    if valid is not None:
        keep &= as_numpy(valid).ravel().astype(bool)
    s, a = s[keep], a[keep].astype(bool)
    # Exact counts per distinct score, highest first, through the one threshold rule.
    values, index = np.unique(s, return_inverse=True)
    tp = np.cumsum(np.bincount(index[a], minlength=values.size)[::-1])
    fp = np.cumsum(np.bincount(index[~a], minlength=values.size)[::-1])
    out = calibrate_counts(values[::-1], tp, fp, target_tpr,
                           scores.dtype in (np.float32, np.float16), target_fpr)
    finite = s[np.isfinite(s)]
    p01, p99 = np.percentile(finite, [1.0, 99.0]) if finite.size else (np.nan, np.nan)
    return {**out, 'score_p01': float(p01), 'score_p99': float(p99), 'measured_on': measured_on}
