"""Exact-score calibration: the one threshold rule on sorted scores."""

import math

import numpy as np
import pytest

from densehybrid_ros.metrics.anomaly import AnomalyMetrics
from densehybrid_ros.metrics.calibration import calibrate, calibrate_inliers


@pytest.mark.parametrize('target', [0.95, 0.8, 1.0])
@pytest.mark.parametrize('n_pos', [1, 19, 20, 1000])
def test_calibrate_reaches_the_target_tpr_tightly(target, n_pos):
    rng = np.random.default_rng(n_pos)
    pos = rng.normal(2.0, 1.0, n_pos).astype(np.float32)
    neg = rng.normal(0.0, 1.0, 5000).astype(np.float32)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(n_pos, np.uint8), np.zeros(5000, np.uint8)])
    cal = calibrate(scores, labels, target)
    tpr = np.mean(pos > cal['threshold'])
    assert tpr >= target
    # one anomaly pixel fewer flagged would fall below the target
    assert tpr - 1.0 / n_pos < target + 1e-9
    assert cal['tpr'] == pytest.approx(tpr)
    assert cal['fpr'] == pytest.approx(np.mean(neg > cal['threshold']))
    assert cal['score_p01'] < cal['score_p99']


@pytest.mark.parametrize('target', [0.0, 0.01, 0.2])
def test_calibrate_at_a_target_fpr_flags_the_most_anomalies_within_the_budget(target):
    rng = np.random.default_rng(3)
    pos = rng.normal(2.0, 1.0, 500).astype(np.float32)
    neg = rng.normal(0.0, 1.0, 5000).astype(np.float32)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(500, np.uint8), np.zeros(5000, np.uint8)])
    cal = calibrate(scores, labels, target_fpr=target)
    assert 'target_tpr' not in cal and cal['target_fpr'] == target
    fpr = np.mean(neg > cal['threshold'])
    assert fpr <= target and cal['fpr'] == pytest.approx(fpr)
    assert cal['tpr'] == pytest.approx(np.mean(pos > cal['threshold']))
    # the next inlier below the threshold would break the budget
    next_inlier = neg[neg <= cal['threshold']].max()
    assert np.mean(neg >= next_inlier) > target


def test_calibrate_at_a_target_fpr_flags_nothing_when_the_top_score_is_an_inlier():
    cal = calibrate(np.array([9.0, 1.0, 0.0]), np.array([0, 1, 0]), target_fpr=0.0)
    assert cal['threshold'] == math.inf and cal['tpr'] == 0.0 and cal['fpr'] == 0.0
    with pytest.raises(ValueError, match='target_fpr'):
        calibrate(np.array([9.0, 1.0]), np.array([0, 1]), target_fpr=1.0)


def test_calibrate_ignores_void_and_invalid_pixels():
    scores = np.array([5.0, 4.0, 0.0, 100.0, np.nan], np.float32)
    labels = np.array([1, 1, 0, 255, 1], np.uint8)
    cal = calibrate(scores, labels, 1.0)
    assert cal['anomaly_pixels'] == 2 and cal['inlier_pixels'] == 1
    assert 0.0 < cal['threshold'] < 4.0


@pytest.mark.parametrize('labels', [np.zeros(4, np.uint8), np.ones(4, np.uint8)])
def test_calibrate_needs_both_classes(labels):
    with pytest.raises(ValueError, match='both anomaly and inlier'):
        calibrate(np.arange(4.0), labels)


def _inlier_scores() -> np.ndarray:
    """float32 scores of normal driving: a bulk, a tail and many exact ties."""
    rng = np.random.default_rng(11)
    return np.concatenate([rng.normal(0.0, 1.0, 9000), rng.exponential(2.0, 900),
                           np.full(100, 3.25)]).astype(np.float32)


@pytest.mark.parametrize('target', [0.0, 0.001, 0.01, 0.2])
def test_calibrate_inliers_flags_at_most_the_budget_and_no_less_than_it_must(target):
    scores = _inlier_scores()
    values, counts = np.unique(scores, return_counts=True)
    cal = calibrate_inliers(values[::-1].astype(np.float64), np.cumsum(counts[::-1]), target,
                            float32=True)
    flagged = np.mean(scores > np.float32(cal['threshold']))
    assert flagged == cal['fpr'] <= target                    # exact, compared in float32
    assert np.float32(cal['threshold']) == cal['threshold']   # a float32 step below a score
    below = scores[scores <= cal['threshold']]
    assert np.mean(scores >= below.max()) > target            # the next score breaks it
    assert cal['tpr'] is None and cal['target_fpr'] == target
    assert cal['inlier_pixels'] == scores.size and cal['anomaly_pixels'] == 0


def test_without_anomalies_a_false_alarm_budget_is_the_all_inlier_rule():
    scores = _inlier_scores()
    exact = calibrate(scores, np.zeros(scores.size, np.uint8), target_fpr=0.01)
    values, counts = np.unique(scores, return_counts=True)
    alone = calibrate_inliers(values[::-1].astype(np.float64), np.cumsum(counts[::-1]), 0.01,
                              float32=True)
    assert {k: exact[k] for k in alone} == alone
    assert exact['score_p01'] < exact['score_p99']            # the heatmap range
    binned = AnomalyMetrics()              # the streaming histogram: bins of ~1/4000 binade
    binned.update(scores, np.zeros(scores.size, bool))
    got = binned.threshold_at_tpr(target_fpr=0.01)
    assert np.mean(scores > np.float32(got['threshold'])) == got['fpr'] <= 0.01   # still exact
    assert got['fpr'] > alone['fpr'] - 0.001 and got['tpr'] is None
    with pytest.raises(ValueError, match='both anomaly and inlier'):
        calibrate(scores, np.zeros(scores.size, np.uint8), 0.95)   # a recall needs anomalies


def test_calibrate_inliers_refuses_no_pixels_and_a_budget_out_of_range():
    with pytest.raises(ValueError, match='needs pixels'):
        calibrate_inliers(np.zeros(0), np.zeros(0, np.int64), 0.01)
    with pytest.raises(ValueError, match='target_fpr'):
        calibrate_inliers(np.array([1.0]), np.array([1]), 1.0)
