"""Anomaly tracks: stable ids, M-of-N confirmation, K-miss coasting, phantoms, rendering."""

import numpy as np
import pytest

from densehybrid_ros.core.instances import find_instances, InstanceConfig, Instances
from densehybrid_ros.core.tracking import box_iou, render_tracks, Tracker, TrackerConfig

SHAPE = (120, 160)
# Plain threshold, no trim, no size or obstacle rule: each drawn box is one instance.
PLAIN = InstanceConfig(seed_offset=0.0, grow_offset=0.0, peak_fraction=0.0, min_area_fraction=0.0,
                       min_fill=0.0, drivable_classes=None)


def frame(*boxes) -> Instances:
    """Instances of one frame with a solid anomaly per (x, y, w, h) box (real rules, no mocks)."""
    score = np.zeros(SHAPE, np.float32)
    for x, y, w, h in boxes:
        score[y:y + h, x:x + w] = 5.0
    return find_instances(score, None, 1.0, PLAIN)


def by_contact(tracks, x):
    """The live track whose ground contact is nearest column ``x``."""
    return min(tracks, key=lambda t: abs(t.contact[0] - x))


def test_an_approaching_object_keeps_one_id_and_is_confirmed_on_its_fourth_frame():
    tracker = Tracker()
    ids, confirmed = set(), []
    for k in range(12):                 # moves right and down, and grows, as it approaches
        tracks = tracker.update(frame((20 + 4 * k, 40 + 2 * k, 10 + k, 10 + k)), stamp=0.1 * k)
        assert len(tracks) == 1
        ids.add(tracks[0].id)
        confirmed.append(tracks[0].confirmed)
    assert ids == {1}
    assert confirmed == [False] * 3 + [True] * 9          # defaults: 4 of 5 frames
    track = tracker.tracks[0]
    assert (track.age, track.hits, track.misses) == (12, 12, 0)
    assert track.first_stamp == 0.0 and track.last_stamp == pytest.approx(1.1)
    assert track.velocity[0] == pytest.approx(4.5, abs=0.6)   # contact column moves ~4.5 px


def test_confirmation_needs_m_hits_within_the_last_n_frames():
    cfg = TrackerConfig(confirm_hits=3, confirm_window=5, max_misses=3)
    obj, none = frame((50, 50, 12, 12)), frame()
    tracker = Tracker(cfg)
    states = [[t.confirmed for t in tracker.update(f)]
              for f in (obj, none, obj, none, obj)]
    assert states == [[False], [False], [False], [False], [True]]
    # Hits spread wider than the window never add up: hit, 3 misses, hit, 3 misses, hit.
    tracker = Tracker(TrackerConfig(confirm_hits=3, confirm_window=5, max_misses=5))
    seen = [t.confirmed for f in [obj, none, none, none] * 3 for t in tracker.update(f)]
    assert not any(seen)


def test_a_confirmed_track_coasts_k_missed_frames_then_ends_and_its_id_is_not_reused():
    tracker = Tracker(TrackerConfig(max_misses=3))
    for _ in range(5):
        first = tracker.update(frame((50, 50, 12, 12)))[0]
    assert first.confirmed
    for misses in (1, 2, 3):
        tracks = tracker.update(frame())
        assert [(t.id, t.confirmed, t.misses) for t in tracks] == [(first.id, True, misses)]
    assert tracker.update(frame()) == []
    again = tracker.update(frame((50, 50, 12, 12)))
    assert [t.id for t in again] == [first.id + 1] and not again[0].confirmed


def test_a_missed_frame_does_not_break_a_moving_track():
    tracker = Tracker()
    for k in range(10):                 # 8 px per frame; frames 4 and 6 missed
        boxes = [] if k in (4, 6) else [(10 + 8 * k, 60, 14, 14)]
        tracks = tracker.update(frame(*boxes))
        assert [t.id for t in tracks] == [1]
        assert tracks[0].confirmed == (k >= 3)
    assert tracker.tracks[0].hits == 8


def test_a_jittery_object_missed_for_frames_is_found_where_it_was():
    tracker = Tracker(TrackerConfig(smoothing=1.0))    # boxes as seen: only velocity predicts
    for x in (50, 60, 50, 60, 50):      # outline noise: the contact jumps 10 px each frame
        tracker.update(frame((x, 50, 14, 14)))
    first = tracker.tracks[0]
    assert first.confirmed and first.velocity[0] != 0
    for _ in range(3):
        tracker.update(frame())
    # The noisy velocity predicts it 12.5 px away (out of both gates); it is where it was.
    again = tracker.update(frame((50, 50, 14, 14)))
    assert [(t.id, t.misses) for t in again] == [(first.id, 0)]


def test_one_and_two_frame_phantoms_never_become_confirmed_with_the_defaults():
    corners = [(10, 10), (130, 90), (10, 90), (130, 10), (70, 50)]   # far apart in turn
    tracker = Tracker()
    ever, most = set(), 0
    for k in range(40):                 # a phantom every frame, every other one for two frames
        x, y = corners[k % len(corners)]
        for _ in range(1 + k % 2):
            tracks = tracker.update(frame((x, y, 8, 8)))
            ever |= {t.id for t in tracks if t.confirmed}
            most = max(most, len(tracks))
    assert ever == set()
    assert most <= 4                    # their tentative tracks do not pile up either


def test_two_crossing_objects_keep_their_ids():
    tracker = Tracker()
    names = {}
    for k in range(16):                 # A goes right, B goes left; they pass each other
        a = (10 + 9 * k, 30, 12, 12)
        b = (140 - 9 * k, 60, 12, 12)
        tracks = tracker.update(frame(a, b))
        if k == 0:
            names = {'A': by_contact(tracks, 16).id, 'B': by_contact(tracks, 146).id}
        assert by_contact(tracks, a[0] + 6).id == names['A']
        assert by_contact(tracks, b[0] + 6).id == names['B']
        assert len(tracks) == 2


def test_objects_that_merge_for_a_frame_keep_their_ids_when_they_part():
    tracker = Tracker()
    names = {}
    for k in range(14):                 # same row: one blob while they overlap
        a = (10 + 10 * k, 60, 14, 14)
        b = (136 - 10 * k, 60, 14, 14)
        tracks = tracker.update(frame(a, b))
        if k == 0:
            names = {'A': by_contact(tracks, 17).id, 'B': by_contact(tracks, 143).id}
        if abs(a[0] - b[0]) > 16:       # apart again
            live = {t.id: t for t in tracks if t.misses == 0}
            assert by_contact(live.values(), a[0] + 7).id == names['A'], k
            assert by_contact(live.values(), b[0] + 7).id == names['B'], k


def test_ids_are_monotonic_and_survive_reset():
    tracker = Tracker(TrackerConfig(max_misses=0))
    seen = []
    for k in range(6):
        tracks = tracker.update(frame((10 + 25 * k, 10, 10, 10)))   # a new place each frame
        seen += [t.id for t in tracks]
    assert seen == [1, 2, 3, 4, 5, 6]
    tracker.reset()
    assert tracker.tracks == []
    assert [t.id for t in tracker.update(frame((10, 10, 10, 10)))] == [7]


def test_smoothing_follows_the_observations():
    tracker = Tracker(TrackerConfig(smoothing=1.0))
    tracker.update(frame((10, 10, 10, 10)))
    track = tracker.update(frame((14, 10, 10, 10)))[0]
    assert track.bbox == (14, 10, 10, 10)
    tracker = Tracker(TrackerConfig(smoothing=0.5))
    tracker.update(frame((10, 10, 10, 10)))
    assert tracker.update(frame((14, 10, 10, 10)))[0].bbox == (12, 10, 10, 10)


def test_render_draws_confirmed_tracks_with_track_ids():
    tracker = Tracker()
    for k in range(4):
        tracker.update(frame((20 + 2 * k, 20, 10, 10)))
    tracks = tracker.update(frame((28, 20, 10, 10), (100, 80, 6, 6)))  # + a new tentative one
    image = render_tracks(tracks, SHAPE)
    assert image.dtype == np.uint16 and image.shape == SHAPE
    assert set(np.unique(image)) == {0, 1}
    assert (image == 1).sum() == 100 and (image[20:30, 28:38] == 1).all()
    everything = render_tracks(tracks, SHAPE, confirmed_only=False)
    assert set(np.unique(everything)) == {0, 1, 2}
    # A coasting confirmed track stays where it was last seen, unless asked otherwise.
    coasting = tracker.update(frame())
    assert (render_tracks(coasting, SHAPE)[20:30, 28:38] == 1).all()
    assert not render_tracks(coasting, SHAPE, coasting=False).any()


def test_box_iou_and_config_checks():
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    with pytest.raises(ValueError):
        TrackerConfig(confirm_hits=4, confirm_window=3)
    with pytest.raises(ValueError):
        TrackerConfig(smoothing=1.5)
