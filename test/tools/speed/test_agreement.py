"""The agreement check: labels agreement and largest score difference between two runs."""

import numpy as np
import pytest
import torch

from densehybrid_ros.tools.speed.agreement import agreement, label_agreement, max_abs_diff, \
    mean_abs_diff, to_numpy


def _run(net: torch.nn.Module, x: torch.Tensor, dtype=None):
    """Labels (argmax of the first 3 channels) and a score (the last channel) of one run."""
    with torch.inference_mode(), torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                                                enabled=dtype is not None):
        out = net(x)
    return out[:, :3].argmax(1), out[:, 3]


def test_two_runs_of_the_same_model_agree_exactly(small_net):
    net, x = small_net, torch.rand(2, 3, 24, 40)
    figures = agreement(*_run(net, x), *_run(net, x))
    assert figures == {'label_agreement': 1.0, 'score_max_abs_diff': 0.0}


def test_bf16_autocast_against_fp32_moves_scores_a_little(small_net):
    net, x = small_net, torch.rand(2, 3, 24, 40)
    labels, score = _run(net, x)
    low_labels, low_score = _run(net, x, torch.bfloat16)
    assert low_score.dtype == torch.bfloat16
    figures = agreement(low_labels, low_score, labels, score)
    assert 0.9 <= figures['label_agreement'] <= 1.0
    assert 0.0 < figures['score_max_abs_diff'] < 0.05           # bf16 keeps ~3 digits
    assert 0.0 < mean_abs_diff(low_score, score) <= figures['score_max_abs_diff']
    assert to_numpy(low_score).dtype == np.float32


def test_known_differences_are_counted_exactly():
    ref_labels = np.zeros((3, 4), np.uint8)
    labels = ref_labels.copy()
    labels[0, :3] = 1                                            # 3 of 12 pixels differ
    assert label_agreement(labels, ref_labels) == 0.75
    ref = np.zeros((3, 4), np.float32)
    score = ref.copy()
    score[1, 2], score[2, 0] = -0.5, 0.25
    assert max_abs_diff(score, ref) == 0.5
    assert mean_abs_diff(score, ref) == pytest.approx(0.75 / 12)
    # A torch tensor and a numpy array of the same values give the same figures.
    assert agreement(torch.from_numpy(labels), torch.from_numpy(score), ref_labels, ref) == \
        {'label_agreement': 0.75, 'score_max_abs_diff': 0.5}


def test_outputs_of_different_shapes_are_an_error_not_a_broadcast():
    with pytest.raises(ValueError, match=r'\(1, 4\) and \(4,\)'):
        label_agreement(np.zeros((1, 4)), np.zeros(4))
    with pytest.raises(ValueError, match='shapes'):
        max_abs_diff(torch.zeros(2, 3), torch.zeros(3, 2))
