"""Anomaly families: held-out disjoint from training, deterministic, labelled in scenes."""

import cv2
import numpy as np
import pytest

from densehybrid_ros.data.synthetic import (FAMILIES, HELD_OUT_FAMILIES, make_anomaly,
                                            make_negative, make_scene, TRAINING_FAMILIES)
from densehybrid_ros.data.synthetic import heldout, varied


def test_training_and_held_out_families_are_disjoint():
    assert not set(TRAINING_FAMILIES) & set(HELD_OUT_FAMILIES)
    assert set(FAMILIES) == set(TRAINING_FAMILIES) | set(HELD_OUT_FAMILIES)
    assert len(HELD_OUT_FAMILIES) >= 5 and {'train', 'varied'} <= set(TRAINING_FAMILIES)
    assert not set(TRAINING_FAMILIES.values()) & set(HELD_OUT_FAMILIES.values())
    # the varied training family neither imports nor references a held-out generator
    used = set(map(id, vars(varied).values()))
    assert not used & set(map(id, heldout.FAMILIES.values()))
    assert heldout not in vars(varied).values()


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_every_family_is_deterministic_and_well_formed(family):
    for size in ((3, 3), (17, 40), (120, 90)):
        rgb, mask = make_anomaly(np.random.default_rng(11), family, *size)
        again, mask2 = make_anomaly(np.random.default_rng(11), family, *size)
        np.testing.assert_array_equal(rgb, again)
        np.testing.assert_array_equal(mask, mask2)
        assert rgb.shape == (*size, 3) and rgb.dtype == np.float32
        assert mask.shape == size and mask.dtype == bool and mask.any()
        assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    others = [make_anomaly(np.random.default_rng(s), family, 64, 64)[0] for s in range(4)]
    assert len({o.tobytes() for o in others}) == 4                  # seeds give new objects


@pytest.mark.parametrize('family', sorted(HELD_OUT_FAMILIES))
def test_held_out_scenes_label_anomalies_one_and_ignore_them(family):
    with_anomaly = 0
    for seed in range(5):
        scene = make_scene(2_000_000 + seed, (96, 192), family)
        a, label = scene['anomaly'], scene['label']
        assert set(np.unique(a)) <= {0, 1, 255}
        assert (label[a == 1] == 255).all()                    # void for the closed-set loss
        assert (a[label != 255] == 0).all()
        with_anomaly += int((a == 1).sum() >= 4)
    assert with_anomaly >= 4


def test_families_draw_different_objects_in_the_same_street():
    scenes = {f: make_scene(2_000_001, (96, 192), f) for f in HELD_OUT_FAMILIES}
    images = {f: s['image'][s['anomaly'] == 1].tobytes() for f, s in scenes.items()}
    assert len(set(images.values())) == len(images)


@pytest.mark.parametrize('name', sorted(varied.SHAPES))
def test_varied_shapes_are_what_they_claim(name):
    masks = [varied.SHAPES[name](np.random.default_rng(s), 80, 80).astype(bool)
             for s in range(6)]
    fill = np.mean([m.mean() for m in masks])
    assert all(m.any() for m in masks)
    if name == 'thin':
        assert fill < 0.2                                        # strokes, not bodies
    if name == 'holed':                                          # holes: background inside
        holes = 0
        for m in masks:
            n, _, stats, _ = cv2.connectedComponentsWithStats((~m).astype(np.uint8), 4)
            holes += sum(1 for i in range(1, n) if stats[i, 0] > 0 and stats[i, 1] > 0
                         and stats[i, 0] + stats[i, 2] < 80 and stats[i, 1] + stats[i, 3] < 80)
        assert holes >= 6                                        # >= 1 per mask


def test_scene_parts_are_recoloured_cut_outs():
    rgb, mask = varied.scene_part(np.random.default_rng(3), 40, 60)
    assert rgb.shape == (40, 60, 3) and mask.shape == (40, 60) and mask.any()
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0


def test_spectral_texture_has_a_falling_power_spectrum():
    tex = varied.spectral(np.random.default_rng(0), 128, 128).mean(-1)
    power = np.abs(np.fft.rfft2(tex - tex.mean())) ** 2
    f = np.hypot(np.fft.fftfreq(128)[:, None], np.fft.rfftfreq(128)[None, :])
    low, high = power[(f > 0.02) & (f < 0.06)].mean(), power[(f > 0.2) & (f < 0.4)].mean()
    assert low > 30 * high


def test_varied_negative_seeds_are_stable():
    a, b = make_negative(9, 'varied', 64), make_negative(9, 'varied', 64)
    np.testing.assert_array_equal(a['image'], b['image'])
    assert a['image'].dtype == np.uint8 and a['mask'].any()
