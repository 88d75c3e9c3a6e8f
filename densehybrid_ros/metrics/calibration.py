"""Threshold calibration: one rule, on binned counts (streaming metrics) or exact scores.

:func:`calibrate_counts` is the rule itself; :func:`calibrate` applies it to exact sorted scores
(training, int8 recalibration), :class:`~densehybrid_ros.metrics.anomaly.AnomalyMetrics` to its
bins (evaluation); :func:`calibrate_inliers` is the rule when every pixel is an inlier
(unlabelled normal driving: a false-alarm budget alone); :func:`calibration_rule` reads the
rule back from a stored calibration.
"""

import math
from typing import Any, Dict, Optional, Tuple

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
    float64 steps. A group at -inf cannot be flagged by ``>``. With ``target_fpr`` and no
    anomaly pixels the rule is :func:`calibrate_inliers` (``tpr`` None).
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
    if pos == 0 and neg and target_fpr is not None:     # no anomalies: the budget alone
        return calibrate_inliers(edges, fp, target_fpr, float32)
    if pos == 0 or neg == 0:
        raise ValueError(f'calibration needs both anomaly and inlier pixels (got {pos} '
                         f'anomaly, {neg} inlier)')
    if target_fpr is None:
        i = int(np.argmax(tp / pos >= target_tpr - 1e-12))
    else:                                   # the last group still within the inlier budget
        i = within_budget(fp, target_fpr)
    threshold, i = threshold_below(edges, i, float32)
    flagged_tp, flagged_fp = (int(c[i]) if i >= 0 else 0 for c in (tp, fp))
    return {'threshold': threshold, **rule, 'tpr': flagged_tp / pos, 'fpr': flagged_fp / neg,
            'anomaly_pixels': pos, 'inlier_pixels': neg}


def calibrate_inliers(edges: np.ndarray, counts: np.ndarray, target_fpr: float,
                      float32: bool = False) -> Dict[str, Any]:
    """Pick the threshold flagging at most ``target_fpr`` of the pixels, all of them inliers.

    The rule of :func:`calibrate_counts` when there are no anomalies (a bag of normal driving,
    its labels absent or ignored): "the most anomalies within the inlier budget" degenerates to
    the lowest threshold whose ``score > threshold`` flags at most ``target_fpr`` of the
    pixels. ``edges`` are the lowest scores of groups in descending order, ``counts`` the
    cumulative pixel counts down to each group; the threshold lies just below the last group
    flagged (in float32 steps for float32 scores), so ``fpr``, the fraction flagged, is exact.
    ``tpr`` is None: there is no anomaly to find.
    """
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f'target_fpr must be in [0, 1), got {target_fpr}')
    total = int(counts[-1]) if counts.size else 0
    if total == 0:
        raise ValueError('calibration needs pixels (got none)')
    threshold, i = threshold_below(edges, within_budget(counts, target_fpr), float32)
    flagged = int(counts[i]) if i >= 0 else 0
    return {'threshold': threshold, 'target_fpr': float(target_fpr), 'tpr': None,
            'fpr': flagged / total, 'anomaly_pixels': 0, 'inlier_pixels': total}


def within_budget(counts: np.ndarray, target_fpr: float) -> int:
    """Index of the last group whose cumulative ``counts`` stay within ``target_fpr`` (or -1)."""
    return int(np.searchsorted(counts / counts[-1], target_fpr + 1e-12, side='right')) - 1


def threshold_below(edges: np.ndarray, i: int, float32: bool = False) -> Tuple[float, int]:
    """Threshold just below group ``i`` of ``edges`` (descending), and the last group flagged.

    ``score > threshold`` then flags groups 0..i exactly: the threshold is the next float32
    (``float32``) or float64 below the group's lowest score. ``i = -1`` flags nothing (+inf);
    a group at -inf cannot be flagged by ``>``, so the groups flagged end before it.
    """
    edge = float(edges[i]) if i >= 0 else math.inf
    if edge == math.inf:                    # not even the top group fits: flag nothing
        return math.inf, i
    if edge == -math.inf:                   # nothing at -inf is above any threshold
        return -math.inf, i - 1
    if float32:
        up = np.float32(edge)              # smallest float32 >= edge: the group's lowest score
        if float(up) < edge:
            up = np.nextafter(up, np.float32(math.inf))
        return float(np.nextafter(up, np.float32(-math.inf))), i
    return float(np.nextafter(edge, -math.inf)), i


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
