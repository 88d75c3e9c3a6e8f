"""Family evaluation core: anomaly pixel bins and per-bin metrics on known score maps."""

import numpy as np
import pytest

from densehybrid_ros.tools.evaluation.families_harness import (anomaly_bins, DISTANCE_BINS,
                                                               FamilyScores, KINDS, SIZE_BINS)


def _two_objects():
    a = np.zeros((80, 120), np.uint8)
    a[10:40, 10:40] = 1            # 30 x 30: side 30 -> the 20-50 px bin
    a[60:65, 90:95] = 1            # 5 x 5: side 5 -> the <= 20 px bin
    a[75:, :] = 255                # void
    return a


SKY = 10


def test_bins_by_component_size_and_distance_to_edge():
    a = _two_objects()
    bins = anomaly_bins(a)
    assert SIZE_BINS[bins['size'][20, 20]] == '20-50px'
    assert SIZE_BINS[bins['size'][62, 92]] == '<=20px'
    assert (bins['size'][a != 1] == -1).all() and (bins['distance'][a != 1] == -1).all()
    assert DISTANCE_BINS[bins['distance'][10, 25]] == '<=2px'       # on the border
    assert DISTANCE_BINS[bins['distance'][25, 25]] == '>6px'        # the middle, 15 px deep
    small = bins['distance'][60:65, 90:95]            # 5 x 5: centre 3 px from outside
    assert small[2, 2] == 1 and (small == 0).sum() == 24


def test_a_score_that_misses_small_objects_fails_only_in_their_bin():
    a = _two_objects()
    rng = np.random.default_rng(0)
    inlier = rng.normal(0, 1, a.shape).astype(np.float32)
    good = np.where(a == 1, 5.0, inlier).astype(np.float32)
    blind = good.copy()
    blind[60:65, 90:95] = inlier[60:65, 90:95]            # the small object looks like road
    label = np.where(a == 0, 0, 255).astype(np.uint8)
    run = FamilyScores(19)
    scores = {'hybrid': good, 'generative': blind, 'discriminative': good}
    run.update(np.zeros(a.shape, np.uint8), scores, label, a)
    r = run.compute(threshold=3.0)
    assert r['miou'] == 1.0 and r['anomaly_pixels'] == 925
    assert r['hybrid']['ap'] == 1.0 and r['generative']['ap'] < 1.0
    small, mid = r['by_size']['<=20px'], r['by_size']['20-50px']
    assert small['hybrid']['ap'] == 1.0 and small['generative']['ap'] < 0.2
    assert mid['generative']['ap'] == 1.0 and mid['generative']['fpr95'] == 0.0
    assert r['threshold']['tpr'] == 1.0 and r['threshold']['fpr'] < 0.01
    assert r['anomaly_predicted_as'] == {0: 1.0}                    # every pixel called road
    assert r['generative']['anomaly_p01'] < 1.0 < 4.9 < r['hybrid']['anomaly_p01']
    pooled = FamilyScores(19).merge(run).merge(run).compute(3.0)
    assert pooled['anomaly_pixels'] == 2 * 925
    assert set(KINDS) <= set(pooled)


def test_objects_are_the_components_of_the_mask_and_of_the_instances():
    """A phantom off the road is a false positive of the mask; the instances leave it out."""
    a = _two_objects()
    # far above any hysteresis level: every rule but the obstacle rule keeps all three
    score = np.where(a == 1, 100.0, -5.0).astype(np.float32)
    score[20:23, 80:83] = 100.0                       # a 3 x 3 phantom ...
    semantic = np.zeros(a.shape, np.uint8)            # ... in the sky, the objects on the road
    semantic[10:35, 70:95] = SKY
    label = np.where(a == 0, semantic, 255).astype(np.uint8)
    run = FamilyScores(19, threshold=3.0)
    run.update(semantic, {k: score for k in KINDS}, label, a)
    components = run.compute()['components']
    mask, instances = components['mask'], components['instances']
    assert mask['gt_components'] == instances['gt_components'] == 2
    assert mask['pred_components'] == 3 and mask['fp'] == [1] * 11 and mask['tp'] == [2] * 11
    assert mask['f1_mean'] == pytest.approx(0.8) and mask['siou'] == 1.0
    assert instances['pred_components'] == 2 and instances['f1_mean'] == 1.0
    # 80 x 120 scenes: the anomaly track's (500, 100) px at 1024 x 2048, scaled by area
    assert components['size_filters']['by_frame_size'] == {
        '80x120': {'frames': 1, 'min_pred_size': 2, 'min_gt_size': 1}}
    assert 'components' not in FamilyScores(19).compute()      # no threshold: no objects
    pooled = FamilyScores(19, threshold=3.0).merge(run).merge(run).compute()['components']
    assert pooled['mask']['tp'] == [4] * 11 and pooled['instances']['frames'] == 2
