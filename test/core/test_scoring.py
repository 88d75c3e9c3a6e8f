"""Scores and open-set prediction."""

import numpy as np
import pytest
import torch

from densehybrid_ros.core import scoring


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
