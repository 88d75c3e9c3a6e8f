"""The DenseHybrid loss: each term as defined, pasted pixels kept out of the closed-set term."""

import numpy as np
import pytest
import torch

from densehybrid_ros.training.losses import densehybrid_loss
from densehybrid_ros.training.data import median_frequency_weights, outlier_weights


def _batch(outlier_pixels: int):
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 3, 5, requires_grad=True)
    ood = torch.randn(1, 2, 3, 5, requires_grad=True)
    label = torch.randint(0, 4, (1, 3, 5))
    label[0, 0, 0] = 255
    outlier = torch.zeros(1, 3, 5, dtype=torch.uint8)
    outlier.view(-1)[1:1 + outlier_pixels] = 1
    return logits, ood, label, outlier


@pytest.mark.parametrize('outliers', [0, 1, 6])
@pytest.mark.parametrize('beta, disc_weight, margin, inlier_margin, power', [
    (0.03, None, None, None, 1.0), (0.1, 0.5, None, None, 1.0), (0.03, None, 1.0, None, 1.0),
    (0.03, None, -1.0, 2.5, 1.0), (0.03, None, -1.0, 2.5, 2.0)])
def test_loss_terms(outliers, beta, disc_weight, margin, inlier_margin, power):
    logits, ood, label, outlier = _batch(outliers)
    t = densehybrid_loss(logits, ood, label, outlier, beta, disc_weight, energy_margin=margin,
                         inlier_margin=inlier_margin, inlier_power=power)
    out = outlier.bool()
    inlier = (label != 255) & ~out
    ce = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[inlier], label[inlier])
    lse = torch.logsumexp(logits, 1)
    if margin is not None:
        lse = torch.relu(lse - margin)
    gen = lse[out].mean() if outliers else torch.tensor(0.0)
    if inlier_margin is not None:
        hinge = torch.relu(inlier_margin - torch.logsumexp(logits, 1)) ** power
        gen = gen + hinge[inlier].mean()
    valid = (label != 255) | out
    disc = torch.nn.functional.cross_entropy(ood.permute(0, 2, 3, 1)[valid], out[valid].long())
    w = 10 * beta if disc_weight is None else disc_weight
    assert torch.allclose(t['ce'], ce) and torch.allclose(t['gen'], gen)
    assert torch.allclose(t['disc'], disc)
    assert torch.allclose(t['loss'], ce + beta * gen + w * disc)


def test_pasted_pixels_do_not_reach_the_closed_set_loss():
    logits, ood, label, outlier = _batch(4)
    a = densehybrid_loss(logits, ood, label, outlier)['ce']
    changed = logits.detach().clone()
    changed[..., outlier[0].bool()] += 100.0
    assert torch.allclose(a, densehybrid_loss(changed, ood, label, outlier)['ce'])


@pytest.mark.parametrize('counts, expected', [
    ((100, 100, 0), (1.0, 1.0, 1.0)),            # balanced; unseen class keeps weight 1
    ((400, 100, 25), (0.5, 1.0, 2.0)),
])
def test_median_frequency_class_weights(counts, expected):
    label = np.concatenate([np.full(n, c, np.uint8) for c, n in enumerate(counts)] +
                           [np.full(10, 255, np.uint8)])
    w = median_frequency_weights([{'label': label}], 3)
    assert torch.allclose(w, torch.tensor(expected), atol=1e-6)
    logits, ood, label_t, outlier = _batch(0)
    weighted = densehybrid_loss(logits, ood, label_t, outlier,
                                class_weights=torch.tensor([1.0, 1.0, 1.0, 5.0]))['ce']
    assert not torch.allclose(weighted, densehybrid_loss(logits, ood, label_t, outlier)['ce'])


def test_outlier_weights_weigh_small_components_up_to_the_cap():
    outlier = np.zeros((40, 60), np.uint8)
    outlier[0:32, 0:32] = 1                   # 1024 pixels: weight 1
    outlier[35:39, 40:44] = 1                 # 16 pixels: sqrt(1024 / 16) = 8, capped at 4
    outlier[10:20, 45:55] = 1                 # 100 pixels
    outlier[20, 55] = 1                       # touches it diagonally: one component of 101
    w = outlier_weights(outlier, 1024.0, 4.0)
    assert w.dtype == np.float32 and w.shape == outlier.shape
    assert (w[outlier == 0] == 1.0).all() and (w[0:32, 0:32] == 1.0).all()
    assert (w[35:39, 40:44] == 4.0).all()
    assert np.allclose(w[10:20, 45:55], np.sqrt(1024 / 101)) and w[20, 55] == w[10, 45]
    assert (outlier_weights(np.zeros((4, 4), np.uint8), 1024.0, 4.0) == 1.0).all()


@pytest.mark.parametrize('margin', [None, -1.0])
def test_outlier_weights_make_the_open_set_terms_weighted_means(margin):
    logits, ood, label, outlier = _batch(6)
    weight = torch.ones(1, 3, 5)
    weight.view(-1)[1:4] = 3.0                # three of the six outlier pixels weigh 3
    weight.view(-1)[10] = 50.0                # an inlier pixel: its weight is not read
    t = densehybrid_loss(logits, ood, label, outlier, energy_margin=margin,
                         outlier_weight=weight)
    out = outlier.bool()
    lse = torch.logsumexp(logits, 1)
    lse = lse if margin is None else torch.relu(lse - margin)
    w_out = weight[out]
    assert torch.allclose(t['gen'], (lse[out] * w_out).sum() / w_out.sum())
    valid = (label != 255) | out
    per_pixel = torch.nn.functional.cross_entropy(ood.permute(0, 2, 3, 1)[valid],
                                                  out[valid].long(), reduction='none')
    w_disc = torch.where(out, weight, torch.ones_like(weight))[valid]
    assert torch.allclose(t['disc'], (per_pixel * w_disc).sum() / w_disc.sum())
    plain = densehybrid_loss(logits, ood, label, outlier, energy_margin=margin)
    ones = densehybrid_loss(logits, ood, label, outlier, energy_margin=margin,
                            outlier_weight=torch.ones(1, 3, 5))
    assert not torch.allclose(t['gen'], plain['gen'])
    for key in ('loss', 'ce', 'gen', 'disc'):             # weight 1 everywhere: the plain loss
        assert torch.allclose(ones[key], plain[key])
