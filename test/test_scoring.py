"""Scores, open-set prediction and calibration."""

import math

import numpy as np
import pytest
import torch

from densehybrid_ros import scoring


@pytest.fixture()
def logits():
    torch.manual_seed(1)
    return torch.randn(2, 5, 7, 9) * 3, torch.randn(2, 2, 7, 9) * 2


def test_scores_follow_their_definitions(logits):
    s, o = logits
    gen = -torch.logsumexp(s, 1)
    disc = torch.log_softmax(o, 1)[:, 1]
    assert torch.allclose(scoring.generative_score(s), gen)
    assert torch.allclose(scoring.discriminative_score(o), disc, atol=1e-6)
    assert torch.allclose(scoring.hybrid_score(s, o), gen + disc, atol=1e-6)
    assert scoring.hybrid_score(s, o).shape == (2, 7, 9)


@pytest.mark.parametrize('kind, expected', [
    ('hybrid', lambda s, o: scoring.hybrid_score(s, o)),
    ('generative', lambda s, o: scoring.generative_score(s)),
    ('discriminative', lambda s, o: scoring.discriminative_score(o)),
])
def test_compute_score_by_name(logits, kind, expected):
    assert torch.equal(scoring.compute_score(kind, *logits), expected(*logits))


def test_unknown_score_name():
    with pytest.raises(ValueError, match='unknown score'):
        scoring.compute_score('energy', torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1))
    with pytest.raises(ValueError, match='unknown score'):
        scoring.score_and_labels('energy', torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1))


@pytest.mark.parametrize('kind', sorted(scoring.SCORES))
@pytest.mark.parametrize('overwrite', [False, True])
@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_score_and_labels_in_one_pass_equal_the_separate_calls(
        logits, kind, overwrite, memory_format):
    s, o = (t.contiguous(memory_format=memory_format) for t in logits)
    s[0, :, 0, 0] = 100.0                               # extreme logits: shift must be exact
    s[1, 3, 2, 2] = s[1, 1, 2, 2]                      # a tie resolves to the first index
    expected_score = scoring.compute_score(kind, s, o)
    expected_labels = s.argmax(1)
    original = s.clone()
    score, labels = scoring.score_and_labels(kind, s, o, overwrite_logits=overwrite)
    assert torch.allclose(score, expected_score, atol=1e-5)
    assert torch.equal(labels, expected_labels)
    if not overwrite:
        assert torch.equal(s, original)                # the caller's logits are untouched


def test_graph_argmax_is_the_first_maximum_and_a_valid_id_on_nan(logits):
    s = logits[0].clone()
    s[1, 3, 2, 2] = s[1, 1, 2, 2] = 50.0              # a tie resolves to the first index
    s[0, :, 4, 4] = float('nan')                      # no channel equals the max
    score, labels = scoring.score_and_labels('hybrid', s.clone(), logits[1], graph=True)
    expected = s.argmax(1)
    expected[0, 4, 4] = s.shape[1] - 1
    assert torch.equal(labels, expected) and labels[1, 2, 2] == 1
    reference, _ = scoring.score_and_labels('hybrid', s.clone(), logits[1])
    assert torch.allclose(score, reference, equal_nan=True)


def test_higher_score_for_low_likelihood_and_outlier_posterior():
    confident = torch.tensor([10.0, 0.0]).view(1, 2, 1, 1)
    flat = torch.tensor([0.0, 0.0]).view(1, 2, 1, 1)
    inlier, outlier = torch.tensor([3.0, -3.0]).view(1, 2, 1, 1), torch.tensor(
        [-3.0, 3.0]).view(1, 2, 1, 1)
    assert scoring.hybrid_score(flat, outlier) > scoring.hybrid_score(confident, inlier)


@pytest.mark.parametrize('threshold, unknown_id', [(-1.0, 255), (0.5, 200)])
def test_open_set_prediction(logits, threshold, unknown_id):
    s, o = logits
    score = scoring.hybrid_score(s, o)
    pred = scoring.open_set_prediction(s, score, threshold, unknown_id)
    assert pred.dtype == torch.uint8
    assert torch.equal(pred == unknown_id, score > threshold)
    keep = score <= threshold
    assert torch.equal(pred[keep], s.argmax(1).to(torch.uint8)[keep])
    as_numpy = scoring.open_set_from_labels(s.argmax(1).to(torch.uint8).numpy(), score.numpy(),
                                            threshold, unknown_id)
    assert np.array_equal(as_numpy, pred.numpy())


@pytest.mark.parametrize('target', [0.95, 0.8, 1.0])
@pytest.mark.parametrize('n_pos', [1, 19, 20, 1000])
def test_calibrate_reaches_the_target_tpr_tightly(target, n_pos):
    rng = np.random.default_rng(n_pos)
    pos = rng.normal(2.0, 1.0, n_pos).astype(np.float32)
    neg = rng.normal(0.0, 1.0, 5000).astype(np.float32)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(n_pos, np.uint8), np.zeros(5000, np.uint8)])
    cal = scoring.calibrate(scores, labels, target)
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
    cal = scoring.calibrate(scores, labels, target_fpr=target)
    assert 'target_tpr' not in cal and cal['target_fpr'] == target
    fpr = np.mean(neg > cal['threshold'])
    assert fpr <= target and cal['fpr'] == pytest.approx(fpr)
    assert cal['tpr'] == pytest.approx(np.mean(pos > cal['threshold']))
    # the next inlier below the threshold would break the budget
    next_inlier = neg[neg <= cal['threshold']].max()
    assert np.mean(neg >= next_inlier) > target


def test_calibrate_at_a_target_fpr_flags_nothing_when_the_top_score_is_an_inlier():
    cal = scoring.calibrate(np.array([9.0, 1.0, 0.0]), np.array([0, 1, 0]), target_fpr=0.0)
    assert cal['threshold'] == math.inf and cal['tpr'] == 0.0 and cal['fpr'] == 0.0
    with pytest.raises(ValueError, match='target_fpr'):
        scoring.calibrate(np.array([9.0, 1.0]), np.array([0, 1]), target_fpr=1.0)


def test_calibrate_ignores_void_and_invalid_pixels():
    scores = np.array([5.0, 4.0, 0.0, 100.0, np.nan], np.float32)
    labels = np.array([1, 1, 0, 255, 1], np.uint8)
    cal = scoring.calibrate(scores, labels, 1.0)
    assert cal['anomaly_pixels'] == 2 and cal['inlier_pixels'] == 1
    assert 0.0 < cal['threshold'] < 4.0


@pytest.mark.parametrize('labels', [np.zeros(4, np.uint8), np.ones(4, np.uint8)])
def test_calibrate_needs_both_classes(labels):
    with pytest.raises(ValueError, match='both anomaly and inlier'):
        scoring.calibrate(np.arange(4.0), labels)
