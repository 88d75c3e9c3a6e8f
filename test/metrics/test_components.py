"""Component metrics against the SegmentMeIfYouCan reference, on fixtures drawn here."""

import io
import math
import textwrap
import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from densehybrid_ros.metrics.components import (component_metrics, ComponentMetrics,
                                                scaled_min_sizes, TAUS)

# Pictures: gt '.' inlier, '1' anomaly, 'v' void; pred '.' nothing, '#' predicted (bool mask)
# or a digit (instance id). Each entry: (gt, pred, min_pred_size, min_gt_size).
FIXTURES = {
    # Two objects meeting at a corner are one component (8-connectivity); so are the two
    # predicted blobs on the right, which meet at a corner as well.
    'touching': ('''
        ..........
        .11.......
        .11.......
        ...11.....
        ...11.....
        ..........
        ........11
    ''', '''
        ..........
        .##.......
        .##...##..
        ...#..##..
        ........##
        ........##
        ..........
    ''', 0, 0),
    # A prediction crossing a void band is two components; one wholly on void is nothing;
    # the void pixels of a prediction on an object do not count against it.
    'void': ('''
        ..vv......
        .1vv....v.
        .11v....v.
        .11v......
        ..........
    ''', '''
        ####......
        ..###...#.
        .###....#.
        ..........
        ..........
    ''', 0, 0),
    # Size filters 3 (prediction) and 4 (object): the 2-pixel prediction goes; both 3-pixel
    # objects become void; the 3-pixel prediction with one pixel on a voided object stays
    # (its size counts that pixel), measured on its 2 other pixels; the 3-pixel prediction
    # wholly on a voided object disappears.
    'sizes': ('''
        ...........
        .1111......
        .1111..11..
        .......1...
        ...........
        111........
    ''', '''
        ...........
        .##........
        .##...#....
        ......##...
        .........##
        ###........
    ''', 3, 4),
    # One prediction over two objects: the pixels on the other object are left out of each
    # object's union (the set A), not counted as the prediction's spill.
    'two_objects': ('''
        ............
        .111....111.
        .111....111.
        .111....111.
        ............
        .....11.....
    ''', '''
        ............
        .##########.
        .###....###.
        ............
        ............
        ............
    ''', 0, 0),
    # sIoU exactly 3/5: a true positive at tau 0.55, a false negative at tau 0.6 (which is
    # 0.6000000000000001 in the reference).
    'three_fifths': ('''
        .......
        .11111.
        .......
    ''', '''
        .......
        .###...
        .......
    ''', 0, 0),
    'empty_prediction': ('''
        ......
        .11...
        .11..1
    ''', '''
        ......
        ......
        ......
    ''', 0, 0),
    'empty_gt': ('''
        ......
        ......
        v.....
    ''', '''
        ......
        .##...
        .##.##
    ''', 0, 0),
    'nothing': ('''
        ....
        ....
    ''', '''
        ....
        ....
    ''', 0, 0),
    # Fewer non-anomaly pixels (3) than min_gt_size (4): the reference voids them all.
    'background_quirk': ('''
        111
        11.
        1..
    ''', '''
        #..
        .##
        .##
    ''', 0, 4),
    # Instance ids: two touching ids on one object stay two components; id 3 in two pieces
    # stays one component; id 4 lies on void only.
    'instances': ('''
        ..........
        .111....v.
        .111....v.
        ..........
        ...1......
    ''', '''
        ..........
        .12...3.4.
        .12.....4.
        .......3..
        ...3......
    ''', 0, 0),
}

# What the reference computes on FIXTURES: road-anomaly-benchmark at commit
# 1c7804e0749686452eb02bbcfb81234e38795f8a, road_anomaly_benchmark/metrics/instance_segmentation.py
# run unmodified (default_instancer with the mask as anomaly_p and thresh_p 0.5, then
# segment_metrics with thresholds np.linspace(0.25, 0.75, 11)); sIoU_gt, prec_pred, sIoU_pred
# and tp/fn/fp per tau. For 'instances' (the reference takes masks only) its labelling of the
# prediction was replaced by the given ids, the rest of its code unchanged.
EXPECTED = {
    'touching': {'siou_gt': [0.625, 0.0], 'ppv': [1.0, 0.0], 'siou_pred': [0.625, 0.0],
                 'tp': [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], 'fn': [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2],
                 'fp': [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]},
    'void': {'siou_gt': [0.4], 'ppv': [0.0, 0.0, 1.0], 'siou_pred': [0.0, 0.0, 0.4],
             'tp': [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 'fn': [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
             'fp': [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]},
    'sizes': {'siou_gt': [0.5], 'ppv': [1.0, 0.0], 'siou_pred': [0.5, 0.0],
              'tp': [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], 'fn': [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
              'fp': [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]},
    'two_objects': {'siou_gt': [0.46153846153846156, 0.46153846153846156, 0.0], 'ppv': [0.75],
                    'siou_pred': [0.5454545454545454],
                    'tp': [2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0],
                    'fn': [1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3],
                    'fp': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]},
    'three_fifths': {'siou_gt': [0.6], 'ppv': [1.0], 'siou_pred': [0.6],
                     'tp': [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
                     'fn': [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
                     'fp': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]},
    'empty_prediction': {'siou_gt': [0.0, 0.0], 'ppv': [], 'siou_pred': [],
                         'tp': [0] * 11, 'fn': [2] * 11, 'fp': [0] * 11},
    'empty_gt': {'siou_gt': [], 'ppv': [0.0, 0.0], 'siou_pred': [0.0, 0.0],
                 'tp': [0] * 11, 'fn': [0] * 11, 'fp': [2] * 11},
    'nothing': {'siou_gt': [], 'ppv': [], 'siou_pred': [],
                'tp': [0] * 11, 'fn': [0] * 11, 'fp': [0] * 11},
    'background_quirk': {'siou_gt': [0.3333333333333333], 'ppv': [1.0],
                         'siou_pred': [0.3333333333333333],
                         'tp': [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                         'fn': [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
                         'fp': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]},
    'instances': {'siou_gt': [0.6666666666666666, 0.3333333333333333],
                  'ppv': [1.0, 1.0, 0.3333333333333333],
                  'siou_pred': [0.5, 0.5, 0.3333333333333333],
                  'tp': [2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0], 'fn': [0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2],
                  'fp': [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]},
}

# MetricSegment.aggregate of the same commit over the ten frames above, in FIXTURES order
# (ResultsInfo fields; tp/fn/fp per tau summed from the frame results as it sums them).
EXPECTED_AGGREGATE = {
    'f1_mean': 0.33232263271788964, 'siou': 0.3370315581854043,
    'siou_pred': 0.28914141414141414, 'ppv': 0.538888888888889,
    'f1_25': 0.6428571428571429, 'f1_50': 0.3333333333333333, 'f1_75': 0.0,
    'tp_mean': 4.363636363636363, 'fn_mean': 8.636363636363637, 'fp_mean': 6.818181818181818,
    'tp': [9, 9, 7, 7, 6, 4, 3, 2, 1, 0, 0], 'fn': [4, 4, 6, 6, 7, 9, 10, 11, 12, 13, 13],
    'fp': [6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7],
}

TOLERANCE = 1e-12  # the issue asks for 1e-9; the same integer ratios give the same doubles


def picture(art: str, table) -> np.ndarray:
    rows = textwrap.dedent(art).strip('\n').split('\n')
    return np.array([[table(c) for c in row] for row in rows])


def frame(name: str):
    gt_art, pred_art, min_pred, min_gt = FIXTURES[name]
    gt = picture(gt_art, {'.': 0, '1': 1, 'v': 255}.get).astype(np.uint8)
    if any(c.isdigit() for c in pred_art):
        pred = picture(pred_art, lambda c: 0 if c == '.' else int(c)).astype(np.int32)
    else:
        pred = picture(pred_art, lambda c: c == '#').astype(bool)
    assert pred.shape == gt.shape
    return pred, gt, min_pred, min_gt


@pytest.mark.parametrize('name', sorted(FIXTURES))
def test_frame_matches_reference(name):
    pred, gt, min_pred, min_gt = frame(name)
    result = component_metrics(pred, gt, min_pred, min_gt)
    want = EXPECTED[name]
    for key in ('siou_gt', 'ppv', 'siou_pred'):
        assert result[key].shape == (len(want[key]),), key
        np.testing.assert_allclose(result[key], want[key], rtol=0, atol=TOLERANCE, err_msg=key)
    for key in ('tp', 'fn', 'fp'):
        assert result[key].tolist() == want[key], key
    assert result['gt_components'] == len(want['siou_gt'])
    assert result['pred_components'] == len(want['ppv'])
    np.testing.assert_array_equal(result['taus'], np.linspace(0.25, 0.75, 11))
    tp, fn, fp = (np.array(want[k]) for k in ('tp', 'fn', 'fp'))
    if name == 'nothing':
        assert np.isnan(result['f1']).all() and math.isnan(result['f1_mean'])
    else:
        np.testing.assert_allclose(result['f1'], 2 * tp / (2 * tp + fn + fp), rtol=0, atol=1e-15)
        assert result['f1_mean'] == pytest.approx(np.mean(2 * tp / (2 * tp + fn + fp)), abs=1e-15)


def test_fixtures_show_what_they_are_named_for():
    # The rules each fixture is there to exercise, stated directly.
    touching = component_metrics(*frame('touching'))
    assert touching['gt_components'] == 2 and touching['pred_components'] == 2  # 8-connectivity
    three_fifths = component_metrics(*frame('three_fifths'))
    assert three_fifths['siou_gt'][0] == 0.6
    assert three_fifths['tp'][list(TAUS).index(0.55)] == 1 and three_fifths['tp'][7] == 0
    sizes = component_metrics(*frame('sizes'))
    assert sizes['size_pred'].tolist() == [4, 2]  # the kept 3-pixel one, measured on 2 pixels
    two = component_metrics(*frame('two_objects'))
    assert two['siou_gt'][0] == 6 / 13  # without the set A it would be 6 / 19


def test_aggregate_matches_reference():
    metrics = ComponentMetrics(0, 0)
    for name in FIXTURES:  # the fixtures' own size filters, frame by frame
        pred, gt, min_pred, min_gt = frame(name)
        metrics.add(component_metrics(pred, gt, min_pred, min_gt))
    summary = metrics.compute()
    want = EXPECTED_AGGREGATE
    for key in ('f1_mean', 'siou', 'siou_pred', 'ppv', 'tp_mean', 'fn_mean', 'fp_mean'):
        assert summary[key] == pytest.approx(want[key], abs=TOLERANCE), key
    for key in ('tp', 'fn', 'fp'):
        assert summary[key] == want[key], key
    for tau, key in ((0.25, 'f1_25'), (0.5, 'f1_50'), (0.75, 'f1_75')):
        assert summary['f1'][summary['taus'].index(tau)] == pytest.approx(want[key], abs=1e-15)
    assert summary['frames'] == len(FIXTURES)
    assert summary['gt_components'] == sum(len(e['siou_gt']) for e in EXPECTED.values())
    assert summary['pred_components'] == sum(len(e['ppv']) for e in EXPECTED.values())


def test_update_merge_and_saved_state_give_the_same_summary():
    frames = [frame(name)[:2] for name in ('touching', 'void', 'two_objects', 'empty_gt')]
    whole = ComponentMetrics(2, 2)
    results = [whole.update(pred, gt) for pred, gt in frames]
    assert results[1]['siou_gt'].tolist() == [0.4]  # update returns the frame's own result
    first, second = ComponentMetrics(2, 2), ComponentMetrics(2, 2)
    for pred, gt in frames[:2]:
        first.update(pred, gt)
    for pred, gt in frames[2:]:
        second.update(pred, gt)
    buffer = io.BytesIO()
    np.savez(buffer, **second.state_dict())
    buffer.seek(0)
    with np.load(buffer) as data:
        restored = ComponentMetrics.from_state_dict({k: data[k] for k in data.files})
    merged = first.merge(restored).compute()
    expected = whole.compute()
    assert merged.keys() == expected.keys()
    for key, value in expected.items():
        assert merged[key] == pytest.approx(value, abs=1e-15), key
    with pytest.raises(ValueError):
        first.merge(ComponentMetrics(3, 2))


def test_no_component_anywhere_gives_nan_not_an_error():
    metrics = ComponentMetrics(0, 0)
    assert math.isnan(metrics.compute()['f1_mean'])
    metrics.update(np.zeros((4, 4), bool), np.zeros((4, 4), np.uint8))
    summary = metrics.compute()
    assert summary['frames'] == 1 and summary['gt_components'] == 0
    assert all(math.isnan(summary[k]) for k in ('f1_mean', 'siou', 'siou_pred', 'ppv'))


def reference_by_definition(mask, gt, min_pred, min_gt):
    """Return sIoU and PPV straight from the paper's set definitions, one component at a time."""
    eight = np.ones((3, 3))
    objects, n_objects = ndimage.label(gt == 1, eight)
    blobs, n_blobs = ndimage.label(mask & (gt != 255), eight)
    valid = gt != 255
    for k in range(n_objects + 1):  # label 0 included, as the reference does
        if (objects == k).sum() < min_gt:
            valid &= objects != k
    kept = [j for j in range(1, n_blobs + 1)
            if (blobs == j).sum() >= min_pred and (valid & (blobs == j)).any()]
    siou = []
    for k in range(1, n_objects + 1):
        if (objects == k).sum() < min_gt:
            continue
        obj = objects == k
        touching = np.isin(blobs, [j for j in kept if (obj & (blobs == j)).any()]) & valid
        others = (objects > 0) & ~obj  # the set A
        siou.append((obj & touching).sum() / ((obj | touching) & ~others).sum())
    ppv = [((blobs == j) & valid & (objects > 0)).sum() / ((blobs == j) & valid).sum()
           for j in kept]
    return np.array(siou), np.array(ppv)


def random_frame(rng, h=18, w=22):
    gt = np.zeros((h, w), np.uint8)
    mask = np.zeros((h, w), bool)
    for _ in range(rng.integers(0, 5)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y:y + rng.integers(1, 7), x:x + rng.integers(1, 7)] = 1
    for _ in range(rng.integers(0, 3)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y:y + rng.integers(1, 5), x:x + rng.integers(1, 12)] = 255
    for _ in range(rng.integers(0, 6)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        mask[y:y + rng.integers(1, 7), x:x + rng.integers(1, 7)] = True
    return mask | (rng.random((h, w)) < 0.03), gt


def test_random_frames_match_the_set_definitions():
    rng = np.random.default_rng(21)
    for _ in range(60):
        mask, gt = random_frame(rng)
        min_pred, min_gt = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        result = component_metrics(mask, gt, min_pred, min_gt)
        siou, ppv = reference_by_definition(mask, gt, min_pred, min_gt)
        np.testing.assert_allclose(result['siou_gt'], siou, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(result['ppv'], ppv, rtol=0, atol=TOLERANCE)


def test_mask_equals_its_components_as_ids_and_ids_are_not_split():
    rng = np.random.default_rng(7)
    for _ in range(20):
        mask, gt = random_frame(rng)
        ids, _ = ndimage.label(mask & (gt != 255), np.ones((3, 3)))
        ids = (ids * 5).astype(np.uint16)  # any ids, not 1..n
        as_mask = component_metrics(mask, gt, 3, 3)
        as_ids = component_metrics(ids, gt, 3, 3)
        for key in ('siou_gt', 'ppv', 'siou_pred', 'size_pred', 'tp', 'fn', 'fp'):
            np.testing.assert_array_equal(as_ids[key], as_mask[key], err_msg=key)
    # Two touching ids are two components; the same pixels as a mask are one.
    gt = np.zeros((3, 6), np.uint8)
    gt[1, 1:5] = 1
    ids = np.array([[0, 0, 0, 0, 0, 0], [0, 1, 1, 2, 2, 0], [0, 0, 0, 0, 0, 0]])
    assert component_metrics(ids, gt, 0, 0)['pred_components'] == 2
    assert component_metrics(ids > 0, gt, 0, 0)['pred_components'] == 1


def test_components_come_in_raster_order_of_their_first_pixel():
    gt = np.zeros((6, 12), np.uint8)
    gt[0, 9:11] = 1  # first object: starts on row 0
    gt[1:5, 0] = 1  # second: starts on row 1, though it reaches further left
    gt[2:5, 5] = 1  # third
    pred = np.zeros_like(gt, dtype=bool)
    pred[0, 9] = True  # half of the first, none of the second, all of the third
    pred[2:5, 5] = True
    assert component_metrics(pred, gt, 0, 0)['siou_gt'].tolist() == [0.5, 0.0, 1.0]


def test_bad_inputs_are_refused():
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(TypeError):
        component_metrics(np.zeros((4, 4), np.float32), gt, 0, 0)
    with pytest.raises(ValueError):
        component_metrics(np.zeros((4, 5), bool), gt, 0, 0)
    with pytest.raises(ValueError):
        component_metrics(-np.ones((4, 4), np.int32), gt, 0, 0)


def test_scaled_min_sizes():
    assert scaled_min_sizes(1024, 2048) == (500, 100)
    assert scaled_min_sizes(512, 1024) == (125, 25)
    assert scaled_min_sizes(1080, 1920, 'obstacle') == (50, 10)
    assert scaled_min_sizes(8, 8) == (1, 1)


def test_full_frame_is_fast():
    # 1024 x 2048 with 8 objects and 10 predicted blobs: 7 ms (16 ms
    # when busy) on a 2-core machine; the bound catches a slow algorithm, not noise.
    rng = np.random.default_rng(0)
    gt = np.zeros((1024, 2048), np.uint8)
    gt[:200] = 255
    mask = np.zeros((1024, 2048), np.uint8)
    for _ in range(8):
        center = (int(rng.integers(0, 1900)), int(rng.integers(250, 900)))
        cv2.circle(gt, center, int(rng.integers(10, 60)), 1, -1)
    for _ in range(10):
        center = (int(rng.integers(0, 1900)), int(rng.integers(150, 900)))
        cv2.ellipse(mask, center, (int(rng.integers(10, 80)), 30), 0, 0, 360, 1, -1)
    pred = mask.astype(bool)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = component_metrics(pred, gt, 500, 100)
        times.append(time.perf_counter() - start)
    assert result['gt_components'] > 0 and result['pred_components'] > 0
    assert min(times) < 0.05
