"""Streaming anomaly metrics and open-set confusion, checked against scikit-learn."""

import math
import subprocess
import sys
from typing import Callable, Dict, Tuple

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
import torch

from densehybrid_ros.metrics.anomaly import (AnomalyMetrics, fpr_at_tpr, key_values, load_state,
                                             save_state, score_keys, ScoreHistogram)
from densehybrid_ros.metrics.calibration import calibrate

N = 200_000
TOL = 0.002
Data = Tuple[np.ndarray, np.ndarray]


def _labels(rng: np.random.Generator, rate: float = 0.1) -> np.ndarray:
    return rng.random(N) < rate


DISTRIBUTIONS: Dict[str, Callable[[np.random.Generator], Data]] = {
    # name: rng -> (scores, is_anomaly)
    'normal': lambda r: (lambda y: (r.normal(size=N) + 1.5 * y, y))(_labels(r)),
    'hybrid-like float32': lambda r: (lambda y: (
        (r.normal(size=N) * 3 - 8 + 5 * y).astype(np.float32), y))(_labels(r)),
    'rare anomalies': lambda r: (lambda y: (r.normal(size=N) + 3 * y, y))(_labels(r, 0.002)),
    'narrow range at offset': lambda r: (lambda y: (
        1000 + 1e-6 * (r.normal(size=N) + y), y))(_labels(r)),
    'narrow float32 steps': lambda r: (lambda y: (
        np.float32(1000) + np.float32(1e-3) * (r.normal(size=N) + y).astype(np.float32),
        y))(_labels(r)),
    'tiny around zero': lambda r: (lambda y: (1e-12 * (r.normal(size=N) + y), y))(_labels(r)),
    'heavy tails (cauchy)': lambda r: (lambda y: (
        r.standard_cauchy(size=N) * 1e6 + 3e6 * y, y))(_labels(r)),
    'log-normal over 20 decades': lambda r: (lambda y: (
        np.exp(r.normal(size=N) * 5) * (1 + y), y))(_labels(r)),
    'mixed scales crossing zero': lambda r: (lambda y: (
        np.where(r.random(N) < 0.5, 1e-8, 1e8) * (r.normal(size=N) + y), y))(_labels(r)),
    'heavy ties (5 values)': lambda r: (lambda y: (
        r.integers(0, 5, N) + y * r.integers(0, 2, N), y))(_labels(r)),
    'all scores equal': lambda r: (np.full(N, -3.25), _labels(r)),
    'perfect separation': lambda r: (lambda y: (y + 0.01 * r.random(N), y))(_labels(r)),
    'inverted scores': lambda r: (lambda y: (-(r.normal(size=N) + 2 * y), y))(_labels(r)),
    'infinite scores': lambda r: (lambda y: (
        np.where(r.random(N) < 0.01, np.inf, r.normal(size=N) + y), y))(_labels(r)),
}


TIED = {'heavy ties (5 values)', 'infinite scores'}


def sklearn_reference(score: np.ndarray, is_anomaly: np.ndarray) -> Dict[str, float]:
    """Exact figures over all pixels with scikit-learn."""
    fpr, tpr, _ = roc_curve(is_anomaly, score, drop_intermediate=False)
    return {'ap': average_precision_score(is_anomaly, score),
            'auroc': roc_auc_score(is_anomaly, score), 'fpr95': fpr_at_tpr(fpr, tpr)}


@pytest.mark.parametrize('name', sorted(DISTRIBUTIONS))
def test_anomaly_metrics_match_sklearn(name: str) -> None:
    score, is_anomaly = DISTRIBUTIONS[name](np.random.default_rng(7))
    ref = sklearn_reference(np.nan_to_num(score.astype(np.float64), posinf=1e300), is_anomaly)
    metrics = AnomalyMetrics()
    for part in np.array_split(np.arange(N), 7):        # streamed over "frames"
        metrics.update(score[part], is_anomaly[part])
    got = metrics.compute()
    assert got['pixels'] == N and got['anomaly_pixels'] == int(is_anomaly.sum())
    for key in ('ap', 'auroc', 'fpr95'):
        assert got[key] == pytest.approx(ref[key], abs=TOL), key
        assert abs(got[key] - ref[key]) <= got[f'{key}_error_bound'] + 1e-9, key
        if name not in TIED:                # the bounds count ties as unknown order
            assert got[f'{key}_error_bound'] < TOL, key


def test_unresolvable_scores_are_flagged_by_the_error_bounds() -> None:
    """A micro-cluster at 1000 plus far outliers share bins: the bound says so, honestly."""
    rng = np.random.default_rng(1)
    is_anomaly = _labels(rng, 0.3)
    score = 1000 + 1e-6 * (rng.normal(size=N) + 2 * is_anomaly)
    score[:10] = -1e12                                    # ten far outliers (inliers)
    is_anomaly[:10] = False
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    got, ref = metrics.compute(), sklearn_reference(score, is_anomaly)
    for key in ('ap', 'auroc', 'fpr95'):
        assert abs(got[key] - ref[key]) <= got[f'{key}_error_bound'] + 1e-9, key
    assert got['ap_error_bound'] > 0.1 and got['auroc_error_bound'] > 0.1


@pytest.mark.parametrize('name', ['normal', 'heavy tails (cauchy)', 'narrow range at offset'])
def test_shards_merge_to_the_same_totals(name: str, tmp_path) -> None:
    score, is_anomaly = DISTRIBUTIONS[name](np.random.default_rng(3))
    whole = AnomalyMetrics()
    shards = [AnomalyMetrics() for _ in range(3)]
    for i, part in enumerate(np.array_split(np.arange(N), 9)):
        whole.update(score[part], is_anomaly[part])
        shards[i % 3].update(score[part], is_anomaly[part])
    for i, shard in enumerate(shards):                  # through files, as the tools do it
        save_state(str(tmp_path / f'{i}.npz'), anomaly=shard)
    merged = load_state(str(tmp_path / '0.npz'))['anomaly']
    for i in (2, 1):
        merged.merge(load_state(str(tmp_path / f'{i}.npz'))['anomaly'])
    assert merged.compute() == whole.compute()
    assert merged.shift == whole.shift


def test_update_accepts_torch_valid_masks_and_void_labels() -> None:
    rng = np.random.default_rng(0)
    score = rng.normal(size=(4, 32, 48)).astype(np.float32)
    gt = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=score.shape, p=[.7, .2, .1])
    valid = rng.random(score.shape) < 0.8
    metrics = AnomalyMetrics()
    metrics.update(torch.from_numpy(score), torch.from_numpy(gt), torch.from_numpy(valid))
    keep = valid & (gt != 255)
    ref = sklearn_reference(score[keep], gt[keep] == 1)
    got = metrics.compute()
    assert got['pixels'] == int(keep.sum())
    assert got['ap'] == pytest.approx(ref['ap'], abs=1e-4)
    assert got['auroc'] == pytest.approx(ref['auroc'], abs=1e-4)


@pytest.mark.parametrize('labels, expect', [
    # is_anomaly of every pixel -> which figures are defined
    ([0, 0, 0, 0], {'ap': None, 'auroc': None, 'fpr95': None, 'why': 'no anomaly pixels'}),
    ([1, 1, 1, 1], {'ap': 1.0, 'auroc': None, 'fpr95': None, 'why': 'no inlier pixels'}),
    ([255, 255, 255, 255], {'ap': None, 'auroc': None, 'fpr95': None, 'why': 'no valid'}),
    ([0, 1, 0, 1], {'ap': 0.5, 'auroc': 0.5, 'fpr95': 1.0, 'why': None}),
])
def test_one_class_and_empty_runs_are_explicit(labels, expect) -> None:
    metrics = AnomalyMetrics()
    metrics.update(np.zeros(4), np.array(labels, dtype=np.uint8))
    got = metrics.compute()
    for key in ('ap', 'auroc', 'fpr95'):
        if expect[key] is None:
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(expect[key]), key
    if expect['why']:
        assert expect['why'] in got['undefined']
    else:
        assert 'undefined' not in got


def test_fresh_metrics_compute_without_data() -> None:
    got = AnomalyMetrics().compute()
    assert got['pixels'] == 0 and math.isnan(got['ap'])


@pytest.mark.parametrize('call, message', [
    (lambda m: m.update(np.zeros(3), np.zeros(4)), 'does not match'),
    (lambda m: m.update(np.zeros(3), np.zeros(3), np.ones(2)), 'valid shape'),
    (lambda m: m.update(np.array([0.0, np.nan]), np.array([0, 1])), 'NaN'),
    (lambda m: m.merge(AnomalyMetrics(bins=1024)), 'cannot merge'),
    (lambda m: m.merge(ScoreHistogram()), 'cannot merge'),
    (lambda m: m.threshold_at_tpr(0.95), 'both anomaly and inlier'),
    (lambda m: m.threshold_at_tpr(1.5), 'target_tpr'),
    (lambda m: m.curves(), 'both anomaly and inlier'),
    (lambda m: AnomalyMetrics(bins=4), 'bins'),
])
def test_bad_calls_raise_clear_errors(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(AnomalyMetrics())


def test_nan_scores_outside_the_valid_mask_are_fine() -> None:
    metrics = AnomalyMetrics()
    metrics.update(np.array([np.nan, 1.0, 0.0]), np.array([1, 1, 0]),
                   valid=np.array([False, True, True]))
    assert metrics.compute()['ap'] == 1.0


def test_score_keys_preserve_order_and_invert() -> None:
    values = np.array([-np.inf, -1e300, -2.5, -1e-300, -0.0, 0.0, 1e-300, 1e-20, 1.0,
                       np.nextafter(1.0, 2.0), 1e300, np.inf])
    keys = score_keys(values)
    assert np.all(np.diff(keys) >= 0)
    assert keys[4] == keys[5] == 0                      # -0.0 and 0.0 are one value
    big = np.abs(values) > 2.0 ** -100
    assert np.array_equal(key_values(keys)[big], values[big])


@pytest.mark.parametrize('name', ['normal', 'hybrid-like float32', 'narrow float32 steps'])
def test_threshold_at_tpr_agrees_with_scoring_calibrate(name: str) -> None:
    score, is_anomaly = DISTRIBUTIONS[name](np.random.default_rng(11))
    score = score.astype(np.float32)
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    got = metrics.threshold_at_tpr(0.95)
    exact = calibrate(score, is_anomaly, 0.95)
    achieved = float(np.mean(score[is_anomaly] > got['threshold']))
    assert achieved >= 0.95 and got['tpr'] == pytest.approx(achieved, abs=1e-12)
    assert got['fpr'] == pytest.approx(exact['fpr'], abs=TOL)
    by_fpr = metrics.threshold_at_tpr(target_fpr=0.02)
    assert by_fpr['fpr'] <= 0.02
    assert by_fpr['fpr'] == pytest.approx(float(np.mean(score[~is_anomaly] > by_fpr['threshold'])),
                                          abs=TOL)
    assert by_fpr['tpr'] == pytest.approx(calibrate(score, is_anomaly, target_fpr=0.02)['tpr'],
                                          abs=TOL)
    span = exact['score_p99'] - exact['score_p01']
    assert got['score_p01'] == pytest.approx(exact['score_p01'], abs=1e-3 * span)
    assert got['score_p99'] == pytest.approx(exact['score_p99'], abs=1e-3 * span)


@pytest.mark.parametrize('name', ['normal', 'hybrid-like float32', 'narrow float32 steps',
                                  'heavy tails (cauchy)'])
@pytest.mark.parametrize('quantile', [0.2, 0.9, 0.999])
def test_rates_at_a_threshold_match_counting(name: str, quantile: float) -> None:
    score, is_anomaly = DISTRIBUTIONS[name](np.random.default_rng(13))
    threshold = float(np.quantile(score, quantile))
    if score.dtype == np.float32:
        threshold = float(np.float32(threshold))
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    got = metrics.rates_at(threshold)
    flagged = score > threshold
    tpr, fpr = flagged[is_anomaly].mean(), flagged[~is_anomaly].mean()
    assert abs(got['tpr'] - tpr) <= got['error_bound'] + 1e-12
    assert abs(got['fpr'] - fpr) <= got['error_bound'] + 1e-12
    assert got['error_bound'] < TOL
    if name == 'narrow float32 steps':
        assert got['error_bound'] == 0.0 and got['tpr'] == tpr and got['fpr'] == fpr


def test_rates_at_needs_a_threshold_and_both_classes() -> None:
    metrics = AnomalyMetrics()
    metrics.update(np.arange(4.0), np.array([0, 0, 1, 1]))
    assert metrics.rates_at(1.5) == {'threshold': 1.5, 'tpr': 1.0, 'fpr': 0.0,
                                     'precision': 1.0, 'error_bound': 0.0}
    assert metrics.rates_at(100.0)['tpr'] == 0.0 and metrics.rates_at(-100.0)['fpr'] == 1.0
    with pytest.raises(ValueError, match='NaN'):
        metrics.rates_at(math.nan)
    with pytest.raises(ValueError, match='both anomaly and inlier'):
        AnomalyMetrics().rates_at(0.0)


def test_curves_and_histograms_are_consistent() -> None:
    score, is_anomaly = DISTRIBUTIONS['normal'](np.random.default_rng(5))
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    curves = metrics.curves(max_points=500)
    assert len(curves['fpr']) <= 500
    assert curves['tpr'][-1] == 1.0 and curves['fpr'][-1] == 1.0
    assert np.all(np.diff(curves['threshold']) <= 0)
    edges, inliers, anomalies = metrics.histogram(50)
    assert len(edges) == 51
    assert inliers.sum() == (~is_anomaly).sum() and anomalies.sum() == is_anomaly.sum()
    stats = metrics.score_stats()
    assert stats['anomaly']['mean'] == pytest.approx(score[is_anomaly].mean())
    assert stats['inlier']['std'] == pytest.approx(score[~is_anomaly].std(), rel=1e-6)


def test_score_histogram_statistics_and_merge() -> None:
    rng = np.random.default_rng(2)
    score = rng.normal(size=(6, 100, 100)) * 2 - 5
    whole, merged = ScoreHistogram(), ScoreHistogram()
    for frame in score:
        whole.update(frame)
    for half in (score[:3], score[3:]):
        part = ScoreHistogram()
        part.update(half)
        merged.merge(part)
    stats = whole.compute()
    assert merged.compute() == stats
    p01, p50, p99 = np.percentile(score, [1, 50, 99])
    assert (stats['p01'], stats['p50'], stats['p99']) == pytest.approx((p01, p50, p99),
                                                                       abs=5e-3)
    assert (stats['min'], stats['max']) == pytest.approx((score.min(), score.max()), abs=5e-3)
    assert stats['pixels'] == score.size and stats['mean'] == pytest.approx(score.mean())


def test_memory_is_bounded_by_bins() -> None:
    metrics = AnomalyMetrics(bins=4096)
    rng = np.random.default_rng(0)
    for i in range(50):                    # drifting range that keeps forcing re-binning
        metrics.update(rng.normal(size=2000) * 10 ** (i % 7) + i, rng.random(2000) < 0.2)
    assert metrics.counts.shape == (2, 4096)
    assert metrics.pixels == 100_000


# -- open-set confusion ---------------------------------------------------------------------

def test_importing_metrics_does_not_load_torch() -> None:
    """A metrics-only process must not pay torch's ~500 MB: measured 509 -> 26 MiB max RSS."""
    code = 'import sys, densehybrid_ros.metrics.anomaly; print("torch" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == 'False'


def test_scores_below_the_key_floor_are_not_reported_as_exact() -> None:
    """Magnitudes under 2**-100 share one code, so the bounds must cover the true ranking."""
    rng = np.random.default_rng(3)
    is_anomaly = _labels(rng, 0.3)
    score = 10.0 ** -rng.uniform(110, 300, N)                # ordered, all below 2**-100
    score[is_anomaly] = 10.0 ** -rng.uniform(105, 200, int(is_anomaly.sum()))
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    got, ref = metrics.compute(), sklearn_reference(score, is_anomaly)
    for key in ('ap', 'auroc', 'fpr95'):
        assert abs(got[key] - ref[key]) <= got[f'{key}_error_bound'] + 1e-12, key
    cal = metrics.threshold_at_tpr(0.5)
    flagged = score > cal['threshold']
    assert cal['tpr'] == flagged[is_anomaly].mean() and cal['fpr'] == flagged[~is_anomaly].mean()


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_threshold_at_tpr_describes_the_threshold_it_returns(dtype) -> None:
    """float64 scores closer than float32 steps: the reported rates hold for the threshold."""
    rng = np.random.default_rng(4)
    is_anomaly = _labels(rng, 0.5)
    score = (1.0 + 1e-12 * (rng.normal(size=N) + is_anomaly)).astype(dtype)
    for calibration in (_histogram_calibration, calibrate):
        cal = calibration(score, is_anomaly, 0.95)
        flagged = score > cal['threshold']
        if dtype == np.float32:      # the node compares float32 scores with a float32 threshold
            flagged = score > np.float32(cal['threshold'])
        assert cal['tpr'] == flagged[is_anomaly].mean() >= 0.95, calibration
        assert cal['fpr'] == flagged[~is_anomaly].mean(), calibration


def _histogram_calibration(score: np.ndarray, is_anomaly: np.ndarray, target: float) -> Dict:
    metrics = AnomalyMetrics()
    metrics.update(score, is_anomaly)
    return metrics.threshold_at_tpr(target)


@pytest.mark.parametrize('target', [0.95, 1.0])
def test_calibrate_counts_infinite_scores(target: float) -> None:
    """+-inf pixels are pixels: the TPR reported is the TPR over all of them."""
    rng = np.random.default_rng(5)
    is_anomaly = _labels(rng, 0.2)
    score = rng.normal(size=N) + 2 * is_anomaly
    score[rng.random(N) < 0.03] = np.inf
    score[rng.random(N) < 0.03] = -np.inf
    for calibration in (_histogram_calibration, calibrate):
        cal = calibration(score, is_anomaly, target)
        flagged = score > cal['threshold']
        assert cal['anomaly_pixels'] == is_anomaly.sum(), calibration
        assert cal['tpr'] == flagged[is_anomaly].mean(), calibration
        assert cal['fpr'] == flagged[~is_anomaly].mean(), calibration
        if target < 1.0:
            assert cal['tpr'] >= target, calibration
