"""Anomaly instances: hysteresis, size, the obstacle rule, per-instance figures, the id image."""

from dataclasses import replace
import math

import cv2
import numpy as np
import pytest

from densehybrid_ros.core.instances import (empty_instances, find_instances, Instance,
                                            InstanceConfig, Instances)

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR = 0, 1, 2, 8, 10, 13
THRESHOLD = 1.0
# One rule at a time: plain threshold, no trim, no size rule; the obstacle rule as configured.
RULES = InstanceConfig(seed_offset=0.0, grow_offset=0.0, peak_fraction=0.0, min_area_fraction=0.0,
                       min_fill=0.0, min_below_drivable=0.5, min_ring_drivable=0.25)
PLAIN = replace(RULES, drivable_classes=None)   # and the obstacle rule off


def blank(shape=(120, 160)) -> np.ndarray:
    """A calm score map, well below the threshold everywhere."""
    return np.full(shape, -2.0, np.float32)


def street(shape=(120, 160)) -> np.ndarray:
    """Semantic map: sky on top, a building band, road on the bottom half."""
    semantic = np.full(shape, ROAD, np.uint8)
    semantic[:shape[0] // 4] = SKY
    semantic[shape[0] // 4:shape[0] // 2] = BUILDING
    return semantic


def pixels_of(result: Instances, instance: Instance) -> np.ndarray:
    """Bool mask of one instance in the id image."""
    return result.ids == instance.id


def test_hysteresis_grows_from_seeds_and_drops_unseeded_components():
    score = blank()
    score[40:60, 40:60] = 0.7           # halo above the grow threshold only ...
    score[45:55, 45:55] = 3.0           # ... around a seeded core
    score[40:60, 100:120] = 0.7         # a blob with no seed at all
    grown = find_instances(score, None, THRESHOLD, replace(PLAIN, grow_offset=-0.5))
    assert len(grown) == 1
    assert grown.instances[0].pixels == 400 and grown.instances[0].bbox == (40, 40, 20, 20)
    assert not grown.ids[:, 90:].any()
    core = find_instances(score, None, THRESHOLD, PLAIN)
    assert [i.pixels for i in core.instances] == [100]
    assert core.instances[0].bbox == (45, 45, 10, 10)


def test_seed_offset_raises_the_bar_for_seeds_only():
    score = blank()
    score[10:30, 10:30] = 1.5           # just above the threshold
    score[10:30, 60:80] = 1.5
    score[15:25, 65:75] = 4.0           # a strong core
    assert len(find_instances(score, None, THRESHOLD, PLAIN)) == 2
    strict = find_instances(score, None, THRESHOLD, replace(PLAIN, seed_offset=1.0))
    assert len(strict) == 1
    # The surviving instance still grows over its pixels above the threshold.
    assert strict.instances[0].bbox == (60, 10, 20, 20) and strict.instances[0].pixels == 400


def test_peak_fraction_trims_each_instance_at_its_own_level():
    score = blank()
    score[20:60, 20:60] = 2.0           # halo of a strong object (peak 11) ...
    score[30:50, 30:50] = 11.0
    score[20:60, 100:140] = 2.0         # ... and a faint one (peak 3): the same halo
    score[30:50, 110:130] = 3.0
    trim = replace(PLAIN, peak_fraction=0.5)
    result = find_instances(score, None, THRESHOLD, trim)
    # Strong: level 1 + 0.5 * 10 = 6, only its core is left; faint: level 2, core only too.
    kept = [(i.bbox, i.pixels) for i in result.instances]
    assert kept == [((30, 30, 20, 20), 400), ((110, 30, 20, 20), 400)]
    assert result.instances[0].contact == (39.5, 49) and result.instances[0].score_mean == 11.0
    assert (result.ids > 0).sum() == 800
    gentle = find_instances(score, None, THRESHOLD, replace(PLAIN, peak_fraction=0.05))
    assert [i.pixels for i in gentle.instances] == [1600, 1600]   # level below the halo
    # A trim leaving fewer pixels than the size rule drops the instance.
    assert len(find_instances(score, None, THRESHOLD, replace(trim, min_pixels=500))) == 0


def test_trimmed_pieces_with_a_seed_are_instances_of_their_own():
    score = blank()
    score[30:50, 20:100] = 2.0          # one halo over two far obstacles ...
    score[35:45, 25:40] = 9.0           # ... each with its own seeded core
    score[35:45, 80:95] = 7.0
    score[35:45, 55:65] = 5.5           # and a bump above the trim level without a seed
    rules = replace(PLAIN, seed_offset=5.0, peak_fraction=0.5)    # seeds > 6, trim at 5
    split = find_instances(score, None, THRESHOLD, rules)
    assert [(i.bbox, i.pixels, i.score_max) for i in split.instances] == [
        ((25, 35, 15, 10), 150, 9.0), ((80, 35, 15, 10), 150, 7.0)]
    assert split.instances[1].contact == (87.0, 44)           # each piece its own contact
    assert not split.ids[:, 50:70].any()                      # the seedless bump is dropped
    whole = find_instances(score, None, THRESHOLD, replace(rules, split_pieces=False))
    assert [(i.bbox, i.pixels, i.score_max) for i in whole.instances] == [
        ((25, 35, 70, 10), 400, 9.0)]
    # The size and fill rules hold for each piece: a piece under the floor is dropped.
    assert [i.pixels for i in find_instances(score, None, THRESHOLD,
                                             replace(rules, min_pixels=151)).instances] == []


def test_defaults_keep_a_strong_obstacle_on_the_road_and_drop_a_faint_blob():
    threshold = -7.0                    # the embedded model's scale: calibrated near -7
    score = np.full((240, 320), -20.0, np.float32)
    semantic = np.full((240, 320), ROAD, np.uint8)
    semantic[:100] = BUILDING
    score[120:160, 40:80] = threshold + 15      # a strong object on the road
    score[115:165, 35:85] = np.maximum(score[115:165, 35:85], threshold + 4)    # its halo
    score[120:160, 200:240] = threshold + 6     # above the threshold, below the seed level
    score[20:60, 120:160] = threshold + 15      # strong, but on a building
    result = find_instances(score, semantic, threshold)
    assert [i.bbox for i in result.instances] == [(40, 120, 40, 40)]   # trimmed to the object
    assert result.instances[0].contact[1] == 159


def test_eight_connectivity_joins_diagonal_pixels():
    score = blank()
    score[20, 20] = score[21, 21] = score[22, 22] = 3.0
    result = find_instances(score, None, THRESHOLD, PLAIN)
    assert len(result) == 1 and result.instances[0].pixels == 3


def test_nan_scores_are_never_anomalous():
    score = blank()
    score[20:30, 20:30] = np.nan
    score[50:60, 50:60] = 3.0
    result = find_instances(score, None, THRESHOLD, PLAIN)
    assert [i.bbox for i in result.instances] == [(50, 50, 10, 10)]


def test_min_area_is_a_fraction_of_the_image_so_it_holds_at_every_resolution():
    score = blank((100, 200))
    score[10:14, 10:14] = 3.0           # 16 px: 0.08 % of the image
    score[50:60, 100:110] = 3.0         # 100 px: 0.5 %
    cfg = replace(PLAIN, min_area_fraction=0.001)
    assert [i.pixels for i in find_instances(score, None, THRESHOLD, cfg).instances] == [100]
    big = cv2.resize(score, (400, 200), interpolation=cv2.INTER_NEAREST)
    assert [i.pixels for i in find_instances(big, None, THRESHOLD, cfg).instances] == [400]
    # Without the rule both are kept; the pixel floor applies on its own too.
    assert len(find_instances(score, None, THRESHOLD, PLAIN)) == 2
    floor = replace(PLAIN, min_pixels=50)
    assert len(find_instances(score, None, THRESHOLD, floor)) == 1


def test_a_smaller_instance_is_kept_when_it_peaks_high_enough():
    score = blank((100, 200))           # 20000 px: floor 20 px, small floor 10 px
    score[10:14, 10:14] = 3.0           # 16 px peaking at threshold + 2: under the floor
    score[30:34, 30:34] = 20.0          # 16 px at threshold + 19: a far obstacle, kept
    score[60:62, 60:62] = 20.0          # 4 px: under the small floor too
    score[50:60, 100:110] = 3.0         # 100 px: over the floor
    cfg = replace(PLAIN, min_area_fraction=0.001, small_area_fraction=0.0005,
                  small_peak_offset=13.0)
    kept = find_instances(score, None, THRESHOLD, cfg).instances
    assert [(i.bbox, i.pixels) for i in kept] == [((30, 30, 4, 4), 16), ((100, 50, 10, 10), 100)]
    off = replace(cfg, small_peak_offset=math.inf)
    assert [i.pixels for i in find_instances(score, None, THRESHOLD, off).instances] == [100]
    # Per trimmed piece: a weak seeded piece under the floor goes, its strong sibling stays.
    score = blank((100, 200))
    score[20:40, 20:60] = 2.0           # a halo joining two cores (trimmed away at 0.5)
    score[25:29, 25:29] = 20.0          # 16 px strong core
    score[25:29, 50:54] = 12.0          # 16 px core at threshold + 11
    trim = replace(cfg, peak_fraction=0.5, seed_offset=5.0)
    assert [i.bbox for i in find_instances(score, None, THRESHOLD, trim).instances] == \
        [(25, 25, 4, 4)]
    assert len(find_instances(score, None, THRESHOLD,
                              replace(trim, small_peak_offset=10.0)).instances) == 2


def test_max_area_drops_components_that_fill_the_view():
    score = blank()
    score[:, :100] = 3.0
    score[100:110, 120:130] = 3.0
    cfg = replace(PLAIN, max_area_fraction=0.25)
    assert [i.pixels for i in find_instances(score, None, THRESHOLD, cfg).instances] == [100]


def test_min_fill_drops_thin_sprawling_structures():
    score = blank()
    for k in range(60):                 # a diagonal line, 3 px thick: fills ~5 % of its box
        score[20 + k, 20 + k:23 + k] = 3.0
    score[80:100, 120:140] = 3.0        # a compact blob: fills its box
    result = find_instances(score, None, THRESHOLD, replace(PLAIN, min_fill=0.25))
    assert [i.bbox for i in result.instances] == [(120, 80, 20, 20)]
    assert len(find_instances(score, None, THRESHOLD, PLAIN)) == 2


def test_obstacle_rule_keeps_road_and_road_edge_anomalies_and_drops_sky_and_building():
    score, semantic = blank(), street()
    cases = {'on_road': (80, 95, 20, 35), 'sky': (5, 20, 60, 75),
             'building': (35, 50, 100, 115), 'edge': (45, 60, 130, 145)}
    for y0, y1, x0, x1 in cases.values():
        score[y0:y1, x0:x1] = 3.0
    # The head labels an anomaly's own pixels with some class: a car on the road, road in the
    # sky. The rule must look around the component, not inside it.
    semantic[80:95, 20:35] = CAR
    semantic[5:20, 60:75] = ROAD
    result = find_instances(score, semantic, THRESHOLD, RULES)
    kept = {(i.bbox[1], i.bbox[0]) for i in result.instances}
    assert kept == {(80, 20), (45, 130)}, kept
    edge = next(i for i in result.instances if i.bbox[0] == 130)
    assert edge.below_drivable == 1.0   # building around, road right below it
    on_road = next(i for i in result.instances if i.bbox[0] == 20)
    assert on_road.below_drivable == 1.0
    # The rule off: all four.
    assert len(find_instances(score, semantic, THRESHOLD, PLAIN)) == 4
    assert len(find_instances(score, None, THRESHOLD, RULES)) == 4


def test_ring_rule_keeps_an_anomaly_beside_the_road():
    score, semantic = blank(), np.full((120, 160), BUILDING, np.uint8)
    semantic[:, 80:] = ROAD             # road to the right, building to the left and below
    score[60:80, 60:80] = 3.0           # its right side touches the road
    cfg = replace(RULES, min_below_drivable=0.5, min_ring_drivable=0.2)
    result = find_instances(score, semantic, THRESHOLD, cfg)
    assert len(result) == 1
    only = result.instances[0]
    assert only.below_drivable == 0.0 and 0.2 <= only.ring_drivable < 0.5
    strict = replace(RULES, min_below_drivable=0.5, min_ring_drivable=0.5)
    assert len(find_instances(score, semantic, THRESHOLD, strict)) == 0


def test_drivable_classes_are_configurable():
    score, semantic = blank(), np.full((120, 160), SKY, np.uint8)
    semantic[60:] = SIDEWALK
    score[40:70, 70:90] = 3.0           # standing on the sidewalk
    assert len(find_instances(score, semantic, THRESHOLD, RULES)) == 0
    walk = replace(RULES, drivable_classes=(ROAD, SIDEWALK))
    assert len(find_instances(score, semantic, THRESHOLD, walk)) == 1


def test_scenery_rule_drops_what_the_head_labels_mostly_as_vegetation():
    # Three anomalies standing on the road: a tree the head labels vegetation, an object it
    # labels vegetation in 40 % of its pixels (an obstacle in front of a hedge), a car.
    score, semantic = blank(), street()
    for x0 in (10, 60, 110):
        score[70:90, x0:x0 + 20] = 3.0
    semantic[70:90, 10:30] = VEGETATION
    semantic[70:78, 60:80] = VEGETATION
    semantic[70:90, 110:130] = CAR
    assert RULES.scenery_classes == (VEGETATION,) and RULES.max_scenery_fraction == 0.5
    kept = [i.bbox[0] for i in find_instances(score, semantic, THRESHOLD, RULES).instances]
    assert kept == [60, 110]
    # Stricter, off, other classes; the rule needs a semantic map.
    strict = replace(RULES, max_scenery_fraction=0.3)
    assert [i.bbox[0] for i in find_instances(score, semantic, THRESHOLD, strict).instances] \
        == [110]
    off = replace(RULES, scenery_classes=None)
    assert len(find_instances(score, semantic, THRESHOLD, off)) == 3
    cars = replace(RULES, scenery_classes=(CAR,))
    assert [i.bbox[0] for i in find_instances(score, semantic, THRESHOLD, cars).instances] \
        == [10, 60]
    assert len(find_instances(score, None, THRESHOLD, RULES)) == 3


def test_anomalous_pixels_around_do_not_count_as_ground():
    score, semantic = blank(), np.full((120, 160), SKY, np.uint8)
    score[20:40, 40:60] = 3.0           # seeded object in the sky ...
    score[41:50, 30:70] = 0.5           # ... a row above a weaker anomalous region
    semantic[41:50, 30:70] = ROAD       # which the head calls road
    cfg = replace(RULES, grow_offset=-0.6, below_fraction=0.05, ring_fraction=0.05)
    # The region is its own (unseeded, dropped) component and must not vouch for the object:
    # its band below (6 rows) holds one sky row and five anomalous rows, so nothing drivable.
    assert len(find_instances(score, semantic, THRESHOLD, cfg)) == 0
    semantic[40] = ROAD                 # a real road row between them: now it stands on road
    result = find_instances(score, semantic, THRESHOLD, cfg)
    assert len(result) == 1 and result.instances[0].below_drivable == 1.0


def test_ground_contact_is_the_lowest_row_under_the_footprint_centre():
    score = blank()
    score[30:50, 40:70] = 3.0
    score[50, 52:57] = 3.0              # a foot: the lowest row holds columns 52..56
    result = find_instances(score, None, THRESHOLD, PLAIN)
    # bottom 20 % of the 21 rows: rows 47-50 span columns 40..69, centre 54.5
    assert result.instances[0].contact == (54.5, 50)
    score[46:50, 40:55] = -1.0          # the body's lower right part only: rows 47-50 span 52..69
    assert find_instances(score, None, THRESHOLD, PLAIN).instances[0].contact == (60.5, 50)


def test_without_a_contact_band_the_contact_is_the_median_column_of_the_lowest_row():
    lowest = replace(PLAIN, contact_band=0.0)
    score = blank()
    score[30:50, 40:70] = 3.0
    score[50, 52:57] = 3.0              # a foot: the lowest row holds columns 52..56
    result = find_instances(score, None, THRESHOLD, lowest)
    assert result.instances[0].contact == (54, 50)
    score[50, 60] = 3.0                 # lowest row now 52..56 and 60: median = index 3 of 6
    assert find_instances(score, None, THRESHOLD, lowest).instances[0].contact == (55, 50)


def test_instance_image_matches_the_list():
    rng = np.random.default_rng(3)
    score = cv2.GaussianBlur(rng.normal(0, 1, (120, 160)).astype(np.float32), (0, 0), 2) * 4
    semantic = street()
    result = find_instances(score, semantic, THRESHOLD,
                            replace(RULES, grow_offset=-0.3, min_pixels=5, min_ring_drivable=0.1))
    assert len(result) >= 3
    assert result.ids.dtype == np.uint16 and result.ids.shape == score.shape
    assert [i.id for i in result.instances] == list(range(1, len(result) + 1))
    assert set(np.unique(result.ids)) == {0, *range(1, len(result) + 1)}
    for instance in result.instances:
        where = pixels_of(result, instance)
        ys, xs = np.nonzero(where)
        x, y, w, h = instance.bbox
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
        assert instance.pixels == where.sum() and instance.area == w * h
        assert instance.score_max == pytest.approx(score[where].max())
        assert instance.score_mean == pytest.approx(score[where].mean(), rel=1e-5)
        assert instance.score_max > THRESHOLD and score[where].min() > THRESHOLD - 0.3
        np.testing.assert_array_equal(instance.mask, where[y:y + h, x:x + w])
        assert instance.contact[1] == ys.max()            # the lowest row, under the footprint
        band = ys >= ys.max() - max(1, int(0.2 * h)) + 1
        assert instance.contact[0] == (xs[band].min() + xs[band].max()) / 2


def test_empty_and_bad_inputs():
    assert len(find_instances(blank(), street(), THRESHOLD, RULES)) == 0
    empty = empty_instances((4, 5))
    assert empty.shape == (4, 5) and empty.ids.dtype == np.uint16 and len(empty) == 0
    with pytest.raises(ValueError):
        find_instances(np.zeros((2, 3, 1), np.float32), None, THRESHOLD)
    with pytest.raises(ValueError):
        find_instances(blank(), np.zeros((10, 10), np.uint8), THRESHOLD)
    with pytest.raises(ValueError):
        InstanceConfig(peak_fraction=1.0)
    with pytest.raises(ValueError):
        InstanceConfig(min_area_fraction=-0.1)
    with pytest.raises(ValueError):
        InstanceConfig(small_area_fraction=-0.1)
    with pytest.raises(ValueError):
        InstanceConfig(max_scenery_fraction=1.5)
