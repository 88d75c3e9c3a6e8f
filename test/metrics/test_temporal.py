"""Temporal metrics on tiny hand-made sequences through the real instance finder and tracker."""

import json

import numpy as np
import pytest

from densehybrid_ros.core.instances import find_instances, InstanceConfig
from densehybrid_ros.core.tracking import Tracker, TrackerConfig
from densehybrid_ros.metrics.temporal import TrackingMetrics

H, W = 48, 64
THRESHOLD = 0.0
# Score maps are +100 inside the predicted boxes and -100 elsewhere, so any hysteresis rule
# within 100 score units of the threshold finds exactly the boxes; no semantic map, so the
# obstacle rule is off.
INSTANCES = InstanceConfig(drivable_classes=None)
TRACKER = TrackerConfig(confirm_hits=3, confirm_window=5, max_misses=2)


def _mask(box, shape=(H, W)):
    x, y, w, h = box
    mask = np.zeros(shape, bool)
    mask[y:y + h, x:x + w] = True
    return mask


def run(frames, metrics=None, tracker_config=TRACKER, shape=(H, W)):
    """Feed frames of (gt {id: (box or None, range)}, predicted boxes); return metrics, outputs.

    A ground-truth entry may carry a third item, the object's footprint (the pixels it would
    show unoccluded), as the sequence generator gives it. Outputs per frame: (the update's
    {track id: object ids}, the confirmed tracks).
    """
    metrics = TrackingMetrics() if metrics is None else metrics
    tracker = Tracker(tracker_config)
    outputs = []
    for gt, predicted in frames:
        gt_ids = np.zeros(shape, np.uint16)
        objects = []
        for object_id, (box, range_, *footprint) in gt.items():
            if box is not None:
                gt_ids[_mask(box, shape)] = object_id
            pixels = int(np.count_nonzero(gt_ids == object_id))
            objects.append({'id': object_id, 'range': range_, 'pixels': pixels,
                            'visible': pixels > 0})
            if footprint:
                objects[-1]['footprint'] = footprint[0]
        score = np.full(shape, -100.0, np.float32)
        for box in predicted:
            score[_mask(box, shape)] = 100.0
        instances = find_instances(score, None, THRESHOLD, INSTANCES)
        assert len(instances) == len(predicted)          # the boxes are the instances
        tracks = [t for t in tracker.update(instances) if t.confirmed]
        outputs.append((metrics.update(gt_ids, objects, tracks, instances.ids), tracks))
    return metrics, outputs


def test_an_object_seen_from_its_first_frame_is_confirmed_early() -> None:
    frames = [({1: ((10 + k, 20, 8, 8), 40.0 - 2 * k)}, [(10 + k, 20, 8, 8)]) for k in range(8)]
    metrics, outputs = run(frames)
    figures = metrics.compute()
    assert [bool(out) for out, _ in outputs] == [False, False] + [True] * 6   # 3 of 5 to confirm
    assert figures['objects'] == figures['objects_confirmed'] == figures['objects_decided'] == 1
    assert figures['frames_to_confirm']['median'] == 2
    assert figures['first_range']['median'] == 40.0
    assert figures['confirm_range']['median'] == 36.0
    assert figures['confirm_range_fraction']['median'] == pytest.approx(0.9)
    assert figures['confirmed_early'] == 1.0
    assert figures['flicker'] == 0.0 and figures['detections_followed'] == 5   # frames 2..6
    assert figures['id_switches_per_object'] == 0.0
    assert figures['phantom_tracks'] == 0 and figures['phantom_tracks_per_100_frames'] == 0.0


def test_early_is_graded_by_the_visible_fraction_while_it_could_be_early() -> None:
    frames = []
    for k in range(6):
        range_ = 20.0 - 3 * k                           # under half the first range from k = 4
        gt = {1: ((2, 5, 6, 6), range_, 36 if k < 4 else 360),   # visible until it is decided
              2: ((20, 5, 6, 6), range_, 60),           # 36 of 60 pixels: partly occluded
              3: ((40, 5, 6, 6), range_, 36 * 4),       # a quarter shows: largely occluded
              4: ((2, 30, 6, 6), range_)}               # no footprint given: not graded
        frames.append((gt, [(2, 5, 6, 6), (40, 5, 6, 6), (2, 30, 6, 6)]))
    figures = run(frames)[0].compute()
    assert figures['objects_decided'] == 4 and figures['confirmed_early'] == 0.75   # 2 is late
    none = {'no_instance': 0, 'merged': 0, 'own_instance': 0}
    assert figures['confirmed_early_by_occlusion'] == {
        'visible': {'objects_decided': 1, 'confirmed_early': 1.0, 'late_causes': none},
        'partly_occluded': {'objects_decided': 1, 'confirmed_early': 0.0,
                            'late_causes': dict(none, no_instance=1)},
        'largely_occluded': {'objects_decided': 1, 'confirmed_early': 1.0,
                             'late_causes': none}}
    assert figures['objects_occlusion_unknown'] == 1
    # mean of 1.0, 0.6 and 0.25 (object 1's frames after it passed half its range not counted)
    assert figures['visibility']['count'] == 3
    assert figures['visibility']['mean'] == pytest.approx((1.0 + 0.6 + 0.25) / 3)


def test_early_is_graded_by_the_largest_showing_while_it_could_be_early() -> None:
    # 200 x 250 = 50000 pixels: 'large' from 12 pixels shown in some frame of the early window
    frames = []
    for k in range(6):
        range_ = 20.0 - 3 * k                           # under half the first range from k = 4
        gt = {1: ((2, 5, 4, 3 if k < 3 else 2), range_),    # 12 pixels at first: large
              2: ((20, 5, 5, 2 if k < 4 else 6), range_),   # 10, then 30 once it is decided
              3: ((40, 5, 5, 2), range_),                   # 10 pixels: small, detected early
              4: ((60, 5, 5, 5), range_)}                   # 25 pixels, never detected
        frames.append((gt, [(40, 5, 5, 3), (2, 5, 4, 3)]))
    shape = (200, 250)
    figures = run(frames, tracker_config=TrackerConfig(confirm_hits=1, confirm_window=1),
                  shape=shape)[0].compute()
    assert figures['objects_decided'] == 4 and figures['confirmed_early'] == 0.5
    none = {'no_instance': 0, 'merged': 0, 'own_instance': 0}
    assert figures['confirmed_early_by_size'] == {
        'large': {'objects_decided': 2, 'confirmed_early': 0.5,
                  'late_causes': dict(none, no_instance=1)},
        'small': {'objects_decided': 2, 'confirmed_early': 0.5,
                  'late_causes': dict(none, no_instance=1)}}
    assert figures['rules']['size_levels'] == {'large': 2.4e-4, 'small': 0.0}
    largest = [row['largest_showing'] for row in run(frames, shape=shape)[0].per_object()]
    assert largest == pytest.approx([12 / 50000, 10 / 50000, 10 / 50000, 25 / 50000])


def test_late_missed_and_undecided_objects() -> None:
    frames = []
    for k in range(6):
        gt = {1: ((2, 5, 6, 6), 20.0 - 3 * k),          # never detected, passes half its range
              2: ((20, 5, 6, 6), 20.0 - 3 * k),         # detected from frame 2: confirmed at 4
              3: ((40, 5, 6, 6), 50.0),                 # far, never detected, never nearer
              4: ((52, 30, 2, 2), 30.0)}                # 4 pixels: never appears (< 10)
        frames.append((gt, [(20, 5, 6, 6)] if k >= 2 else []))
    metrics, _ = run(frames)
    figures = metrics.compute()
    assert figures['objects'] == 3
    assert figures['objects_confirmed'] == 1
    assert figures['objects_decided'] == 2 and figures['objects_undecided'] == 1
    assert figures['confirmed_early'] == 0.0
    assert figures['frames_to_confirm']['median'] == 4
    assert figures['confirm_range']['median'] == 8.0      # below half of 20
    rows = metrics.per_object()
    assert [row['early'] for row in rows[:2]] == [0.0, 0.0] and np.isnan(rows[2]['early'])


def test_late_objects_are_told_by_what_lay_on_them_in_most_of_their_early_window() -> None:
    # Confirmation needs 5 of 5 frames, so an object seen from frame 0 is confirmed in frame 4;
    # objects 1, 2 and 4 are under half their first range from frame 4 (8 < 10): late.
    frames = []
    for k in range(7):
        near = 20.0 - 3 * k
        gt = {1: ((2, 30, 6, 6), near),                 # never predicted
              2: ((18, 5, 4, 4), near),                 # 16 px inside the blob of object 3
              3: ((22, 5, 20, 20), 40.0 - k),           # 400 px, detected from frame 4: early
              4: ((50, 30, 6, 6), near),                # its own box, in frames 0-2 and 4 on
              5: ((50, 5, 6, 6), near)}                 # its own box in frames 0-1 only
        predicted = ([(18, 5, 24, 20)] + ([(50, 30, 6, 6)] if k != 3 else [])
                     + ([(50, 5, 6, 6)] if k < 2 else []))
        frames.append((gt, predicted))
    metrics, outputs = run(frames, tracker_config=TrackerConfig(confirm_hits=5,
                                                                confirm_window=5))
    assert [sorted(out.values()) for out, _ in outputs][3:5] == [[], [[3]]]  # 2: IoU 0.03
    figures = metrics.compute()
    assert figures['objects_decided'] == 5 and figures['confirmed_early'] == 0.2
    # Object 4 had its own instance in 3 of its 4 early frames (frames 0-3), none in 1; object
    # 5 in 2 of 4, a tie told as no instance (the first of LATE_CAUSES).
    assert figures['late_causes'] == {'no_instance': 2, 'merged': 1, 'own_instance': 1}
    rows = metrics.per_object()
    assert [(r['no_instance_frames'], r['merged_frames'], r['own_instance_frames'])
            for r in rows] == [(4.0, 0.0, 0.0), (0.0, 4.0, 0.0), (0.0, 0.0, 4.0),
                               (1.0, 0.0, 3.0), (2.0, 0.0, 2.0)]
    # Object 3 is early (it holds the blob's most pixels); its frames before are counted, as
    # for every object until it is decided, but only the late ones are told by cause.


def test_a_lost_object_flickers_once_and_its_new_track_is_an_id_switch() -> None:
    frames = []
    for k in range(20):
        seen = k < 8 or k >= 12                         # missed in frames 8..11
        frames.append(({1: ((20, 10, 8, 8), 30.0 - k)}, [(20, 10, 8, 8)] if seen else []))
    metrics, outputs = run(frames)
    # Frames 8 and 9: the confirmed track coasts (K = 2) and still detects the object.
    (old,) = outputs[7][1]
    assert outputs[8][0] == outputs[9][0] == {old.id: [1]}
    assert outputs[10][0] == {}                         # dropped: the object is lost
    (new,) = outputs[14][1]
    assert new.id != old.id and outputs[14][0] == {new.id: [1]}
    figures = metrics.compute()
    # Detections in frames 2..9 and 14..18 are followed by a frame still showing the object;
    # only the one of frame 9 is followed by a miss.
    assert figures['detections_followed'] == 13 and figures['flicker_events'] == 1
    assert figures['flicker'] == pytest.approx(1 / 13)
    assert figures['id_switches'] == 1 and figures['id_switches_per_object'] == 1.0
    assert figures['extra_track_ids'] == 1
    assert figures['confirmed_early'] == 1.0


def _parting(second_box):
    """Two touching objects seen as one blob for 6 frames, then as two boxes."""
    gt = {1: ((10, 10, 12, 10), 20.0), 2: ((22, 10, 10, 10), 20.0)}     # 120 and 100 px
    return ([(gt, [(10, 10, 22, 10)])] * 6
            + [(gt, [second_box, (24, 10, 8, 10)])] * 6)


def test_a_blob_over_two_objects_gives_its_id_to_one_of_them_as_clear_mot_pairs() -> None:
    # The blob's track detects both objects and is paired with the larger overlap, object 1.
    # It keeps object 1 when they part; object 2's own track is its first pairing: no switch,
    # but object 2 was detected by two ids (one extra).
    metrics, outputs = run(_parting((10, 10, 12, 10)))
    (blob,) = outputs[5][1]
    assert outputs[5][0] == {blob.id: [1, 2]}
    assert outputs[8][0][blob.id] == [1] and len(outputs[8][0]) == 2
    figures = metrics.compute()
    assert figures['id_switches'] == 0 and figures['extra_track_ids'] == 1
    assert [row['switches'] for row in metrics.per_object()] == [0.0, 0.0]
    # Here the blob's track follows object 2 when they part (box 2 is the better match for its
    # box): object 1, paired with it until then, switches to its new track when that confirms.
    metrics, outputs = run(_parting((10, 10, 6, 10)))
    (blob,) = outputs[5][1]
    assert outputs[6][0] == {blob.id: [2]}
    assert [row['switches'] for row in metrics.per_object()] == [1.0, 0.0]
    assert metrics.compute()['extra_track_ids'] == 1


def test_phantoms_count_confirmed_tracks_on_nothing_per_100_frames() -> None:
    frames = []
    for k in range(10):
        predicted = [(5, 5, 8, 8)]                      # the real object, every frame
        if k < 5:
            predicted.append((40, 25, 8, 8))            # nothing there: a phantom from frame 2
        if k == 7:
            predicted.append((45, 2, 6, 6))             # one frame: never confirmed
        frames.append(({1: ((5, 5, 8, 8), 20.0)}, predicted))
    metrics, outputs = run(frames)
    figures = metrics.compute()
    assert figures['phantom_tracks'] == 1
    assert figures['phantom_track_frames'] == 3         # matched in frames 2, 3, 4
    assert figures['phantom_tracks_per_100_frames'] == pytest.approx(10.0)
    assert sorted(outputs[3][0].values()) == [[], [1]]
    assert figures['objects_confirmed'] == 1


def test_association_takes_iou_or_cover_of_the_instance() -> None:
    gt = {1: ((0, 0, 20, 20), 10.0),       # big object, a small instance inside: cover 1
          2: ((30, 2, 4, 4), 10.0),        # small object in a big instance: IoU .04, cover .04
          3: ((32, 24, 28, 10), 10.0),     # 40 px of a 100 px instance: IoU .118, cover .4
          4: ((0, 36, 24, 10), 10.0)}      # 30 px of a 100 px instance: IoU .097, cover .3
    predicted = [(5, 5, 4, 4), (24, 0, 20, 20), (26, 24, 10, 10), (21, 36, 10, 10)]
    _, outputs = run([(gt, predicted)], tracker_config=TrackerConfig(confirm_hits=1))
    found, tracks = outputs[0]
    by_box = {t.instance.bbox: found[t.id] for t in tracks}
    assert by_box == {(5, 5, 4, 4): [1], (24, 0, 20, 20): [], (26, 24, 10, 10): [3],
                      (21, 36, 10, 10): []}
    # One instance over two objects detects both, the larger overlap first.
    gt = {1: ((10, 10, 10, 10), 10.0), 2: ((20, 10, 10, 10), 10.0)}
    _, outputs = run([(gt, [(15, 10, 15, 10)])], tracker_config=TrackerConfig(confirm_hits=1))
    assert list(outputs[0][0].values()) == [[2, 1]]


def _lost_and_found():
    return [({1: ((20, 10, 8, 8), 30.0 - k)}, [(20, 10, 8, 8)] if k < 8 or k >= 12 else [])
            for k in range(20)]


def _phantom():
    return [({1: ((5, 5, 8, 8), 20.0)}, [(5, 5, 8, 8)] + ([(40, 25, 8, 8)] if k < 5 else []))
            for k in range(10)]


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_merge_and_state_dict_equal_one_run_over_both_sequences() -> None:
    both = TrackingMetrics()
    run(_lost_and_found(), both)
    both.end_sequence()
    run(_phantom(), both)
    first, _ = run(_lost_and_found())
    second, _ = run(_phantom())
    merged = TrackingMetrics().merge(first).merge(second)
    assert both.compute()['sequences'] == 2 and both.compute()['frames'] == 30
    assert _same(merged.compute(), both.compute())
    restored = TrackingMetrics.from_state_dict(both.state_dict())
    assert _same(restored.compute(), both.compute())
    assert _same(restored.per_object(), both.per_object())     # NaN: no footprint given
    with pytest.raises(ValueError, match='different rules'):
        TrackingMetrics(min_iou=0.2).merge(first)
    old = dict(both.state_dict())
    old['records'] = old['records'][:, :-1]         # saved before the switches column
    with pytest.raises(ValueError, match='another version'):
        TrackingMetrics.from_state_dict(old)


def test_an_empty_accumulator_and_bad_input() -> None:
    figures = TrackingMetrics().compute()
    assert figures['objects'] == 0 and np.isnan(figures['confirmed_early'])
    assert np.isnan(figures['flicker']) and np.isnan(figures['phantom_tracks_per_100_frames'])
    with pytest.raises(ValueError, match='differ in size'):
        TrackingMetrics().update(np.zeros((4, 4), np.uint16), [], [],
                                 np.zeros((4, 5), np.uint16))
